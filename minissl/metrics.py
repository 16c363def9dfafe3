"""Collapse diagnostics of a learned representation.

Definitions follow the companion note (``shared/seeds/000``, "The Geometry of Collapse",
"Measuring Dimensional Collapse in Practice"). Every function takes either a symmetric
PSD matrix (``WᵀW``, an embedding covariance) or its eigenvalues.

Conventions
-----------
* Eigenvalues, not singular values, of the symmetric matrix; sorted descending; tiny
  negative round-off (``>= -tol``) is clipped to 0.
* :func:`embedding_covariance` is centred and divided by ``N`` (the note's
  ``Z^T Z / N - zbar zbar^T``); pass ``centered=False`` for the second moment.
* Numerical rank tolerance: ``rtol * lambda_max`` with ``rtol = d * machine-eps``
  by default (as :func:`numpy.linalg.matrix_rank`), or a given ``rtol``.
* For the all-zero matrix (complete collapse) the stable and entropy ranks are 0, the
  log eigenvalue ratio is ``inf`` and the explained-variance curve is all zeros —
  defined values, never NaN.
"""

from __future__ import annotations

import numpy as np

from . import _validation as V

__all__ = [
    "spectrum",
    "embedding_covariance",
    "numerical_rank",
    "stable_rank",
    "entropy_rank",
    "log_eigenvalue_ratio",
    "explained_variance",
    "summary",
]


def _eigs(M):
    """Descending, clipped eigenvalues of a PSD matrix, or validated eigenvalues."""
    arr = V.check_array("M", M, dtype=np.float64)
    if arr.ndim == 1:
        ev = np.sort(arr)[::-1]
    elif arr.ndim == 2:
        if arr.shape[0] != arr.shape[1]:
            raise ValueError(f"M has shape {arr.shape}, must be square (or a 1-D array of eigenvalues).")
        if not np.allclose(arr, arr.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.max(np.abs(arr), initial=0.0)))):
            raise ValueError("M is not symmetric; pass W.T @ W or a covariance matrix.")
        ev = np.linalg.eigvalsh(0.5 * (arr + arr.T))[::-1]
    else:
        raise ValueError(f"M has shape {arr.shape}, must be a square matrix or 1-D eigenvalues.")
    if ev.size == 0:
        raise ValueError("M is empty, must have dimension >= 1.")
    tol = 1e-10 * max(1.0, float(np.max(np.abs(ev))))
    if ev[-1] < -tol:
        raise ValueError(f"M has a negative eigenvalue {ev[-1]:.3g}, must be positive semi-definite.")
    return np.clip(ev, 0.0, None)


def spectrum(W):
    """Eigenvalues of ``W^T W`` (length d0), descending.

    Parameters
    ----------
    W : array_like, shape (d1, d0)
    """
    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    return _eigs(W.T @ W)


def embedding_covariance(Z, centered=True):
    """Empirical embedding covariance ``Z^T Z / N - zbar zbar^T`` of ``Z`` (N, d)."""
    Z = V.check_array("Z", Z, ndim=2, dtype=np.float64, min_rows=1)
    if centered:
        Z = Z - Z.mean(0)
    return Z.T @ Z / Z.shape[0]


def numerical_rank(M, rtol=None):
    """Number of eigenvalues above ``rtol * lambda_max`` (default ``rtol = d * eps``)."""
    ev = _eigs(M)
    if rtol is None:
        rtol = ev.size * np.finfo(np.float64).eps
    rtol = V.check_scalar("rtol", rtol, lo=0.0)
    if ev[0] == 0.0:
        return 0
    return int(np.sum(ev > rtol * ev[0]))


def _unit(ev):
    """Eigenvalues divided by the largest (scale-free; avoids overflow and underflow)."""
    return ev / ev[0] if ev[0] > 0 else ev


def stable_rank(M):
    """Stable rank ``(sum lambda)^2 / sum lambda^2`` in ``[1, d]`` (0 for the zero matrix)."""
    ev = _unit(_eigs(M))
    s2 = float(np.sum(ev**2))
    return 0.0 if s2 == 0.0 else float(np.sum(ev)) ** 2 / s2


def entropy_rank(M):
    """Entropy (effective) rank ``exp(-sum p_i log p_i)``, ``p_i = lambda_i / sum lambda``."""
    ev = _unit(_eigs(M))
    tot = float(np.sum(ev))
    if tot == 0.0:
        return 0.0
    p = ev[ev > 0] / tot
    return float(np.exp(-np.sum(p * np.log(p))))


def log_eigenvalue_ratio(M):
    """``log(lambda_1 / lambda_d)``; ``inf`` when ``lambda_d == 0`` (a collapsed direction)."""
    ev = _eigs(M)
    if ev[0] == 0.0 or ev[-1] == 0.0:
        return float("inf")
    return float(np.log(ev[0] / ev[-1]))


def explained_variance(M):
    """Cumulative explained variance ``sum_{i<=k} lambda_i / sum_i lambda_i`` for k = 1..d."""
    ev = _unit(_eigs(M))
    tot = float(np.sum(ev))
    if tot == 0.0:
        return np.zeros_like(ev)
    return np.cumsum(ev) / tot


def summary(M, rtol=None):
    """All diagnostics of ``M`` in one dict (JSON-friendly floats and lists)."""
    ev = _eigs(M)
    return {
        "eigenvalues": ev.tolist(),
        "rank": numerical_rank(ev, rtol),
        "stable_rank": stable_rank(ev),
        "entropy_rank": entropy_rank(ev),
        "log_eigenvalue_ratio": log_eigenvalue_ratio(ev),
        "explained_variance": explained_variance(ev).tolist(),
    }
