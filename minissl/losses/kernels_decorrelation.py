"""Numba kernels of Barlow Twins and VICReg (fast paths of ``reference.barlow_core`` and
``reference.vicreg_core``).

Both losses cost O(N d^2) (batch moments and d x d correlation matrices), far less than the
O(N^2 d) of the contrastive losses, so each step runs as one serial compiled function on
feature-major arrays (d, N), with no BLAS call. Formulas and conventions are those of the
references; sums run in a fixed order (deterministic).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import CACHE, FASTMATH
from .lanesum import dot, sqdist, total
from .kernels import linear_forward, normalize_backward, weight_grad, linear_result, prepare_linear

__all__ = ["barlow_linear", "vicreg_linear", "decorrelation_step"]


@njit(fastmath=FASTMATH, cache=CACHE)
def _standardize_rows(zT, yT, s, eps, standardize):
    """``yT[p] = (zT[p] - mean) / sqrt(biased var + eps)`` (or a copy); returns scales in ``s``."""
    d, n = zT.shape
    for p in range(d):
        if not standardize:
            s[p] = 1.0
            for i in range(n):
                yT[p, i] = zT[p, i]
            continue
        mu = total(zT[p]) / n
        for i in range(n):
            yT[p, i] = zT[p, i] - mu
        v = dot(yT[p], yT[p])
        s[p] = np.sqrt(v / n + eps)
        for i in range(n):
            yT[p, i] = (zT[p, i] - mu) / s[p]


@njit(fastmath=FASTMATH, cache=CACHE)
def _standardize_backward_rows(gyT, yT, s, standardize, gT):
    d, n = yT.shape
    for p in range(d):
        if not standardize:
            for i in range(n):
                gT[p, i] = gyT[p, i]
            continue
        m1 = total(gyT[p]) / n
        m2 = dot(gyT[p], yT[p]) / n
        for i in range(n):
            gT[p, i] = (gyT[p, i] - m1 - yT[p, i] * m2) / s[p]


@njit(fastmath=FASTMATH, cache=CACHE)
def _barlow_grad(z1T, z2T, lam, standardize, eps, g1, g2):
    """Barlow Twins on outputs ``z1T, z2T`` (d, N): value, gradients into ``g1, g2`` (d, N)."""
    d, n = z1T.shape
    y1 = np.empty((d, n))
    y2 = np.empty((d, n))
    s1 = np.empty(d)
    s2 = np.empty(d)
    _standardize_rows(z1T, y1, s1, eps, standardize)
    _standardize_rows(z2T, y2, s2, eps, standardize)
    cc = np.empty((d, d))
    for p in range(d):
        for q in range(d):
            cc[p, q] = dot(y1[p], y2[q]) / n
    value = 0.0
    G = np.empty((d, d))
    for p in range(d):
        for q in range(d):
            if p == q:
                value += (1.0 - cc[p, p]) ** 2
                G[p, q] = -2.0 * (1.0 - cc[p, p])
            else:
                value += lam * cc[p, q] ** 2
                G[p, q] = 2.0 * lam * cc[p, q]
    gy1 = np.zeros((d, n))
    gy2 = np.zeros((d, n))
    for p in range(d):
        for q in range(d):
            w = G[p, q] / n
            for i in range(n):
                gy1[p, i] += w * y2[q, i]
                gy2[q, i] += w * y1[p, i]
    _standardize_backward_rows(gy1, y1, s1, standardize, g1)
    _standardize_backward_rows(gy2, y2, s2, standardize, g2)
    return value


@njit(fastmath=FASTMATH, cache=CACHE)
def _vicreg_view(zT, var_c, cov_c, gamma, eps, g):
    """Variance and covariance terms of one view; adds their gradient to ``g`` (d, N)."""
    d, n = zT.shape
    zc = np.empty((d, n))
    value = 0.0
    for p in range(d):
        mu = total(zT[p]) / n
        for i in range(n):
            zc[p, i] = zT[p, i] - mu
        v = dot(zc[p], zc[p])
        std = np.sqrt(v / (n - 1) + eps)
        if std < gamma:
            value += var_c * 0.5 * (gamma - std) / d
            f = -var_c * 0.5 / (d * (n - 1) * std)
            for i in range(n):
                g[p, i] += f * zc[p, i]
    cov = np.empty((d, d))
    for p in range(d):
        for q in range(p, d):
            cov[p, q] = dot(zc[p], zc[q]) / (n - 1)
            cov[q, p] = cov[p, q]
    f = cov_c * 4.0 / (d * (n - 1))
    for p in range(d):
        for q in range(d):
            if p != q:
                value += cov_c * cov[p, q] ** 2 / d
                w = f * cov[p, q]
                for i in range(n):
                    g[p, i] += w * zc[q, i]
    return value


@njit(fastmath=FASTMATH, cache=CACHE)
def _vicreg_grad(z1T, z2T, inv, var_c, cov_c, gamma, eps, g1, g2):
    d, n = z1T.shape
    value = 0.0
    f = 2.0 * inv / (n * d)
    for p in range(d):
        value += sqdist(z1T[p], z2T[p])
        for i in range(n):
            t = z1T[p, i] - z2T[p, i]
            g1[p, i] = f * t
            g2[p, i] = -f * t
    value *= inv / (n * d)
    value += _vicreg_view(z1T, var_c, cov_c, gamma, eps, g1)
    value += _vicreg_view(z2T, var_c, cov_c, gamma, eps, g2)
    return value


@njit(fastmath=FASTMATH, cache=CACHE)
def decorrelation_step(kind, prm, W, b, has_bias, x1, x2, x1T, x2T, normalize, c, norm_eps, wd,
                          z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, g1, g2, dW, db):
    """One Barlow Twins (``kind == 0``, ``prm = (lam, standardize, eps)``) or VICReg
    (``kind == 1``, ``prm = (inv, var, cov, gamma, eps)``) step for ``f(x) = W x + b``."""
    n = x1.shape[0]
    d1 = W.shape[0]
    linear_forward(W, b, has_bias, x1T, x2T, normalize, c, norm_eps, z1, nrm1, nrm2, z1T, z2T, gA, lpos, 1.0)
    if kind == 0:
        value = _barlow_grad(z1T, z2T, prm[0], prm[1] != 0.0, prm[2], g1, g2)
    else:
        value = _vicreg_grad(z1T, z2T, prm[0], prm[1], prm[2], prm[3], prm[4], g1, g2)
    if normalize:
        normalize_backward(np.int64(0), n, z1T, z2T, nrm1, nrm2, c, g1, g2)
    weight_grad(np.int64(0), d1, W, wd, g1, g2, x1T, x2T, dW, db)
    if wd > 0:
        s = 0.0
        for p in range(d1):
            s += dot(W[p], W[p])
        value += wd * s
    return value


def _run(kind, prm, W, x1, x2, b, normalize, c, norm_eps, weight_decay, workspace):
    dtype, W64, x1, x2, ws, has_bias, b64, dW, db = prepare_linear(W, x1, x2, b, False, workspace)
    value = decorrelation_step(kind, np.asarray(prm, dtype=np.float64), W64, b64, has_bias, x1, x2, ws.x1T,
                                  ws.x2T, bool(normalize), float(c), float(norm_eps), float(weight_decay), ws.z1,
                                  ws.z2, ws.nrm1, ws.nrm2, ws.z1T, ws.z2T, ws.gA, ws.lpos, ws.g1, ws.g2, dW, db)
    return linear_result(value, dW, db, dtype, has_bias)


def barlow_linear(W, x1, x2, b, lam, standardize, eps, normalize, c, norm_eps, weight_decay, workspace=None):
    """Barlow Twins value and gradients on ``f(x) = W x + b`` (Numba engine)."""
    return _run(0, (lam, 1.0 if standardize else 0.0, eps), W, x1, x2, b, normalize, c, norm_eps,
                weight_decay, workspace)


def vicreg_linear(W, x1, x2, b, inv, var, cov, gamma, eps, normalize, c, norm_eps, weight_decay,
                  workspace=None):
    """VICReg value and gradients on ``f(x) = W x + b`` (Numba engine)."""
    return _run(1, (inv, var, cov, gamma, eps), W, x1, x2, b, normalize, c, norm_eps, weight_decay, workspace)
