"""Numba kernels for the exact losses (the fast path of :mod:`minissl.losses`).

Each kernel computes exactly what its NumPy reference in
:mod:`minissl.losses.reference` computes and is tested against it
(``tests/test_kernels.py``). Compilation policy (fastmath flags, caching, chunking) lives
in :mod:`minissl._config`. Nothing here is compiled at import time.

InfoNCE family (``infonce_core``)
---------------------------------
Gram form, no N x N matrix: for 32 anchors at a time the shifted logits
``z_i . z_j - |z_j|^2 / 2`` (:func:`minissl.losses.tiles.gram_block`, a register tile of
8 anchors x one vector of candidates, ``d`` the inner loop), the softmax terms in float64
sums (shifted by the bound ``|z_i|^2 / 2``, which no logit exceeds), then the gradient
products from the coefficient rows (:func:`~minissl.losses.tiles.anchor_product`,
:func:`~minissl.losses.tiles.candidate_product`). With negatives from the first view (Eq. 1,
the default) the terms are a symmetric Gaussian kernel and :mod:`minissl.losses.symmetric`
takes each unordered pair once: ``4 N^2 d`` flops per step. With negatives from both views,
or when a row total leaves the symmetric form's range (a row whose terms nearly all
underflow, or a huge ``alpha``; see that module), the row-wise form (:func:`_infonce_chunk`) shifts each row by its own bound or true maximum:
``6 N^2 d`` flops (``12 N^2 d`` with both views). Anchors are split into ``N_CHUNKS`` fixed
chunks processed in parallel; gradient terms that land on *other* samples (the negatives) go
to the chunk's own buffer, and buffers are summed in chunk order afterwards, so results do
not depend on the thread count. ``exp`` is evaluated by :mod:`minissl.losses.vexp` (range
reduction and a polynomial), which LLVM vectorises, unlike ``math.exp`` in the PyPI llvmlite.

float32 inputs run the pair products, gradients, buffers and the ``exp`` of the softmax in
float32; logits, the softmax's shift and normaliser, log-sum-exp, row and column sums and the
value stay float64 (``tests/test_tiles.py`` states the tolerance against the float64
reference).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import CACHE, FASTMATH, N_CHUNKS
from .lanesum import dot, dot2, sqdist, total
from .symmetric import coefficients, strip_gradients, strip_totals
from .tiles import R, SUPER, add_anchor_terms, anchor_product, block_rows, candidate_product, coef_floor, finish_candidate_terms, gram_block
from .vexp import EXCLUDED as _EXCLUDED
from .vexp import exp_into, exp_row, sum_floor

__all__ = ["infonce_core", "infonce_linear", "exp_row", "Workspace", "LinearWorkspace", "infonce_step",
           "infonce_step_serial", "linear_forward", "normalize_backward", "reduce_features", "weight_grad",
           "prepare_linear", "linear_result"]



@njit(fastmath=FASTMATH, cache=CACHE)
def _row_exp_sum(row, row2, both, tp, has_pos, m, e, e2):
    """``e = exp(row - m)`` (and ``e2`` from ``row2``); returns the total with the positive pair."""
    n = row.shape[0]
    exp_into(row, m, e)
    tot = np.exp(tp - m) if has_pos else 0.0
    tot += total(e[:n])
    if both:
        exp_into(row2, m, e2)
        tot += total(e2[:n])
    return tot


@njit(fastmath=FASTMATH, cache=CACHE)
def _softmax_rows(i0, rr, nsub, L1, L2, both, sq1, lpos, beta, inv_n, P1, P2, cs1, cs2, rs, lse):
    """Rows ``s < rr`` of the anchor block at ``i0``: log-sum-exp and gradient coefficients.

    ``L`` holds the shifted logits ``z_i . z_j - |z_j|^2/2 = -|z_i - z_j|^2/2 + |z_i|^2/2``;
    the shift cancels in the softmax and is taken out of ``lse``. Writes
    ``P[s, j] = -beta/(2N) softmax_ij`` (the coefficient of ``|z_i - z_j|^2``; zero for
    ``j = i`` and for the padding rows ``s >= rr``), its row sums ``rs`` and column sums
    ``cs`` (float64) and ``lse``.
    """
    n = L1.shape[1]
    floor = coef_floor(P1)  # coefficients below it are zero (kept out of subnormal arithmetic)
    e = np.empty(n, P1.dtype)  # exp in the kernel's dtype (vexp.py); every sum of it in float64
    e2 = np.empty(n if both else 1, P1.dtype)
    for s in range(rr):
        i = i0 + s
        h = 0.5 * sq1[i]
        row = L1[s]
        row[i] = _EXCLUDED
        tp = lpos[i] + h
        has_pos = lpos[i] > _EXCLUDED
        row2 = L2[s] if both else row
        if both:
            row2[i] = _EXCLUDED
        # every shifted logit is <= h (it is h - |z_i - z_j|^2 / 2): shift by that bound, and
        # by the true maximum only when every term is so small that exp would lose it
        m = max(h, tp)
        tot = _row_exp_sum(row, row2, both, tp, has_pos, m, e, e2)
        if tot < sum_floor(e) or not tot < 1e30:  # everything underflowed, or the bound was exceeded
            m = tp
            for j in range(n):
                m = max(m, max(row[j], row2[j]))
            tot = _row_exp_sum(row, row2, both, tp, has_pos, m, e, e2)
        lse[i] = m - h + np.log(tot)
        f = -0.5 * beta * inv_n / tot
        e[i] = 0.0
        p1 = P1[s]
        for j in range(n):
            v = e[j] * f
            v = v if abs(v) > floor else 0.0
            p1[j] = v
            cs1[j] += v
        acc = total(p1)
        if both:
            e2[i] = 0.0
            p2 = P2[s]
            for j in range(n):
                v = e2[j] * f
                v = v if abs(v) > floor else 0.0
                p2[j] = v
                cs2[j] += v
            acc += total(p2)
        rs[s] = acc
    for s in range(rr, nsub * R):
        P1[s, :] = 0.0
        if both:
            P2[s, :] = 0.0


@njit(fastmath=FASTMATH, cache=CACHE)
def _infonce_chunk(c, nchunks, z1T, z2T, z1, z2, sq1, sq2, lpos, both, beta, inv_n, gA, buf1, buf2, lse):
    """Process anchors ``[c N / nchunks, (c+1) N / nchunks)`` (see module docstring)."""
    d, n = z1T.shape
    i_start = c * n // nchunks
    i_end = (c + 1) * n // nchunks
    S = SUPER * R
    dt = z1.dtype
    L1 = np.empty((S, n))
    L2 = np.empty((S, n) if both else (1, 1))
    P1 = np.empty((S, n), dtype=dt)
    P2 = np.empty((S, n) if both else (1, 1), dtype=dt)
    A = np.empty((S, d), dtype=dt)
    rs = np.empty(S)
    rows = np.empty(S, dtype=np.int64)
    cs1 = np.zeros(n)
    cs2 = np.zeros(n if both else 1)
    b1 = buf1[c]
    b2 = buf2[c]
    b1[...] = 0.0
    if both:
        b2[...] = 0.0
    for i0 in range(i_start, i_end, S):
        nsub = block_rows(i0, i_end, rows)
        rr = min(S, i_end - i0)
        gram_block(z1, rows, nsub, z1T, sq1, L1, 0)
        if both:
            gram_block(z1, rows, nsub, z2T, sq2, L2, 0)
        _softmax_rows(i0, rr, nsub, L1, L2, both, sq1, lpos, beta, inv_n, P1, P2, cs1, cs2, rs, lse)
        A[...] = 0.0
        anchor_product(P1, nsub, z1, A, 0)
        candidate_product(P1, nsub, z1, rows, b1, 0)
        if both:
            anchor_product(P2, nsub, z2, A, 0)
            candidate_product(P2, nsub, z1, rows, b2, 0)
        add_anchor_terms(i0, rr, rs, z1, A, gA)
    # the candidates' own term of d|z_i - z_j|^2 / dz_j, with the column sums of the chunk
    finish_candidate_terms(cs1, z1T, b1)
    if both:
        finish_candidate_terms(cs2, z2T, b2)


@njit(fastmath=FASTMATH, cache=CACHE)
def _sq_norms(zT):
    """``|z_j|^2`` in float64 from the feature-major ``zT`` (d, N)."""
    d, n = zT.shape
    sq = np.zeros(n)
    for k in range(d):
        zk = zT[k]
        for j in range(n):
            sq[j] += np.float64(zk[j]) * zk[j]
    return sq


@njit(parallel=True, fastmath=FASTMATH, cache=CACHE)
def pairs_parallel(z1T, z2T, z1, z2, sq1, sq2, lpos, both, beta, inv_n, gA, buf1, buf2, lse):
    """The pair kernel, chunks in parallel: the symmetric form (:mod:`minissl.losses.symmetric`)
    for negatives from the first view, the row-wise form (:func:`_infonce_chunk`) for negatives
    from both views or when a row total is out of the symmetric form's range."""
    nchunks = buf1.shape[0]
    n = z1.shape[0]
    if not both:
        rowtot = np.empty(n)
        coltot = np.empty((nchunks, n))
        coef = np.empty(n)
        for c_ in prange(nchunks):  # the index as int64: one specialisation of the callee
            strip_totals(np.int64(c_), nchunks, z1, z1T, sq1, rowtot, coltot)
        if coefficients(rowtot, coltot, lpos, beta, inv_n, sum_floor(z1), lse, coef):
            for c_ in prange(nchunks):
                strip_gradients(np.int64(c_), nchunks, z1, z1T, sq1, coef, gA, buf1)
            return
    for c_ in prange(nchunks):
        c = np.int64(c_)
        _infonce_chunk(c, nchunks, z1T, z2T, z1, z2, sq1, sq2, lpos, both, beta, inv_n, gA, buf1, buf2, lse)


