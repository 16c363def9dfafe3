"""The class-imbalance experiment (Sec. 4.3, Fig. 4): mixture data, the quick experiment and its CLI.

The quick experiment runs once per module (fixture, ~5 s) and its report is shared by the
assertions. Tolerances are stated per test. Closed forms (theory matrices), hand computations
(metrics, the verdict rule) and tabulated t-quantiles are the independent references.
"""

import json
import math
import shutil
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

import minissl
from minissl.cli.imbalance import imbalance_cmd
from minissl.data import Dataset, MixtureDataset, dirichlet_weights, gaussian_mixture, imbalance_weights
from minissl.experiments import imbalance as imb
from minissl.experiments.imbalance import geometry, report as imb_report, verdicts
from minissl.metrics import eigenspace_angle

MEANS = np.array([[2.0, 0.0, 0.0], [0.0, 1.5, 0.0], [-1.0, -1.0, 0.5]])


# --------------------------------------------------------------------------- data


def test_mixture_statistics_match_the_closed_form():
    """Multinomial labels: class fractions within 4 standard errors of the weights; the empirical
    A0 and covariance within 5 standard errors (entry-wise, estimated from the sample) of
    sum_k w_k mu_k mu_k^T + s^2 I and of the mixture's covariance."""
    w = np.array([0.6, 0.3, 0.1])
    n, s = 40000, 0.7
    d = gaussian_mixture(n, MEANS, w, within=s, seed=3)
    assert isinstance(d, MixtureDataset) and isinstance(d, Dataset)
    frac = d.counts / n
    assert np.all(np.abs(frac - w) <= 4 * np.sqrt(w * (1 - w) / n))
    A0 = (MEANS.T * w) @ MEANS + s**2 * np.eye(3)
    np.testing.assert_allclose(d.population_A0, A0)
    m = w @ MEANS
    np.testing.assert_allclose(d.population, A0 - np.outer(m, m), atol=1e-12)
    x = d.x
    se = np.sqrt(np.var(x[:, :, None] * x[:, None, :], axis=0) / n)
    assert np.all(np.abs(d.A0 - A0) <= 5 * se)
    assert np.all(np.abs(d.A0_centered - d.population) <= 5 * se + 1e-3)
    np.testing.assert_allclose(d.A0, x.T @ x / n)
    assert d.labels.shape == (n,) and d.labels.dtype == np.int64
    np.testing.assert_allclose(d.population_mean, m)


def test_stratified_counts_are_exact_and_keep_every_class():
    w = imbalance_weights(6, 100)
    d = gaussian_mixture(256, np.random.default_rng(0).standard_normal((6, 4)), w, within=0.5, seed=1,
                         stratified=True)
    assert d.counts.sum() == 256 and np.all(d.counts >= 1)
    assert np.all(np.abs(d.counts - 256 * w) < 1.0 + 1e-9)
    # a class of tiny weight still gets one sample (taken from the largest class)
    d2 = gaussian_mixture(10, MEANS, [0.98, 0.01, 0.01], within=0.1, seed=0, stratified=True)
    np.testing.assert_array_equal(d2.counts, [8, 1, 1])
    # zero-weight classes stay empty; the data are the class means plus noise
    d3 = gaussian_mixture(50, MEANS, [1, 0, 1], within=0.0, seed=0, stratified=True)
    np.testing.assert_array_equal(d3.counts, [25, 0, 25])
    np.testing.assert_allclose(d3.x, MEANS[d3.labels])


def test_mixture_is_deterministic_and_weights_are_normalised():
    a = gaussian_mixture(100, MEANS, [2, 1, 1], within=0.3, seed=7)
    b = gaussian_mixture(100, MEANS, [0.5, 0.25, 0.25], within=0.3, seed=7)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.weights, [0.5, 0.25, 0.25])
    c = gaussian_mixture(100, MEANS, [2, 1, 1], within=0.3, seed=8)
    assert not np.array_equal(a.x, c.x)
    assert gaussian_mixture(100, MEANS, seed=0, dtype=np.float32).x.dtype == np.float32
    np.testing.assert_allclose(gaussian_mixture(30, MEANS, seed=0).weights, np.full(3, 1 / 3))


