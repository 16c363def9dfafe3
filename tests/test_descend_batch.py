"""Batched descent of effective landscapes (compiled) against Theorem 1's closed form."""

import numpy as np
import pytest

import minissl
from minissl.landscape import Landscape, descend_batch, effective_landscape


def _random_problems(K, d, commuting, seed):
    rng = np.random.default_rng(seed)
    Bs, Ss, ks = [], [], []
    for _ in range(K):
        Q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
        Q2 = Q1 if commuting else np.linalg.qr(rng.normal(size=(d, d)))[0]
        A0 = Q1 @ np.diag(rng.uniform(0.2, 4.0, d)) @ Q1.T
        C = Q2 @ np.diag(rng.uniform(0.0, 3.0, d)) @ Q2.T
        loss = minissl.get_loss("beta", beta=rng.uniform(0.3, 1.5))
        land = effective_landscape(loss, A0, C)
        Bs.append(land.B)
        Ss.append(land.S)
        ks.append(land.k)
    return np.array(Bs), np.array(Ss), np.array(ks)


@pytest.mark.parametrize("d", [2, 5, 8])
@pytest.mark.parametrize("commuting", [True, False])
def test_descent_reaches_the_closed_form_minimum(d, commuting):
    """Random starts can stop in local minima; Prop. 2 says every local minimum has the
    maximal rank, and for the trace landscape the minima share the global spectrum when the
    positive eigenvalues of S^-1/2 B S^-1/2 are at most d1 (here d1 = d0), so the spectrum
    must match the closed form of the global minimum."""
    B, S, k = _random_problems(60, d, commuting, seed=d)
    out = descend_batch(B, S, k, seed=1)
    assert out["converged"].all(), out["grad_norm"].max()
    worst = 0.0
    for j in range(len(B)):
        land = Landscape(B=B[j], S=S[j], k=k[j])
        pred = land.stationary_spectrum(d)
        # stopping at |grad| <= 1e-8 leaves dW ~ |grad| / curvature, and the curvature of a
        # surviving direction is 4 b_i (b_i: eigenvalue of S^-1/2 B S^-1/2, >= 2e-3 here):
        # d lambda ~ 2 sqrt(lambda) |grad| / (4 b_i) <= ~1e-8; allow 1e-8 + 1e-6 relative
        err = np.max(np.abs(out["eigenvalues"][j] - pred))
        worst = max(worst, err / max(pred[0], 1e-12))
        assert err <= 1e-8 + 1e-6 * pred[0], (j, out["eigenvalues"][j], pred)
    assert worst < 1e-4


def test_descent_gradient_matches_reference_landscape():
    B, S, k = _random_problems(5, 3, False, seed=0)
    rng = np.random.default_rng(0)
    from minissl.landscape import _land_value_grad

    for j in range(5):
        W = rng.normal(size=(2, 3))
        G = np.empty_like(W)
        Sig = S[j] + 0.1 * np.eye(3)
        v = _land_value_grad(W, B[j], S[j], k[j], Sig, 2.5, 1.3, G)
        ref = Landscape(B=B[j], S=S[j], k=k[j], Sigma=Sig, kappa=2.5, c=1.3)
        v0, G0, _ = ref.value_and_grad(W)
        np.testing.assert_allclose(v, v0, rtol=1e-12)
        np.testing.assert_allclose(G, G0, rtol=1e-11, atol=1e-12)


def test_descent_with_normalization_penalty_matches_lbfgs():
    B, S, k = _random_problems(8, 3, True, seed=3)
    out = descend_batch(B, S, k, kappa=5.0, c=1.0, seed=2)
    assert out["converged"].all()
    for j in range(8):
        land = Landscape(B=B[j], S=S[j], k=k[j], kappa=5.0, c=1.0)
        W, _, v, _ = land.minimize(3, seed=0)
        assert land.value(out["W"][j]) <= v + 1e-10


def test_descend_batch_validates_input():
    with pytest.raises(ValueError, match="B has shape"):
        descend_batch(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="k contains"):
        descend_batch(np.zeros((1, 2, 2)), np.eye(2)[None], k=-1.0)
    with pytest.raises(ValueError, match="not symmetric"):
        descend_batch(np.array([[[0.0, 1.0], [0.0, 0.0]]]), np.eye(2)[None])
