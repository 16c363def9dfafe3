"""The class-imbalance experiment (Sec. 4.3, Fig. 4): mixture data, the quick experiment and its CLI.

The quick experiment runs once per module (fixture, ~5 s) and its report is shared by the
assertions. Tolerances are stated per test.
"""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

import minissl
from minissl.cli_imbalance import imbalance_cmd
from minissl.data import Dataset, MixtureDataset, dirichlet_weights, gaussian_mixture, imbalance_weights
from minissl.experiments import imbalance as imb

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
])
def test_mixture_bad_inputs(kwargs, exc, words):
    args = {"n": 10, "means": MEANS, "weights": None, "within": 0.5, "seed": 0, **kwargs}
    with pytest.raises(exc) as info:
        gaussian_mixture(**args)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_mixture_n_counts_only_classes_with_weight():
    gaussian_mixture(2, MEANS, [1, 1, 0], seed=0, stratified=True)  # two non-empty classes, n = 2: fine


@pytest.mark.parametrize("fn, args, words", [
    (imbalance_weights, (4, 0.5), ["ratio == 0.5", ">= 1"]),
    (imbalance_weights, (0, 2), ["k == 0", ">= 1"]),
    (imbalance_weights, (3, np.inf), ["ratio == inf", "finite"]),
    (dirichlet_weights, (4, 0.0), ["alpha == 0.0", "> 0"]),
    (dirichlet_weights, (4, -1), ["alpha == -1.0"]),
])
def test_weight_helpers_bad_inputs(fn, args, words):
    with pytest.raises(ValueError) as info:
        fn(*args)
    for w in words:
        assert w in str(info.value)


def test_check_levels_adds_the_balanced_reference_and_orders():
    assert imb.check_levels("geometric", [10, 3]) == [1.0, 3.0, 10.0]
    assert imb.check_levels("dirichlet", [0.1, 1.0]) == [math.inf, 1.0, 0.1]
    with pytest.raises(ValueError, match=r"levels\[0\] == 0.5, must be >= 1.0"):
        imb.check_levels("geometric", [0.5])
    with pytest.raises(ValueError, match="empty"):
        imb.check_levels("geometric", [])
    with pytest.raises(ValueError, match="scheme"):
        imb.check_levels("zipf", [1])


def test_theory_matrix_is_what_predict_returns():
    """The derived matrix's spectrum is minissl.predict's Theorem-1 spectrum on the same data."""
    d = gaussian_mixture(64, MEANS, imbalance_weights(3, 10), within=0.5, seed=0, stratified=True)
    C = 4.0 * np.eye(3)
    for name in ("infonce", "scl"):
        loss = minissl.get_loss(name)
        M = imb.theory_matrices(loss, d, C, 2)["derived"]
        pred = minissl.predict(loss, d.A0, C, n=d.n, mean=d.x.mean(0), d1=2)["eigenvalues"]
        np.testing.assert_allclose(np.linalg.eigvalsh(M)[::-1], pred, rtol=1e-8, atol=1e-14)


# --------------------------------------------------------------------------- the quick experiment


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("imbalance")


@pytest.fixture(scope="module")
def report(out):
    return imb.run_imbalance(out=out, quick=True, progress=False)


def _learned(report, loss, level):
    return next(e for e in report["table"] if e["loss"] == loss and e["level"] == level and e["source"] == "learned")


def _entry(report, loss, level, source):
    return next(e for e in report["table"] if e["loss"] == loss and e["level"] == level and e["source"] == source)


def test_quick_run_writes_its_files(report, out):
    folder = out / "imbalance"
    rows = (folder / "data.csv").read_text().splitlines()
    assert rows[0].startswith("loss,seed,level,source,eig1,eig2,")
    s = report["settings"]
    assert len(rows) == 1 + len(s["losses"]) * s["seeds"] * len(report["levels"]) * 3
    assert (folder / "theory_ensemble.csv").stat().st_size > 0
    assert json.loads((folder / "report.json").read_text())["figure"] == "imbalance"
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
    assert [st["level"] for st in stats] == [1.0, 10.0, 100.0]
    K = report["settings"]["classes"]
    for st in stats:
        np.testing.assert_allclose(st["class_fractions"], imbalance_weights(K, st["level"]),
                                   atol=1.0 / report["settings"]["n"] + 1e-12)
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
    assert a["scl"]["max_rel_error_vs_derived"] < 0.05, a
    assert a["infonce"]["max_rel_error_vs_derived"] < 0.6, a
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
    assert v["paper"]["spectrum_change"]["verdict"] == "SCL more robust"
    assert {x["verdict"] for s in v.values() for x in s.values()} <= {
        "SCL more robust", "SCL slightly more robust", "no clear difference", "SCL slightly less robust",
        "SCL less robust"}


def test_balanced_reference_is_the_zero_of_every_change(report):
    for e in report["table"] + report["theory_ensemble"]:
        if e["level"] == 1.0:
            assert e["spectrum_change"] == 0 and e["angle"] < 1e-9 and e["probe_drop"] == 0


def test_deterministic_for_a_seed_and_resumes(report, out, tmp_path, monkeypatch):
    """A fresh folder gives the same learned numbers; the same folder resumes without training."""
    rep2 = imb.run_imbalance(out=tmp_path, quick=True, progress=False, losses=["scl"], levels=[100.0],
                             theory_seeds=1)
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
    (["--d1", "9"], ["--d1", "d1 == 9", "<= 5"]),
    (["--sigma", "0"], ["--sigma", "> 0"]),
    (["--seeds", "0"], ["--seeds", ">= 1"]),
    (["--scheme", "dirichlet"], ["--scheme", "levels"]),
    (["--scheme", "geometric", "--levels", "inf"], ["--levels", "finite"]),
])
def test_cli_bad_input_exits_2(tmp_path, args, words):
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(tmp_path), "--quick", "--quiet"] + args)
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in res.output, (w, res.output)


def test_cli_out_must_be_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = CliRunner().invoke(imbalance_cmd, ["--out", str(f), "--quick"])
    assert res.exit_code == 2 and "not a folder" in res.output