def test_imbalance_and_dirichlet_weights():
    w = imbalance_weights(5, 30)
    assert math.isclose(w.sum(), 1.0) and math.isclose(w[0] / w[-1], 30.0)
    assert np.all(np.diff(w) < 0)
    np.testing.assert_allclose(imbalance_weights(4, 1), np.full(4, 0.25))
    np.testing.assert_allclose(imbalance_weights(1, 5), [1.0])
    a = dirichlet_weights(10, 0.3, seed=2)
    np.testing.assert_array_equal(a, dirichlet_weights(10, 0.3, seed=2))
    assert math.isclose(a.sum(), 1.0) and np.all(a >= 0)
    np.testing.assert_allclose(dirichlet_weights(4, np.inf), np.full(4, 0.25))
    # small alpha gives a far more imbalanced draw than large alpha (on average over seeds)
    ratio = lambda al: np.mean([np.max(dirichlet_weights(10, al, seed=k)) for k in range(20)])  # noqa: E731
    assert ratio(0.1) > 2 * ratio(100.0)


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"means": [1.0, 2.0]}, ValueError, ["means", "2-dimensional"]),
    ({"means": [[1.0, np.nan]]}, ValueError, ["means", "NaN"]),
    ({"weights": [0.5, 0.5]}, ValueError, ["weights", "(3,)"]),
    ({"weights": [0.5, -0.1, 0.6]}, ValueError, ["weights", "-0.1", ">= 0"]),
    ({"weights": [0, 0, 0]}, ValueError, ["weights", "positive sum"]),
    ({"n": 2}, ValueError, ["n == 2", ">= 3"]),
    ({"n": 1}, ValueError, ["n == 1", ">= 2"]),
    ({"n": 2.5}, TypeError, ["n == 2.5", "integer"]),
    ({"within": -0.1}, ValueError, ["within == -0.1", ">= 0"]),
    ({"stratified": 1}, TypeError, ["stratified", "True or False"]),
    ({"within": 1e153, "n": 1000}, ValueError, ["overflows", "within == 1e+153"]),
])
def test_mixture_bad_inputs(kwargs, exc, words):
    args = {"n": 10, "means": MEANS, "weights": None, "within": 0.5, "seed": 0, **kwargs}
    with pytest.raises(exc) as info:
        gaussian_mixture(**args)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_mixture_n_counts_only_classes_with_weight():
    gaussian_mixture(2, MEANS, [1, 1, 0], seed=0, stratified=True)  # two non-empty classes, n = 2: fine


def test_mixture_huge_weights_are_normalised_without_overflow():
    """3 x 1e308 overflows a plain sum; the weights are the same as [1, 1, 1]."""
    d = gaussian_mixture(30, MEANS, [1e308, 1e308, 1e308], seed=4)
    np.testing.assert_allclose(d.weights, np.full(3, 1 / 3), rtol=1e-15)
    np.testing.assert_array_equal(d.labels, gaussian_mixture(30, MEANS, [1, 1, 1], seed=4).labels)
    assert np.all(np.isfinite(d.A0))


def test_minority_class_is_the_rarest_non_empty_class():
    # balanced weights, N = 256 over 6 classes: counts 43 x 4, 42 x 2 -> the last of the rarest (class 5)
    assert imb.minority_class([43, 43, 43, 43, 42, 42], np.full(6, 1 / 6)) == 5
    # class 1 is empty (no accuracy to measure); classes 2 and 3 have 1 sample, class 2 the smaller weight
    assert imb.minority_class([5, 0, 1, 1], [0.7, 0.0, 0.1, 0.2]) == 2
    assert imb.minority_class([0, 3, 3], [0.0, 0.5, 0.5]) == 2
    assert imb.minority_class([0, 0], [0.5, 0.5]) is None


@pytest.mark.parametrize("fn, args, words", [
    (imbalance_weights, (4, 0.5), ["ratio == 0.5", ">= 1"]),
    (imbalance_weights, (0, 2), ["k == 0", ">= 1"]),
    (imbalance_weights, (3, np.inf), ["ratio == inf", "finite"]),
    (dirichlet_weights, (4, 0.0), ["alpha == 0.0", "> 0"]),
    (dirichlet_weights, (4, -1), ["alpha == -1.0"]),
    (dirichlet_weights, (6, 1e308), ["alpha == 1e+308", "too large", "overflows", "alpha = inf"]),
])
def test_weight_helpers_bad_inputs(fn, args, words):
    with pytest.raises(ValueError) as info:
        fn(*args)
    for w in words:
        assert w in str(info.value)
    assert "too small" not in str(info.value)


def test_dirichlet_large_alpha_below_the_limit_is_nearly_uniform():
    """Dirichlet(alpha) weights have sd sqrt((1/k)(1 - 1/k) / (k alpha + 1)): at alpha = 1e300, uniform to 1e-15."""
    np.testing.assert_allclose(dirichlet_weights(6, 1e300, seed=1), np.full(6, 1 / 6), rtol=1e-12)


def test_level_keys_are_exact_strings():
    assert [imb.level_key(v) for v in (1.0, 100.0, math.inf, 0.3, 1e-300)] == ["1", "100", "inf", "0.3", "1e-300"]
    for v in (1 / 3, 2.0**0.5, 123456.789):
        assert float(imb.level_key(v)) == v
    assert imb.level_label("dirichlet", "inf") == "alpha inf (balanced)"
    assert imb.level_label("geometric", "10") == "ratio 10"


def test_check_levels_adds_the_balanced_reference_and_orders():
    assert imb.check_levels("geometric", [10, 3]) == [1.0, 3.0, 10.0]
    assert imb.check_levels("dirichlet", [0.1, 1.0]) == [math.inf, 1.0, 0.1]
    with pytest.raises(ValueError, match=r"levels\[0\] == 0.5, must be >= 1.0"):
        imb.check_levels("geometric", [0.5])
    with pytest.raises(ValueError, match="empty"):
        imb.check_levels("geometric", [])
    with pytest.raises(ValueError, match="scheme"):
        imb.check_levels("zipf", [1])


