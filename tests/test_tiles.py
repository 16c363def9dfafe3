"""Register-tiled micro-kernels (minissl.losses.tiles) against NumPy products, the softmax's
fallback shift, and the float32 InfoNCE kernels against the float64 NumPy reference.

Stated float32 tolerance (InfoNCE family, O(1) outputs): value within 1e-6 relative,
gradients within 2e-6 of max(1, max |reference gradient|). Measured: ~3e-9 and ~2e-7.
"""

import numba
import numpy as np
import pytest

import minissl
from minissl.losses import kernels, reference, tiles

F32_VALUE_RTOL = 1e-6
F32_GRAD_RTOL = 2e-6


_CASES = [(37, 5, 24, 37, 0), (100, 19, 0, 32, 0), (64, 16, 40, 45, 0), (9, 1, 0, 9, 0), (37, 5, 24, 37, 16),
          (100, 19, 0, 32, 32), (64, 16, 40, 45, 48)]
_CASES_F64 = [(37, 5, 8, 37, 8), (100, 19, 24, 56, 24)]  # strips at odd multiples of 8 lanes: float64 only


@pytest.mark.parametrize("dtype,n,d,i0,i_end,js", [(dt, *c) for dt in (np.float64, np.float32) for c in _CASES]
                         + [(np.float64, *c) for c in _CASES_F64])
def test_micro_kernels_match_numpy(dtype, n, d, i0, i_end, js):
    """Tails in every direction: N and d not multiples of a vector, blocks shorter than 8,
    candidates from ``js`` on (a multiple of the vector: 8 float64 or 16 float32 lanes, as the
    symmetric kernel's strips; js = 8 and 24 only for float64)."""
    rng = np.random.default_rng(n + d)
    z = rng.normal(size=(n, d)).astype(dtype)
    zT = np.ascontiguousarray(z.T)
    sq = (z.astype(np.float64) ** 2).sum(1)
    rows = np.empty(32, dtype=np.int64)
    nsub = tiles.block_rows(i0, i_end, rows)
    rr = min(32, i_end - i0)
    assert nsub == -(-rr // 8) and np.all(rows[:rr] == np.arange(i0, i0 + rr)) and np.all(rows[rr:] == i_end - 1)
    L = np.full((32, n), np.nan)
    tiles.gram_block(z, rows, nsub, zT, sq, L, js)
    z64 = z.astype(np.float64)
    want = z64[rows[:rr]] @ z64.T - 0.5 * sq
    tol = 1e-13 if dtype == np.float64 else 1e-5
    assert np.abs(L[:rr, js:] - want[:, js:]).max() <= tol * np.abs(want).max()
    assert np.isnan(L[:, :js]).all()  # columns before js untouched
    P = rng.normal(size=(32, n)).astype(dtype)
    P[rr:] = 0.0  # padding rows: the callers' contract
    A = np.zeros((32, d), dtype=dtype)
    tiles.anchor_product(P, nsub, z, A, js)
    wantA = P[:, js:].astype(np.float64) @ z64[js:]
    assert np.abs(A[:rr] - wantA[:rr]).max() <= tol * np.abs(wantA).max()
    B = rng.normal(size=(d, n)).astype(dtype)
    B0 = B.astype(np.float64)
    tiles.candidate_product(P, nsub, z, rows, B, js)
    wantB = B0 + z64[rows[:rr]].T @ P[:rr].astype(np.float64)
    wantB[:, :js] = B0[:, :js]
    assert np.abs(B - wantB).max() <= tol * np.abs(wantB).max()


@pytest.mark.parametrize("negatives", ["view1", "both"])
def test_far_apart_outputs_take_the_true_maximum(negatives):
    """All pairs ~1e5 apart: the bound shift underflows, the kernel shifts by the row maximum."""
    rng = np.random.default_rng(5)
    z1 = 300.0 * rng.normal(size=(40, 3))
    z2 = z1 + rng.normal(size=(40, 3))
    ref = reference.infonce_core(z1, z2, 0.0, 1.0, negatives)  # alpha = 0: no positive term to help
    out = kernels.infonce_core(z1, z2, 0.0, 1.0, negatives)
    assert np.isfinite(out[0]) and abs(out[0] - ref[0]) <= 1e-12 * abs(ref[0])
    for a, r in zip(out[1:], ref[1:]):
        assert np.abs(a - r).max() <= 1e-12 * max(1.0, np.abs(r).max())


@pytest.mark.parametrize("negatives", ["view1", "both"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.0, 1.0), (0.4, 2.0)])
def test_float32_kernel_runs_in_float32_within_the_stated_tolerance(negatives, alpha, beta):
    rng = np.random.default_rng(3)
    z1 = rng.normal(size=(203, 9)).astype(np.float32)
    z2 = (z1 + 0.5 * rng.normal(size=z1.shape)).astype(np.float32)
    ref = reference.infonce_core(z1.astype(np.float64), z2.astype(np.float64), alpha, beta, negatives)
    out = kernels.infonce_core(z1, z2, alpha, beta, negatives)
    assert out[1].dtype == np.float32 and out[2].dtype == np.float32
    assert abs(out[0] - ref[0]) <= F32_VALUE_RTOL * abs(ref[0])
    ratios = []
    for a, r in zip(out[1:], ref[1:]):
        assert np.abs(a - r).max() <= F32_GRAD_RTOL * max(1.0, np.abs(r).max())
        # computed in float32, not the float64 kernel rounded at the end: that would be no
        # further from the reference than rounding the reference itself (measured ratio 3-8)
        ratios.append(np.abs(a - r).max() / np.abs(r.astype(np.float32) - r).max())
    assert max(ratios) > 2.0


