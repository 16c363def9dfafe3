"""Numba kernels for the exact losses (the fast path of :mod:`minissl.losses`).

Each kernel computes exactly what its NumPy reference in
:mod:`minissl.losses.reference` computes and is tested against it
(``tests/test_kernels.py``). Compilation policy (fastmath flags, caching, chunking) lives
in :mod:`minissl._config`. Nothing here is compiled at import time.

InfoNCE family (``infonce_core``)
---------------------------------
One pass over anchor blocks fuses the pairwise distances, the log-sum-exp and the
gradient; no N x N matrix is formed (each thread holds four rows of length N).
Anchors are split into ``N_CHUNKS`` fixed chunks processed in parallel; gradient terms
that land on *other* samples (the negatives) go to the chunk's own buffer, and buffers
are summed in chunk order afterwards, so results do not depend on the thread count.
Distances use the difference form ``sum_k (z_jk - z_ik)^2`` (no cancellation for close
pairs). ``exp`` is evaluated by :func:`_exp_row` (range reduction and a degree-12
polynomial, ~1 ulp), which LLVM vectorises, unlike ``math.exp`` in the PyPI llvmlite.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import CACHE, FASTMATH, FASTMATH_ELEMENTWISE, N_CHUNKS

__all__ = ["infonce_core", "infonce_linear", "exp_row", "Workspace", "LinearWorkspace", "infonce_step",
           "infonce_step_serial", "linear_forward", "normalize_backward", "reduce_features", "weight_grad",
           "prepare_linear", "linear_result"]

_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXCLUDED = -1.0e300  # logit of a pair that is not in the denominator (exp -> 0)


@njit(fastmath=FASTMATH_ELEMENTWISE, cache=CACHE)
def _exp_row(x, out, kbits):
    """``out[j] = exp(x[j])`` for ``x[j] <= 0`` (values below -700 give exp(-700) ~ 1e-304).

    ``exp(x) = 2^k exp(r)``, ``k = round(x / ln 2)``, ``r = x - k ln 2`` (Cody-Waite split),
    ``exp(r)`` by its Taylor polynomial of degree 12 (|r| <= ln2/2: truncation < 2e-16
    relative), ``2^k`` by writing the exponent bits.
    """
    n = x.shape[0]
    for j in range(n):
        v = x[j]
        v = v if v > -700.0 else -700.0
        kf = np.floor(v * _INV_LN2 + 0.5)
        r = (v - kf * _LN2_HI) - kf * _LN2_LO
        p = 2.08767569878680989792e-09
        p = p * r + 2.50521083854417187751e-08
        p = p * r + 2.75573192239858906526e-07
        p = p * r + 2.75573192239858906526e-06
        p = p * r + 2.48015873015873015873e-05
        p = p * r + 1.98412698412698412698e-04
        p = p * r + 1.38888888888888888889e-03
        p = p * r + 8.33333333333333333333e-03
        p = p * r + 4.16666666666666666667e-02
        p = p * r + 1.66666666666666666667e-01
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        kbits[j] = (np.int64(kf) + 1023) << 52
        out[j] = p
    scale = kbits.view(np.float64)
    for j in range(n):
        out[j] *= scale[j]


def exp_row(x):
    """Vectorised ``exp`` of a 1-D float64 array of non-positive values (tested against np.exp)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    _exp_row(x, out, np.empty(x.shape[0], dtype=np.int64))
    return out


@njit(fastmath=FASTMATH, cache=CACHE)
def _sq_dist_block(zT, z, i0, rr, dist):
    """``dist[r, j] = |z[i0 + r] - zT[:, j]|^2`` for ``r < rr``."""
    d, n = zT.shape
    for r in range(rr):
        for j in range(n):
            dist[r, j] = 0.0
    for k in range(d):
        zk = zT[k]
        for r in range(rr):
            a = z[i0 + r, k]
            row = dist[r]
            for j in range(n):
                t = zk[j] - a
                row[j] += t * t