def _commuting_dataset(a):
    """Zero-mean data with A0 = diag(a) exactly: the points +-sqrt(d0 a_i) e_i (n = 2 d0)."""
    d0 = len(a)
    x = np.concatenate([np.diag(np.sqrt(d0 * np.asarray(a))), -np.diag(np.sqrt(d0 * np.asarray(a)))])
    A0 = x.T @ x / x.shape[0]
    return Dataset(x=x, A0=A0, A0_centered=A0, population=A0)


def test_levels_must_leave_two_non_empty_classes():
    """Multinomial labels (stratified = false) at ratio 1e12, K = 4, N = 96: the weights are ~(1, 1e-4, 1e-8, 1e-12),
    so a draw has a sample outside class 0 with probability ~1%; the first geometry already fails."""
    s = {"classes": 4, "dim": 5, "radius": 2.0, "within": 0.5, "center_means": True, "scheme": "geometric",
         "levels": [1.0, 1e12], "stratified": False, "n": 96, "theory_seeds": 3}
    with pytest.raises(ValueError, match=r"levels contains 1000000000000.0: the sample of seed 0 leaves only 1 of 4"):
        geometry.check_draws(s)
    geometry.check_draws({**s, "stratified": True})  # stratified: every class of positive weight gets a sample


@pytest.mark.parametrize("d1", [4, 2])
def test_theory_matrices_match_the_closed_forms(d1):
    """docs/imbalance.md, commuting zero-mean case with C = s2 I: the learned W^T W eigenvalue along a data
    direction of variance a is a / (1.5 (a + s2)^2) for InfoNCE (B = N/(N-1+alpha) A0c = A0c for alpha = 1,
    k = 3/4), a / (a + s2)^2 for SCL (B = 2 A0, k = 1), s2 / (a + s2)^2 for the paper's SCL (B = 2C) and
    a / (2 (a + s2)^2) for the paper's InfoNCE (B = A0, k = 1). With d1 < d0 the global minimum keeps the
    d1 directions of largest loss gain b^2 / (4 k s^2): the largest a for the derived constants, the
    smallest a for the paper's B = 2C."""
    a = np.array([3.0, 1.2, 0.5, 0.2])
    s2 = 1.7
    d = _commuting_dataset(a)
    np.testing.assert_allclose(d.A0, np.diag(a), atol=1e-14)
    assert np.allclose(d.x.mean(0), 0.0)
    C = s2 * np.eye(4)
    closed = {("infonce", "derived"): a / (1.5 * (a + s2) ** 2), ("scl", "derived"): a / (a + s2) ** 2,
              ("scl", "paper"): s2 / (a + s2) ** 2, ("infonce", "paper"): a / (2.0 * (a + s2) ** 2)}
    keep = {"derived": [0, 1], "paper": [2, 3]}  # which diagonal entries survive with d1 = 2
    for name in ("infonce", "scl"):
        mats = imb.theory_matrices(minissl.get_loss(name), d, C, d1)
        for src in ("derived", "paper"):
            expect = closed[name, src].copy()
            if d1 < 4:
                kept = keep[src] if (name, src) != ("infonce", "paper") else [0, 1]
                expect[[j for j in range(4) if j not in kept]] = 0.0
            np.testing.assert_allclose(mats[src], np.diag(expect), rtol=1e-9, atol=1e-12, err_msg=f"{name} {src}")


def test_representation_metrics_on_a_hand_computed_case():
    """3 classes in 2-d, means (1,0), (-1,0), (0,1), within-class std 0.5, four test points.
    M = diag(1, 0) keeps e1: projected means 1, -1, 0; the test points project to 0.9 (class 0 ->
    nearest 1, right), -0.2 (class 2 -> 0, right), 0.6 (class 2 -> 1, wrong), -0.7 (class 1 -> -1,
    right). Class accuracies 1, 1, 1/2. The minority class 2 sits at 0, distance 1 from both
    others: separation 1 / 0.5 = 2. Mean (3, 4): share in e1 9/25. Full rank M = diag(2, 0.5):
    same predictions in 2-d, separation sqrt(2)/0.5, stable rank 2.5^2 / (4 + 0.25)."""
    means = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    test1 = (np.array([[0.9, 5.0], [-0.2, 1.0], [0.6, 0.0], [-0.7, 0.0]]), np.array([0, 2, 2, 1]))
    r = imb.representation_metrics(np.diag([1.0, 0.0]), 2, means, 0.5, test1, 2, mean=np.array([3.0, 4.0]))
    assert r["rank"] == 1 and r["eigenvalues"] == [1.0, 0.0]
    assert r["class_accuracy"] == [1.0, 1.0, 0.5]
    assert math.isclose(r["probe_accuracy"], 2.5 / 3) and r["minority_accuracy"] == 0.5
    assert math.isclose(r["minority_separation"], 2.0)
    assert math.isclose(r["mean_captured"], 9 / 25)
    assert math.isclose(r["stable_rank"], 1.0)
    test2 = (np.array([[0.9, 0.2], [0.1, 0.4], [0.6, 0.0], [-0.7, 0.0]]), np.array([0, 2, 2, 1]))
    r = imb.representation_metrics(np.diag([2.0, 0.5]), 2, means, 0.5, test2, 2, mean=np.array([3.0, 4.0]))
    assert r["rank"] == 2 and r["class_accuracy"] == [1.0, 1.0, 0.5]
    assert math.isclose(r["minority_separation"], math.sqrt(2) / 0.5)
    assert math.isclose(r["mean_captured"], 1.0) and math.isclose(r["stable_rank"], 6.25 / 4.25)
    # rank 0: nothing kept, accuracy at chance
    r = imb.representation_metrics(np.zeros((2, 2)), 2, means, 0.5, test2, 2, mean=np.array([3.0, 4.0]))
    assert r["rank"] == 0 and r["class_accuracy"] == [1 / 3] * 3 and r["mean_captured"] == 0.0
    assert r["stable_rank"] == 0.0 and r["minority_separation"] == 0.0