@njit(fastmath=FASTMATH, cache=CACHE)
def pairs_serial(z1T, z2T, z1, z2, sq1, sq2, lpos, both, beta, inv_n, gA, buf1, buf2, lse):
    """:func:`pairs_parallel` with the same chunks one after another (bit-identical)."""
    nchunks = buf1.shape[0]
    n = z1.shape[0]
    if not both:
        rowtot = np.empty(n)
        coltot = np.empty((nchunks, n))
        coef = np.empty(n)
        for c in range(nchunks):
            strip_totals(c, nchunks, z1, z1T, sq1, rowtot, coltot)
        if coefficients(rowtot, coltot, lpos, beta, inv_n, sum_floor(z1), lse, coef):
            for c in range(nchunks):
                strip_gradients(c, nchunks, z1, z1T, sq1, coef, gA, buf1)
            return
    for c in range(nchunks):
        _infonce_chunk(c, nchunks, z1T, z2T, z1, z2, sq1, sq2, lpos, both, beta, inv_n, gA, buf1, buf2, lse)


class Workspace:
    """Reusable buffers for :func:`infonce_core` (avoids page faults of fresh ~MB arrays per step)."""

    def __init__(self):
        self._key = None

    def get(self, n, d, both, dtype=np.float64):
        key = (n, d, both, np.dtype(dtype))
        if key != self._key:
            nchunks = min(N_CHUNKS, n)
            self.gA = np.empty((n, d), dtype)
            self.buf1 = np.empty((nchunks, d, n), dtype)
            self.buf2 = np.empty((nchunks, d, n) if both else (nchunks, 1, 1), dtype)
            self.lse = np.empty(n)
            self.z1T = np.empty((d, n), dtype)
            self.z2T = np.empty((d, n), dtype) if both else self.z1T
            self._key = key
        return self