@njit(fastmath=FASTMATH, cache=CACHE)
def _anchor_and_scatter(zT, z, i0, rr, coef, gA, buf, colsum, tmp):
    """Gradient of ``sum_{r,j} coef[r, j] |z[i0+r] - zT[:, j]|^2``.

    Anchor rows go to ``gA[i0 + r]``; terms on the other points go to ``buf`` (d, N).
    """
    d, n = zT.shape
    for j in range(n):
        s = 0.0
        for r in range(rr):
            s += coef[r, j]
        colsum[j] = s
    for k in range(d):
        zk = zT[k]
        for r in range(rr):
            row = coef[r]
            acc = 0.0
            cs = 0.0
            for j in range(n):
                acc += row[j] * zk[j]
                cs += row[j]
            gA[i0 + r, k] += 2.0 * (cs * z[i0 + r, k] - acc)
        for j in range(n):
            tmp[j] = colsum[j] * zk[j]
        for r in range(rr):
            a = z[i0 + r, k]
            row = coef[r]
            for j in range(n):
                tmp[j] -= row[j] * a
        b = buf[k]
        for j in range(n):
            b[j] += 2.0 * tmp[j]


@njit(fastmath=FASTMATH, cache=CACHE)
def _sq_dist4(zT, z, i0, dist):
    """Four-row version of :func:`_sq_dist_block` (rows ``i0 .. i0+3``), two features per pass."""
    d, n = zT.shape
    d0 = dist[0]
    d1 = dist[1]
    d2 = dist[2]
    d3 = dist[3]
    for j in range(n):
        d0[j] = 0.0
        d1[j] = 0.0
        d2[j] = 0.0
        d3[j] = 0.0
    k = 0
    while k + 1 < d:
        za = zT[k]
        zb = zT[k + 1]
        a0, a1, a2, a3 = z[i0, k], z[i0 + 1, k], z[i0 + 2, k], z[i0 + 3, k]
        b0, b1, b2, b3 = z[i0, k + 1], z[i0 + 1, k + 1], z[i0 + 2, k + 1], z[i0 + 3, k + 1]
        for j in range(n):
            u = za[j]
            v = zb[j]
            t0 = u - a0
            s0 = v - b0
            t1 = u - a1
            s1 = v - b1
            t2 = u - a2
            s2 = v - b2
            t3 = u - a3
            s3 = v - b3
            d0[j] += t0 * t0 + s0 * s0
            d1[j] += t1 * t1 + s1 * s1
            d2[j] += t2 * t2 + s2 * s2
            d3[j] += t3 * t3 + s3 * s3
        k += 2
    if k < d:
        za = zT[k]
        a0, a1, a2, a3 = z[i0, k], z[i0 + 1, k], z[i0 + 2, k], z[i0 + 3, k]
        for j in range(n):
            u = za[j]
            t0 = u - a0
            t1 = u - a1
            t2 = u - a2
            t3 = u - a3
            d0[j] += t0 * t0
            d1[j] += t1 * t1
            d2[j] += t2 * t2
            d3[j] += t3 * t3


@njit(fastmath=FASTMATH, cache=CACHE)
def _grad4(zT, z, i0, coef, gA, buf):
    """Four-row version of :func:`_anchor_and_scatter`, anchor and scatter fused per feature."""
    d, n = zT.shape
    c0 = coef[0]
    c1 = coef[1]
    c2 = coef[2]
    c3 = coef[3]
    r0 = 0.0
    r1 = 0.0
    r2 = 0.0
    r3 = 0.0
    for j in range(n):
        r0 += c0[j]
        r1 += c1[j]
        r2 += c2[j]
        r3 += c3[j]
    for k in range(d):
        zk = zT[k]
        b = buf[k]
        a0, a1, a2, a3 = z[i0, k], z[i0 + 1, k], z[i0 + 2, k], z[i0 + 3, k]
        acc0 = 0.0
        acc1 = 0.0
        acc2 = 0.0
        acc3 = 0.0
        for j in range(n):
            v = zk[j]
            w0 = c0[j]
            w1 = c1[j]
            w2 = c2[j]
            w3 = c3[j]
            acc0 += w0 * v
            acc1 += w1 * v
            acc2 += w2 * v
            acc3 += w3 * v
            b[j] += 2.0 * ((w0 + w1 + w2 + w3) * v - (w0 * a0 + w1 * a1 + w2 * a2 + w3 * a3))
        gA[i0, k] += 2.0 * (r0 * a0 - acc0)
        gA[i0 + 1, k] += 2.0 * (r1 * a1 - acc1)
        gA[i0 + 2, k] += 2.0 * (r2 * a2 - acc2)
        gA[i0 + 3, k] += 2.0 * (r3 * a3 - acc3)