def _rot(theta, i, j, d=3):
    R = np.eye(d)
    c, s = math.cos(theta), math.sin(theta)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def test_relative_metrics_and_principal_angle_by_hand():
    """Spectrum [3, 1] vs [1, 1]: p = (0.75, 0.25), q = (0.5, 0.5), |p - q| / |q| = 0.5. Rotating M in
    the plane of its top two eigenvectors by 25 deg turns its top-1 space by 25 deg; rotating in the
    (e2, e3) plane by 40 deg turns the top-2 space span(e1, e2) by 40 deg (largest principal angle)."""
    M = np.diag([3.0, 1.0, 0.1])
    R = _rot(math.radians(25), 0, 1)
    assert math.isclose(eigenspace_angle(M, R @ M @ R.T, 1), 25.0, abs_tol=1e-9)
    R = _rot(math.radians(40), 1, 2)
    assert math.isclose(eigenspace_angle(M, R @ M @ R.T, 2), 40.0, abs_tol=1e-9)
    assert math.isclose(eigenspace_angle(M, R @ M @ R.T, 1), 0.0, abs_tol=1e-6)
    rec = {"eigenvalues": [3.0, 1.0], "M": np.diag([3.0, 1.0, 0.0]), "probe_accuracy": 0.7,
           "class_accuracy": [0.9, 0.8, 0.4]}
    ref = {"eigenvalues": [1.0, 1.0], "M": np.diag([1.0, 1.0, 0.0]) + np.diag([1e-3, 0, 0]), "probe_accuracy": 0.8,
           "class_accuracy": [0.8, 0.8, 0.8]}
    r = imb.relative_metrics(rec, ref, 1, 2)
    assert math.isclose(r["spectrum_change"], 0.5)
    assert math.isclose(r["probe_drop"], 0.1) and math.isclose(r["minority_drop"], 0.4)
    assert math.isclose(r["angle"], 0.0, abs_tol=1e-6)


# --------------------------------------------------------------------------- the verdict rule

T975 = {1: 12.706204736174, 3: 3.182446305284}  # two-sided 95% Student-t quantiles (tables), by dof


def test_compare_one_seed_is_undetermined():
    v = verdicts._compare([0.1], [0.9], 0.01)
    assert v["verdict"] == "undetermined (1 seed)" and v["difference_se"] is None and v["n"] == 1
    assert math.isclose(v["difference"], -0.8)
    assert verdicts._compare([0.1], [0.9], 0.01, unit="geometry")["verdict"] == "undetermined (1 geometry)"


def test_compare_tie_sign_and_slight():
    assert verdicts._compare([0.3, 0.4, 0.5], [0.3, 0.4, 0.5], 0.01)["verdict"] == "no clear difference"
    # identical paired differences: SE 0, the resolution decides
    assert verdicts._compare([0.2, 0.3, 0.4], [0.7, 0.8, 0.9], 0.01)["verdict"] == "SCL more robust"
    assert verdicts._compare([0.7, 0.8, 0.9], [0.2, 0.3, 0.4], 0.01)["verdict"] == "SCL less robust"
    # difference 0.1 < 20% of the larger change (1.0): slight
    assert verdicts._compare([0.9, 0.9, 0.9], [1.0, 1.0, 1.0], 0.01)["verdict"] == "SCL slightly more robust"
    # below the resolution: no difference whatever the SE
    assert verdicts._compare([0.305, 0.305, 0.305], [0.3, 0.3, 0.3], 0.01)["verdict"] == "no clear difference"