def kernel_dtype(*arrays):
    """float32 when every array is float32, else float64: the precision the kernels run in."""
    return np.float32 if all(np.asarray(a).dtype == np.float32 for a in arrays) else np.float64


def infonce_core(z1, z2, alpha=1.0, beta=1.0, negatives="view1", parallel=True, workspace=None):
    """Numba implementation of :func:`minissl.losses.reference.infonce_core` (same contract).

    float32 inputs run float32 kernels (pair products, gradients) with float64 logits,
    log-sum-exp, row and column sums; anything else runs in float64. The gradients come
    back in the kernel's dtype. ``workspace`` (a :class:`Workspace`) lets repeated calls
    reuse their buffers.
    """
    dtype = kernel_dtype(z1, z2)
    z1 = np.ascontiguousarray(z1, dtype=dtype)
    z2 = np.ascontiguousarray(z2, dtype=dtype)
    n, d = z1.shape
    both = negatives == "both"
    ws = (workspace or Workspace()).get(n, d, both, dtype)
    diff = z1.astype(np.float64) - z2
    pos = (diff * diff).sum(1)
    lpos = -0.5 * pos + (np.log(alpha) if alpha > 0 else _EXCLUDED)
    ws.z1T[...] = z1.T
    if both:
        ws.z2T[...] = z2.T
    ws.gA.fill(0.0)
    sq1 = _sq_norms(ws.z1T)
    sq2 = _sq_norms(ws.z2T) if both else sq1
    kern = pairs_parallel if parallel else pairs_serial
    kern(ws.z1T, ws.z2T, z1, z2, sq1, sq2, lpos, both, float(beta), 1.0 / n, ws.gA, ws.buf1, ws.buf2, ws.lse)
    lse = ws.lse
    value = float(np.mean(0.5 * pos + beta * lse))
    wpos = np.exp(lpos - lse) if alpha > 0 else np.zeros(n)
    epos = (0.5 - 0.5 * beta * wpos) / n
    dpos = 2.0 * epos[:, None] * diff
    g1 = ws.gA + ws.buf1.sum(0, dtype=np.float64).T + dpos
    g2 = -dpos
    if both:
        g2 = g2 + ws.buf2.sum(0, dtype=np.float64).T
    return value, g1.astype(dtype), g2.astype(dtype)


