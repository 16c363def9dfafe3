"""Numba kernel of the spectral contrastive loss (fast path of ``reference.scl_core``).

Same structure as the InfoNCE kernels of :mod:`minissl.losses.kernels`: anchors in fixed
chunks, blocks of rows, no N x N matrix, per-chunk buffers for the terms that land on the
negatives, summed in chunk order (results independent of the thread count).

For anchor ``i`` and negative ``j`` the pair term is ``k (z1_i . z_j)^2`` with
``k = 1 / (N K)`` (``K`` negatives per anchor); its derivative with respect to the dot
product is ``2 k (z1_i . z_j)``, which multiplies ``z_j`` (anchor gradient) and ``z1_i``
(gradient of the negative).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._config import CACHE, FASTMATH
from .lanesum import dot, total
from .kernels import (linear_forward, normalize_backward, reduce_features, weight_grad, linear_result,
                      prepare_linear)

__all__ = ["scl_linear", "scl_step", "scl_step_serial"]


@njit(fastmath=FASTMATH, cache=CACHE)
def _dot_block(zT, z, i0, rr, out):
    """``out[r, j] = z[i0 + r] . zT[:, j]`` for ``r < rr``."""
    d, n = zT.shape
    for r in range(rr):
        row = out[r]
        for j in range(n):
            row[j] = 0.0
    for k in range(d):
        zk = zT[k]
        for r in range(rr):
            a = z[i0 + r, k]
            row = out[r]
            for j in range(n):
                row[j] += a * zk[j]


@njit(fastmath=FASTMATH, cache=CACHE)
def _grad_dot(zT, z, i0, rr, coef, gA, buf):
    """Gradient of ``sum_{r,j} F(z[i0+r] . zT[:, j])`` with ``coef[r, j] = F'``.

    Anchor rows: ``gA[i0 + r] += sum_j coef[r, j] zT[:, j]``; the other points:
    ``buf[:, j] += sum_r coef[r, j] z[i0 + r]``.
    """
    d, n = zT.shape
    for k in range(d):
        zk = zT[k]
        b = buf[k]
        for r in range(rr):
            row = coef[r]
            gA[i0 + r, k] += dot(row, zk)
            a = z[i0 + r, k]
            for j in range(n):
                b[j] += row[j] * a


@njit(fastmath=FASTMATH, cache=CACHE)
def _scl_chunk(c, nchunks, z1T, z2T, z1, both, kpair, gA, buf1, buf2, pv):
    """Pair terms of the anchors of chunk ``c``; per-anchor values go to ``pv``."""
    d, n = z1T.shape
    i_start = c * n // nchunks
    i_end = (c + 1) * n // nchunks
    R = 4
    d1 = np.empty((R, n))
    d2 = np.empty((R, n) if both else (1, 1))
    b1 = buf1[c]
    b2 = buf2[c]
    for k in range(d):
        for j in range(n):
            b1[k, j] = 0.0
            if both:
                b2[k, j] = 0.0
    for i0 in range(i_start, i_end, R):
        rr = min(R, i_end - i0)
        _dot_block(z1T, z1, i0, rr, d1)
        if both:
            _dot_block(z2T, z1, i0, rr, d2)
        for r in range(rr):
            i = i0 + r
            row = d1[r]
            row[i] = 0.0
            s = dot(row, row)
            for j in range(n):
                row[j] *= 2.0 * kpair
            if both:
                row2 = d2[r]
                row2[i] = 0.0
                s += dot(row2, row2)
                for j in range(n):
                    row2[j] *= 2.0 * kpair
            pv[i] = kpair * s
        _grad_dot(z1T, z1, i0, rr, d1, gA, b1)
        if both:
            _grad_dot(z2T, z1, i0, rr, d2, gA, b2)


@njit(fastmath=FASTMATH, cache=CACHE)
def _scl_positive(i0, i1, z1T, z2T, nrm1, nrm2, normalize, c, g1, g2):
    """``-2/N sum_i z1_i . z2_i``: gradient for rows ``i0 <= i < i1``, then normalization."""
    d1, n = z1T.shape
    f = -2.0 / n
    for p in range(d1):
        for i in range(i0, i1):
            g1[p, i] += f * z2T[p, i]
            g2[p, i] += f * z1T[p, i]
    if normalize:
        normalize_backward(i0, i1, z1T, z2T, nrm1, nrm2, c, g1, g2)


@njit(fastmath=FASTMATH, cache=CACHE)
def _scl_value(z1T, z2T, pv, W, wd):
    d1, n = z1T.shape
    s = 0.0
    for p in range(d1):
        s += dot(z1T[p], z2T[p])
    value = -2.0 * s / n
    value += total(pv)
    if wd > 0:
        w2 = 0.0
        for p in range(W.shape[0]):
            w2 += dot(W[p], W[p])
        value += wd * w2
    return value


@njit(parallel=True, fastmath=FASTMATH, cache=CACHE)
def scl_step(W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps, wd, z1, z2, nrm1, nrm2,
                z1T, z2T, gA, lpos, buf1, buf2, pv, g1, g2, dW, db):
    """One SCL step for ``f(x) = W x + b`` (parallel driver); returns the loss."""
    n = x1.shape[0]
    d1 = W.shape[0]
    nchunks = buf1.shape[0]
    kpair = 1.0 / (n * (n - 1) * (2 if both else 1))
    linear_forward(W, b, has_bias, x1T, x2T, normalize, c, norm_eps, z1, nrm1, nrm2, z1T, z2T, gA, lpos, 1.0)
    for ch_ in prange(nchunks):  # the index as int64: one specialisation of the callee
        ch = np.int64(ch_)
        _scl_chunk(ch, nchunks, z1T, z2T, z1, both, kpair, gA, buf1, buf2, pv)
    for p_ in prange(d1):
        p = np.int64(p_)
        reduce_features(p, p + 1, gA, buf1, buf2, both, g1, g2)
    for blk_ in prange(nchunks):
        blk = np.int64(blk_)
        _scl_positive(blk * n // nchunks, (blk + 1) * n // nchunks, z1T, z2T, nrm1, nrm2, normalize, c,
                      g1, g2)
    for p_ in prange(d1):
        p = np.int64(p_)
        weight_grad(p, p + 1, W, wd, g1, g2, x1T, x2T, dW, db)
    return _scl_value(z1T, z2T, pv, W, wd)


@njit(fastmath=FASTMATH, cache=CACHE)
def scl_step_serial(W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps, wd, z1, z2, nrm1,
                       nrm2, z1T, z2T, gA, lpos, buf1, buf2, pv, g1, g2, dW, db):
    """Serial driver of the same step (same blocks, same order: bit-identical)."""
    n = x1.shape[0]
    d1 = W.shape[0]
    nchunks = buf1.shape[0]
    kpair = 1.0 / (n * (n - 1) * (2 if both else 1))
    linear_forward(W, b, has_bias, x1T, x2T, normalize, c, norm_eps, z1, nrm1, nrm2, z1T, z2T, gA, lpos, 1.0)
    for ch in range(nchunks):
        _scl_chunk(ch, nchunks, z1T, z2T, z1, both, kpair, gA, buf1, buf2, pv)
    reduce_features(0, d1, gA, buf1, buf2, both, g1, g2)
    for blk in range(nchunks):
        _scl_positive(blk * n // nchunks, (blk + 1) * n // nchunks, z1T, z2T, nrm1, nrm2, normalize, c,
                      g1, g2)
    weight_grad(np.int64(0), d1, W, wd, g1, g2, x1T, x2T, dW, db)
    return _scl_value(z1T, z2T, pv, W, wd)


def scl_linear(W, x1, x2, b, negatives, normalize, c, norm_eps, weight_decay, workspace=None, parallel=True):
    """Value and gradients of SCL on ``f(x) = W x + b`` (Numba engine; same contract as the reference)."""
    both = negatives == "both"
    dtype, W64, x1, x2, ws, has_bias, b64, dW, db = prepare_linear(W, x1, x2, b, both, workspace)
    drive = scl_step if parallel else scl_step_serial
    value = drive(W64, b64, has_bias, x1, x2, ws.x1T, ws.x2T, both, bool(normalize), float(c), float(norm_eps),
                  float(weight_decay), ws.z1, ws.z2, ws.nrm1, ws.nrm2, ws.z1T, ws.z2T, ws.gA, ws.lpos, ws.buf1,
                  ws.buf2, ws.lse, ws.g1, ws.g2, dW, db)
    return linear_result(value, dW, db, dtype, has_bias)