def test_compare_uses_the_t_threshold_at_n_2_and_4():
    """n = 2, differences 0.2 and 0.3: mean 0.25, SE |0.3 - 0.2| / 2 = 0.05, threshold 12.706 x 0.05 = 0.635:
    no clear difference (2 SE = 0.1 would have called it). n = 4, differences m -+ 0.1: SE 0.1 / sqrt(3),
    threshold 3.1824 x 0.1 / sqrt(3) = 0.1837: m = 0.17 is no clear difference (> 2 SE = 0.115), m = 0.2 is."""
    v = verdicts._compare([1.2, 1.3], [1.0, 1.0], 0.01)
    assert math.isclose(v["difference_se"], 0.05) and math.isclose(v["threshold"], T975[1] * 0.05, rel_tol=1e-9)
    assert v["verdict"] == "no clear difference"
    b = [1.0, 1.0, 1.0, 1.0]
    for m, verdict in ((0.17, "no clear difference"), (0.2, "SCL slightly less robust")):
        v = verdicts._compare([1 + m - 0.1, 1 + m - 0.1, 1 + m + 0.1, 1 + m + 0.1], b, 0.01)
        assert math.isclose(v["threshold"], T975[3] * 0.1 / math.sqrt(3), rel_tol=1e-9), v
        assert v["verdict"] == verdict, (m, v)


def _synthetic(values, converged, probe=0.9, rank=2):
    """Records of 3 seeds x 2 levels: SCL and infonce changes at the last level from ``values``."""
    recs, ens = {}, {}
    for sd in range(3):
        for li in range(2):
            for loss in ("scl", "infonce"):
                base = {key: (values[loss][sd] if li == 1 else 0.0) for key, _ in verdicts.ROBUST}
                base.update(probe_accuracy=probe if loss == "scl" else 0.9, rank=rank if loss == "scl" else 2)
                recs[loss, sd, li, "learned"] = {**base, "converged": converged[loss][sd] or li == 0}
                for src in ("derived", "paper"):
                    ens[loss, sd, li, src] = dict(base)
    s = {"levels": [1.0, 100.0], "seeds": 3, "theory_seeds": 3, "classes": 4}
    return s, recs, ens


def test_learned_verdicts_use_only_converged_seeds():
    """Seed 1's compared-level infonce run did not converge, and carries a wild value: the learned verdict
    uses seeds 0 and 2 (SCL 10, 12 vs infonce 50, 52: identical differences -40, SE 0, beyond every
    resolution -> more robust); the theory sources use all three seeds. No converged seed: undetermined."""
    values = {"scl": [10.0, 900.0, 12.0], "infonce": [50.0, -900.0, 52.0]}
    s, recs, ens = _synthetic(values, {"scl": [True] * 3, "infonce": [True, False, True]})
    v = verdicts.robustness_verdicts(s, recs, ens, "infonce")
    for key, _ in verdicts.ROBUST:
        x = v["learned"][key]
        assert x["n"] == 2 and x["excluded_seeds"] == [1]
        assert math.isclose(x["scl"], 11.0) and math.isclose(x["reference"], 51.0)
        assert x["verdict"] == "SCL more robust" and x["degenerate"] is None
        assert v["derived"][key]["n"] == 3 and math.isclose(v["derived"][key]["scl"], (10.0 + 900.0 + 12.0) / 3)
    s, recs, ens = _synthetic(values, {"scl": [False] * 3, "infonce": [True] * 3})
    v = verdicts.robustness_verdicts(s, recs, ens, "infonce")
    assert {x["verdict"] for x in v["learned"].values()} == {"undetermined: no converged seeds"}
    assert all(x["n"] == 0 and x["scl"] is None for x in v["learned"].values())
    assert imb.summary_lines({"verdicts": v, "reference_loss": "infonce", "errata_E4": None})[2].count(
        "undetermined: no converged seeds") == 1


def test_degenerate_representations_get_no_verdict():
    """K = 4: a balanced SCL probe of 0.3 < 1.5/4 = 0.375, or W^T W of rank 0, makes every verdict of that source
    'not meaningful'; a probe of 0.4 does not."""
    values = {"scl": [0.0, 0.0, 0.0], "infonce": [50.0, 50.0, 50.0]}
    conv = {"scl": [True] * 3, "infonce": [True] * 3}
    for probe, rank, bad in ((0.3, 2, "probe accuracy 0.300 < 1.5/K = 0.375"), (0.9, 0, "rank 0 in 3 of 3")):
        s, recs, ens = _synthetic(values, conv, probe=probe, rank=rank)
        v = verdicts.robustness_verdicts(s, recs, ens, "infonce")
        for src in ("learned", "derived", "paper"):
            for x in v[src].values():
                assert x["verdict"].startswith("not meaningful (degenerate representation: SCL") and bad in x["verdict"]
                assert x["comparison"] == "SCL more robust"
    s, recs, ens = _synthetic(values, conv, probe=0.4)
    assert {x["verdict"] for x in verdicts.robustness_verdicts(s, recs, ens, "infonce")["paper"].values()} == {"SCL more robust"}


def _e4_rows(errs, angles, conv):
    return [{"source": "learned", "loss": "scl", "eig_error_vs_derived": e, "angle_vs_paper": a, "converged": c}
            for e, a, c in zip(errs, angles, conv)]


