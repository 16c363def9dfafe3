"""Analytic gradients of the exact losses and of the effective landscape.

Every analytic gradient is compared with central finite differences of the value in
float64 (``_helpers.central_diff``; tolerances ``GRAD_RTOL`` / ``GRAD_MEAN_RTOL``).
Loss values are compared with straightforward loop implementations of the formulas in
the docstrings of :mod:`minissl.losses.reference`, and closed-form properties
(scale invariance under normalization, translation invariance, special cases of the
InfoNCE family) are checked directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import minissl
from minissl.landscape import Landscape
from _helpers import GRAD_MEAN_RTOL, GRAD_RTOL, assert_grad_close, central_diff, grad_errors

# --------------------------------------------------------------------------- configs

CONFIGS = {
    "infonce": ("infonce", {}),
    "infonce-both": ("infonce", {"negatives": "both"}),
    "weighted-a0": ("weighted", {"alpha": 0.0}),
    "weighted-a0.3-both": ("weighted", {"alpha": 0.3, "negatives": "both"}),
    "beta-0.5": ("beta", {"beta": 0.5}),
    "beta-2-a0.5": ("beta", {"beta": 2.0, "alpha": 0.5}),
    "scl": ("scl", {}),
    "scl-both": ("scl", {"negatives": "both"}),
    "barlow": ("barlow", {}),
    "barlow-raw-lam0.3": ("barlow", {"standardize": False, "lam": 0.3}),
    "vicreg": ("vicreg", {}),
    "vicreg-1-2-0.5": ("vicreg", {"inv": 1.0, "var": 2.0, "cov": 0.5}),
}
NON_VICREG = [k for k, (name, _) in CONFIGS.items() if name != "vicreg"]
VICREG = [k for k, (name, _) in CONFIGS.items() if name == "vicreg"]
INFONCE_FAMILY = [k for k, (name, _) in CONFIGS.items() if name in ("infonce", "weighted", "beta")]

# (normalize, bias, weight_decay)
VARIANTS = [
    pytest.param(norm, bias, wd, id=f"{'norm' if norm else 'raw'}-{'bias' if bias else 'nobias'}-wd{wd:g}")
    for norm in (False, True)
    for bias in (False, True)
    for wd in (0.0, 0.1)
]

C_NORM = 2.0  # squared output radius used with normalize=True


def make_loss(key, normalize=False, weight_decay=0.0, c=C_NORM):
    name, params = CONFIGS[key]
    return minissl.get_loss(name, normalize=normalize, c=c, weight_decay=weight_decay, **params)


def make_problem(d1, d0, n, w_scale=0.5, bias=False, seed=0):
    """W ~ w_scale * N(0, 1); x1 ~ N(0, 1); x2 = x1 + 0.5 * noise; b ~ N(0, 1) or None."""
    rng = np.random.default_rng(seed)
    W = w_scale * rng.standard_normal((d1, d0))
    x1 = rng.standard_normal((n, d0))
    x2 = x1 + 0.5 * rng.standard_normal((n, d0))
    b = rng.standard_normal(d1) if bias else None
    return W, x1, x2, b


def check_against_fd(loss, W, x1, x2, b):
    value, dW, db = loss.value_and_grad(W, x1, x2, b)
    assert isinstance(value, float) and math.isfinite(value)
    assert dW.shape == W.shape and dW.dtype == np.float64
    assert value == loss.value(W, x1, x2, b)
    num_W = central_diff(lambda w: loss.value(w, x1, x2, b), W)
    assert_grad_close(dW, num_W, f"{loss!r} dW")
    if b is None:
        assert db is None
    else:
        assert db.shape == b.shape and db.dtype == np.float64
        num_b = central_diff(lambda bb: loss.value(W, x1, x2, bb), b)
        assert_grad_close(db, num_b, f"{loss!r} db")
    return value, dW, db


# ------------------------------------------------------------- finite differences


@pytest.mark.parametrize("normalize, bias, wd", VARIANTS)
@pytest.mark.parametrize("key", NON_VICREG)
def test_loss_gradient_matches_finite_differences(key, normalize, bias, wd):
    loss = make_loss(key, normalize, wd)
    W, x1, x2, b = make_problem(d1=3, d0=4, n=7, bias=bias, seed=1)
    check_against_fd(loss, W, x1, x2, b)


AWKWARD_SHAPES = [
    pytest.param(1, 4, 7, id="d1=1"),
    pytest.param(3, 4, 2, id="N=2"),
    pytest.param(1, 1, 2, id="d1=d0=1,N=2"),
    pytest.param(5, 2, 3, id="d1>d0"),
]


@pytest.mark.parametrize("normalize, bias, wd", VARIANTS)
@pytest.mark.parametrize("d1, d0, n", AWKWARD_SHAPES)
@pytest.mark.parametrize("key", NON_VICREG)
def test_loss_gradient_awkward_shapes(key, d1, d0, n, normalize, bias, wd):
    loss = make_loss(key, normalize, wd)
    W, x1, x2, b = make_problem(d1, d0, n, bias=bias, seed=2)
    check_against_fd(loss, W, x1, x2, b)


def _output_stds(W, x, b, normalize, c, eps):
    """sqrt(unbiased variance + eps) of each output coordinate, as VICReg's hinge sees it."""
    z = x @ W.T
    if b is not None:
        z = z + b
    if normalize:
        z = math.sqrt(c) * z / np.linalg.norm(z, axis=1, keepdims=True)
    return np.sqrt(z.var(axis=0, ddof=1) + eps)


