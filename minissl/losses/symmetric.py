"""Symmetric form of the InfoNCE-family pair kernel, for negatives from the first view (Eq. 1).

With the softmax of anchor ``i`` shifted by the bound ``|z_i|^2 / 2`` (see
:mod:`minissl.losses.kernels`), its terms are the Gaussian kernel
``K_ij = exp(-|z_i - z_j|^2 / 2)``, which is symmetric, and the gradient coefficients are
``P_ij = c_i K_ij`` with ``c_i = -beta / (2 N t_i)`` and ``t_i = sum_{j != i} K_ij + exp(lpos_i)``
(the positive pair's term). The gradient of ``sum_ij P_ij |z_i - z_j|^2`` (coefficients held
fixed, as in the row-wise kernel) with respect to ``z_k`` is
``2 sum_j Q_kj (z_k - z_j)`` with ``Q = P + P^T``, ``Q_ij = (c_i + c_j) K_ij``: one product per
unordered pair instead of an anchor and a candidate product per ordered pair. Each anchor
``i`` handles the candidates ``j > i`` (its *strip*), in two passes:

1. :func:`strip_totals` — ``K_ij`` for ``j > i``: row totals for ``i`` and column totals for
   ``j`` (per chunk, in float64), then :func:`coefficients` adds them in chunk order into
   ``t_i``, ``lse_i = log t_i`` and ``c_i``;
2. :func:`strip_gradients` — ``K_ij`` again, ``Q_ij``, and both gradient products of the
   strip (:mod:`minissl.losses.tiles`): the anchors' into ``gA``, the candidates' into the
   chunk's buffer.

Flops: ``2 N^2 d`` for the two half Gram products and ``2 N^2 d`` for the products, against
``6 N^2 d`` in the row-wise form, with the same number of ``exp``. Chunks take anchors in
ranges of equal strip work (:func:`chunk_start`), fixed by ``N`` and the chunk count, and all
sums run in a fixed order, so the results do not depend on the number of threads.

When some ``t_i`` is outside ``[sum_floor, 1e30)`` — a row total below
:func:`~minissl.losses.vexp.sum_floor` (1e-250 in float64, 1e-20 in float32: with no
positive term, every other output farther than about 34, or in float32 about 9.6, from
``z_i``), or an ``alpha`` so large that the positive term would exceed 1e30 —
:func:`coefficients` reports it and the caller runs the row-wise kernel for the whole step,
which shifts each row by its true maximum (pass 1 is then wasted: such steps cost about a
quarter more than the row-wise kernel alone). Tested against the NumPy reference and the row-wise kernel
(``tests/test_symmetric.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import CACHE, FASTMATH
from .lanesum import total
from .tiles import (R, SUPER, add_anchor_terms, anchor_product, block_rows, candidate_product, coef_floor,
                    finish_candidate_terms, gram_block, lanes)
from .vexp import EXCLUDED, exp_into

__all__ = ["chunk_start", "strip_totals", "coefficients", "strip_gradients"]


@njit(cache=CACHE)
def chunk_start(c, nchunks, n):
    """First anchor of chunk ``c``: ``floor(n (1 - sqrt(1 - c / nchunks)))``, so that each chunk
    holds an equal share of the strip work ``sum_i (n - i)`` (the chunk count, not the thread
    count, fixes the split)."""
    if c >= nchunks:
        return n
    return min(n, np.int64(np.floor(n * (1.0 - np.sqrt(1.0 - c / nchunks)))))


@njit(fastmath=FASTMATH, cache=CACHE)
def _strip_logits(i0, i_end, z, zT, sq, rows, L):
    """Shifted logits of the anchors ``i0 .. min(i0 + 32, i_end)`` against the candidates from
    ``js`` (``i0`` rounded down to a whole vector) on; returns ``(nsub, rr, js)``: 8-anchor
    blocks, anchors, first candidate column."""
    nsub = block_rows(i0, i_end, rows)
    rr = min(SUPER * R, i_end - i0)
    js = i0 - i0 % lanes(z)
    gram_block(z, rows, nsub, zT, sq, L, js)
    return nsub, rr, js


@njit(fastmath=FASTMATH, cache=CACHE)
def strip_totals(c, nchunks, z, zT, sq, rowtot, coltot):
    """Pass 1 of chunk ``c``: ``rowtot[i] = sum_{j > i} K_ij`` for its anchors and
    ``coltot[c, j] = sum_{i < j} K_ij`` over its anchors (float64)."""
    n = zT.shape[1]
    i_start = chunk_start(c, nchunks, n)
    i_end = chunk_start(c + 1, nchunks, n)
    S = SUPER * R
    L = np.empty((S, n))
    e = np.empty(n, z.dtype)
    rows = np.empty(S, dtype=np.int64)
    col = coltot[c]
    col[:] = 0.0
    for i0 in range(i_start, i_end, S):
        nsub, rr, js = _strip_logits(i0, i_end, z, zT, sq, rows, L)
        for s in range(rr):
            i = i0 + s
            m = n - i - 1
            ee = e[:m]
            exp_into(L[s][i + 1:], 0.5 * sq[i], ee)
            rowtot[i] = total(ee)
            cc = col[i + 1:]
            for t in range(m):
                cc[t] += ee[t]


@njit(fastmath=FASTMATH, cache=CACHE)
def coefficients(rowtot, coltot, lpos, beta, inv_n, floor, lse, coef):
    """``t_i`` (row total, column totals in chunk order, positive term), ``lse_i = log t_i`` and
    ``c_i = -beta inv_n / (2 t_i)``; returns False when some ``t_i`` is outside
    ``[floor, 1e30)`` (the row-wise kernel must take the step)."""
    nchunks, n = coltot.shape
    ok = True
    for i in range(n):
        t = rowtot[i]
        for c in range(nchunks):
            t += coltot[c, i]
        if lpos[i] > EXCLUDED:
            t += np.exp(lpos[i])
        if not (t >= floor and t < 1e30):
            ok = False
            t = 1.0
        lse[i] = np.log(t)
        coef[i] = -0.5 * beta * inv_n / t
    return ok


@njit(fastmath=FASTMATH, cache=CACHE)
def strip_gradients(c, nchunks, z, zT, sq, coef, gA, buf):
    """Pass 2 of chunk ``c``: ``Q_ij = (c_i + c_j) K_ij`` on its strips; the anchors' terms
    ``2 (sum_j Q_ij) z_i - 2 sum_j Q_ij z_j`` into ``gA``, the candidates' terms into ``buf[c]``."""
    d, n = zT.shape
    i_start = chunk_start(c, nchunks, n)
    i_end = chunk_start(c + 1, nchunks, n)
    S = SUPER * R
    dt = z.dtype
    floor = coef_floor(z)  # coefficients below it are zero (kept out of subnormal arithmetic)
    L = np.empty((S, n))
    P = np.empty((S, n), dtype=dt)
    A = np.empty((S, d), dtype=dt)
    rs = np.empty(S)
    rows = np.empty(S, dtype=np.int64)
    cs = np.zeros(n)
    b = buf[c]
    b[...] = 0.0
    for i0 in range(i_start, i_end, S):
        nsub, rr, js = _strip_logits(i0, i_end, z, zT, sq, rows, L)
        for s in range(rr):
            i = i0 + s
            p = P[s]
            for j in range(js, i + 1):
                p[j] = 0.0
            m = n - i - 1
            q = p[i + 1:]
            exp_into(L[s][i + 1:], 0.5 * sq[i], q)
            ci = coef[i]
            cj = coef[i + 1:]
            cc = cs[i + 1:]
            for t in range(m):
                v = (ci + cj[t]) * q[t]
                v = v if abs(v) > floor else 0.0
                q[t] = v
                cc[t] += v
            rs[s] = total(q)
        for s in range(rr, nsub * R):
            P[s, js:] = 0.0
        A[...] = 0.0
        anchor_product(P, nsub, z, A, js)
        candidate_product(P, nsub, z, rows, b, js)
        add_anchor_terms(i0, rr, rs, z, A, gA)
    finish_candidate_terms(cs, zT, b)