def test_errata_e4_line_only_confirms_when_the_numbers_do():
    ok = verdicts.errata_e4({}, _e4_rows([0.02, 0.05], [80.0, 60.0], [True, True]))
    assert ok["confirmed"] and "within 5.0%" in ok["text"] and ">= 60 deg" in ok["text"]
    # an unconverged run with a wild error is left out
    ok = verdicts.errata_e4({}, _e4_rows([0.02, 5.0], [80.0, 10.0], [True, False]))
    assert ok["confirmed"] and "1/2 SCL runs converged" in ok["text"]
    bad = verdicts.errata_e4({}, _e4_rows([0.02, 0.5], [80.0, 60.0], [True, True]))
    assert not bad["confirmed"] and "does not confirm" in bad["text"] and "50.0% (more than 10%)" in bad["text"]
    bad = verdicts.errata_e4({}, _e4_rows([0.02, 0.05], [80.0, 30.0], [True, True]))
    assert not bad["confirmed"] and "only 30 deg" in bad["text"]
    none = verdicts.errata_e4({}, _e4_rows([0.02], [80.0], [False]))
    assert not none["confirmed"] and "no SCL training run converged (0/1)" in none["text"]
    huge = verdicts.errata_e4({}, _e4_rows([9.5e297], [80.0], [True]))
    assert "9.5e+299%" in huge["text"] and len(huge["text"]) < 300


# --------------------------------------------------------------------------- the quick experiment


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("imbalance")


@pytest.fixture(scope="module")
def report(out):
    return imb.run_imbalance(out=out, quick=True, progress=False)


def _learned(report, loss, level):
    return _entry(report, loss, level, "learned")


def _entry(report, loss, level, source):
    key = imb.level_key(level)
    return next(e for e in report["table"] if e["loss"] == loss and e["level"] == key and e["source"] == source)


