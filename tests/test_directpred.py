"""DirectPred (minissl.directpred) beside the learned predictor in linear SimSiam/BYOL.

Independent sources: ``scipy.linalg.sqrtm`` for the predictor, ``solve_ivp`` of the
per-direction flow for ``scale="none"``, and the noise-free discrete recursion (heavy
ball, EMA target, moving-average correlation, no root finding) for ``scale="max"``; the
trained runs are then checked against the theory like the learned predictor's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp

from minissl import directpred as D
from minissl import siamese as S

S_EIG = np.array([4.0, 2.5, 1.5, 0.8, 0.4])
C_EIG = np.ones(5)


# ------------------------------------------------------------------ the predictor


def test_predictor_is_the_matrix_square_root_plus_eps(rng):
    G = rng.standard_normal((4, 6))
    F = G @ G.T / 6
    root = np.real(scipy.linalg.sqrtm(F))
    assert np.allclose(D.directpred_predictor(F, eps=0.2, scale="none"), root + 0.2 * np.eye(4), atol=1e-10)
    top = np.linalg.eigvalsh(F)[-1]
    assert np.allclose(D.directpred_predictor(F, eps=0.0, scale="max"), root / math.sqrt(top), atol=1e-10)
    # Tian et al.'s rule: the largest eigenvalue is 1 + eps, whatever the scale of F
    assert np.linalg.eigvalsh(D.directpred_predictor(1e-30 * F, eps=0.1))[-1] == pytest.approx(1.1, rel=1e-12)
    assert np.array_equal(D.directpred_predictor(np.zeros((3, 3)), eps=0.1), 0.1 * np.eye(3))


def test_correlation_moving_average(rng):
    z1, z2 = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    batch = np.mean([np.outer(a, a) for a in z1] + [np.outer(b, b) for b in z2], axis=0)
    assert np.allclose(D.update_correlation(None, z1, z2, 0.3), batch)
    old = np.eye(3)
    assert np.allclose(D.update_correlation(old, z1, z2, 0.3), 0.3 * old + 0.7 * batch)


@pytest.mark.parametrize("kw, match", [
    (dict(eps=-0.1), "eps == -0.1"),
    (dict(scale="min"), "scale"),
    (dict(F_hat=np.ones((2, 3))), "square"),
])
def test_predictor_bad_input(kw, match):
    args = dict(F_hat=np.eye(2), eps=0.1, scale="max")
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        D.directpred_predictor(**args)


# ------------------------------------------------------------------ theory against independent solutions


def _flow_none(s, c, eta, eps, w0, T=400.0):
    def rhs(_, y):
        p = abs(y[0]) * math.sqrt(s + c) + eps
        return [y[0] * (p * s - p * p * (s + c) - eta)]
    return solve_ivp(rhs, (0.0, T), [w0], rtol=1e-10, atol=1e-14).y[0, -1]


@pytest.mark.parametrize("eta", [0.0, 0.05])
def test_scale_none_fixed_points_are_where_the_flow_goes(eta):
    th = D.directpred_theory(S_EIG, C_EIG, weight_decay=eta, eps=0.1, scale="none")
    for j, (s, c) in enumerate(zip(S_EIG, C_EIG)):
        w = _flow_none(s, c, eta, 0.1, w0=1e-3)
        assert w * w == pytest.approx(th["w2"][j], abs=1e-7), j
        assert th["alive"][j] == (w * w > 1e-6)
    assert th["alive"].sum() == (5 if eta == 0 else 4)  # s = 0.4: 0.16 < 4 * 0.05 * 1.4
    # at a live fixed point the predictor sits at the learned predictor's p_+
    fp = S.fixed_points(S_EIG, C_EIG, eta)
    assert np.allclose(th["p"][th["alive"]], fp["p"][th["alive"]])


def test_scale_none_bistable_direction():
    """eps below the smaller root p_-: w = 0 is stable too; a large start reaches the fixed point."""
    s, c, eta, eps = 4.0, 1.0, 0.5, 0.05  # p_- = 0.138 > eps, p_+ = 0.662
    th = D.directpred_theory([s], [c], weight_decay=eta, eps=eps, scale="none")
    assert th["alive"][0] and th["bistable"][0]
    assert abs(_flow_none(s, c, eta, eps, w0=1e-3)) < 1e-8
    assert _flow_none(s, c, eta, eps, w0=0.5) ** 2 == pytest.approx(th["w2"][0], rel=1e-6)


def _recursion_max(s, c, *, eta, eps, lr, mu, ema, rho, steps=6000):
    """The noise-free dynamics of the diagonal model, step by step as train_siamese orders them.

    Every step: the moving-average correlation ``F_j <- rho F_j + (1 - rho) w_j^2 (s_j + c_j)``,
    ``p_j = sqrt(F_j / max F) + eps``, the expected gradient with the target ``wt``,
    heavy-ball SGD, then the EMA target. The whole state is rescaled by ``|w|`` after each
    step (the dynamics is homogeneous), and the log of the factor is the decay.
    """
    w = np.linspace(1.0, 0.5, s.size)
    wt, buf, Fh, logs = w.copy(), np.zeros_like(w), None, []
    for _ in range(steps):
        batch = w * w * (s + c)
        Fh = batch if Fh is None else rho * Fh + (1 - rho) * batch
        p = np.sqrt(Fh / Fh.max()) + eps
        g = p * p * (s + c) * w - p * s * wt + eta * w
        buf = mu * buf + g
        w = w - lr * buf
        wt = ema * wt + (1 - ema) * w
        n = np.linalg.norm(w)
        logs.append(math.log(n))
        w, wt, buf, Fh = w / n, wt / n, buf / n, Fh / n ** 2
    return w * w / np.max(w * w), math.exp(np.mean(logs[-500:]))


@pytest.mark.parametrize("mu", [0.0, 0.5])
@pytest.mark.parametrize("ema", [0.0, 0.9])
@pytest.mark.parametrize("eta, rho", [(0.0, 0.0), (0.05, 0.3)])
def test_scale_max_shape_and_decay_match_the_exact_recursion(mu, ema, eta, rho):
    lr = 0.05
    th = D.directpred_theory(S_EIG, C_EIG, weight_decay=eta, eps=0.1, scale="max", lr=lr, momentum=mu, ema=ema,
                             rho=rho)
    shape, q = _recursion_max(S_EIG, C_EIG, eta=eta, eps=0.1, lr=lr, mu=mu, ema=ema, rho=rho)
    assert q == pytest.approx(th["decay_per_step"], abs=1e-9)
    assert np.allclose(shape, th["w2"], atol=1e-7)
    # the slowest direction is the one with the largest feature variance lambda = w^2 (s + c), p = 1 + eps;
    # for SimSiam it is the weakest direction here, while BYOL's lagging target (g > 1) favours the strongest
    assert np.argmax(th["w2"] * (S_EIG + C_EIG)) == th["slowest"] == (4 if ema == 0 else 0)


def test_scale_max_refuses_a_moving_average_slower_than_the_decay():
    th = D.directpred_theory(S_EIG, C_EIG, eps=0.1, scale="max", lr=0.05)
    assert D.directpred_theory(S_EIG, C_EIG, eps=0.1, scale="max", lr=0.05,
                               rho=th["decay_per_step"] ** 2 * 1.001) is None
    with pytest.raises(ValueError, match="lr"):
        D.directpred_theory(S_EIG, C_EIG, scale="max")


# ------------------------------------------------------------------ training against the theory

_RUN = dict(n=512, sigma=1.0, lr=0.05, weight_decay=0.02, directpred=True)


@pytest.fixture(scope="module")
def runs():
    out = {}
    for method in ("simsiam", "byol"):
        out[method, "none"] = S.train_siamese(method, directpred_scale="none", steps=3000, lr_schedule="cosine",
                                              **_RUN)
        out[method, "max"] = S.train_siamese(method, directpred_scale="max", steps=1500, **_RUN)
    return out


@pytest.mark.parametrize("method", ["simsiam", "byol"])
def test_scale_none_reaches_its_fixed_point(runs, method):
    r = runs[method, "none"]
    th = r.theory
    assert not r.checks["complete_collapse"] and th["alive"].all()
    w2 = np.array(r.checks["w2_along_F"])
    assert np.allclose(w2[:4], th["w2"][:4], rtol=0.03)
    assert w2[4] == pytest.approx(th["w2"][4], rel=0.15)  # the weakest direction is the slowest and noisiest
    assert np.allclose(r.checks["p_along_F"], th["p"], atol=0.03)
    # the predictor is DirectPred's, not a learned one: eigenvalues sqrt(lambda) + eps of the features' correlation
    lam = np.linalg.eigvalsh(r.W @ (r.F + r.C) @ r.W.T)
    assert np.allclose(np.sort(np.linalg.eigvalsh(r.P)), np.sqrt(np.maximum(lam, 0)) + 0.1, atol=0.03)


@pytest.mark.parametrize("method", ["simsiam", "byol"])
def test_scale_max_collapses_in_norm_with_the_predicted_shape_and_rate(runs, method):
    r = runs[method, "max"]
    th = r.theory
    assert r.checks["norm_ratio"] < 0.1
    shape = np.array(r.checks["shape_along_F"])
    assert np.allclose(shape[:4], th["w2"][:4], rtol=0.04)
    assert shape[4] == pytest.approx(th["w2"][4], rel=0.1)  # the weakest direction is the noisiest
    q, meas = th["decay_per_step"], r.checks["decay_per_step"]
    # SimSiam measures ~3.5% slower at N = 512 (P and the loss see the same views; 1% at N = 2048)
    assert (1 - meas) == pytest.approx(1 - q, rel=0.08)
    # the largest predictor eigenvalue is 1 + eps by construction
    assert np.linalg.eigvalsh(r.P)[-1] == pytest.approx(1.1, rel=1e-9)


def test_directpred_is_deterministic_and_differs_from_the_learned_predictor():
    kw = dict(n=64, sigma=1.0, steps=200, seed=3)
    a = S.train_siamese("simsiam", directpred=True, **kw)
    b = S.train_siamese("simsiam", directpred=True, **kw)
    assert np.array_equal(a.W, b.W) and np.array_equal(a.P, b.P)
    assert not np.allclose(a.P, S.train_siamese("simsiam", **kw).P)


@pytest.mark.parametrize("kw", [dict(batchnorm=True), dict(objective="cosine"), dict(lr_schedule="cosine"),
                                dict(optimizer="adam")])
def test_no_max_theory_outside_its_scope(kw):
    r = S.train_siamese("byol", directpred=True, n=64, sigma=1.0, steps=200, **kw)
    assert r.theory is None
    assert np.all(np.isfinite(r.W)) and np.all(np.isfinite(r.P))


@pytest.mark.parametrize("kw, match", [
    (dict(predictor=False), "needs predictor=True"),
    (dict(predictor_lr=2.0), "predictor_lr == 2.0"),
    (dict(predictor_init="identity"), "predictor_init == 'identity'"),
    (dict(directpred_eps=-1.0), "directpred_eps == -1.0"),
    (dict(directpred_rho=1.0), "directpred_rho == 1.0"),
    (dict(directpred_scale="sum"), "directpred_scale"),
])
def test_bad_directpred_options(kw, match):
    with pytest.raises(ValueError, match=match):
        S.train_siamese("simsiam", directpred=True, steps=5, **kw)


def test_divergence_names_directpred_eps():
    with pytest.raises(FloatingPointError, match="directpred_eps"):
        S.train_siamese("simsiam", directpred=True, directpred_eps=1e200, n=16, steps=5)


def test_directpred_options_need_directpred():
    with pytest.raises(ValueError, match="directpred_eps == 0.2 applies with directpred=True"):
        S.train_siamese("simsiam", directpred_eps=0.2, steps=5)


def test_no_prediction_without_the_stop_gradient():
    r = S.train_siamese("simsiam", directpred=True, stop_gradient=False, n=64, sigma=1.0, steps=50)
    assert r.theory is None


def test_weight_decay_leaves_the_set_predictor_alone(rng):
    """DirectPred's loss has no eta/2 |P|^2 term and no P gradient from it: P is not a parameter."""
    W, P = rng.standard_normal((3, 4)), rng.standard_normal((3, 3))
    x1, x2 = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
    args = (W, P, x1, x2, None, True, True, None, "mse")
    v0, g0, p0 = S._siamese_loss(*args, 0.0)
    v, g, p = S._siamese_loss(*args, 0.3, False)
    assert v - v0 == pytest.approx(0.15 * np.sum(W * W), rel=1e-12)
    assert np.allclose(g - g0, 0.3 * W) and np.array_equal(p, p0)


@pytest.mark.parametrize("kw, match", [
    (dict(scale="sum"), "scale"), (dict(lr=0.0), "lr == 0.0"), (dict(eps=-5.0), "eps == -5.0"),
    (dict(c=[1.0, 1.0]), "s has 5 values and c 2"), (dict(rho=1.0), "rho == 1.0"),
])
def test_theory_bad_input(kw, match):
    args = dict(s=S_EIG, c=C_EIG, scale="max", lr=0.05)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        D.directpred_theory(**args)
