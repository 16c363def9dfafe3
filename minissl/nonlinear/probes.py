"""Landscape probes of the last layer (Fig. 7 of Ziyin et al. 2023, Fig. 2 for deep networks).

After training, the loss is evaluated at ``W3 -> a W3`` (1-D) and at ``W3 = U diag(r1 s_big,
r2 s_small) V^T`` (2-D), where ``U diag(s) V^T`` is the SVD of the trained ``W3`` split into its
larger and smaller half of singular values (floored at ``0.5 / rms(feature)``, so that a
collapsed ``W3`` still gives an informative plane). The noise draws are fixed across the grid (common
random numbers), so the surface is smooth. Local minima on the grid give the regime:
no collapse (minima with r1, r2 != 0), dimensional collapse (r2 = 0) or complete collapse
(only the origin), which is compared with the linear theory for the same data and
augmentation (:func:`linear_regime`).
"""

from __future__ import annotations

import numpy as np

from .. import _validation as V
from ..regimes import REGIMES, grid_minima, grid_regime, rank_regime
from .mlp import check_loss, features, z_loss

__all__ = ["scale_probe", "plane_probe", "classify_regime", "linear_regime", "LinearModel", "REGIMES",
           "feature_draws", "probe_svd", "split_halves", "check_probe_loss"]


class LinearModel:
    """The linear model ``f(x) = W x`` seen by the probes (features = the input), for side-by-side
    plots with the MLP: ``W3`` is ``W``."""

    def __init__(self, W):
        self.W3 = np.asarray(W, dtype=np.float64)


def _features(mlp, x):
    if isinstance(mlp, LinearModel):
        return np.asarray(x, dtype=np.float64)
    return features(mlp, x)


def feature_draws(mlp, x, augmentation, draws, seed):
    """Last-layer features of ``draws`` noise draws of both views (the same draws at every probe point).

    Parameters
    ----------
    mlp : MLP or LinearModel
    x : ndarray (N, d0)
        Clean data.
    augmentation : minissl.data.Augmentation
    draws : int
        Number of noise draws (common random numbers across the probe's grid).
    seed : int
        Seed of the noise.

    Returns
    -------
    list of (ndarray, ndarray)
        Per draw, the features ``(N, h)`` of view 1 and of view 2.
    """
    V.check_int("draws", draws, lo=1)
    v1, v2 = augmentation.views(np.asarray(x, dtype=np.float64), np.random.default_rng(seed), draws)
    return [(_features(mlp, v1[k]), _features(mlp, v2[k])) for k in range(draws)]


def probe_svd(mlp, feats):
    """SVD ``(U, s, Vt)`` of the trained last layer for the plane probe. If *every* singular value is below
    ``0.5 / rms(feature)`` (a collapsed ``W3``, which would make the plane flat), they are raised
    to that floor, so the plane spans the singular directions at the scale where the
    landscape's structure lies; otherwise the trained values are used as they are."""
    U, s, Vt = np.linalg.svd(mlp.W3, full_matrices=False)
    rms = np.sqrt(np.mean([np.mean(h1 * h1) for h1, _ in feats])) * np.sqrt(Vt.shape[1])
    floor = 0.5 / max(rms, 1e-12)
    return U, (np.full_like(s, floor) if np.all(s < floor) else s), Vt


def check_probe_loss(loss):
    """Check that ``loss`` suits the probes: the unnormalized InfoNCE family.

    As :func:`~minissl.nonlinear.mlp.check_loss`, and ``normalize=True`` raises ValueError: with
    f -> f/|f| the loss is invariant to rescaling W3, so every probe is flat and its "minima" are ties.
    """
    check_loss(loss)
    if loss.normalize:
        raise ValueError("normalize=True: the normalized loss is invariant to rescaling the last layer, so the "
                         "landscape probes are flat; probe the unnormalized loss.")


def _mean_loss(loss, feats, W3):
    return float(np.mean([z_loss(loss, h1 @ W3.T, h2 @ W3.T, "numpy")[0] for h1, h2 in feats]))


def scale_probe(mlp, loss, x, augmentation, a_values, draws=16, seed=1):
    """``L(a W3)`` for each ``a`` (Fig. 7 top). Returns an array like ``a_values``."""
    check_probe_loss(loss)
    a = V.check_array("a_values", a_values, ndim=1, dtype=np.float64)
    feats = feature_draws(mlp, x, augmentation, draws, seed)
    return np.array([_mean_loss(loss, feats, ai * mlp.W3) for ai in a])


def plane_probe(mlp, loss, x, augmentation, r_values, draws=16, seed=1):
    """``L(r1, r2)`` on the grid ``r_values x r_values`` (Fig. 7 bottom); rows index r1."""
    check_probe_loss(loss)
    r = V.check_array("r_values", r_values, ndim=1, dtype=np.float64)
    if r.size < 3:
        raise ValueError(f"r_values has {r.size} points, must have at least 3.")
    feats = feature_draws(mlp, x, augmentation, draws, seed)
    U, s, Vt = probe_svd(mlp, feats)
    big, small = split_halves(s)
    L = np.empty((r.size, r.size))
    for i, r1 in enumerate(r):
        for j, r2 in enumerate(r):
            L[i, j] = _mean_loss(loss, feats, (U * (r1 * big + r2 * small)) @ Vt)
    return L


def split_halves(s):
    """Singular values (descending) split into the larger half and the rest, as two masked copies.

    Returns
    -------
    big, small : ndarray
        ``big`` keeps the first ``ceil(len(s) / 2)`` values, ``small`` the others; ``big + small == s``.
    """
    half = (len(s) + 1) // 2
    big = np.zeros_like(s)
    big[:half] = s[:half]
    return big, s - big


def classify_regime(L, r_values):
    """Regime from the grid minima of a plane probe: (regime, list of minima (r1, r2)).

    r1 scales the larger singular values, so a dimensional collapse must zero r2 (minima at
    ``(+-r, 0)``); minima at ``(0, +-r)`` are reported as the other direction collapsing.
    """
    r = np.asarray(r_values, dtype=np.float64)
    minima = grid_minima(L, r)
    regime = grid_regime(minima, float(r[1] - r[0]), dead_axis=1)
    return regime, minima


def linear_regime(loss, A0, C, d_out, n=None, mean=None):
    """The linear theory's regime for the same data and augmentation (global minimum's rank)."""
    from ..theory import analyze

    r = analyze(loss, A0, C, n=n, mean=mean, d1=d_out, classify=False)
    return rank_regime(r["rank"], min(d_out, A0.shape[0])), r