def test_quick_run_writes_its_files(report, out):
    folder = out / "imbalance"
    rows = (folder / "data.csv").read_text().splitlines()
    assert rows[0].startswith("loss,seed,level,source,eig1,eig2,")
    s = report["settings"]
    assert len(rows) == 1 + len(s["losses"]) * s["seeds"] * len(report["levels"]) * 3
    assert (folder / "theory_ensemble.csv").stat().st_size > 0
    saved = json.loads((folder / "report.json").read_text())
    assert saved["figure"] == "imbalance" and saved["levels"] == ["1", "10", "100"]
    assert {e["level"] for e in saved["table"]} == {"1", "10", "100"}
    assert (folder / "report.md").read_text().startswith("# Class imbalance")
    if report["figure_png"] is None:
        assert "pip install 'minissl[plot]'" in report["figure_note"]
    else:
        assert (folder / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert report["all_converged"], report["converged"]


def test_imbalance_is_applied(report):
    """The class fractions follow the levels and the data's A0 spectrum changes with them."""
    stats = report["level_stats"]
    assert [st["level"] for st in stats] == ["1", "10", "100"]
    K = report["settings"]["classes"]
    for st in stats:
        np.testing.assert_allclose(st["class_fractions"], imbalance_weights(K, float(st["level"])),
                                   atol=1.0 / report["settings"]["n"] + 1e-12)
        assert st["empty_classes"] == [] and st["minority_class"] == K - 1  # geometric: the last class is rarest
    a0 = [np.array(st["A0_eigenvalues"]) for st in stats]
    assert np.max(np.abs(a0[-1] - a0[0])) > 0.3 * a0[0][0]
    assert stats[-1]["mean_norm2"] > 10 * stats[0]["mean_norm2"]
    for loss in report["settings"]["losses"]:
        assert _entry(report, loss, 100.0, "derived")["spectrum_change"] > 0.1


def test_learned_spectra_agree_with_the_derived_theory(report):
    """SCL's noise-averaged loss is a quartic polynomial (up to O(1/N)): learned eigenvalues within
    5% of the derived prediction. InfoNCE is an expansion in u (~0.7 here): eigenvalues within 60%,
    subspaces within 10 deg. The paper's B = 2C for SCL predicts a subspace >= 80 deg away (E4)."""
    a = report["agreement"]
    assert a["scl"]["max_eig_error_vs_derived"] < 0.05, a
    assert a["infonce"]["max_eig_error_vs_derived"] < 0.6, a
    assert a["scl"]["max_angle_vs_derived"] < 10 and a["infonce"]["max_angle_vs_derived"] < 10, a
    assert a["scl"]["min_angle_vs_paper"] > 80, a


def test_learned_robustness_metrics_follow_the_derived_theory(report):
    """The quantities the verdict uses agree between learned model and derived theory on the same
    data: spectrum change within 0.1, angle within 10 deg, probe accuracies within 0.03."""
    for loss in report["settings"]["losses"]:
        for level in report["levels"]:
            le, de = _learned(report, loss, level), _entry(report, loss, level, "derived")
            assert abs(le["spectrum_change"] - de["spectrum_change"]) < 0.1, (loss, level)
            assert abs(le["angle"] - de["angle"]) < 10, (loss, level)
            assert abs(le["probe_accuracy"] - de["probe_accuracy"]) < 0.03, (loss, level)
            assert abs(le["minority_accuracy"] - de["minority_accuracy"]) < 0.03, (loss, level)


def test_paper_constants_predict_invariance_that_the_derived_theory_does_not(report):
    """B = 2C (isotropic) makes SCL's spectrum nearly imbalance-independent and keeps the
    lowest-variance (pure-noise) directions: its probe is near chance. The derived B = 2 A0 moves."""
    last = report["levels"][-1]
    paper = _entry(report, "scl", last, "paper")
    derived = _entry(report, "scl", last, "derived")
    assert paper["spectrum_change"] < 0.05 < 0.1 < derived["spectrum_change"]
    assert _entry(report, "scl", 1.0, "paper")["probe_accuracy"] < 0.5 < 0.8 < derived["probe_accuracy"]
    v = report["verdicts"]
    assert set(v) == {"learned", "derived", "paper"}
    # the paper's SCL keeps noise directions: its balanced probe (mean over the geometries, from the ensemble
    # table) is below 1.5/K, so its verdicts are marked, not counted, whatever the numbers say
    K = report["settings"]["classes"]
    probe = next(e for e in report["theory_ensemble"] if e["loss"] == "scl" and e["source"] == "paper"
                 and e["level"] == "1")["probe_accuracy"]
    assert probe < 1.5 / K
    assert v["paper"]["spectrum_change"]["comparison"] == "SCL more robust"
    for x in v["paper"].values():
        assert x["verdict"] == (f"not meaningful (degenerate representation: SCL's balanced probe accuracy "
                                f"{probe:.3f} < 1.5/K = {1.5 / K:.3f}, chance {1 / K:.3f})")
    assert all(x["degenerate"] is None for x in v["derived"].values())
    # one trained seed: no standard error, no learned verdict
    assert {x["verdict"] for x in v["learned"].values()} == {"undetermined (1 seed)"}
    assert {x["verdict"] for x in v["derived"].values()} <= {
        "SCL more robust", "SCL slightly more robust", "no clear difference", "SCL slightly less robust",
        "SCL less robust"}


def test_markdown_says_whether_the_means_are_centred(report):
    s = dict(report["settings"])
    assert "radius 2, centred;" in imb_report.markdown(report, s)
    assert "radius 2, not centred;" in imb_report.markdown(report, {**s, "center_means": False})


def test_unconverged_runs_give_no_learned_verdict(report, out, tmp_path):
    """The module's finished runs, marked unconverged, are resumed (no training): the learned verdicts are
    undetermined, E4 is not confirmed, and the agreement line says there are no converged runs."""
    src = out / "imbalance" / "points"
    shutil.copytree(src, tmp_path / "imbalance" / "points")
    stores = list((tmp_path / "imbalance" / "points").rglob("sweep.sqlite"))
    assert stores
    for path in stores:
        with sqlite3.connect(path) as db:
            for key, result in db.execute("SELECT key, result FROM points").fetchall():
                rec = json.loads(result)
                rec["converged"] = False
                db.execute("UPDATE points SET result = ? WHERE key = ?", (json.dumps(rec), key))
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(tmp_path), "--quick", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "converged training runs: 0/6" in res.output
    learned = next(line for line in res.output.splitlines() if line.strip().startswith("learned models"))
    assert "undetermined: no converged seeds" in learned and "robust" not in learned
    assert "errata E4: this run does not confirm it: no SCL training run converged (0/3)" in res.output
    assert "errata E4 confirmed" not in res.output
    assert "infonce: no converged runs (0/3)" in res.output
    rep = json.loads((tmp_path / "imbalance" / "report.json").read_text())
    assert not rep["errata_E4"]["confirmed"] and rep["agreement"]["scl"]["max_eig_error_vs_derived"] is None


def test_deterministic_for_a_seed_and_resumes(report, out, tmp_path, monkeypatch):
    """A fresh folder gives the same learned numbers; the same folder resumes without training."""
    rep2 = imb.run_imbalance(out=tmp_path, quick=True, progress=False, losses=["scl"], levels=[100.0],
                             theory_seeds=1)
    assert rep2["verdicts"] == {} and rep2["errata_E4"]["confirmed"]
    for level in (1.0, 100.0):
        assert _learned(rep2, "scl", level)["eigenvalues"] == _learned(report, "scl", level)["eigenvalues"]
    import minissl.train

    def boom(*a, **k):
        raise AssertionError("resumed run must not train")

    monkeypatch.setattr(minissl.train, "simulate_batch", boom)
    rep3 = imb.run_imbalance(out=out, quick=True, progress=False)
    assert rep3["table"] == report["table"]


def test_run_imbalance_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="d1 == 9, must be <= 5"):
        imb.run_imbalance(out=tmp_path, quick=True, d1=9, progress=False)
    with pytest.raises(ValueError, match="losses == 'vicreg'"):
        imb.run_imbalance(out=tmp_path, quick=True, losses=["vicreg"], progress=False)
    with pytest.raises(TypeError, match="losses"):
        imb.run_imbalance(out=tmp_path, quick=True, losses="scl", progress=False)
    with pytest.raises(ValueError, match="give its levels too"):
        imb.run_imbalance(out=tmp_path, quick=True, scheme="dirichlet", progress=False)
    with pytest.raises(ValueError, match="engine"):
        imb.run_imbalance(out=tmp_path, quick=True, engine="torch", progress=False)


