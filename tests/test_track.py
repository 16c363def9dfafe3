"""Alignment, uniformity, principal angles and diagnostics tracked during training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import i0

import minissl
from minissl import metrics as M


def _loop_uniformity(z, t):
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    vals = [math.exp(-t * float(np.sum((u[i] - u[j]) ** 2))) for i in range(len(u)) for j in range(i + 1, len(u))]
    return math.log(sum(vals) / len(vals))


def test_alignment_and_uniformity_against_loops(rng):
    z1 = rng.standard_normal((30, 4))
    z2 = z1 + 0.3 * rng.standard_normal((30, 4))
    u1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    u2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    for alpha in (1.0, 2.0, 3.0):
        ref = np.mean([np.linalg.norm(a - b) ** alpha for a, b in zip(u1, u2)])
        assert M.alignment(z1, z2, alpha) == pytest.approx(ref, rel=1e-12)
    for t in (0.5, 2.0, 10.0):
        assert M.uniformity(z1, t) == pytest.approx(_loop_uniformity(z1, t), rel=1e-12)
    # without normalization: raw distances
    assert M.alignment(z1, z2, normalize=False) == pytest.approx(np.mean(np.sum((z1 - z2) ** 2, 1)), rel=1e-12)


def test_uniformity_closed_forms():
    """Uniform on the circle: E exp(-t|u - v|^2) = exp(-2t) I0(2t); collapse: 0; antipodes: -4t."""
    n = 4000
    phi = 2 * np.pi * np.arange(n) / n
    z = np.c_[np.cos(phi), np.sin(phi)]
    t = 2.0
    # equally spaced points: all-pairs mean is the Riemann sum; exclude the i == j terms exactly
    full = -2 * t + math.log(i0(2 * t))
    distinct = math.log((n * math.exp(full) - 1.0) / (n - 1))
    assert M.uniformity(z, t) == pytest.approx(distinct, abs=1e-9)
    assert M.uniformity(np.ones((5, 3)), t) == 0.0
    assert M.uniformity(np.zeros((5, 3)), t) == 0.0  # complete collapse at the origin: 0, not NaN
    assert M.alignment(np.zeros((5, 3)), np.zeros((5, 3))) == 0.0
    pm = np.r_[np.ones((50, 1)), -np.ones((50, 1))]
    # half the pairs antipodal (|u - v|^2 = 4), half identical
    assert M.uniformity(pm, t) == pytest.approx(math.log((2 * math.comb(50, 2) + 2500 * math.exp(-4 * t))
                                                          / math.comb(100, 2)), rel=1e-12)


def test_metrics_bad_input():
    with pytest.raises(ValueError, match="t == 0.0"):
        M.uniformity(np.ones((3, 2)), t=0.0)
    with pytest.raises(ValueError, match="z has 1 rows"):
        M.uniformity(np.ones((1, 2)))
    with pytest.raises(ValueError, match="z2 has shape"):
        M.alignment(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="k == 5"):
        M.principal_angles(np.ones((2, 3)), np.eye(3), k=5)


def test_principal_angles_closed_form():
    F = np.diag([5.0, 3.0, 1.0, 0.5])
    th = 0.3
    W = np.array([[1.0, 0, 0, 0], [0, math.cos(th), math.sin(th), 0]])
    ang = M.principal_angles(W, F)
    assert np.allclose(ang, [0.0, th], atol=1e-12)
    # rotating F's eigenbasis rotates the answer the same way
    Q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))
    assert np.allclose(M.principal_angles(W @ Q.T, Q @ F @ Q.T), [0.0, th], atol=1e-10)


def test_trajectory_matches_direct_metrics(rng):
    x = rng.standard_normal((40, 3)) * [1, 2, 3]
    x1 = x + rng.standard_normal(x.shape)
    x2 = x + rng.standard_normal(x.shape)
    Ws = rng.standard_normal((4, 2, 3))
    bs = rng.standard_normal((4, 2))
    tr = M.trajectory(Ws, x, x1, x2, bs=bs, t=1.5)
    for s in range(4):
        Z = x @ Ws[s].T + bs[s]
        cov = np.cov(Z.T, bias=True)
        assert np.allclose(tr["cov_eigenvalues"][s], np.sort(np.linalg.eigvalsh(cov))[::-1], rtol=1e-10)
        assert tr["stable_rank"][s] == pytest.approx(M.stable_rank(cov), rel=1e-10)
        assert tr["alignment"][s] == pytest.approx(M.alignment(x1 @ Ws[s].T + bs[s], x2 @ Ws[s].T + bs[s]))
        assert tr["uniformity"][s] == pytest.approx(_loop_uniformity(Z, 1.5), rel=1e-10)


def test_simulate_track_does_not_change_training_and_is_deterministic():
    kw = dict(steps=300, sigma=1.0, seed=3, warn=False)
    a = minissl.simulate("infonce", track=True, **kw)
    b = minissl.simulate("infonce", **kw)
    c = minissl.simulate("infonce", track=True, engine="numpy", **kw)
    assert np.array_equal(a.W, b.W) and b.track is None
    for key in ("stable_rank", "alignment", "uniformity", "cov_eigenvalues"):
        assert np.allclose(a.track[key], c.track[key], rtol=1e-9, atol=1e-12)
    assert np.array_equal(a.track["step"], a.history["step"])
    # recomputed from the recorded snapshots
    assert np.allclose(a.track["wtw_stable_rank"], [M.stable_rank(w.T @ w) for w in a.history["W"]])
    assert np.allclose(a.track["wtw_eigenvalues"], a.history["spectrum"], rtol=1e-9, atol=1e-15)
    batch = minissl.simulate_batch([{"seed": 3}], loss="infonce", track=True, steps=300, sigma=1.0, warn=False)
    assert np.array_equal(batch[0].track["uniformity"], a.track["uniformity"])
    with pytest.raises(ValueError, match="uniformity_t"):
        minissl.simulate("infonce", track=True, uniformity_t=-1.0, steps=10)


def test_tracked_diagnostics_follow_complete_collapse():
    """beta-InfoNCE (beta = 1/2) at sigma = 2: the theory predicts complete collapse.

    As W shrinks, the slowest-decaying direction dominates: the embedding covariance's
    stable rank falls to 1 and the normalized embeddings become +-u, so the uniformity
    rises to log of the fraction of same-sign pairs (+ e^{-4t} of the others): about
    log(1/2) = -0.69 for a symmetric split. (A bias-free linear model cannot map every
    sample to one point, so the note's value 0 is not reached.)
    """
    r = minissl.simulate("beta", beta=0.5, sigma=2.0, steps=1500, seed=0, track=True, warn=False)
    th = minissl.predict(r.loss, r.A0_model, r.C, n=r.dataset.n, mean=r.mean_model)
    assert np.all(np.asarray(th["eigenvalues"]) == 0)
    assert r.eigenvalues[0] < 1e-10
    tr = r.track
    assert tr["stable_rank"][0] > 2 and tr["stable_rank"][-1] < 1.001
    z = r.dataset.x @ r.W.T
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    sign = np.sign(u @ u[0])
    n1, n = int(np.sum(sign > 0)), len(sign)
    n2 = n - n1
    same = math.comb(n1, 2) + math.comb(n2, 2)
    expected = math.log((same + n1 * n2 * math.exp(-8.0)) / math.comb(n, 2))
    assert tr["uniformity"][-1] == pytest.approx(expected, abs=1e-2)  # a few samples lie near the boundary
    assert tr["uniformity"][0] < expected - 1.0
