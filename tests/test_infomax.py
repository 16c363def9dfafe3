"""The note's Gaussian InfoMax formula (minissl.infomax): Monte Carlo, its maximiser, and training.

Independent sources: the scalar closed form ``-1/2 log(1 - rho^2)``; plug-in and
log-density Monte Carlo estimates from sampled views (built from samples, not from the
covariance blocks); a numerical maximisation over encoders; linear SimSiam trained on
the same data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from minissl import infomax as I
from minissl import siamese as S
from minissl.data import GaussianNoise, gaussian_data

A0 = np.diag([4.0, 3.0, 2.0, 1.0, 0.5])
C_ANISO = np.diag([12.0, 0.5, 0.5, 0.5, 0.5])  # the strongest direction is also the noisiest


def _angles_deg(W1, W2):
    Q1, _ = np.linalg.qr(W1.T)
    Q2, _ = np.linalg.qr(W2.T)
    return np.degrees(np.arccos(np.clip(np.linalg.svd(Q1.T @ Q2)[1], -1.0, 1.0)))


def test_scalar_closed_form():
    s, c = 2.0, 0.5
    rho = s / (s + c)
    assert I.gaussian_mutual_information([[1.7]], [[s]], [[c]]) == pytest.approx(-0.5 * math.log(1 - rho**2),
                                                                                   rel=1e-13)


def test_formula_is_the_note_determinant_ratio(rng):
    W = rng.standard_normal((3, 5))
    G = rng.standard_normal((5, 5))
    A0, C = G @ G.T / 5, np.diag(rng.uniform(0.2, 2.0, 5))
    S11, S12 = I.view_covariances(W, A0, C)
    note = 0.5 * math.log(np.linalg.det(S11) / np.linalg.det(S11 - S12 @ np.linalg.inv(S11) @ S12.T))
    assert I.gaussian_mutual_information(W, A0, C) == pytest.approx(note, rel=1e-11)
    # invariant to an invertible map of z, and a redundant row adds nothing
    M = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    assert I.gaussian_mutual_information(M @ W, A0, C) == pytest.approx(note, rel=1e-10)
    assert I.gaussian_mutual_information(np.vstack([W, W[0] + W[1]]), A0, C) == pytest.approx(note, rel=1e-8)
    assert I.gaussian_mutual_information(np.zeros((2, 5)), A0, C) == 0.0


def test_formula_against_monte_carlo_of_sampled_views(rng):
    """Views sampled from the model: a plug-in estimate and the mean log-density ratio."""
    W = rng.standard_normal((2, 5))
    n = 200_000
    x = rng.standard_normal((n, 5)) @ np.sqrt(A0)
    noise = np.sqrt(np.diag(C_ANISO))
    z1 = (x + rng.standard_normal((n, 5)) * noise) @ W.T
    z2 = (x + rng.standard_normal((n, 5)) * noise) @ W.T
    exact = I.gaussian_mutual_information(W, A0, C_ANISO)
    J = np.cov(np.hstack([z1, z2]).T)
    plug_in = 0.5 * math.log(np.linalg.det(J[:2, :2]) * np.linalg.det(J[2:, 2:]) / np.linalg.det(J))
    assert plug_in == pytest.approx(exact, abs=0.01)
    # E[log p(z1, z2) - log p(z1) - log p(z2)] with the sample covariances: a Monte Carlo mean with its SE
    m = 20_000
    ratio = (multivariate_normal(cov=J).logpdf(np.hstack([z1[:m], z2[:m]]))
             - multivariate_normal(cov=J[:2, :2]).logpdf(z1[:m]) - multivariate_normal(cov=J[2:, 2:]).logpdf(z2[:m]))
    se = ratio.std() / math.sqrt(m)
    assert abs(ratio.mean() - exact) < 4 * se + 0.01


@pytest.mark.parametrize("C", [np.eye(5), C_ANISO], ids=["isotropic", "anisotropic"])
def test_maximiser_beats_every_encoder_and_numerical_search_finds_it(rng, C):
    best = I.infomax_encoder(A0, C, 2)
    assert I.gaussian_mutual_information(best["W"], A0, C) == pytest.approx(best["information"], rel=1e-12)
    for _ in range(200):
        assert I.gaussian_mutual_information(rng.standard_normal((2, 5)), A0, C) <= best["information"] + 1e-12

    def negative(w):
        return -I.gaussian_mutual_information(w.reshape(2, 5), A0, C)

    found = max((minimize(negative, rng.standard_normal(10), method="BFGS") for _ in range(4)), key=lambda r: -r.fun)
    assert -found.fun == pytest.approx(best["information"], rel=1e-6)
    assert _angles_deg(found.x.reshape(2, 5), best["W"]).max() < 0.5
    top_F = np.eye(5)[:2]  # F = A0's top-2 eigenvectors
    if C is C_ANISO:  # the note's "top eigenvectors of F" needs noise ordered like the signal
        assert _angles_deg(best["W"], top_F).max() > 80
        assert I.gaussian_mutual_information(top_F, A0, C) < 0.7 * best["information"]
    else:
        assert _angles_deg(best["W"], top_F).max() < 1e-6


@pytest.mark.parametrize("C", [np.eye(5), C_ANISO], ids=["isotropic", "anisotropic"])
def test_linear_simsiam_learns_the_infomax_encoder(C):
    """d1 = 2: SimSiam's row space is the maximiser on the training set's own A0 (top SNR, not top F)."""
    data = gaussian_data(256, variances=np.diag(A0), seed=0)
    r = S.train_siamese("simsiam", data=data, augmentation=GaussianNoise(C), d1=2, steps=6000, lr=0.05,
                        lr_schedule="cosine", weight_decay=0.05, seed=0)
    best = I.infomax_encoder(data.A0, C, 2)
    assert _angles_deg(r.W, best["W"]).max() < 1.0
    assert I.gaussian_mutual_information(r.W, data.A0, C) == pytest.approx(best["information"], rel=1e-4)


def test_weight_decay_can_make_simsiam_keep_other_directions_than_infomax():
    """With eta > 0 SimSiam's survivors follow s^2 >= 4 eta (s + c), not the SNR s / (s + c)."""
    s, c = np.array([10.0, 0.1]), np.array([10.0, 0.01])
    assert list(S.fixed_points(s, c, 0.1)["alive"]) == [True, False]
    assert np.allclose(np.abs(I.infomax_encoder(np.diag(s), np.diag(c), 1)["W"]), [[0.0, 1.0]])


def test_bad_input():
    with pytest.raises(ValueError, match="F must be symmetric"):
        I.infomax_encoder(A0, np.eye(5), 2, F=A0 + np.triu(np.ones((5, 5)), 1))
    with pytest.raises(ValueError, match="C must be positive semidefinite"):
        I.gaussian_mutual_information(np.eye(5), A0, -np.eye(5))
    with pytest.raises(ValueError, match="d == 6"):
        I.infomax_encoder(A0, np.eye(5), 6)
    with pytest.raises(ValueError, match="positive definite"):
        I.infomax_encoder(np.diag([1.0, 0.0]), np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="columns"):
        I.gaussian_mutual_information(np.ones((2, 4)), A0, np.eye(5))