@njit(fastmath=FASTMATH, cache=CACHE)
def _infonce_chunk(c, nchunks, z1T, z2T, z1, lpos, both, beta, inv_n, gA, buf1, buf2, lse):
    """Process anchors ``[c N / nchunks, (c+1) N / nchunks)`` (see module docstring)."""
    d, n = z1T.shape
    i_start = c * n // nchunks
    i_end = (c + 1) * n // nchunks
    R = 4  # the unrolled helpers process four anchor rows
    d1 = np.empty((R, n))
    d2 = np.empty((R, n) if both else (1, 1))
    x = np.empty(n)
    e = np.empty(n)
    kb = np.empty(n, dtype=np.int64)
    colsum = np.empty(n)
    tmp = np.empty(n)
    b1 = buf1[c]
    b2 = buf2[c]
    for k in range(d):
        for j in range(n):
            b1[k, j] = 0.0
            if both:
                b2[k, j] = 0.0
    for i0 in range(i_start, i_end, R):
        rr = min(R, i_end - i0)
        if rr == 4:
            _sq_dist4(z1T, z1, i0, d1)
            if both:
                _sq_dist4(z2T, z1, i0, d2)
        else:
            _sq_dist_block(z1T, z1, i0, rr, d1)
            if both:
                _sq_dist_block(z2T, z1, i0, rr, d2)
        for r in range(rr):
            i = i0 + r
            m = lpos[i]
            row = d1[r]
            for j in range(n):
                row[j] = -0.5 * row[j]
            row[i] = _EXCLUDED
            for j in range(n):
                m = max(m, row[j])
            if both:
                row2 = d2[r]
                for j in range(n):
                    row2[j] = -0.5 * row2[j]
                row2[i] = _EXCLUDED
                for j in range(n):
                    m = max(m, row2[j])
            s = np.exp(lpos[i] - m) if lpos[i] > _EXCLUDED else 0.0
            for j in range(n):
                x[j] = row[j] - m
            _exp_row(x, e, kb)
            s1 = 0.0
            for j in range(n):
                s1 += e[j]
            for j in range(n):
                row[j] = e[j]
            s += s1
            if both:
                for j in range(n):
                    x[j] = row2[j] - m
                _exp_row(x, e, kb)
                s2 = 0.0
                for j in range(n):
                    s2 += e[j]
                for j in range(n):
                    row2[j] = e[j]
                s += s2
            lse[i] = m + np.log(s)
            f = -0.5 * beta * inv_n / s
            for j in range(n):
                row[j] *= f
            row[i] = 0.0
            if both:
                for j in range(n):
                    row2[j] *= f
                row2[i] = 0.0
        if rr == 4:
            _grad4(z1T, z1, i0, d1, gA, b1)
            if both:
                _grad4(z2T, z1, i0, d2, gA, b2)
        else:
            _anchor_and_scatter(z1T, z1, i0, rr, d1, gA, b1, colsum, tmp)
            if both:
                _anchor_and_scatter(z2T, z1, i0, rr, d2, gA, b2, colsum, tmp)


@njit(parallel=True, fastmath=FASTMATH, cache=CACHE)
def _infonce_parallel(z1T, z2T, z1, lpos, both, beta, inv_n, gA, buf1, buf2, lse):
    nchunks = buf1.shape[0]
    for c in prange(nchunks):
        _infonce_chunk(c, nchunks, z1T, z2T, z1, lpos, both, beta, inv_n, gA, buf1, buf2, lse)


@njit(fastmath=FASTMATH, cache=CACHE)
def _infonce_serial(z1T, z2T, z1, lpos, both, beta, inv_n, gA, buf1, buf2, lse):
    nchunks = buf1.shape[0]
    for c in range(nchunks):
        _infonce_chunk(c, nchunks, z1T, z2T, z1, lpos, both, beta, inv_n, gA, buf1, buf2, lse)


class Workspace:
    """Reusable buffers for :func:`infonce_core` (avoids page faults of fresh ~MB arrays per step)."""

    def __init__(self):
        self._key = None

    def get(self, n, d, both):
        key = (n, d, both)
        if key != self._key:
            nchunks = min(N_CHUNKS, n)
            self.gA = np.empty((n, d))
            self.buf1 = np.empty((nchunks, d, n))
            self.buf2 = np.empty((nchunks, d, n) if both else (nchunks, 1, 1))
            self.lse = np.empty(n)
            self.z1T = np.empty((d, n))
            self.z2T = np.empty((d, n)) if both else self.z1T
            self._key = key
        return self