# --------------------------------------------------------------------------- CLI


def test_cli_runs_and_prints_a_table_per_level(tmp_path):
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(tmp_path), "--quick", "--quiet", "--losses", "infonce,scl",
                                             "--levels", "1,100", "--theory-seeds", "2"])
    assert res.exit_code == 0, res.output
    assert res.output.count("top eigenvalues of W^T W") == 2
    assert "verdict at ratio 100" in res.output and "paper's constants" in res.output
    assert (tmp_path / "imbalance" / "report.json").is_file()


@pytest.mark.parametrize("args, words", [
    (["--levels", "0.5"], ["--levels", "0.5", ">= 1"]),
    (["--levels", "1,x"], ["--levels", "comma-separated"]),
    (["--losses", "infonce,vicreg"], ["--losses", "vicreg"]),
    (["--d1", "9"], ["--out-dim == 9", "<= 5"]),  # --d1: hidden alias of --out-dim
    (["--out-dim", "9"], ["--out-dim == 9", "<= 5"]),
    (["--sigma", "0"], ["--sigma", "> 0"]),
    (["--seeds", "0"], ["--seeds", ">= 1"]),
    (["--scheme", "dirichlet"], ["--scheme", "levels"]),
    (["--scheme", "geometric", "--levels", "inf"], ["--levels", "finite"]),
    (["--sigma", "1e200"], ["--sigma == 1e+200", "must be <= 1000000.0"]),  # the CLI's one --sigma bound
    (["--sigma", "1e-200"], ["--sigma", "1e-200", "nonzero"]),
    (["--sigma", "1e5"], ["--sigma", "must be between 0.00206 and 2.06e+03"]),
    (["--scheme", "dirichlet", "--levels", "1e308"], ["--levels", "1e+308", "too large", "alpha = inf"]),
    (["--scheme", "dirichlet", "--levels", "1e-300"], ["--levels", "1e-300", "leaves only 1 of 4 classes",
                                                       "at least 2 non-empty classes"]),
])
def test_cli_bad_input_exits_2(tmp_path, args, words):
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(tmp_path), "--quick", "--quiet"] + args)
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in res.output, (w, res.output)
    assert "Traceback" not in res.output and "too small" not in res.output


def test_cli_out_must_be_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(f), "--quick"])
    assert res.exit_code == 2 and "not a folder" in res.output


@pytest.mark.parametrize("old, new, message", [
    ("classes = 4", "classes = 1", "[quick] classes == 1, must be >= 2."),
    ("\nsteps = 1500", '\nsteps = "x"', "[quick] steps == 'x', must be an integer."),
    ('losses = ["infonce", "scl"]', 'losses = ["infonce", "vicreg"]',
     "[figure] losses == 'vicreg', must be one of 'infonce', 'weighted', 'scl'."),
    ("sigma = 2.5 ", "sigma = 1e9 ", "[run] sigma == 1000000000.0, must be between 0.00206 and 2.06e+03"),
    ("seeds = 1\n", "seeds = 0\n", "[quick] seeds == 0, must be >= 1."),
    ("n = 96", "n = 3", "[quick] n == 3, must be >= 4 (classes)"),
    ("levels = [1.0, 10.0, 100.0]", "levels = []", "[quick] levels is empty"),
    ("classes = 4", "klasses = 4", "[quick] has unknown key(s) ['klasses']"),
    ("within = 0.5 ", "within = 0.5\nwidth = 1 ", "[figure] has unknown key(s) ['width']"),
])
def test_broken_settings_file_names_file_and_key(broken_settings, tmp_path, old, new, message):
    """A bad value of the settings file names the file, its section and the key (exit 2, before any run);
    the same kind of value given as an option names the option (test_cli_bad_input_exits_2)."""
    path = broken_settings("imbalance", old, new)
    with pytest.raises((ValueError, TypeError)) as err:
        imb.load_settings(True, {})
    assert str(err.value).startswith(f"settings file {str(path)!r}: ") and message in str(err.value)
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(tmp_path / "out"), "--quick"])
    assert res.exit_code == 2, res.output
    assert f"Error: settings file {str(path)!r}" in res.output and message in res.output
    assert "Traceback" not in res.output and "Invalid value for" not in res.output
    assert "classes in d0" not in res.output  # the run's header: nothing started
    assert not (tmp_path / "out" / "imbalance" / "points").exists()


def test_an_option_overrides_a_bad_setting_and_is_named_itself(broken_settings, tmp_path):
    broken_settings("imbalance", "n = 96", "n = 3")
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(tmp_path), "--quick", "--n", "2"])
    assert res.exit_code == 2 and "--n == 2, must be >= 4 (classes)" in res.output, res.output
    assert "settings file" not in res.output
    s = imb.load_settings(True, {"n": 8})  # the option replaces the file's bad value
    assert s["n"] == 8
