"""NumPy reference implementations of the exact SSL losses on representations.

Each ``*_core(z1, z2, ...)`` takes the two views' representations ``z1, z2`` of shape
``(N, d1)`` (row ``i`` of each is the same clean sample) and returns
``(value, g1, g2)``: the loss averaged over anchors and its gradients with respect to
``z1`` and ``z2``. The linear model, bias, output normalization and weight decay are
applied around these cores by :class:`minissl.losses.Loss`.

These functions are the readable statement of every formula; fast kernels are tested
against them. They are written for clarity and use O(N^2) memory.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["infonce_core", "scl_core", "barlow_core", "vicreg_core"]


def _pair_grads(z1, z2, c11, e12):
    """Gradients of ``sum c11_ij |z1_i - z1_j|^2 + sum e12_ij |z1_i - z2_j|^2``."""
    g1 = 2.0 * ((c11.sum(1) + c11.sum(0))[:, None] * z1 - (c11 + c11.T) @ z1)
    g1 += 2.0 * (e12.sum(1)[:, None] * z1 - e12 @ z2)
    g2 = 2.0 * (e12.sum(0)[:, None] * z2 - e12.T @ z1)
    return g1, g2


def _sqdist(a, b):
    """Matrix of squared distances ``|a_i - b_j|^2`` (clipped at 0)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def infonce_core(z1, z2, alpha=1.0, beta=1.0, negatives="view1"):
    """Gaussian-kernel InfoNCE family: InfoNCE, weighted InfoNCE, beta-InfoNCE.

    For anchor ``i`` with positive distance ``p_i = |z1_i - z2_i|^2`` and negative
    distances ``D_ij``,

    .. math::

        \\ell_i = \\tfrac12 p_i + \\beta \\log\\Big(\\sum_{j \\ne i} e^{-D_{ij}/2}
                  + \\alpha e^{-p_i/2}\\Big),\\qquad L = \\frac1N \\sum_i \\ell_i .

    ``alpha = beta = 1`` is InfoNCE, Eq. (1) of Ziyin et al. (2023); ``beta = 1`` with
    ``alpha`` free is the weighted InfoNCE of Eq. (7) (``alpha = 0``: the paper's
    "NT-Xent"); ``alpha = 1`` with ``beta`` free is the beta-InfoNCE of Sec. 4.2
    (``beta = 1`` reproduces Eq. (1) exactly).

    Parameters
    ----------
    z1, z2 : ndarray, shape (N, d1)
        Representations of the two views.
    alpha : float, >= 0
        Weight of the positive pair in the denominator.
    beta : float, > 0
        Weight of the log-partition (entropy) term.
    negatives : {"view1", "both"}
        ``"view1"``: negatives are ``z1_j`` for ``j != i`` (N - 1 of them), as in Eq. (1).
        ``"both"``: also ``z2_j`` for ``j != i`` (2N - 2 negatives, SimCLR-style).

    Returns
    -------
    value : float
    g1, g2 : ndarray, shape (N, d1)
    """
    n = z1.shape[0]
    eye = np.eye(n, dtype=bool)
    pos = ((z1 - z2) ** 2).sum(1)
    log11 = -0.5 * _sqdist(z1, z1)
    log11[eye] = -np.inf
    blocks = [log11]
    if negatives == "both":
        log12 = -0.5 * _sqdist(z1, z2)
        log12[eye] = -np.inf
        blocks.append(log12)
    lpos = -0.5 * pos + (math.log(alpha) if alpha > 0 else -np.inf)
    # log-sum-exp over all negatives and the weighted positive
    m = np.maximum(np.max([blk.max(1) for blk in blocks], axis=0), lpos)
    tot = np.exp(lpos - m)
    for blk in blocks:
        tot = tot + np.exp(blk - m[:, None]).sum(1)
    lse = m + np.log(tot)
    value = float(np.mean(0.5 * pos + beta * lse))
    # dL/dD for each distance: -beta/(2N) * softmax weight; dL/dp: (1 - beta * w_pos)/(2N)
    scale = -0.5 * beta / n
    c11 = scale * np.exp(blocks[0] - lse[:, None])
    e12 = np.zeros_like(c11)
    if negatives == "both":
        e12 = scale * np.exp(blocks[1] - lse[:, None])
    wpos = np.exp(lpos - lse)
    e12[eye] = (0.5 - 0.5 * beta * wpos) / n
    g1, g2 = _pair_grads(z1, z2, c11, e12)
    return value, g1, g2