def infonce_core(z1, z2, alpha=1.0, beta=1.0, negatives="view1", parallel=True, workspace=None):
    """Numba implementation of :func:`minissl.losses.reference.infonce_core` (same contract).

    Kernels run in float64; float32 inputs are converted and the gradients returned in
    float32 (the O(N^2 d) work is exp-bound, and float64 keeps the log-sum-exp exact).
    ``workspace`` (a :class:`Workspace`) lets repeated calls reuse their buffers.
    """
    dtype = z1.dtype
    z1 = np.ascontiguousarray(z1, dtype=np.float64)
    z2 = np.ascontiguousarray(z2, dtype=np.float64)
    n, d = z1.shape
    both = negatives == "both"
    ws = (workspace or Workspace()).get(n, d, both)
    pos = ((z1 - z2) ** 2).sum(1)
    lpos = -0.5 * pos + (np.log(alpha) if alpha > 0 else _EXCLUDED)
    ws.z1T[...] = z1.T
    if both:
        ws.z2T[...] = z2.T
    ws.gA.fill(0.0)
    kern = _infonce_parallel if parallel else _infonce_serial
    kern(ws.z1T, ws.z2T, z1, lpos, both, float(beta), 1.0 / n, ws.gA, ws.buf1, ws.buf2, ws.lse)
    lse = ws.lse
    value = float(np.mean(0.5 * pos + beta * lse))
    wpos = np.exp(lpos - lse) if alpha > 0 else np.zeros(n)
    epos = (0.5 - 0.5 * beta * wpos) / n
    dpos = 2.0 * epos[:, None] * (z1 - z2)
    g1 = ws.gA + ws.buf1.sum(0).T + dpos
    g2 = -dpos
    if both:
        g2 = g2 + ws.buf2.sum(0).T
    return value, g1.astype(dtype, copy=False), g2.astype(dtype, copy=False)


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
        sb = 0.0
        for i in range(n):
            sb += a[i] + bb[i]
        db[p] = sb
        for q in range(d0):
            u = x1T[q]
            v = x2T[q]
            s = 2.0 * wd * W[p, q]
            for i in range(n):
                s += a[i] * u[i] + bb[i] * v[i]
            dW[p, q] = s