@njit(fastmath=FASTMATH, cache=CACHE)
def linear_forward(W, b, has_bias, x1T, x2T, normalize, c, norm_eps, z1, nrm1, nrm2, z1T, z2T, gA, lpos, alpha):
    """Outputs of both views, feature-major: ``z1T[p] = b_p + sum_q W[p, q] x1T[q]`` (axpy over
    samples, contiguous), normalized if asked, the row-major copy ``z1``, the positive-pair
    logits ``lpos`` and a zeroed anchor-gradient buffer. Serial: at O(N d0 d1) it costs less
    than waking a thread pool."""
    d1, d0 = W.shape
    n = x1T.shape[1]
    for p in range(d1):
        a1 = z1T[p]
        a2 = z2T[p]
        b0 = b[p] if has_bias else 0.0
        for i in range(n):
            a1[i] = b0
            a2[i] = b0
        for q in range(d0):
            w = W[p, q]
            u1 = x1T[q]
            u2 = x2T[q]
            for i in range(n):
                a1[i] += w * u1[i]
                a2[i] += w * u2[i]
    if normalize:
        sc = np.sqrt(c)
        for i in range(n):
            nrm1[i] = 0.0
            nrm2[i] = 0.0
        for p in range(d1):
            for i in range(n):
                nrm1[i] += z1T[p, i] * z1T[p, i]
                nrm2[i] += z2T[p, i] * z2T[p, i]
        for i in range(n):
            nrm1[i] = max(np.sqrt(nrm1[i]), norm_eps)
            nrm2[i] = max(np.sqrt(nrm2[i]), norm_eps)
        for p in range(d1):
            for i in range(n):
                z1T[p, i] *= sc / nrm1[i]
                z2T[p, i] *= sc / nrm2[i]
    la = np.log(alpha) if alpha > 0 else 0.0
    for i in range(n):
        lpos[i] = 0.0
    for p in range(d1):
        for i in range(n):
            t = z1T[p, i] - z2T[p, i]
            lpos[i] += t * t
            z1[i, p] = z1T[p, i]
            gA[i, p] = 0.0
    for i in range(n):
        lpos[i] = -0.5 * lpos[i] + la if alpha > 0 else _EXCLUDED


@njit(fastmath=FASTMATH, cache=CACHE)
def _candidates(z1T, z2T, z2, both):
    """Squared norms of the candidates (float64) and, with negatives from both views, the
    row-major copy ``z2`` of ``z2T`` (the anchors' gradient reads candidates by row)."""
    sq1 = _sq_norms(z1T)
    if not both:
        return sq1, sq1
    d1, n = z2T.shape
    for p in range(d1):
        for i in range(n):
            z2[i, p] = z2T[p, i]
    return sq1, _sq_norms(z2T)