# regime -> (scale of each row of W, c under normalization). x has unit variance in
# d0 = 4 dimensions, so output k has std ~ 2 * scale_k. "below": W * 0.1 (raw) and
# c = 0.5 (normalized: every coordinate has variance <= c < gamma^2), all stds < gamma;
# "mixed": rows scaled (0.1, 0.6, 0.25) (raw) and c = 8 (normalized), some stds above
# gamma and some below, so both branches of the hinge are exercised. (Larger weights
# would push the loss to O(1e3) where finite differences lose the 1e-7 accuracy.)
VICREG_REGIMES = {"below-gamma": ((0.1, 0.1, 0.1), 0.5), "mixed": ((0.1, 0.6, 0.25), 8.0)}


@pytest.mark.parametrize("normalize, bias, wd", VARIANTS)
@pytest.mark.parametrize("regime", list(VICREG_REGIMES))
@pytest.mark.parametrize("key", VICREG)
def test_vicreg_gradient_away_from_hinge_kink(key, regime, normalize, bias, wd):
    row_scales, c_norm = VICREG_REGIMES[regime]
    loss = make_loss(key, normalize, wd, c=c_norm if normalize else C_NORM)
    gamma, eps = loss.params["gamma"], loss.params["eps"]
    W, x1, x2, b = make_problem(d1=3, d0=4, n=7, w_scale=1.0, bias=bias, seed=3)
    W = np.asarray(row_scales)[:, None] * W
    stds = np.concatenate([_output_stds(W, x, b, normalize, loss.c, eps) for x in (x1, x2)])
    # the test is only meaningful away from the kink std == gamma of the hinge
    assert np.min(np.abs(stds - gamma)) > 1e-3, stds
    if regime == "below-gamma":
        assert np.all(stds < gamma), stds
    else:
        assert np.any(stds > gamma) and np.any(stds < gamma), stds
    check_against_fd(loss, W, x1, x2, b)


# ----------------------------------------------------------------------- float32


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "norm"])
@pytest.mark.parametrize("key", list(CONFIGS))
def test_float32_gradient_matches_float64(key, normalize):
    loss = make_loss(key, normalize, weight_decay=0.1)
    w_scale = 0.1 if CONFIGS[key][0] == "vicreg" else 0.5
    W, x1, x2, b = make_problem(d1=3, d0=4, n=7, w_scale=w_scale, bias=True, seed=4)
    W32, x132, x232, b32 = (a.astype(np.float32) for a in (W, x1, x2, b))
    v32, dW32, db32 = loss.value_and_grad(W32, x132, x232, b32)
    # float64 reference on exactly the same (float32-representable) inputs
    v64, dW64, db64 = loss.value_and_grad(*(a.astype(np.float64) for a in (W32, x132, x232, b32)))
    assert dW32.dtype == np.float32
    assert db32.dtype == np.float32
    assert abs(v32 - v64) <= 1e-3 * max(1.0, abs(v64))
    # entries near 0 (db of translation-invariant losses is exactly 0) are compared
    # on the scale of the whole gradient
    scale = max(float(np.max(np.abs(dW64))), float(np.max(np.abs(db64))))
    for got, ref in ((dW32, dW64), (db32, db64)):
        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3 * scale)


