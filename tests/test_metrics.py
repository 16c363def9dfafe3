"""Collapse diagnostics (minissl.metrics) against closed forms and NumPy references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from minissl import metrics as M

RANK_FUNCS = [M.numerical_rank, M.stable_rank, M.entropy_rank, M.log_eigenvalue_ratio,
              M.explained_variance, M.summary]


def random_psd(rng, d, rank=None):
    A = rng.standard_normal((d, d if rank is None else rank))
    return A @ A.T


# ------------------------------------------------------------------ stable rank


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 7.0, 1e4])
def test_stable_rank_is_scale_invariant(rng, alpha):
    """Exercise 1 of the companion note: srank(alpha Sigma) == srank(Sigma)."""
    Sigma = random_psd(rng, 5)
    ev = np.linalg.eigvalsh(Sigma)
    expected = ev.sum() ** 2 / np.sum(ev**2)
    assert M.stable_rank(Sigma) == pytest.approx(expected, rel=1e-12)
    assert M.stable_rank(alpha * Sigma) == pytest.approx(expected, rel=1e-12)
    assert M.entropy_rank(alpha * Sigma) == pytest.approx(M.entropy_rank(Sigma), rel=1e-12)


@pytest.mark.parametrize("eps", [1e-1, 1e-3, 1e-6, 1e-9])
def test_stable_rank_of_spike_closed_form(eps):
    d, l1 = 6, 2.0
    Sigma = np.diag([l1] + [eps] * (d - 1))
    closed = (l1 + (d - 1) * eps) ** 2 / (l1**2 + (d - 1) * eps**2)
    assert M.stable_rank(Sigma) == pytest.approx(closed, rel=1e-12)
    # -> 1 as eps -> 0; srank - 1 ~ (d - 1) eps / l1 to first order
    assert M.stable_rank(Sigma) - 1.0 == pytest.approx(2 * (d - 1) * eps / l1, rel=0.5)
    assert M.stable_rank(np.diag([l1] + [0.0] * (d - 1))) == 1.0


@pytest.mark.parametrize("d", [1, 2, 5, 17])
def test_identity_has_full_ranks(d):
    eye = np.eye(d)
    assert M.stable_rank(eye) == pytest.approx(d, rel=1e-14)
    assert M.entropy_rank(eye) == pytest.approx(d, rel=1e-12)
    assert M.numerical_rank(eye) == d
    assert M.log_eigenvalue_ratio(eye) == pytest.approx(0.0, abs=1e-14)
    np.testing.assert_allclose(M.explained_variance(eye), np.arange(1, d + 1) / d, rtol=1e-14)


def test_stable_rank_bounds_random(rng):
    for _ in range(5):
        S = random_psd(rng, 6, rank=3)
        sr = M.stable_rank(S)
        assert 1.0 <= sr <= 3.0 + 1e-9


# ----------------------------------------------------------------- entropy rank


def test_entropy_rank_closed_forms():
    assert M.entropy_rank(np.diag([1.0, 1.0, 0.0])) == pytest.approx(2.0, rel=1e-14)
    assert M.entropy_rank(np.diag([5.0, 0.0, 0.0, 0.0])) == pytest.approx(1.0, rel=1e-14)
    lam = np.array([3.0, 2.0, 1.0, 0.5])
    p = lam / lam.sum()
    assert M.entropy_rank(np.diag(lam)) == pytest.approx(math.exp(-np.sum(p * np.log(p))), rel=1e-12)
    # eigenvalues given directly (1-D) in any order
    assert M.entropy_rank(lam[::-1]) == pytest.approx(M.entropy_rank(np.diag(lam)), rel=1e-14)


def test_entropy_rank_rotation_invariant(rng):
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    lam = np.array([4.0, 1.0, 0.25, 0.0])
    S = Q @ np.diag(lam) @ Q.T
    S = 0.5 * (S + S.T)
    assert M.entropy_rank(S) == pytest.approx(M.entropy_rank(lam), rel=1e-9)
    assert M.stable_rank(S) == pytest.approx(M.stable_rank(lam), rel=1e-12)


# ------------------------------------------------------- log ratio / explained var


def test_log_eigenvalue_ratio():
    assert M.log_eigenvalue_ratio(np.diag([4.0, 1.0])) == pytest.approx(math.log(4.0), rel=1e-14)
    assert M.log_eigenvalue_ratio(np.diag([1.0, 4.0])) == pytest.approx(math.log(4.0), rel=1e-14)
    assert M.log_eigenvalue_ratio(np.diag([3.0, 2.0, 0.0])) == math.inf
    assert M.log_eigenvalue_ratio([2.0, 1e-3]) == pytest.approx(math.log(2e3), rel=1e-12)


def test_explained_variance_is_normalized_cumsum(rng):
    S = random_psd(rng, 5)
    ev = np.sort(np.linalg.eigvalsh(S))[::-1]
    np.testing.assert_allclose(M.explained_variance(S), np.cumsum(ev) / ev.sum(), rtol=1e-12)
    ex = M.explained_variance(np.diag([1.0, 3.0, 0.0, 4.0]))
    np.testing.assert_allclose(ex, [0.5, 0.875, 1.0, 1.0], rtol=1e-14)
    assert np.all(np.diff(M.explained_variance(S)) >= 0)


# -------------------------------------------------------------- numerical rank


def test_numerical_rank_matches_numpy_matrix_rank(rng):
    for r in (1, 2, 4):
        S = random_psd(rng, 6, rank=r)
        assert M.numerical_rank(S, rtol=None) == r == np.linalg.matrix_rank(S, hermitian=True)


def test_numerical_rank_rtol():
    lam = np.diag([1.0, 1e-2, 1e-5, 0.0])
    assert M.numerical_rank(lam, rtol=None) == 3  # NumPy's d * eps
    assert M.numerical_rank(lam) == M.numerical_rank(lam, rtol=M.RANK_RTOL) == 2  # minissl's 1e-3
    assert M.summary(lam)["rank"] == 2  # the same default as numerical_rank and the CLI's --rank-tol
    assert M.numerical_rank(lam, rtol=0.5) == 1
    assert M.numerical_rank(lam, rtol=0.0) == 3


# ------------------------------------------------------------------ zero matrix


def test_zero_matrix_is_defined_not_nan():
    Z = np.zeros((3, 3))
    assert M.numerical_rank(Z) == 0
    assert M.stable_rank(Z) == 0.0
    assert M.entropy_rank(Z) == 0.0
    assert M.log_eigenvalue_ratio(Z) == math.inf
    ex = M.explained_variance(Z)
    assert ex.shape == (3,)
    assert np.all(ex == 0.0)
    s = M.summary(Z)
    assert s["rank"] == 0 and s["stable_rank"] == 0.0 and s["entropy_rank"] == 0.0
    assert s["explained_variance"] == [0.0, 0.0, 0.0]
    assert not any(isinstance(v, float) and math.isnan(v) for v in s.values())


def test_tiny_negative_roundoff_is_clipped():
    S = np.diag([1.0, 0.5, -1e-13])
    ev = M.spectrum(np.diag([1.0, math.sqrt(0.5), 0.0]))
    np.testing.assert_allclose(ev, [1.0, 0.5, 0.0], atol=1e-15)
    assert M.stable_rank(S) == pytest.approx(1.5**2 / 1.25, rel=1e-12)
    assert M.log_eigenvalue_ratio(S) == math.inf


# -------------------------------------------------------------------- spectrum


@pytest.mark.parametrize("d1, d0", [(2, 5), (5, 3), (4, 4), (1, 1)])
def test_spectrum_of_W(rng, d1, d0):
    W = rng.standard_normal((d1, d0))
    ev = M.spectrum(W)
    assert ev.shape == (d0,)
    expected = np.sort(np.linalg.eigvalsh(W.T @ W))[::-1]
    expected = np.clip(expected, 0.0, None)
    np.testing.assert_allclose(ev, expected, rtol=1e-10, atol=1e-12)
    # independent source: squared singular values, padded with zeros to length d0
    sv = np.linalg.svd(W, compute_uv=False) ** 2
    sv = np.concatenate([sv, np.zeros(d0 - sv.size)])
    np.testing.assert_allclose(ev, sv, rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(ev) <= 0)
    assert np.all(ev >= 0)


def test_spectrum_resolves_collapsed_directions():
    """W = U diag(s) V^T with s spanning 1 .. 1e-12: the eigenvalues s^2 down to 1e-24 come out
    to 1e-3 relative (squared singular values; the limit is the round-off of W's own entries,
    eps / 1e-12 ~ 1e-4 of the smallest); diagonalising W^T W returns round-off of size
    eps * s_1^2 ~ 1e-16 for every one below that."""
    rng = np.random.default_rng(3)
    U = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    Vt = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    s = np.array([1.0, 1e-4, 1e-8, 1e-12])
    W = (U * s) @ Vt
    np.testing.assert_allclose(M.spectrum(W), s**2, rtol=1e-3)
    naive = np.abs(np.sort(np.linalg.eigvalsh(W.T @ W))[::-1])
    assert abs(naive[-1] - 1e-24) > 1e-20  # the product loses it


# ------------------------------------------------------------ embedding covariance


def test_embedding_covariance(rng):
    Z = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 4)) + 3.0
    np.testing.assert_allclose(M.embedding_covariance(Z), np.cov(Z.T, bias=True), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(M.embedding_covariance(Z, centered=False), Z.T @ Z / 50, rtol=1e-13)
    zbar = Z.mean(0)
    np.testing.assert_allclose(
        M.embedding_covariance(Z, centered=False) - np.outer(zbar, zbar),
        M.embedding_covariance(Z), rtol=1e-9, atol=1e-12,
    )
    Z0 = Z.copy()
    M.embedding_covariance(Z)
    np.testing.assert_array_equal(Z, Z0)


# --------------------------------------------------------------------- summary


def test_summary_consistent_and_json_friendly(rng):
    S = random_psd(rng, 4, rank=2)
    s = M.summary(S, rtol=1e-8)
    assert s["rank"] == M.numerical_rank(S, rtol=1e-8) == 2
    assert s["stable_rank"] == pytest.approx(M.stable_rank(S), rel=1e-14)
    assert s["entropy_rank"] == pytest.approx(M.entropy_rank(S), rel=1e-14)
    assert s["log_eigenvalue_ratio"] == M.log_eigenvalue_ratio(S) == math.inf
    np.testing.assert_allclose(s["explained_variance"], M.explained_variance(S), rtol=1e-14)
    np.testing.assert_allclose(s["eigenvalues"], np.clip(np.sort(np.linalg.eigvalsh(S))[::-1], 0, None),
                               atol=1e-10)
    assert isinstance(s["eigenvalues"], list) and isinstance(s["explained_variance"], list)
    json.dumps(s)


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize("func", RANK_FUNCS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "bad, pattern",
    [
        pytest.param(np.ones((2, 3)), r"M has shape \(2, 3\), must be square", id="non-square"),
        pytest.param(np.array([[1.0, 0.5], [0.0, 1.0]]), r"M is not symmetric", id="non-symmetric"),
        pytest.param(np.diag([1.0, -0.5]), r"M has a negative eigenvalue -0\.5", id="negative-eig"),
        pytest.param(np.array([1.0, -0.5]), r"M has a negative eigenvalue -0\.5", id="negative-eig-1d"),
        pytest.param(np.array([[1.0, np.nan], [np.nan, 1.0]]), r"M contains 2 NaN", id="nan"),
        pytest.param(np.diag([1.0, np.inf]), r"M contains 1 NaN or infinite", id="inf"),
        pytest.param(np.zeros((0, 0)), r"M is empty", id="empty"),
        pytest.param(np.ones((2, 2, 2)), r"M has shape \(2, 2, 2\)", id="3-d"),
    ],
)
def test_bad_matrix_raises(func, bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        func(bad)


def test_bad_rtol_and_W():
    with pytest.raises(ValueError, match=r"rtol == -1\.0"):
        M.numerical_rank(np.eye(2), rtol=-1)
    with pytest.raises(ValueError, match=r"W has shape \(3,\), must be 2-dimensional"):
        M.spectrum(np.ones(3))
    with pytest.raises(ValueError, match=r"W contains 1 NaN"):
        M.spectrum(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"Z has 0 rows"):
        M.embedding_covariance(np.ones((0, 3)))
    with pytest.raises(TypeError, match=r"M has dtype"):
        M.stable_rank(np.array([["a", "b"], ["c", "d"]]))


def test_agreement_judges_each_eigenvalue_against_its_own_prediction():
    """Fig. 5 middle at N = 48 (issue 14): the smallest learned eigenvalue 3.56e-8 where the
    theory predicts 5.84e-5 is a ~100% miss, although it is 2% of the top (the old metric)."""
    learned = [2.4e-3, 1.0e-3, 3.56e-8]
    predicted = [2.4e-3, 1.1e-3, 5.84e-5]
    a = M.eigenvalue_agreement(learned, predicted)
    assert a["floor"] == pytest.approx(2.4e-6)
    np.testing.assert_allclose(a["errors"], [0.0, 0.1e-3 / 1.1e-3, (5.84e-5 - 3.56e-8) / 5.84e-5], rtol=1e-12)
    assert a["worst"] == 2 and a["max_error"] == pytest.approx(0.99939, abs=1e-5)
    old = np.max(np.abs(np.subtract(learned, predicted))) / max(predicted)
    assert old < 0.05  # what the error relative to the top eigenvalue said


def test_agreement_floor_for_collapsed_directions():
    # predicted zero: below the floor (1e-3 x top) agrees, above it does not; input order is irrelevant
    a = M.eigenvalue_agreement([5e-4, 2.0], [0.0, 2.0])
    assert a["errors"][1] == pytest.approx(5e-4 / 2e-3) and a["worst"] == 1
    assert M.eigenvalue_agreement([2.0, 4e-3], [2.0, 0.0])["max_error"] == pytest.approx(2.0)
    # complete collapse predicted: the floor is 1e-3 x COLLAPSE_SCALE
    b = M.eigenvalue_agreement([1e-10, 0.0], [0.0, 0.0])
    assert b["floor"] == pytest.approx(1e-3 * M.COLLAPSE_SCALE) and b["max_error"] == pytest.approx(0.1)
    assert M.eigenvalue_agreement([1.0], [1.0], rtol=0.5)["floor"] == 0.5


@pytest.mark.parametrize("learned, predicted, pattern", [
    ([1.0, 2.0], [1.0], r"learned has 2 eigenvalues and predicted 1"),
    ([], [], r"empty"),
    ([1.0, np.nan], [1.0, 1.0], r"learned contains 1 NaN"),
])
def test_agreement_rejects_bad_input(learned, predicted, pattern):
    with pytest.raises(ValueError, match=pattern):
        M.eigenvalue_agreement(learned, predicted)