@njit(fastmath=FASTMATH, cache=CACHE)
def reduce_features(p0, p1, gA, buf1, buf2, both, g1, g2):
    """Features ``p0 <= p < p1``: output gradients from anchor terms and chunk buffers (in order)."""
    nchunks = buf1.shape[0]
    n = gA.shape[0]
    for p in range(p0, p1):
        a = g1[p]
        bb = g2[p]
        for i in range(n):
            a[i] = gA[i, p]
            bb[i] = 0.0
        for ch in range(nchunks):
            src = buf1[ch, p]
            for i in range(n):
                a[i] += src[i]
            if both:
                src2 = buf2[ch, p]
                for i in range(n):
                    bb[i] += src2[i]


@njit(fastmath=FASTMATH, cache=CACHE)
def normalize_backward(i0, i1, z1T, z2T, nrm1, nrm2, c, g1, g2):
    """Back through ``y = sqrt(c) z/|z|`` for rows ``i0 <= i < i1`` (feature-major arrays).

    ``g_z = sqrt(c)/|z| (g_y - u (u . g_y))`` with ``u = y / sqrt(c)``.
    """
    d1 = z1T.shape[0]
    sc = np.sqrt(c)
    m = i1 - i0
    t1 = np.zeros(m)
    t2 = np.zeros(m)
    for p in range(d1):
        for i in range(i0, i1):
            t1[i - i0] += z1T[p, i] * g1[p, i]
            t2[i - i0] += z2T[p, i] * g2[p, i]
    for p in range(d1):
        for i in range(i0, i1):
            g1[p, i] = sc / nrm1[i] * (g1[p, i] - z1T[p, i] * t1[i - i0] / c)
            g2[p, i] = sc / nrm2[i] * (g2[p, i] - z2T[p, i] * t2[i - i0] / c)


@njit(fastmath=FASTMATH, cache=CACHE)
def _positive_coef(i0, i1, lpos, lse, alpha, beta, n):
    """Overwrite ``lpos[i]`` by the positive pair's coefficient ``2 dL/dp_i`` (rows i0..i1)."""
    for i in range(i0, i1):
        wpos = np.exp(lpos[i] - lse[i]) if alpha > 0 else 0.0
        lpos[i] = 2.0 * (0.5 - 0.5 * beta * wpos) / n


@njit(fastmath=FASTMATH, cache=CACHE)
def _feature_pass(p, gA, buf1, buf2, both, z1T, z2T, e2, g1, g2):
    """Feature ``p``: output gradients from anchors, chunk buffers (in order) and positives."""
    reduce_features(p, p + 1, gA, buf1, buf2, both, g1, g2)
    a1 = z1T[p]
    a2 = z2T[p]
    h1 = g1[p]
    h2 = g2[p]
    for i in range(h1.shape[0]):
        dp = e2[i] * (a1[i] - a2[i])
        h1[i] += dp
        h2[i] -= dp


@njit(fastmath=FASTMATH, cache=CACHE)
def weight_grad(p0, p1, W, wd, g1, g2, x1T, x2T, dW, db):
    """Rows ``p0 <= p < p1`` of ``dW = g1 x1 + g2 x2 + 2 wd W`` and ``db``."""
    d0, n = x1T.shape
    for p in range(p0, p1):
        a = g1[p]
        bb = g2[p]
        db[p] = total(a) + total(bb)
        for q in range(d0):
            dW[p, q] = 2.0 * wd * W[p, q] + dot2(a, x1T[q], bb, x2T[q])


@njit(fastmath=FASTMATH, cache=CACHE)
def _value(z1T, z2T, lse, beta, W, wd):
    """Mean of ``|z1_i - z2_i|^2 / 2 + beta lse_i`` (feature-major outputs) + weight decay."""
    d1, n = z1T.shape
    value = 0.0
    for p in range(d1):
        value += 0.5 * sqdist(z1T[p], z2T[p])
    value += beta * total(lse)
    value /= n
    if wd > 0:
        s = 0.0
        for p in range(W.shape[0]):
            s += dot(W[p], W[p])
        value += wd * s
    return value


