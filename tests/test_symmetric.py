"""The symmetric pair kernel (minissl.losses.symmetric) against closed forms, the NumPy reference
and the row-wise kernel; its fallback to the row-wise kernel."""

import numpy as np
import pytest

from minissl.losses import kernels, reference, symmetric
from minissl.losses.vexp import EXCLUDED


@pytest.mark.parametrize("n", [1, 3, 8, 9, 100, 2048, 4097])
@pytest.mark.parametrize("nchunks", [1, 3, 8])
def test_chunks_cover_the_anchors_with_equal_strip_work(n, nchunks):
    starts = [symmetric.chunk_start(c, nchunks, n) for c in range(nchunks + 1)]
    assert starts[0] == 0 and starts[-1] == n and all(a <= b for a, b in zip(starts, starts[1:]))
    work = [sum(n - 1 - i for i in range(a, b)) for a, b in zip(starts, starts[1:])]
    # each share within one row's work (n) of the equal share
    assert max(abs(w - sum(work) / nchunks) for w in work) <= n


def _problem(n, d, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    z1 = (scale * rng.normal(size=(n, d))).astype(dtype)
    z2 = (z1 + 0.5 * rng.normal(size=(n, d))).astype(dtype)
    return z1, z2


def _pass1(z, nchunks):
    zT = np.ascontiguousarray(z.T)
    sq = (z.astype(np.float64) ** 2).sum(1)
    rowtot = np.full(len(z), np.nan)
    coltot = np.full((nchunks, len(z)), np.nan)
    for c in range(nchunks):
        symmetric.strip_totals(c, nchunks, z, zT, sq, rowtot, coltot)
    return zT, sq, rowtot, coltot


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,d", [(5, 3), (37, 5), (203, 9), (256, 32)])
def test_totals_are_the_gaussian_kernel_row_sums(dtype, n, d):
    """Pass 1 and :func:`coefficients` give ``t_i = sum_{j != i} exp(-|z_i - z_j|^2 / 2) + exp(lpos_i)``."""
    z, _ = _problem(n, d, dtype, seed=n)
    nchunks = min(8, n)
    _, _, rowtot, coltot = _pass1(z, nchunks)
    lpos = np.linspace(-3.0, 0.5, n)
    lpos[::4] = EXCLUDED  # no positive term in these rows
    lse = np.empty(n)
    coef = np.empty(n)
    ok = symmetric.coefficients(rowtot, coltot, lpos, 0.7, 1.0 / n, 1e-250, lse, coef)
    z64 = z.astype(np.float64)
    K = np.exp(-0.5 * ((z64[:, None, :] - z64[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(K, 0.0)
    t = K.sum(1) + np.where(lpos > EXCLUDED, np.exp(lpos), 0.0)
    tol = 1e-13 if dtype == np.float64 else 2e-6 * d
    assert ok
    np.testing.assert_allclose(lse, np.log(t), rtol=0, atol=tol)
    np.testing.assert_allclose(coef, -0.5 * 0.7 / n / t, rtol=tol)


def test_out_of_range_totals_are_reported():
    n = 6
    rowtot = np.array([1.0, 1e-260, 2.0, 0.0, 5.0, 0.0])
    coltot = np.zeros((2, n))
    lpos = np.full(n, EXCLUDED)
    lse = np.empty(n)
    coef = np.empty(n)
    assert not symmetric.coefficients(rowtot, coltot, lpos, 1.0, 1.0 / n, 1e-250, lse, coef)
    assert symmetric.coefficients(rowtot + 1.0, coltot, lpos, 1.0, 1.0 / n, 1e-250, lse, coef)
    lpos[0] = 80.0  # exp(80) = 5.5e34: beyond the range, the row-wise kernel must take the step
    assert not symmetric.coefficients(rowtot + 1.0, coltot, lpos, 1.0, 1.0 / n, 1e-250, lse, coef)


def _kernel_inputs(z1, z2, alpha, nchunks):
    """``z1T, sq, lpos`` and fresh ``gA, buf, lse`` for the pair kernels."""
    n, d = z1.shape
    lpos = -0.5 * ((z1.astype(np.float64) - z2) ** 2).sum(1) + (np.log(alpha) if alpha > 0 else EXCLUDED)
    return (np.ascontiguousarray(z1.T), (z1.astype(np.float64) ** 2).sum(1), lpos, np.zeros((n, d), z1.dtype),
            np.empty((nchunks, d, n), z1.dtype), np.empty(n))


def _rowwise(z1, z2, alpha, beta, nchunks):
    """The row-wise kernel alone (every chunk through ``_infonce_chunk``), as the reference-free
    second implementation of the same step."""
    z1T, sq, lpos, gA, buf, lse = _kernel_inputs(z1, z2, alpha, nchunks)
    n = len(z1)
    for c in range(nchunks):
        kernels._infonce_chunk(c, nchunks, z1T, z1T, z1, z1, sq, sq, lpos, False, beta, 1.0 / n, gA, buf,
                               buf, lse)
    return gA + buf.sum(0).T, lse


def _symmetric(z1, z2, alpha, beta, nchunks, parallel):
    z1T, sq, lpos, gA, buf, lse = _kernel_inputs(z1, z2, alpha, nchunks)
    n = len(z1)
    drive = kernels.pairs_parallel if parallel else kernels.pairs_serial
    drive(z1T, z1T, z1, z1, sq, sq, lpos, False, beta, 1.0 / n, gA, buf, buf, lse)
    return gA + buf.sum(0).T, lse


@pytest.mark.parametrize("n,d", [(2, 1), (5, 3), (37, 5), (203, 9), (300, 32)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.0, 0.5), (2.5, 2.0)])
def test_symmetric_and_rowwise_kernels_agree(n, d, alpha, beta):
    z1, z2 = _problem(n, d, np.float64, seed=3 * n + d)
    nchunks = min(8, n)
    # the symmetric form takes these steps (no fallback): its totals are in range
    _, _, rowtot, coltot = _pass1(z1, nchunks)
    lpos = _kernel_inputs(z1, z2, alpha, nchunks)[2]
    assert symmetric.coefficients(rowtot, coltot, lpos, beta, 1.0 / n, 1e-250, np.empty(n), np.empty(n))
    g_row, lse_row = _rowwise(z1, z2, alpha, beta, nchunks)
    for parallel in (False, True):
        g_sym, lse_sym = _symmetric(z1, z2, alpha, beta, nchunks, parallel)
        np.testing.assert_allclose(lse_sym, lse_row, rtol=0, atol=1e-13)
        assert np.abs(g_sym - g_row).max() <= 1e-12 * np.abs(g_row).max()
    serial = _symmetric(z1, z2, alpha, beta, nchunks, False)
    threaded = _symmetric(z1, z2, alpha, beta, nchunks, True)
    np.testing.assert_array_equal(serial[0], threaded[0])  # same chunks, same order: same bits
    np.testing.assert_array_equal(serial[1], threaded[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.0, 1.0), (0.4, 2.0)])
def test_view1_core_matches_the_numpy_reference(dtype, alpha, beta):
    z1, z2 = _problem(257, 12, dtype, seed=11)
    ref = reference.infonce_core(z1.astype(np.float64), z2.astype(np.float64), alpha, beta, "view1")
    out = kernels.infonce_core(z1, z2, alpha, beta, "view1")
    # relative to the largest gradient entry (~1e-3 here); float32 measured ~5e-5
    vtol, gtol = (1e-13, 1e-11) if dtype == np.float64 else (1e-6, 3e-4)
    assert abs(out[0] - ref[0]) <= vtol * abs(ref[0])
    for a, r in zip(out[1:], ref[1:]):
        assert np.abs(a - r).max() <= gtol * np.abs(r).max()


@pytest.mark.parametrize("case", ["far apart", "huge alpha"])
def test_out_of_range_steps_fall_back_to_the_rowwise_kernel(case):
    """Outputs ~1e3 apart (every kernel term underflows) or a positive term beyond 1e30: the
    symmetric totals are out of range and the row-wise kernel gives the reference's numbers."""
    if case == "far apart":
        z1, z2 = _problem(40, 3, np.float64, seed=5, scale=300.0)
        alpha = 0.0
    else:
        z1, z2 = _problem(40, 3, np.float64, seed=5)
        alpha = 1e40
    # the symmetric totals are out of range, so the row-wise kernel must take this step
    _, _, rowtot, coltot = _pass1(z1, 8)
    lpos = _kernel_inputs(z1, z2, alpha, 8)[2]
    assert not symmetric.coefficients(rowtot, coltot, lpos, 1.0, 1.0 / 40, 1e-250, np.empty(40), np.empty(40))
    ref = reference.infonce_core(z1, z2, alpha, 1.0, "view1")
    out = kernels.infonce_core(z1, z2, alpha, 1.0, "view1")
    assert np.isfinite(out[0]) and abs(out[0] - ref[0]) <= 1e-12 * abs(ref[0])
    for a, r in zip(out[1:], ref[1:]):
        assert np.abs(a - r).max() <= 1e-11 * np.abs(r).max()
