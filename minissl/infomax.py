"""The InfoMax view of linear SSL: the Gaussian mutual information between two views' embeddings.

The companion note (``shared/seeds/000``, "Connection to the InfoMax Principle") states that
in the linear Gaussian regime

.. math::

    I(z_1; z_2) = \\tfrac12 \\log \\frac{\\det \\Sigma_{11}}
                  {\\det(\\Sigma_{11} - \\Sigma_{12} \\Sigma_{22}^{-1} \\Sigma_{21})}

and that maximising it over linear encoders with ``d`` outputs gives the top-``d``
eigenvectors of ``F``, the same solution as linear SimSiam/BYOL.

Model: clean data ``x ~ N(0, A0)``, views ``x_a = x + eps_a`` with independent
``eps_a ~ N(0, C)``, embeddings ``z_a = W x_a``. Then ``Sigma_11 = Sigma_22 = W (A0 + C)
W^T`` and ``Sigma_12 = W F W^T`` with ``F = E[x_1 x_2^T] = A0``.

The maximiser (derived here). ``I`` is unchanged by any invertible map of ``z``, so it
depends on ``W``'s row space only. Writing the rows in the basis of the generalised
eigenvectors ``F v_j = rho_j (A0 + C) v_j`` (``rho_j`` are the canonical correlations of the
two views, ``rho_1 >= rho_2 >= ...``), ``I`` is at most ``-1/2 sum_{j <= d} log(1 - rho_j^2)``
(Cauchy interlacing of the canonical correlations of a projection), with equality when the
rows span ``v_1 ... v_d``. The note's "top eigenvectors of F" is the special case where
``C`` commutes with ``F`` and ``rho = s / (s + c)`` is ordered like ``s``, e.g. isotropic
noise. With anisotropic noise the maximiser keeps the directions of largest
signal-to-noise ratio ``s / (s + c)``, not of largest ``s``. Linear SimSiam with ``d1``
rows keeps its ``d1`` survivors of largest ``p_+`` (:func:`minissl.siamese.fixed_points`),
and ``p_+ -> s / (s + c)`` as the weight decay ``eta`` vanishes, so for small ``eta`` it
learns the same directions. With ``eta > 0`` survival is decided by ``s^2 >= 4 eta (s +
c)`` instead, and the two can differ: for ``s = (10, 0.1)``, ``c = (10, 0.01)`` and ``eta =
0.1`` only the first direction survives, while the maximiser with ``d = 1`` is the second.
"""

from __future__ import annotations

import numpy as np

from . import _validation as V

__all__ = ["view_covariances", "gaussian_mutual_information", "infomax_encoder"]


def _moments(A0, C, F):
    A0 = V.check_array("A0", A0, ndim=2, dtype=np.float64)
    d0 = A0.shape[0]
    if A0.shape != (d0, d0):
        raise ValueError(f"A0 has shape {A0.shape}; it must be square.")
    C = V.check_array("C", C, ndim=2, dtype=np.float64, shape=(d0, d0))
    F = A0 if F is None else V.check_array("F", F, ndim=2, dtype=np.float64, shape=(d0, d0))
    for name, M in (("A0", A0), ("C", C), ("F", F)):
        scale = max(float(np.abs(M).max()), 1e-300)
        if not np.allclose(M, M.T, rtol=0.0, atol=1e-12 * scale):
            raise ValueError(f"{name} must be symmetric (a second moment).")
        if np.linalg.eigvalsh(0.5 * (M + M.T))[0] < -1e-12 * scale:
            raise ValueError(f"{name} must be positive semidefinite (a second moment).")
    return A0, C, F


def view_covariances(W, A0, C, F=None):
    """``Sigma_11 = W (A0 + C) W^T`` and ``Sigma_12 = W F W^T`` of the two views' embeddings.

    Parameters
    ----------
    W : array_like, shape (d, d0)
    A0, C : array_like, shape (d0, d0)
        Clean second moment and noise covariance.
    F : array_like, shape (d0, d0), optional
        ``E[x_1 x_2^T]`` (default ``A0``: additive noise).
    """
    A0, C, F = _moments(A0, C, F)
    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    if W.shape[1] != A0.shape[0]:
        raise ValueError(f"W has {W.shape[1]} columns but A0 is {A0.shape[0]} x {A0.shape[0]}; they must agree.")
    return W @ (A0 + C) @ W.T, W @ F @ W.T


def gaussian_mutual_information(W, A0, C, F=None):
    """``I(z_1; z_2)`` in nats for Gaussian data and noise (the note's formula).

    Evaluated as ``-1/2 sum log(1 - rho_j^2)`` over the canonical correlations ``rho_j`` of
    the two views within ``W``'s row space (rows that are linear combinations of others, or
    map into the null space of ``A0 + C``, carry no information and are dropped), which
    equals the ratio of determinants of the module docstring where ``Sigma_11`` is
    invertible.

    Returns
    -------
    float
        ``inf`` when a direction is noise-free (``rho = 1``); 0 for ``W = 0``.
    """
    S11, S12 = view_covariances(W, A0, C, F)
    ev, U = np.linalg.eigh(0.5 * (S11 + S11.T))
    keep = ev > 1e-12 * max(float(ev[-1]), 0.0)
    if not np.any(keep):
        return 0.0
    white = U[:, keep] / np.sqrt(ev[keep])  # Sigma_11^{-1/2} on its range
    R = white.T @ S12 @ white
    rho = np.clip(np.abs(np.linalg.eigvalsh(0.5 * (R + R.T))), 0.0, 1.0)
    if np.any(rho >= 1.0):
        return float("inf")
    return float(-0.5 * np.sum(np.log1p(-rho * rho)))


def infomax_encoder(A0, C, d, F=None):
    """The linear encoder with ``d`` outputs that maximises ``I(z_1; z_2)``.

    Parameters
    ----------
    A0, C : array_like, shape (d0, d0)
    d : int
        Output dimension, ``1 <= d <= d0``.
    F : array_like, optional
        ``E[x_1 x_2^T]`` (default ``A0``).

    Returns
    -------
    dict
        ``W`` (``d x d0``; rows the top generalised eigenvectors ``F v = rho (A0 + C) v``,
        normalised to unit length; any invertible mix of them is as good),
        ``rho`` (all canonical correlations, descending) and ``information``
        (``-1/2 sum_{j <= d} log(1 - rho_j^2)``).
    """
    A0, C, F = _moments(A0, C, F)
    d = V.check_int("d", d, lo=1, hi=A0.shape[0])
    from scipy.linalg import eigh

    Sigma = A0 + C
    if np.linalg.eigvalsh(Sigma)[0] <= 0:
        raise ValueError("A0 + C must be positive definite (every direction of the views varies).")
    rho, Vv = eigh(0.5 * (F + F.T), Sigma)
    order = np.argsort(rho)[::-1]
    rho, Vv = rho[order], Vv[:, order]
    W = (Vv[:, :d] / np.linalg.norm(Vv[:, :d], axis=0)).T
    top = np.clip(rho[:d], 0.0, 1.0)
    info = float("inf") if np.any(top >= 1.0) else float(-0.5 * np.sum(np.log1p(-top * top)))
    return {"W": W, "rho": rho, "information": info}