def scl_core(z1, z2, negatives="view1"):
    """Spectral contrastive loss, Eq. (14) of Ziyin et al. (2023) (HaoChen et al. 2021).

    .. math::

        L = -\\frac{2}{N}\\sum_i z1_i^T z2_i + \\frac{1}{N K}\\sum_i \\sum_{j \\in neg(i)}
            (z1_i^T z_j)^2

    where ``neg(i)`` holds ``z1_j, j != i`` (``"view1"``, ``K = N - 1``) or also
    ``z2_j, j != i`` (``"both"``, ``K = 2N - 2``). The constant of Eq. (14) is dropped;
    the norm constraint of Eq. (14) is the ``normalize=True`` variant.
    """
    n = z1.shape[0]
    off = ~np.eye(n, dtype=bool)
    value = -2.0 * float(np.mean((z1 * z2).sum(1)))
    g1 = -2.0 * z2 / n
    g2 = -2.0 * z1 / n
    k = 1.0 / (n * (n - 1) * (2 if negatives == "both" else 1))
    s11 = (z1 @ z1.T) * off
    value += k * float((s11**2).sum())
    g1 = g1 + 4.0 * k * (s11 @ z1)
    if negatives == "both":
        s12 = (z1 @ z2.T) * off
        value += k * float((s12**2).sum())
        g1 = g1 + 2.0 * k * (s12 @ z2)
        g2 = g2 + 2.0 * k * (s12.T @ z1)
    return value, g1, g2


def _standardize(z, eps):
    mu = z.mean(0)
    s = np.sqrt(((z - mu) ** 2).mean(0) + eps)
    return (z - mu) / s, s


def _standardize_backward(gy, y, s):
    return (gy - gy.mean(0) - y * (gy * y).mean(0)) / s


def barlow_core(z1, z2, lam=5e-3, standardize=True, eps=1e-5):
    """Barlow Twins (Zbontar et al. 2021) with its standard conventions.

    Each output dimension is standardised over the batch (mean removed, divided by
    ``sqrt(var + eps)`` with the biased variance, as ``BatchNorm1d(affine=False)``),
    ``Cc = y1^T y2 / N`` and

    .. math:: L = \\sum_k (1 - Cc_{kk})^2 + \\lambda \\sum_{k \\ne l} Cc_{kl}^2 .

    With ``standardize=False`` the raw cross-correlation ``z1^T z2 / N`` is used; that
    is the version whose expansion around ``W = 0`` the paper discusses (Sec. 3.2,
    "Relevant loss functions"). The standardised loss is invariant to rescaling each
    output dimension, so it has no expansion at the origin.
    """
    n = z1.shape[0]
    if standardize:
        y1, s1 = _standardize(z1, eps)
        y2, s2 = _standardize(z2, eps)
    else:
        y1, y2 = z1, z2
    cc = y1.T @ y2 / n
    dg = np.diag(cc)
    off = cc - np.diag(dg)
    value = float(((1.0 - dg) ** 2).sum() + lam * (off**2).sum())
    G = 2.0 * lam * off - np.diag(2.0 * (1.0 - dg))
    gy1 = y2 @ G.T / n
    gy2 = y1 @ G / n
    if standardize:
        return value, _standardize_backward(gy1, y1, s1), _standardize_backward(gy2, y2, s2)
    return value, gy1, gy2