def test_float32_weights_cast_float64_views():
    """x1, x2, b are converted to W's dtype (documented in check_matrix_pair)."""
    loss = make_loss("infonce")
    W, x1, x2, b = make_problem(2, 3, 6, bias=True, seed=5)
    _, dW, db = loss.value_and_grad(W.astype(np.float32), x1, x2, b)
    assert dW.dtype == np.float32 and db.dtype == np.float32


# -------------------------------------------------------------------- landscape


def _random_spd(rng, d):
    A = rng.standard_normal((d, d))
    return A @ A.T / d + 0.2 * np.eye(d)


def _landscape_problem(d1, d0, seed):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d0, d0))
    B = 0.5 * (M + M.T)
    S = _random_spd(rng, d0)
    Sigma = _random_spd(rng, d0)
    W = 0.5 * rng.standard_normal((d1, d0))
    b = rng.standard_normal(d1)
    return B, S, Sigma, W, b


def _landscape_closed_form(B, S, Sigma, k, kappa, c, quartic, lam, W, b):
    quad = -np.trace(W @ B @ W.T)
    G = W @ S @ W.T
    if quartic == "trace":
        quart = k * np.trace(G @ G)
    else:
        off = G - np.diag(np.diag(G))
        quart = np.sum(np.diag(G) ** 2) + lam * np.sum(off**2)
    rho = np.trace(W @ Sigma @ W.T) + (0.0 if b is None else b @ b)
    return quad + quart + kappa * (rho - c) ** 2


