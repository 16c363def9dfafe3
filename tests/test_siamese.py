"""Non-contrastive linear models (minissl.siamese): gradients, mechanisms, theory, exercises.

Each mechanism test fails if the mechanism is absent: the ablations must collapse,
SimSiam/BYOL must not, and the learned encoder and predictor must match the derived
fixed points (module docstring of :mod:`minissl.siamese`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import assert_grad_close, central_diff

from minissl import siamese as S
from minissl.metrics import principal_angles

# ------------------------------------------------------------------ gradients


def _batch(rng, n=12, d0=4, d1=3):
    W = rng.standard_normal((d1, d0)) * 0.7
    P = rng.standard_normal((d1, d1)) * 0.5 + np.eye(d1)
    x = rng.standard_normal((n, d0))
    return W, P, x + 0.5 * rng.standard_normal((n, d0)), x + 0.5 * rng.standard_normal((n, d0))


@pytest.mark.parametrize("objective", ["mse", "cosine"])
@pytest.mark.parametrize("bn", [None, 1e-3])
@pytest.mark.parametrize("predictor", [True, False])
@pytest.mark.parametrize("wd", [0.0, 0.3])
def test_stopgradient_gradient_is_derivative_with_frozen_target(rng, objective, bn, predictor, wd):
    """With a stop-gradient the update is d/dW of the loss with the target frozen at W."""
    W, P, x1, x2 = _batch(rng)
    kw = dict(predictor=predictor, batchnorm_eps=bn, objective=objective, weight_decay=wd)
    _, gW, gP = S.siamese_loss(W, P, x1, x2, **kw)
    frozen = W.copy()
    num = central_diff(lambda w: S.siamese_loss(w, P, x1, x2, Wt=frozen, **kw)[0], W)
    assert_grad_close(gW, num)
    if predictor:
        assert_grad_close(gP, central_diff(lambda p: S.siamese_loss(W, p, x1, x2, **kw)[0], P))
    else:
        assert gP is None


@pytest.mark.parametrize("objective", ["mse", "cosine"])
@pytest.mark.parametrize("bn", [None, 1e-3])
def test_no_stopgradient_gradient_is_full_derivative(rng, objective, bn):
    W, P, x1, x2 = _batch(rng)
    kw = dict(stop_gradient=False, batchnorm_eps=bn, objective=objective, weight_decay=0.1)
    _, gW, _ = S.siamese_loss(W, P, x1, x2, **kw)
    assert_grad_close(gW, central_diff(lambda w: S.siamese_loss(w, P, x1, x2, **kw)[0], W))
    # and it differs from the stop-gradient update (the mechanism is really switched)
    _, gsg, _ = S.siamese_loss(W, P, x1, x2, batchnorm_eps=bn, objective=objective, weight_decay=0.1)
    assert np.max(np.abs(gW - gsg)) > 1e-3


def test_mse_objective_matches_independent_formula(rng):
    W, P, x1, x2 = _batch(rng)
    v, _, _ = S.siamese_loss(W, P, x1, x2)
    z1, z2 = x1 @ W.T, x2 @ W.T
    ref = 0.25 * np.mean(np.sum((z1 @ P.T - z2) ** 2, 1)) + 0.25 * np.mean(np.sum((z2 @ P.T - z1) ** 2, 1))
    assert v == pytest.approx(ref, rel=1e-13)
    vc, _, _ = S.siamese_loss(W, P, x1, x2, objective="cosine")
    p1, p2 = z1 @ P.T, z2 @ P.T
    cos = lambda a, b: np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # noqa: E731
    assert vc == pytest.approx(-0.5 * np.mean(cos(p1, z2)) - 0.5 * np.mean(cos(p2, z1)), rel=1e-13)


def test_byol_target_needs_stop_gradient(rng):
    W, P, x1, x2 = _batch(rng)
    with pytest.raises(ValueError, match="stop_gradient"):
        S.siamese_loss(W, P, x1, x2, Wt=W.copy(), stop_gradient=False)
    with pytest.raises(ValueError, match="stop_gradient=False applies to method='simsiam'"):
        S.train_siamese("byol", stop_gradient=False, steps=5)


# ------------------------------------------------------------------ Exercise 4: BN near collapse


def test_batchnorm_backward_matches_finite_differences(rng):
    z = rng.standard_normal((9, 3)) * [1.0, 0.1, 3.0] + 2.0
    g = rng.standard_normal((9, 3))
    zh, cache = S.batchnorm(z, 1e-4)
    assert np.allclose(zh.mean(0), 0, atol=1e-12)
    num = central_diff(lambda zz: float(np.sum(g * S.batchnorm(zz, 1e-4)[0])), z)
    assert_grad_close(S.batchnorm_backward(g, cache), num)


@pytest.mark.parametrize("n", [8, 64])
def test_exercise4_bn_jacobian_grows_as_one_over_sigma(n):
    """Ex. 4: d z_hat_b / d z_b = (1 - 1/N - z_hat_b^2/N) / s ~ (1 - 1/N) / sigma near collapse."""
    rng = np.random.default_rng(1)
    delta = rng.standard_normal(n)
    delta = (delta - delta.mean()) / delta.std()
    eps = 1e-12
    diag = []
    for sigma in (1e-1, 1e-2, 1e-3):
        z = (3.0 + sigma * delta)[:, None]
        zh, cache = S.batchnorm(z, eps)
        # diagonal of the Jacobian from the backward pass, one unit vector at a time
        jac = np.array([S.batchnorm_backward(np.eye(n)[b][:, None], cache)[b, 0] for b in range(n)])
        closed = (1 - 1 / n - zh[:, 0] ** 2 / n) / math.sqrt(sigma**2 + eps)
        assert np.allclose(jac, closed, rtol=1e-6)
        # leading order of the note: (1 - 1/N) / sigma, up to the z_hat^2 / N term
        assert np.allclose(jac * sigma, 1 - 1 / n - zh[:, 0] ** 2 / n, rtol=1e-6)
        diag.append(np.mean(jac))
    # O(1/sigma): ten times smaller spread, ten times stiffer
    assert diag[1] / diag[0] == pytest.approx(10.0, rel=1e-3)
    assert diag[2] / diag[1] == pytest.approx(10.0, rel=1e-3)
    # at exact collapse the eps stabiliser caps it at (1 - 1/N) / sqrt(eps)
    zh, cache = S.batchnorm(np.full((n, 1), 3.0), 1e-5)
    jac0 = S.batchnorm_backward(np.eye(n)[0][:, None], cache)[0, 0]
    assert jac0 == pytest.approx((1 - 1 / n) / math.sqrt(1e-5), rel=1e-9)


# ------------------------------------------------------------------ Exercise 2: stop-gradient toy


def _fd(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_exercise2_stopgradient_curvature(eps):
    """Ex. 2: curvature of the symmetric and stop-gradient losses at the collapsed point.

    The quantity that decides whether training leaves theta is the Jacobian of the
    update direction, d g / d theta. Without a predictor it is 0 both ways (the note:
    "also a constant in theta"); with h(z) = a z and a stop-gradient, the curvature of
    the loss with the target frozen is 2 a^2 > 0 (the note's claim), while the update's
    Jacobian is 2 a (a - 1): negative for 0 < a < 1, i.e. the collapsed point repels.
    """
    th = 0.7
    # (a) symmetric loss (z1 - z2)^2 = eps^2: flat
    sym = lambda t: S.stopgrad_toy(t, eps, stop_gradient=False)[0]  # noqa: E731
    assert abs(_fd(lambda t: _fd(sym, t), th)) < 1e-5
    assert abs(_fd(lambda t: S.stopgrad_toy(t, eps, stop_gradient=False)[1], th)) < 1e-8
    # (b) stop-gradient without predictor: the update is constant in theta (zero Jacobian)
    assert abs(_fd(lambda t: S.stopgrad_toy(t, eps)[1], th)) < 1e-8
    assert S.stopgrad_toy(th, eps)[1] == pytest.approx(-2 * eps)
    for a in (0.3, 0.5, 1.5):
        # (c) frozen-target curvature 2 a^2 (the note), update Jacobian 2 a (a - 1)
        frozen = lambda t, a=a: (a * t - (th + eps)) ** 2  # noqa: E731
        assert _fd(lambda t: _fd(frozen, t), th) == pytest.approx(2 * a * a, rel=1e-4)
        jac = _fd(lambda t, a=a: S.stopgrad_toy(t, eps, a=a)[1], th)
        assert jac == pytest.approx(2 * a * (a - 1), rel=1e-6)
        # without the stop-gradient the Jacobian is 2 (a - 1)^2 >= 0: collapse attracts
        jac_full = _fd(lambda t, a=a: S.stopgrad_toy(t, eps, a=a, stop_gradient=False)[1], th)
        assert jac_full == pytest.approx(2 * (a - 1) ** 2, rel=1e-6)


# ------------------------------------------------------------------ theory


def test_fixed_points_solve_the_mode_equations():
    s = np.array([4.0, 2.0, 1.0, 0.3])
    c = np.array([1.0, 1.0, 0.5, 1.0])
    eta = 0.1
    fp = S.fixed_points(s, c, eta)
    p, w2 = fp["p"], fp["w2"]
    for i in range(4):
        if fp["alive"][i]:
            w = math.sqrt(w2[i])
            assert w * (p[i] * s[i] - p[i] ** 2 * (s[i] + c[i]) - eta) == pytest.approx(0, abs=1e-12)
            assert w2[i] * (s[i] - p[i] * (s[i] + c[i])) - eta * p[i] == pytest.approx(0, abs=1e-12)
            # the larger root is stable: the 2x2 Jacobian of the mode flow has negative eigenvalues
            J = np.array([[p[i] * s[i] - p[i] ** 2 * (s[i] + c[i]) - eta, w * (s[i] - 2 * p[i] * (s[i] + c[i]))],
                          [2 * w * (s[i] - p[i] * (s[i] + c[i])), -w2[i] * (s[i] + c[i]) - eta]])
            assert np.all(np.linalg.eigvals(J).real < 0)
    assert list(fp["alive"]) == [s_ * s_ >= 4 * eta * (s_ + c_) for s_, c_ in zip(s, c)]
    assert fp["w2"][3] == 0.0
    assert np.allclose(fp["estep"], s / (s + c))
    assert np.all(np.isnan(S.fixed_points(s, c, 0.0)["w2"]))


def test_predictor_optimum_is_exercise3():
    """A* = Sigma_21 Sigma_11^-1: identity for identical views, zero for independent ones."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((3, 4))
    A0 = np.diag([1.0, 2.0, 3.0, 4.0])
    assert np.allclose(S.predictor_optimum(W, A0, np.zeros((4, 4))), np.eye(3))
    assert np.allclose(S.predictor_optimum(W, np.zeros((4, 4)), np.eye(4)), 0.0)
    # regression on samples gives the same matrix
    x = rng.standard_normal((200000, 4)) * np.sqrt([1.0, 2.0, 3.0, 4.0])
    z1 = (x + 0.8 * rng.standard_normal(x.shape)) @ W.T
    z2 = (x + 0.8 * rng.standard_normal(x.shape)) @ W.T
    A_ls = np.linalg.lstsq(z1, z2, rcond=None)[0].T
    A_star = S.predictor_optimum(W, A0, 0.64 * np.eye(4))
    assert np.allclose(A_ls, A_star, atol=0.02)


# ------------------------------------------------------------------ mechanisms in training

_BASE = dict(sigma=1.0, steps=6000, lr=0.05, lr_schedule="cosine", weight_decay=0.05, seed=0)


@pytest.fixture(scope="module")
def simsiam():
    return S.train_siamese("simsiam", **_BASE)


def test_simsiam_does_not_collapse_and_matches_fixed_points(simsiam):
    r = simsiam
    th = r.theory
    alive = int(np.sum(th["alive"]))
    assert alive == 4  # s = 0.5 dies: 0.25 < 4 * 0.05 * 1.5
    assert not r.checks["complete_collapse"]
    learned = r.eigenvalues
    assert np.allclose(learned[:alive], th["w2_sorted"][:alive], rtol=0.03)
    assert np.all(learned[alive:] < 1e-3 * learned[0])
    # predictor eigenvalues = p_+ of the alive directions
    pe = np.sort(np.linalg.eigvals(r.P).real)[::-1]
    assert np.allclose(pe[:alive], th["p"][:alive], atol=0.01)


def test_simsiam_encoder_spans_top_eigenvectors_of_F(simsiam):
    """Tian et al. (2021): W's row space = top eigenvectors of F (here the 4 alive ones)."""
    ang = principal_angles(simsiam.W, simsiam.F)
    assert ang.size == 4 and np.degrees(ang.max()) < 2.0
    # and it is not some other 4-dimensional subspace: the bottom eigenvector is orthogonal
    ev, U = np.linalg.eigh(simsiam.F)
    assert np.linalg.norm(simsiam.W @ U[:, 0]) < 1e-2 * np.linalg.norm(simsiam.W)


def test_predictor_approaches_estep_optimum(simsiam):
    """|P - A*| / |A*| equals the derived O(eta) gap and shrinks with eta (Exercise 3)."""
    th = simsiam.theory
    a = th["alive"]
    predicted = np.linalg.norm((th["estep"] - th["p"])[a]) / np.linalg.norm(th["estep"][a])
    assert simsiam.checks["predictor_gap"] == pytest.approx(predicted, rel=0.15)
    small = S.train_siamese("simsiam", **{**_BASE, "weight_decay": 0.005})
    assert small.checks["predictor_gap"] < 0.3 * simsiam.checks["predictor_gap"]


def test_no_predictor_collapses_at_the_predicted_rate():
    """P = I: |w| decays at rate c + eta per unit time (complete collapse)."""
    r = S.train_siamese("simsiam", predictor=False, sigma=1.0, steps=400, lr=0.05, weight_decay=0.05)
    assert r.checks["complete_collapse"] and r.checks["norm_ratio"] < 1e-3
    norms = np.linalg.norm(r.history["W"], axis=(1, 2))
    slope = np.polyfit(r.history["step"] * 0.05, np.log(norms), 1)[0]
    assert slope == pytest.approx(-(1.0 + 0.05), rel=0.1)


def test_no_stopgradient_collapses():
    r = S.train_siamese("simsiam", stop_gradient=False, **{**_BASE, "steps": 2000})
    assert r.checks["complete_collapse"]


def test_byol_does_not_collapse_and_ablation_does(simsiam):
    r = S.train_siamese("byol", ema=0.99, **_BASE)
    assert not r.checks["complete_collapse"]
    assert np.allclose(r.eigenvalues[:4], r.theory["w2_sorted"][:4], rtol=0.03)
    assert np.degrees(principal_angles(r.W, r.F).max()) < 2.0
    nop = S.train_siamese("byol", predictor=False, **{**_BASE, "steps": 4000, "lr_schedule": "constant"})
    assert nop.checks["complete_collapse"]


def test_no_predictor_no_stopgradient_decays_twice_as_fast():
    """P = I without stop-gradient: |w| decays at rate 2c + eta (both branches pull)."""
    r = S.train_siamese("simsiam", predictor=False, stop_gradient=False, sigma=1.0, steps=200, lr=0.02,
                        weight_decay=0.05)
    norms = np.linalg.norm(r.history["W"], axis=(1, 2))
    slope = np.polyfit(r.history["step"] * 0.02, np.log(norms), 1)[0]
    assert slope == pytest.approx(-(2.0 + 0.05), rel=0.1)
    assert r.theory["collapse"].endswith("2c + eta")


def test_narrow_encoder_keeps_the_strongest_directions():
    """d1 = 2 < d0: only the two strongest survivors; the angles are not trivially 0 here."""
    r = S.train_siamese("simsiam", d1=2, **_BASE)
    th = r.theory
    assert int(np.sum(th["alive"])) == 2 and list(np.flatnonzero(th["alive"])) == [0, 1]
    assert np.allclose(r.eigenvalues[:2], th["w2_sorted"][:2], rtol=0.03)
    assert r.eigenvalues[2] < 1e-6 * r.eigenvalues[0]
    ang = principal_angles(r.W, r.F)
    assert ang.size == 2 and np.degrees(ang.max()) < 1.0
    assert r.checks["energy_outside_top"] < 1e-3
    # a random 2-row encoder is far from F's top eigenvectors (the check can fail)
    rand = np.random.default_rng(0).standard_normal((2, 5))
    assert np.degrees(principal_angles(rand, r.F).max()) > 10


def test_predictor_optimum_with_ema_target_matches_regression():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((3, 4))
    Wt = W + 0.3 * rng.standard_normal((3, 4))
    var = np.array([1.0, 2.0, 3.0, 4.0])
    x = rng.standard_normal((200000, 4)) * np.sqrt(var)
    z1 = (x + 0.7 * rng.standard_normal(x.shape)) @ W.T
    t2 = (x + 0.7 * rng.standard_normal(x.shape)) @ Wt.T
    A_ls = np.linalg.lstsq(z1, t2, rcond=None)[0].T
    assert np.allclose(A_ls, S.predictor_optimum(W, np.diag(var), 0.49 * np.eye(4), Wt), atol=0.02)


def test_predictor_gap_sees_leaks_into_dead_directions():
    A0, C = np.diag([3.0, 2.0, 1.0]), 0.5 * np.eye(3)
    W = np.diag([1.0, 0.5, 0.0])
    A = S.predictor_optimum(W[:2], A0, C)  # the live 2 x 2 block
    P = np.zeros((3, 3))
    P[:2, :2] = A
    assert S.predictor_gap(P, W, A0, C) < 1e-12
    P[2, :2] = 5.0  # maps live embeddings into the dead output direction
    assert S.predictor_gap(P, W, A0, C) > 1.0
    P[2, :2] = 0.0
    P[:2, 2] = 5.0  # acts only on the dead input direction: not identifiable, ignored
    assert S.predictor_gap(P, W, A0, C) < 1e-12


def test_public_functions_validate_their_input(rng):
    W, P, x1, x2 = _batch(rng)
    with pytest.raises(ValueError, match="objective == 'l1'"):
        S.siamese_loss(W, P, x1, x2, objective="l1")
    with pytest.raises(TypeError, match="P =="):
        S.siamese_loss(W, None, x1, x2)
    with pytest.raises(ValueError, match="x2 has shape"):
        S.siamese_loss(W, P, x1, x2[:5])
    with pytest.raises(ValueError, match="batchnorm_eps == -1.0"):
        S.siamese_loss(W, P, x1, x2, batchnorm_eps=-1.0)
    with pytest.raises(ValueError, match="Wt has shape"):
        S.siamese_loss(W, P, x1, x2, Wt=W[:1])
    with pytest.raises(TypeError, match="theta =="):
        S.stopgrad_toy("a", 0.1)
    with pytest.raises(ValueError, match="ema == 0.5 applies to method='byol'"):
        S.train_siamese("simsiam", ema=0.5, steps=5)
    with pytest.raises(ValueError, match="uniformity_t == -1.0"):
        S.train_siamese(uniformity_t=-1.0, steps=5)  # named as the parameter, checked up front
    with pytest.raises(ValueError, match="complete collapse"):
        S.predictor_gap(np.eye(2), np.zeros((2, 3)), np.eye(3), np.eye(3))


def test_byol_with_zero_ema_is_simsiam():
    kw = dict(sigma=1.0, steps=200, weight_decay=0.05, seed=4)
    a = S.train_siamese("simsiam", **kw)
    b = S.train_siamese("byol", ema=0.0, **kw)
    assert np.array_equal(a.W, b.W) and np.array_equal(a.P, b.P)


def test_batchnorm_prevents_complete_but_not_dimensional_collapse():
    """BN without a predictor: unit variance per coordinate (no complete collapse), but
    nothing decorrelates the coordinates: the embedding collapses to one dimension."""
    plain = S.train_siamese("simsiam", predictor=False, sigma=1.0, steps=3000, lr=0.05)
    bn = S.train_siamese("simsiam", predictor=False, batchnorm=True, sigma=1.0, steps=3000, lr=0.05)
    assert plain.checks["complete_collapse"]
    assert not bn.checks["complete_collapse"]
    # every coordinate of the pre-BN embedding keeps a spread far above BN's eps ...
    z = bn.dataset.x @ bn.W.T
    assert np.all(z.var(0) > 1e3 * 1e-5)
    # ... but the coordinates are all multiples of one direction
    assert bn.track["stable_rank"][-1] < 1.05
    assert bn.track["stable_rank"][0] > 1.5  # it started spread out


def test_tracked_diagnostics_show_the_collapse():
    r = S.train_siamese("simsiam", predictor=False, batchnorm=True, sigma=1.0, steps=1500, lr=0.05)
    tr = r.track
    assert tr["stable_rank"][-1] < tr["stable_rank"][0]
    assert tr["log_eigenvalue_ratio"][-1] > tr["log_eigenvalue_ratio"][0] + 3
    assert tr["explained_variance"][-1][0] > 0.95


def test_same_seed_same_numbers_and_bad_input():
    a = S.train_siamese(steps=50, seed=7)
    b = S.train_siamese(steps=50, seed=7)
    assert np.array_equal(a.W, b.W) and np.array_equal(a.track["uniformity"], b.track["uniformity"])
    with pytest.raises(ValueError, match="method"):
        S.train_siamese("barlow")
    with pytest.raises(ValueError, match="ema == 1.0"):
        S.train_siamese("byol", ema=1.0)
    with pytest.raises(ValueError, match="predictor_lr"):
        S.train_siamese(predictor=False, predictor_lr=3.0)
    with pytest.raises(ValueError, match="objective"):
        S.train_siamese(objective="l1")
    with pytest.raises(FloatingPointError, match="lower lr"):
        S.train_siamese(lr=50.0, steps=200)