def _vicreg_reg(z, var_coeff, cov_coeff, gamma, eps):
    """Variance and covariance terms of VICReg for one view, with gradient."""
    n, d = z.shape
    zc = z - z.mean(0)
    var = (zc**2).sum(0) / (n - 1)
    std = np.sqrt(var + eps)
    act = std < gamma
    value = var_coeff * 0.5 * float(np.mean(np.where(act, gamma - std, 0.0)))
    g = var_coeff * 0.5 * (-1.0 / d) * np.where(act, 1.0 / ((n - 1) * std), 0.0)[None, :] * zc
    cov = zc.T @ zc / (n - 1)
    offc = cov - np.diag(np.diag(cov))
    value += cov_coeff * float((offc**2).sum()) / d
    g = g + cov_coeff * 4.0 / (d * (n - 1)) * (zc @ offc)
    return value, g


def vicreg_core(z1, z2, inv=25.0, var=25.0, cov=1.0, gamma=1.0, eps=1e-4):
    """VICReg (Bardes et al. 2021) with the reference implementation's conventions.

    .. math::

        L = \\lambda\\,\\frac{1}{N d}\\sum\\|z1 - z2\\|^2
          + \\mu\\,\\tfrac12\\sum_{v=1,2}\\frac1d\\sum_k \\max(0, \\gamma - \\sqrt{Var(z^v_k) + \\epsilon})
          + \\nu \\sum_{v=1,2}\\frac1d\\sum_{k\\ne l} Cov(z^v)_{kl}^2

    with the unbiased (``N - 1``) variance and covariance, ``lambda, mu, nu = inv, var,
    cov`` (default 25, 25, 1), ``gamma = 1``, ``epsilon = 1e-4``. At ``std == gamma``
    the hinge uses the sub-gradient 0.
    """
    n, d = z1.shape
    diff = z1 - z2
    value = inv * float((diff**2).mean())
    g1 = 2.0 * inv * diff / (n * d)
    g2 = -g1
    v1, r1 = _vicreg_reg(z1, var, cov, gamma, eps)
    v2, r2 = _vicreg_reg(z2, var, cov, gamma, eps)
    return value + v1 + v2, g1 + r1, g2 + r2


# ----------------------------------------------------------------------------- expected losses (linear encoder)


def barlow_expected(W, A0, C, lam=5e-3, eps=1e-5):
    """Expectation of :func:`barlow_core` (standardised) over Gaussian views, N -> infinity.

    For ``z_a = W x_a``, ``x_a = x + eps_a`` with ``x ~ N(0, A0)`` and ``eps_a ~ N(0, C)``:
    ``S = W (A0 + C) W^T``, ``Cc_kl = (W A0 W^T)_kl / sqrt((S_kk + eps)(S_ll + eps))`` and
    ``L = sum_k (1 - Cc_kk)^2 + lam sum_{k != l} Cc_kl^2``. No argument checks
    (:mod:`minissl.theory.decorrelation` validates).
    """
    S = W @ (A0 + C) @ W.T
    dg = np.diag(S) + eps
    Cc = (W @ A0 @ W.T) / np.sqrt(np.outer(dg, dg))
    cd = np.diag(Cc)
    return float(np.sum((1.0 - cd) ** 2) + lam * (np.sum(Cc * Cc) - np.sum(cd * cd)))


def vicreg_expected(W, A0, C, inv=25.0, var=25.0, cov=1.0, gamma=1.0, eps=1e-4):
    """Expectation of :func:`vicreg_core` over Gaussian views, N -> infinity (unbiased moments -> population).

    ``L = inv/d tr(W 2C W^T) + var/d sum_k max(0, gamma - sqrt(S_kk + eps))
    + 2 cov/d sum_{k != l} S_kl^2`` with ``S = W (A0 + C) W^T`` (both views). No argument checks.
    """
    d = W.shape[0]
    S = W @ (A0 + C) @ W.T
    dg = np.diag(S)
    return float(inv / d * np.trace(W @ (2.0 * C) @ W.T)
                 + var / d * np.sum(np.maximum(0.0, gamma - np.sqrt(dg + eps)))
                 + 2.0 * cov / d * (np.sum(S * S) - np.sum(dg * dg)))