@njit(parallel=True, fastmath=FASTMATH, cache=CACHE)
def infonce_step(W, b, has_bias, x1, x2, x1T, x2T, alpha, beta, both, normalize, c, norm_eps, wd,
                    z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db):
    """One full InfoNCE-family step for ``f(x) = W x + b`` (parallel driver); returns the loss.

    Everything runs in compiled loops (no BLAS call, whose thread pool would compete with
    Numba's on a small machine): linear map, optional normalization ``sqrt(c) f/|f|``, the
    fused pair kernel, back-propagation and weight decay. ``x1T, x2T`` are the transposed
    views. Work is split into fixed blocks and every sum runs in a fixed order, so the
    result does not depend on the number of threads.
    """
    n = x1.shape[0]
    d1 = W.shape[0]
    nchunks = buf1.shape[0]
    # three parallel regions with negatives from the first view (pass 1 and pass 2 of the
    # symmetric kernel, the features), two with both views, one more with normalization: each
    # region wakes the thread pool, which costs ~0.1-0.2 ms on a small machine when the workers
    # have gone to sleep
    linear_forward(W, b, has_bias, x1T, x2T, normalize, c, norm_eps, z1, nrm1, nrm2, z1T, z2T, gA, lpos, alpha)
    sq1, sq2 = _candidates(z1T, z2T, z2, both)
    pairs_parallel(z1T, z2T, z1, z2, sq1, sq2, lpos, both, beta, 1.0 / n, gA, buf1, buf2, lse)
    value = _value(z1T, z2T, lse, beta, W, wd)
    for ch in range(nchunks):
        _positive_coef(ch * n // nchunks, (ch + 1) * n // nchunks, lpos, lse, alpha, beta, n)
    if normalize:
        for p_ in prange(d1):
            p = np.int64(p_)
            _feature_pass(p, gA, buf1, buf2, both, z1T, z2T, lpos, g1, g2)
        for blk_ in prange(nchunks):
            blk = np.int64(blk_)
            normalize_backward(blk * n // nchunks, (blk + 1) * n // nchunks, z1T, z2T, nrm1, nrm2, c,
                                g1, g2)
        for p_ in prange(d1):
            p = np.int64(p_)
            weight_grad(p, p + 1, W, wd, g1, g2, x1T, x2T, dW, db)
    else:
        for p_ in prange(d1):
            p = np.int64(p_)
            _feature_pass(p, gA, buf1, buf2, both, z1T, z2T, lpos, g1, g2)
            weight_grad(p, p + 1, W, wd, g1, g2, x1T, x2T, dW, db)
    return value


@njit(fastmath=FASTMATH, cache=CACHE)
def infonce_step_serial(W, b, has_bias, x1, x2, x1T, x2T, alpha, beta, both, normalize, c,
                           norm_eps, wd, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse,
                           g1, g2, dW, db):
    """Serial driver of the same step (for runs executed in parallel *across* runs).

    Identical blocks in identical order as :func:`infonce_step`: bit-identical results.
    """
    n = x1.shape[0]
    d1 = W.shape[0]
    nchunks = buf1.shape[0]
    linear_forward(W, b, has_bias, x1T, x2T, normalize, c, norm_eps, z1, nrm1, nrm2, z1T, z2T, gA, lpos, alpha)
    sq1, sq2 = _candidates(z1T, z2T, z2, both)
    pairs_serial(z1T, z2T, z1, z2, sq1, sq2, lpos, both, beta, 1.0 / n, gA, buf1, buf2, lse)
    value = _value(z1T, z2T, lse, beta, W, wd)
    for ch in range(nchunks):
        _positive_coef(ch * n // nchunks, (ch + 1) * n // nchunks, lpos, lse, alpha, beta, n)
    for p in range(d1):
        _feature_pass(p, gA, buf1, buf2, both, z1T, z2T, lpos, g1, g2)
    if normalize:
        for blk in range(nchunks):
            normalize_backward(blk * n // nchunks, (blk + 1) * n // nchunks, z1T, z2T, nrm1, nrm2, c,
                                g1, g2)
    weight_grad(np.int64(0), d1, W, wd, g1, g2, x1T, x2T, dW, db)
    return value


class LinearWorkspace:
    """Buffers of :func:`infonce_linear` for one problem size and dtype (reused across steps)."""

    def __init__(self):
        self._key = None

    def get(self, n, d0, d1, both, dtype=np.float64):
        key = (n, d0, d1, both, np.dtype(dtype))
        if key != self._key:
            nchunks = min(N_CHUNKS, n)
            self.z1 = np.empty((n, d1), dtype)
            self.z2 = np.empty((n, d1), dtype)
            self.nrm1 = np.empty(n)
            self.nrm2 = np.empty(n)
            self.z1T = np.empty((d1, n), dtype)
            self.z2T = np.empty((d1, n), dtype)
            self.gA = np.empty((n, d1), dtype)
            self.buf1 = np.empty((nchunks, d1, n), dtype)
            self.buf2 = np.empty((nchunks, d1, n) if both else (nchunks, 1, 1), dtype)
            self.lse = np.empty(n)
            self.lpos = np.empty(n)
            self.x1T = np.empty((d0, n), dtype)
            self.x2T = np.empty((d0, n), dtype)
            self.g1 = np.empty((d1, n), dtype)  # gradients w.r.t. the outputs, feature-major
            self.g2 = np.empty((d1, n), dtype)
            self._key = key
        return self


def infonce_linear(W, x1, x2, b, alpha, beta, negatives, normalize, c, norm_eps, weight_decay,
                   workspace=None, parallel=True):
    """Value and gradients of an InfoNCE-family loss on ``f(x) = W x + b`` (Numba engine).

    Same contract as :meth:`minissl.losses.Loss.value_and_grad` with the reference engine.
    float32 weights and views run float32 kernels with float64 sums (value, log-sum-exp,
    softmax row and column sums, weight-gradient sums); the gradients come back in float32.
    """
    both = negatives == "both"
    dtype, W64, x1, x2, ws, has_bias, b64, dW, db = prepare_linear(W, x1, x2, b, both, workspace, float32=True)
    drive = infonce_step if parallel else infonce_step_serial
    value = drive(W64, b64, has_bias, x1, x2, ws.x1T, ws.x2T, float(alpha), float(beta), both,
                  bool(normalize), float(c), float(norm_eps), float(weight_decay), ws.z1, ws.z2,
                  ws.nrm1, ws.nrm2, ws.z1T, ws.z2T, ws.gA, ws.lpos, ws.buf1, ws.buf2, ws.lse,
                  ws.g1, ws.g2, dW, db)
    return linear_result(value, dW, db, dtype, has_bias)


def prepare_linear(W, x1, x2, b, both, workspace, float32=False):
    """Contiguous inputs in the kernel dtype, the workspace for this size, and output arrays.

    Returns ``(dtype, W, x1, x2, ws, has_bias, b, dW, db)``: ``dtype`` is the caller's. With
    ``float32=True`` (kernels that have a float32 version) the kernel dtype is
    :func:`kernel_dtype` of the inputs — float32 when the weights, bias and both views are
    float32 — else float64 (float32 inputs are computed in float64, results cast back).
    """
    dtype = W.dtype
    kd = kernel_dtype(W, x1, x2, *(() if b is None else (b,))) if float32 else np.float64
    Wk = np.ascontiguousarray(W, dtype=kd)
    x1 = np.ascontiguousarray(x1, dtype=kd)
    x2 = np.ascontiguousarray(x2, dtype=kd)
    n, d0 = x1.shape
    d1 = Wk.shape[0]
    ws = (workspace or LinearWorkspace()).get(n, d0, d1, both, kd)
    has_bias = b is not None
    bk = np.ascontiguousarray(b, dtype=kd) if has_bias else np.zeros(d1, kd)
    ws.x1T[...] = x1.T
    ws.x2T[...] = x2.T
    return dtype, Wk, x1, x2, ws, has_bias, bk, np.empty((d1, d0), kd), np.empty(d1, kd)


def linear_result(value, dW, db, dtype, has_bias):
    """``(value, dW, db)`` in the caller's dtype, ``db`` None without a bias."""
    return float(value), dW.astype(dtype, copy=False), (db.astype(dtype, copy=False) if has_bias else None)