@pytest.mark.parametrize("kw", [{}, {"normalize": True, "c": 2.0}, {"negatives": "both"}])
def test_float32_linear_step_within_the_stated_tolerance(kw):
    rng = np.random.default_rng(4)
    W = (0.3 * rng.normal(size=(6, 10)))
    x1 = rng.normal(size=(300, 10))
    x2 = x1 + 0.4 * rng.normal(size=x1.shape)
    b = 0.1 * rng.normal(size=6)
    fast = minissl.get_loss("infonce", engine="numba", **kw)
    ref = minissl.get_loss("infonce", engine="numpy", **kw)
    f32 = [a.astype(np.float32) for a in (W, x1, x2, b)]
    v, gW, gb = fast.value_and_grad(*f32)
    vr, gWr, gbr = ref.value_and_grad(*(a.astype(np.float64) for a in f32))
    assert gW.dtype == np.float32 and gb.dtype == np.float32
    assert abs(v - vr) <= F32_VALUE_RTOL * abs(vr)
    scale = max(1.0, np.abs(gWr).max())
    assert np.abs(gW - gWr).max() <= F32_GRAD_RTOL * scale
    assert np.abs(gb - gbr).max() <= F32_GRAD_RTOL * scale


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_well_separated_float32_outputs_stay_accurate(dtype):
    """Softmax weights down to ~exp(-200): the coefficients below ``coef_floor`` are set to
    zero (they would be subnormal in float32), and the result still meets the tolerance."""
    rng = np.random.default_rng(11)
    z1 = (4.0 * rng.normal(size=(150, 12))).astype(dtype)
    z2 = (z1 + 0.3 * rng.normal(size=z1.shape)).astype(dtype)
    ref = reference.infonce_core(z1.astype(np.float64), z2.astype(np.float64), 1.0, 0.5, "view1")
    out = kernels.infonce_core(z1, z2, 1.0, 0.5, "view1")
    rtol, gtol = (1e-12, 1e-12) if dtype == np.float64 else (F32_VALUE_RTOL, F32_GRAD_RTOL)
    assert abs(out[0] - ref[0]) <= rtol * abs(ref[0])
    for a, r in zip(out[1:], ref[1:]):
        assert np.abs(a - r).max() <= gtol * max(1.0, np.abs(r).max())


def test_coefficient_floor_is_tiny_over_epsilon():
    floor = numba.njit(lambda a: tiles.coef_floor(a))
    for dtype in (np.float32, np.float64):
        info = np.finfo(dtype)
        assert floor(np.zeros(1, dtype)) == float(info.tiny) / float(info.eps)
    assert 9e-32 < floor(np.zeros(1, np.float32)) < 1e-31
