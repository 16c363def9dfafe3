"""Register-tiled micro-kernels for the pair losses (the Gram form of the InfoNCE family).

For a block of ``R = 8`` anchors the pair kernels need three products, each with ``d`` the
reduction or the broadcast dimension:

* :func:`gram_block` — ``L[r, j] = z_a[r] . z_j - |z_j|^2 / 2`` for every candidate ``j``
  (the logits up to the anchor's own ``-|z_a|^2 / 2``, which cancels in the softmax);
* :func:`anchor_product` — ``A[r, :] = sum_j P[r, j] z_j`` (the anchors' gradient);
* :func:`candidate_product` — ``B[:, j] += sum_r P[r, j] z_a[r]`` (the candidates' gradient).

Each keeps an ``R x lanes`` tile of accumulators — ``lanes`` = the elements of one 64-byte
vector: 8 float64 or 16 float32 — on the stack (:func:`stack_tile`), where LLVM promotes it
to vector registers: 8 vector FMAs per load of the streamed operand, instead of a load and a
store of a row in memory per FMA (the difference form streamed ~3 GB through L2 per step at
N = 2048). Measured on the 2-core development machine (one thread, N = 2048, d = 32): the
Gram block at 44 GFLOP/s float64 and 99 GFLOP/s float32, against 13-20 GFLOP/s for the same
product written as row updates (``benchmarks/results.md`` has the whole step).

Anchor blocks shorter than ``R`` (the end of a chunk) repeat their last anchor; callers
zero the coefficient rows ``r >= rr`` so the repeats contribute nothing, and ignore their
outputs. Everything runs in the arrays' dtype; callers keep the row sums in float64.
"""

from __future__ import annotations

import numpy as np
from numba import carray, config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import CACHE, FASTMATH

__all__ = ["R", "SUPER", "add_anchor_terms", "finish_candidate_terms", "VECTOR_BYTES", "lanes", "coef_floor", "gram_block", "anchor_product", "candidate_product",
           "block_rows"]

R = 8  # anchors per block: 8 accumulator vectors of the 32 AVX-512 registers
SUPER = 4  # 8-anchor blocks per pass of the pair kernels: a candidate tile in L1 serves 32 anchors
VECTOR_BYTES = 64  # one AVX-512 vector; on AVX2 machines a tile row is two vectors


def _lanes_of(dtype):
    return VECTOR_BYTES // (dtype.bitwidth // 8)


def _coef_floor_of(dtype):
    info = np.finfo(np.dtype(str(dtype)))
    return float(info.tiny) / float(info.eps)


if config.DISABLE_JIT:  # pure Python (debugging, coverage): plain arrays stand in for the stack
    def lanes(arr):
        """Elements of one 64-byte vector in ``arr``'s dtype."""
        return VECTOR_BYTES // arr.itemsize

    def coef_floor(arr):
        """Smallest normal number of ``arr``'s dtype divided by its epsilon (float64)."""
        return _coef_floor_of(arr.dtype)

    def stack_tile(arr):
        """An ``R x lanes`` scratch tile of ``arr``'s dtype."""
        return np.empty((R, lanes(arr)), dtype=arr.dtype)
else:
    @intrinsic
    def lanes(typingctx, arr):
        """Elements of one 64-byte vector in ``arr``'s dtype (a compile-time constant)."""
        n = _lanes_of(arr.dtype)
        sig = types.intp(arr)

        def codegen(context, builder, signature, args):
            return context.get_constant(types.intp, n)

        return sig, codegen

    @intrinsic
    def coef_floor(typingctx, arr):
        """Smallest normal number of ``arr``'s dtype divided by its epsilon (a float64
        compile-time constant: 9.9e-32 for float32, 1e-292 for float64). Pair coefficients
        below it are set to zero: they are below the resolution of the row they belong to,
        and their products would fall among the subnormal numbers, where x86 arithmetic runs
        ~100x slower (a float32 step at N = 2048 with well-separated outputs took 330 ms
        instead of 12 ms)."""
        value = _coef_floor_of(arr.dtype)
        sig = types.float64(arr)

        def codegen(context, builder, signature, args):
            return context.get_constant(types.float64, value)

        return sig, codegen

    @intrinsic
    def _stack_ptr(typingctx, arr):
        """Pointer to ``R * lanes`` uninitialised elements of ``arr``'s dtype on the stack."""
        dt = arr.dtype
        size = R * _lanes_of(dt)
        sig = types.CPointer(dt)(arr)

        def codegen(context, builder, signature, args):
            return cgutils.alloca_once(builder, context.get_data_type(dt), size=size)

        return sig, codegen

    @njit(inline="always", cache=CACHE)
    def stack_tile(arr):
        """An ``R x lanes`` scratch tile of ``arr``'s dtype on the *caller's* stack (inlined
        into the caller, so the memory lives as long as the caller's frame)."""
        return carray(_stack_ptr(arr), (R, lanes(arr)))


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def _outer8(acc, c, v, a0, a1, a2, a3, a4, a5, a6, a7):
    """Column ``c`` of the tile: ``acc[r, c] += a_r v`` for the 8 rows (one FMA each)."""
    acc[0, c] += a0 * v
    acc[1, c] += a1 * v
    acc[2, c] += a2 * v
    acc[3, c] += a3 * v
    acc[4, c] += a4 * v
    acc[5, c] += a5 * v
    acc[6, c] += a6 * v
    acc[7, c] += a7 * v


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def _column8(za, i0, i1, i2, i3, i4, i5, i6, i7, k):
    """Feature ``k`` of the block's 8 anchors."""
    return za[i0, k], za[i1, k], za[i2, k], za[i3, k], za[i4, k], za[i5, k], za[i6, k], za[i7, k]