@pytest.mark.parametrize("d1, d0", [(2, 4), (5, 3)], ids=["d1<d0", "d1>d0"])
@pytest.mark.parametrize("with_b", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("kappa", [0.0, 2.5])
@pytest.mark.parametrize("quartic", ["trace", "barlow"])
def test_landscape_gradient_and_value(quartic, kappa, with_b, d1, d0):
    B, S, Sigma, W, b = _landscape_problem(d1, d0, seed=6)
    evals = np.linalg.eigvalsh(B)
    assert evals[0] < 0 < evals[-1], "B should be indefinite for this test"
    k, c, lam = 0.75, 1.5, 0.3
    land = Landscape(B=B, S=S, k=k, Sigma=Sigma, kappa=kappa, c=c, quartic=quartic, lam=lam)
    bb = b if with_b else None
    value, dW, db = land.value_and_grad(W, bb)
    expected = _landscape_closed_form(B, S, Sigma, k, kappa, c, quartic, lam, W, bb)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert_grad_close(dW, central_diff(lambda w: land.value(w, bb), W), "landscape dW")
    if bb is None:
        assert db is None
    else:
        num_b = central_diff(lambda v: land.value(W, v), bb)
        assert_grad_close(db, num_b, "landscape db")
        if kappa == 0.0:
            # b enters only through the normalization penalty
            assert np.all(db == 0.0)


# ---------------------------------------------------- normalization (closed form)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_normalized_loss_is_scale_invariant(key):
    """sqrt(c) f/|f| does not change under W -> 3 W: the value is invariant, the
    gradient is orthogonal to W (Euler) and scales as 1/3 (degree -1)."""
    loss = make_loss(key, normalize=True)
    W, x1, x2, _ = make_problem(3, 4, 7, seed=7)
    v1, g1, _ = loss.value_and_grad(W, x1, x2)
    v3, g3, _ = loss.value_and_grad(3.0 * W, x1, x2)
    assert v3 == pytest.approx(v1, rel=1e-12, abs=1e-12)
    radial = float(np.sum(g1 * W))
    assert abs(radial) <= 1e-10 * max(1.0, float(np.linalg.norm(g1) * np.linalg.norm(W)))
    np.testing.assert_allclose(g3, g1 / 3.0, rtol=1e-9, atol=1e-12 * max(1.0, float(np.abs(g1).max())))
    # the check is not vacuous: the gradient itself is not zero
    assert np.linalg.norm(g1) > 1e-6


# ------------------------------------------------ translation invariance (closed form)

TRANSLATION_INVARIANT = INFONCE_FAMILY + VICREG + ["barlow"]


@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("key", TRANSLATION_INVARIANT)
def test_translation_invariant_losses_ignore_bias(key, wd):
    loss = make_loss(key, weight_decay=wd)
    assert loss.translation_invariant
    w_scale = 0.1 if CONFIGS[key][0] == "vicreg" else 0.5
    W, x1, x2, b = make_problem(3, 4, 7, w_scale=w_scale, bias=True, seed=8)
    v0, dW0, _ = loss.value_and_grad(W, x1, x2)
    vb, dWb, db = loss.value_and_grad(W, x1, x2, b)
    assert vb == pytest.approx(v0, rel=1e-10, abs=1e-10)
    scale = max(1.0, float(np.abs(dW0).max()))
    assert np.max(np.abs(db)) <= 1e-10 * scale
    np.testing.assert_allclose(dWb, dW0, rtol=1e-8, atol=1e-10 * scale)


@pytest.mark.parametrize("key", ["scl", "scl-both", "barlow-raw-lam0.3"])
def test_non_invariant_losses_see_bias(key):
    """The property above is discriminating: SCL and raw Barlow do depend on b."""
    loss = make_loss(key)
    assert not loss.translation_invariant
    W, x1, x2, b = make_problem(3, 4, 7, bias=True, seed=8)
    v0 = loss.value(W, x1, x2)
    vb, _, db = loss.value_and_grad(W, x1, x2, b)
    assert abs(vb - v0) > 1e-3
    assert np.max(np.abs(db)) > 1e-3


# -------------------------------------------------- special cases of the family


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "norm"])
@pytest.mark.parametrize("negatives", ["view1", "both"])
@pytest.mark.parametrize(
    "name, params", [("beta", {"beta": 1.0}), ("weighted", {"alpha": 1.0})], ids=["beta=1", "alpha=1"]
)
def test_family_special_cases_equal_infonce(name, params, negatives, normalize):
    ref = minissl.get_loss("infonce", negatives=negatives, normalize=normalize, c=C_NORM)
    loss = minissl.get_loss(name, negatives=negatives, normalize=normalize, c=C_NORM, **params)
    W, x1, x2, b = make_problem(3, 4, 7, bias=True, seed=9)
    v_ref, dW_ref, db_ref = ref.value_and_grad(W, x1, x2, b)
    v, dW, db = loss.value_and_grad(W, x1, x2, b)
    assert v == pytest.approx(v_ref, rel=1e-14, abs=0)
    np.testing.assert_allclose(dW, dW_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(db, db_ref, rtol=1e-13, atol=1e-15)


# ------------------------------------------- values against loop implementations


def _naive_infonce(z1, z2, alpha, beta, negatives):
    n = len(z1)
    total = 0.0
    for i in range(n):
        p = float(np.sum((z1[i] - z2[i]) ** 2))
        s = alpha * math.exp(-p / 2)
        for j in range(n):
            if j == i:
                continue
            s += math.exp(-float(np.sum((z1[i] - z1[j]) ** 2)) / 2)
            if negatives == "both":
                s += math.exp(-float(np.sum((z1[i] - z2[j]) ** 2)) / 2)
        total += 0.5 * p + beta * math.log(s)
    return total / n


def _naive_scl(z1, z2, negatives):
    n = len(z1)
    k = (n - 1) * (2 if negatives == "both" else 1)
    value = -2.0 / n * sum(float(z1[i] @ z2[i]) for i in range(n))
    for i in range(n):
        for j in range(n):
            if j != i:
                value += float(z1[i] @ z1[j]) ** 2 / (n * k)
                if negatives == "both":
                    value += float(z1[i] @ z2[j]) ** 2 / (n * k)
    return value


def _naive_barlow(z1, z2, lam, standardize, eps):
    n = len(z1)
    if standardize:
        z1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + eps)
        z2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + eps)
    cc = z1.T @ z2 / n
    d = cc.shape[0]
    return sum((1 - cc[k, k]) ** 2 for k in range(d)) + lam * sum(
        cc[k, l] ** 2 for k in range(d) for l in range(d) if k != l
    )


