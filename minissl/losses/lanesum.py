"""Sums in a fixed order that still vectorise: eight running lanes, then a fixed tree.

The kernels are compiled without LLVM's ``reassoc`` flag (see :mod:`minissl._config`): with
it, LLVM may reorder a sum differently depending on where a function is inlined, and a
kernel freshly compiled gave different last bits than the same kernel loaded from Numba's
cache. Without it a plain ``s += x[i]`` loop is a chain of dependent scalar adds (one per
~4 cycles). These helpers write the reordering out instead: element ``i`` goes to lane
``i % 8`` (eight independent accumulators that LLVM packs into one vector), the lanes are
combined as ``((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`` and the tail is added in
index order. The order depends on nothing but the length, so results are identical
however the code was compiled. Accumulation is in float64 whatever the inputs' dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import CACHE, FASTMATH

__all__ = ["total", "dot", "dot2", "sqdist"]


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def _fold(term, x, y, u, v):
    """``sum_i term(x, y, u, v, i)`` in the stated order (``term`` is a compiled function of
    one index, specialised and inlined per caller)."""
    n = x.shape[0]
    m = n - n % 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(0, m, 8):
        s0 += term(x, y, u, v, i)
        s1 += term(x, y, u, v, i + 1)
        s2 += term(x, y, u, v, i + 2)
        s3 += term(x, y, u, v, i + 3)
        s4 += term(x, y, u, v, i + 4)
        s5 += term(x, y, u, v, i + 5)
        s6 += term(x, y, u, v, i + 6)
        s7 += term(x, y, u, v, i + 7)
    t = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for i in range(m, n):
        t += term(x, y, u, v, i)
    return t


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def _element(x, y, u, v, i):
    return x[i]


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def _product(x, y, u, v, i):
    return x[i] * y[i]


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def _two_products(x, y, u, v, i):
    return x[i] * y[i] + np.float64(u[i] * v[i])


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def _square_difference(x, y, u, v, i):
    t = x[i] - y[i]
    return t * t


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def total(x):
    """``sum_i x[i]`` (1-D) in float64, eight lanes then a fixed tree."""
    return _fold(_element, x, x, x, x)


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def dot(x, y):
    """``sum_i x[i] y[i]`` (1-D, same length) in float64, eight lanes then a fixed tree."""
    return _fold(_product, x, y, x, y)


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def dot2(x, y, u, v):
    """``sum_i x[i] y[i] + u[i] v[i]`` (1-D, same length) in float64, as :func:`dot` (the two
    products of a term are added in float64)."""
    return _fold(_two_products, x, y, u, v)


@njit(fastmath=FASTMATH, inline="always", cache=CACHE)
def sqdist(x, y):
    """``sum_i (x[i] - y[i])^2`` (1-D, same length) in float64, as :func:`dot`."""
    return _fold(_square_difference, x, y, x, y)