@njit(fastmath=FASTMATH, cache=CACHE)
def block_rows(i0, i_end, rows):
    """``rows[s] = min(i0 + s, i_end - 1)``; returns the number of 8-anchor blocks covering ``i0 .. i_end``."""
    for s in range(rows.shape[0]):
        rows[s] = min(i0 + s, i_end - 1)
    m = min(rows.shape[0], i_end - i0)
    return (m + R - 1) // R


@njit(fastmath=FASTMATH, cache=CACHE)
def gram_block(za, rows, nsub, zT, sq, L, j_start):
    """``L[s, j] = sum_k za[rows[s], k] zT[k, j] - sq[j] / 2`` for ``s < 8 nsub`` and ``j >= j_start``.

    ``za`` (anchors, row-major), ``zT`` (candidates, feature-major, shape (d, N)) in one
    dtype; ``sq[j] = |z_j|^2`` and ``L`` (shape (8 nsub, N) or more rows) in float64. A
    candidate tile of ``zT`` (``d x lanes``) stays in L1 while the ``nsub`` anchor blocks use it.
    """
    d, n = zT.shape
    C = lanes(zT)
    acc = stack_tile(zT)
    nt = n - n % C
    for j0 in range(j_start, nt, C):
        sqt = sq[j0:j0 + C]
        for sb in range(nsub):
            s0 = sb * R
            i0, i1, i2, i3 = rows[s0], rows[s0 + 1], rows[s0 + 2], rows[s0 + 3]
            i4, i5, i6, i7 = rows[s0 + 4], rows[s0 + 5], rows[s0 + 6], rows[s0 + 7]
            for r in range(R):
                for c in range(C):
                    acc[r, c] = 0.0
            for k in range(d):
                zk = zT[k, j0:j0 + C]
                a0, a1, a2, a3, a4, a5, a6, a7 = _column8(za, i0, i1, i2, i3, i4, i5, i6, i7, k)
                for c in range(C):
                    _outer8(acc, c, zk[c], a0, a1, a2, a3, a4, a5, a6, a7)
            for r in range(R):
                lr = L[s0 + r, j0:j0 + C]
                for c in range(C):
                    lr[c] = acc[r, c] - 0.5 * sqt[c]
    for s in range(nsub * R):
        ia = rows[s]
        for j in range(max(nt, j_start), n):
            t = za[ia, 0] * zT[0, j]
            for k in range(1, d):
                t += za[ia, k] * zT[k, j]
            L[s, j] = t - 0.5 * sq[j]