@njit(fastmath=FASTMATH, cache=CACHE)
def _value(z1T, z2T, lse, beta, W, wd):
    """Mean of ``|z1_i - z2_i|^2 / 2 + beta lse_i`` (feature-major outputs) + weight decay."""
    d1, n = z1T.shape
    value = 0.0
    for p in range(d1):
        for i in range(n):
            t = z1T[p, i] - z2T[p, i]
            value += 0.5 * t * t
    for i in range(n):
        value += beta * lse[i]
    value /= n
    if wd > 0:
        s = 0.0
        for p in range(W.shape[0]):
            for q in range(W.shape[1]):
                s += W[p, q] * W[p, q]
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
    # two parallel regions (three with normalization): each region wakes the thread pool,
    # which costs ~0.1-0.2 ms on a small machine when the workers have gone to sleep
    linear_forward(W, b, has_bias, x1T, x2T, normalize, c, norm_eps, z1, nrm1, nrm2, z1T, z2T, gA, lpos, alpha)
    for ch in prange(nchunks):
        _infonce_chunk(ch, nchunks, z1T, z2T, z1, lpos, both, beta, 1.0 / n, gA, buf1, buf2, lse)
    value = _value(z1T, z2T, lse, beta, W, wd)
    for ch in range(nchunks):
        _positive_coef(ch * n // nchunks, (ch + 1) * n // nchunks, lpos, lse, alpha, beta, n)
    if normalize:
        for p in prange(d1):
            _feature_pass(p, gA, buf1, buf2, both, z1T, z2T, lpos, g1, g2)
        for blk in prange(nchunks):
            normalize_backward(blk * n // nchunks, (blk + 1) * n // nchunks, z1T, z2T, nrm1, nrm2, c,
                                g1, g2)
        for p in prange(d1):
            weight_grad(p, p + 1, W, wd, g1, g2, x1T, x2T, dW, db)
    else:
        for p in prange(d1):
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
    for ch in range(nchunks):
        _infonce_chunk(ch, nchunks, z1T, z2T, z1, lpos, both, beta, 1.0 / n, gA, buf1, buf2, lse)
    value = _value(z1T, z2T, lse, beta, W, wd)
    for ch in range(nchunks):
        _positive_coef(ch * n // nchunks, (ch + 1) * n // nchunks, lpos, lse, alpha, beta, n)
    for p in range(d1):
        _feature_pass(p, gA, buf1, buf2, both, z1T, z2T, lpos, g1, g2)
    if normalize:
        for blk in range(nchunks):
            normalize_backward(blk * n // nchunks, (blk + 1) * n // nchunks, z1T, z2T, nrm1, nrm2, c,
                                g1, g2)
    weight_grad(0, d1, W, wd, g1, g2, x1T, x2T, dW, db)
    return value


class LinearWorkspace:
    """Buffers of :func:`infonce_linear` for one problem size (reused across steps)."""

    def __init__(self):
        self._key = None

    def get(self, n, d0, d1, both):
        key = (n, d0, d1, both)
        if key != self._key:
            nchunks = min(N_CHUNKS, n)
            self.z1 = np.empty((n, d1))
            self.z2 = np.empty((n, d1))
            self.nrm1 = np.empty(n)
            self.nrm2 = np.empty(n)
            self.z1T = np.empty((d1, n))
            self.z2T = np.empty((d1, n))
            self.gA = np.empty((n, d1))
            self.buf1 = np.empty((nchunks, d1, n))
            self.buf2 = np.empty((nchunks, d1, n) if both else (nchunks, 1, 1))
            self.lse = np.empty(n)
            self.lpos = np.empty(n)
            self.x1T = np.empty((d0, n))
            self.x2T = np.empty((d0, n))
            self.g1 = np.empty((d1, n))  # gradients w.r.t. the outputs, feature-major
            self.g2 = np.empty((d1, n))
            self._key = key
        return self


def infonce_linear(W, x1, x2, b, alpha, beta, negatives, normalize, c, norm_eps, weight_decay,
                   workspace=None, parallel=True):
    """Value and gradients of an InfoNCE-family loss on ``f(x) = W x + b`` (Numba engine).

    Same contract as :meth:`minissl.losses.Loss.value_and_grad` with the reference engine;
    float32 inputs are computed in float64 and the gradients returned in float32.
    """
    both = negatives == "both"
    dtype, W64, x1, x2, ws, has_bias, b64, dW, db = prepare_linear(W, x1, x2, b, both, workspace)
    drive = infonce_step if parallel else infonce_step_serial
    value = drive(W64, b64, has_bias, x1, x2, ws.x1T, ws.x2T, float(alpha), float(beta), both,
                  bool(normalize), float(c), float(norm_eps), float(weight_decay), ws.z1, ws.z2,
                  ws.nrm1, ws.nrm2, ws.z1T, ws.z2T, ws.gA, ws.lpos, ws.buf1, ws.buf2, ws.lse,
                  ws.g1, ws.g2, dW, db)
    return linear_result(value, dW, db, dtype, has_bias)


def prepare_linear(W, x1, x2, b, both, workspace):
    """Float64, contiguous inputs, the workspace for this size, and output arrays.

    Returns ``(dtype, W64, x1, x2, ws, has_bias, b64, dW, db)``; ``dtype`` is the caller's
    (float32 inputs are computed in float64 and the gradients cast back).
    """
    dtype = W.dtype
    W64 = np.ascontiguousarray(W, dtype=np.float64)
    x1 = np.ascontiguousarray(x1, dtype=np.float64)
    x2 = np.ascontiguousarray(x2, dtype=np.float64)
    n, d0 = x1.shape
    d1 = W64.shape[0]
    ws = (workspace or LinearWorkspace()).get(n, d0, d1, both)
    has_bias = b is not None
    b64 = np.ascontiguousarray(b, dtype=np.float64) if has_bias else np.zeros(d1)
    ws.x1T[...] = x1.T
    ws.x2T[...] = x2.T
    return dtype, W64, x1, x2, ws, has_bias, b64, np.empty((d1, d0)), np.empty(d1)


def linear_result(value, dW, db, dtype, has_bias):
    """``(value, dW, db)`` in the caller's dtype, ``db`` None without a bias."""
    return float(value), dW.astype(dtype, copy=False), (db.astype(dtype, copy=False) if has_bias else None)