def _naive_vicreg(z1, z2, inv, var, cov, gamma, eps):
    d = z1.shape[1]
    value = inv * float(np.mean((z1 - z2) ** 2))
    for z in (z1, z2):
        std = np.sqrt(z.var(0, ddof=1) + eps)
        value += var * 0.5 * float(np.mean(np.maximum(0.0, gamma - std)))
        C = np.atleast_2d(np.cov(z.T))
        value += cov * float(np.sum(C**2) - np.sum(np.diag(C) ** 2)) / d
    return value


def _naive_value(loss, W, x1, x2, b):
    zs = []
    for x in (x1, x2):
        z = x @ W.T + (0.0 if b is None else b)
        if loss.normalize:
            z = math.sqrt(loss.c) * z / np.linalg.norm(z, axis=1, keepdims=True)
        zs.append(z)
    p = loss.params
    if loss.name in ("infonce", "weighted", "beta"):
        value = _naive_infonce(*zs, loss.alpha, loss.beta, p["negatives"])
    elif loss.name == "scl":
        value = _naive_scl(*zs, p["negatives"])
    elif loss.name == "barlow":
        value = _naive_barlow(*zs, p["lam"], p["standardize"], p["eps"])
    else:
        value = _naive_vicreg(*zs, p["inv"], p["var"], p["cov"], p["gamma"], p["eps"])
    return value + loss.weight_decay * float(np.sum(W * W))


def test_family_parameters_resolved():
    """infonce is alpha = beta = 1, weighted has beta = 1, beta-InfoNCE keeps both."""
    assert (make_loss("infonce").alpha, make_loss("infonce").beta) == (1.0, 1.0)
    assert (make_loss("weighted-a0").alpha, make_loss("weighted-a0").beta) == (0.0, 1.0)
    assert (make_loss("beta-2-a0.5").alpha, make_loss("beta-2-a0.5").beta) == (0.5, 2.0)
    assert make_loss("scl").alpha is None


def test_infonce_numbers_are_read_in_one_place():
    """Loss.infonce_numbers: (alpha, beta, both) of the family, what the compiled cores, the control
    variate and the GPU probes take; a clear error for the other losses."""
    from minissl.losses.registry import INFONCE_FAMILY, names

    assert make_loss("infonce").infonce_numbers() == (1.0, 1.0, False)
    assert make_loss("beta-2-a0.5").infonce_numbers() == (0.5, 2.0, False)
    assert minissl.get_loss("weighted", alpha=0.25, negatives="both").infonce_numbers() == (0.25, 1.0, True)
    assert INFONCE_FAMILY == names(lambda s: s.family == "infonce") and len(INFONCE_FAMILY) == 3
    for name in set(minissl.LOSS_NAMES) - set(INFONCE_FAMILY):
        with pytest.raises(ValueError, match=f"loss '{name}' is not of the InfoNCE family"):
            minissl.get_loss(name).infonce_numbers()


@pytest.mark.parametrize("normalize, bias, wd", VARIANTS)
@pytest.mark.parametrize("key", list(CONFIGS))
def test_loss_value_matches_loop_formula(key, normalize, bias, wd):
    loss = make_loss(key, normalize, wd)
    W, x1, x2, b = make_problem(3, 4, 6, bias=bias, seed=10)
    assert loss.value(W, x1, x2, b) == pytest.approx(_naive_value(loss, W, x1, x2, b), rel=1e-10, abs=1e-12)


def test_helpers_detect_a_wrong_gradient():
    """central_diff / assert_grad_close would catch an error well below 1%."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 2))
    f = lambda v: float(np.sum(np.sin(v)) + np.sum(v**2) ** 2)  # noqa: E731
    exact = np.cos(x) + 4.0 * np.sum(x**2) * x
    num = central_diff(f, x)
    assert grad_errors(exact, num)[0] <= GRAD_RTOL
    assert grad_errors(exact, num)[1] <= GRAD_MEAN_RTOL
    with pytest.raises(AssertionError):
        assert_grad_close(exact * (1 + 1e-3), num)