@njit(fastmath=FASTMATH, cache=CACHE)
def anchor_product(P, nsub, z, A, j_start):
    """``A[s, k] += sum_{j >= j_start} P[s, j] z[j, k]`` for ``s < 8 nsub`` (``z`` row-major, shape (N, d)).

    Candidates are taken 64 at a time (a ``64 x d`` slab of ``z`` stays in L1 for all blocks).
    """
    n, d = z.shape
    C = lanes(z)
    acc = stack_tile(z)
    kt = d - d % C
    for jt in range(j_start, n, 64):
        je = min(jt + 64, n)
        for sb in range(nsub):
            s0 = sb * R
            p0, p1, p2, p3 = P[s0], P[s0 + 1], P[s0 + 2], P[s0 + 3]
            p4, p5, p6, p7 = P[s0 + 4], P[s0 + 5], P[s0 + 6], P[s0 + 7]
            for k0 in range(0, kt, C):
                for r in range(R):
                    for c in range(C):
                        acc[r, c] = 0.0
                for j in range(jt, je):
                    zj = z[j, k0:k0 + C]
                    w0 = p0[j]
                    w1 = p1[j]
                    w2 = p2[j]
                    w3 = p3[j]
                    w4 = p4[j]
                    w5 = p5[j]
                    w6 = p6[j]
                    w7 = p7[j]
                    for c in range(C):
                        _outer8(acc, c, zj[c], w0, w1, w2, w3, w4, w5, w6, w7)
                for r in range(R):
                    ar = A[s0 + r, k0:k0 + C]
                    for c in range(C):
                        ar[c] += acc[r, c]
            for k in range(kt, d):  # features past the last full vector: 8 scalar chains
                t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
                for j in range(jt, je):
                    v = z[j, k]
                    t0 += p0[j] * v
                    t1 += p1[j] * v
                    t2 += p2[j] * v
                    t3 += p3[j] * v
                    t4 += p4[j] * v
                    t5 += p5[j] * v
                    t6 += p6[j] * v
                    t7 += p7[j] * v
                A[s0, k] += t0
                A[s0 + 1, k] += t1
                A[s0 + 2, k] += t2
                A[s0 + 3, k] += t3
                A[s0 + 4, k] += t4
                A[s0 + 5, k] += t5
                A[s0 + 6, k] += t6
                A[s0 + 7, k] += t7


@njit(fastmath=FASTMATH, cache=CACHE)
def candidate_product(P, nsub, za, rows, B, j_start):
    """``B[k, j] += sum_s P[s, j] za[rows[s], k]`` for every candidate ``j >= j_start`` (``B`` shape (d, N)).

    The register tile holds ``B`` for 8 features x one vector of candidates; every anchor of
    the ``8 nsub`` adds its coefficient vector times its 8 features (8 FMAs per load of ``P``).
    Each ``B[k, j]`` adds the anchors in order ``s = 0, 1, ...``.
    """
    d, n = B.shape
    C = lanes(B)
    acc = stack_tile(B)
    S = nsub * R
    nt = n - n % C
    kt = d - d % R
    for j0 in range(j_start, nt, C):
        for k0 in range(0, kt, R):
            for r in range(R):
                src = B[k0 + r, j0:j0 + C]
                for c in range(C):
                    acc[r, c] = src[c]
            for s in range(S):
                pv = P[s, j0:j0 + C]
                a = za[rows[s], k0:k0 + R]
                a0, a1, a2, a3, a4, a5, a6, a7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
                for c in range(C):
                    _outer8(acc, c, pv[c], a0, a1, a2, a3, a4, a5, a6, a7)
            for r in range(R):
                dst = B[k0 + r, j0:j0 + C]
                for c in range(C):
                    dst[c] = acc[r, c]
        for k in range(kt, d):  # features past the last group of 8
            b = B[k, j0:j0 + C]
            for c in range(C):
                acc[0, c] = b[c]
            for s in range(S):
                pv = P[s, j0:j0 + C]
                ak = za[rows[s], k]
                for c in range(C):
                    acc[0, c] += pv[c] * ak
            for c in range(C):
                b[c] = acc[0, c]
    for k in range(d):
        b = B[k]
        for j in range(max(nt, j_start), n):
            t = b[j]
            for s in range(S):
                t += P[s, j] * za[rows[s], k]
            b[j] = t


@njit(fastmath=FASTMATH, cache=CACHE)
def add_anchor_terms(i0, rr, rs, z, A, gA):
    """``gA[i] += 2 (rs[s] z_i - A[s])`` for the anchors ``i = i0 + s``, ``s < rr``: the anchors'
    part of ``d/dz_i sum_j P_ij |z_i - z_j|^2`` from the coefficient row sums ``rs`` and
    :func:`anchor_product`'s ``A``."""
    d = z.shape[1]
    for s in range(rr):
        i = i0 + s
        for k in range(d):
            gA[i, k] += 2.0 * (rs[s] * z[i, k] - A[s, k])


@njit(fastmath=FASTMATH, cache=CACHE)
def finish_candidate_terms(cs, zT, B):
    """``B[k, j] = 2 (cs[j] z_jk - B[k, j])``: the candidates' part of the same gradient, from
    the coefficient column sums ``cs`` and :func:`candidate_product`'s ``B``."""
    d, n = B.shape
    for k in range(d):
        zk = zT[k]
        bk = B[k]
        for j in range(n):
            bk[j] = 2.0 * (cs[j] * zk[j] - bk[j])
