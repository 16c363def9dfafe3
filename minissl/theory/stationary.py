"""Stationary points of the effective landscape, enumerated in closed form, and their type.

Implements, for the "trace" landscape of :class:`minissl.landscape.Landscape`

.. math::

    L(W, b) = -Tr[W B W^T] + k Tr[(W S W^T)^2] + \\kappa (Tr[W S W^T] + |b|^2 - c)^2,

* Theorem 1 (and Eq. 9 when ``B`` and ``S`` commute): with ``S^{-1/2} B S^{-1/2} = P
  diag(lambda) P^T``, every stationary point has ``H := S^{1/2} W^T W S^{1/2} = P diag(h)
  P^T`` with ``h_i = M_ii lambda_i / (2k)``, a mask ``M`` keeping at most ``d* = min(d0,
  d1)`` positive ``lambda_i``. The paper's statement is the case ``k = 1``; the losses'
  derived ``k`` (``3 beta / 4`` for the InfoNCE family) is in docs/errata.md (E1).
* Proposition 2: the type of each point (minimum / saddle / maximum) from the exact
  Hessian of the landscape (:meth:`Landscape.hessian`), so "every local minimum has rank
  ``min(m, d*)``" is checked, not assumed.
* Propositions 3-4 (finite ``kappa``): the penalty shifts every whitened eigenvalue by
  ``2 kappa (c - rho)`` with ``c - rho = (c - Lambda_M / (2k)) / (1 + kappa d_M / k)``,
  ``Lambda_M = sum_{i in M} lambda_i`` (Prop. 4 for ``k = 1``).
* Theorem 2 (``kappa -> infinity``, Eq. 11-13): ``h_i = (lambda_i + (2kc - Lambda_M) /
  d_M) / (2k)``; a direction of the mask survives iff ``lambda_i + 2kc/d_M > mean_M
  lambda`` (Eq. 13 for ``k = 1``). Its type comes from the Hessian of the Lagrangian on
  the constraint surface ``rho = c``.
* Theorem 3 (bias with normalization): stationary points are the unnormalized ones with
  ``rho <= c`` (``|b|^2 = c - rho``) *and* the normalized ones with ``b = 0``, which the
  theorem's statement omits (docs/errata.md, E8).

The closed forms need the "trace" quartic with a positive definite ``S``, and (for
normalization) the penalty matrix ``Sigma`` equal to ``S``, which holds for the InfoNCE
family and SCL (:func:`minissl.effective_landscape`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .. import _validation as V
from ..landscape import Landscape
from ..losses.registry import QUARTIC_TRACE

__all__ = ["StationaryPoint", "Whitened", "whiten", "stationary_points", "global_minimum", "count_masks",
           "classify", "normalized_gap", "survives_normalization"]

_KINDS = ("minimum", "saddle", "maximum")


@dataclass(frozen=True)
class Whitened:
    """``S^{-1/2} B S^{-1/2} = P diag(lam) P^T`` with ``lam`` descending."""

    lam: np.ndarray
    P: np.ndarray
    S_half: np.ndarray
    S_inv_half: np.ndarray

    def directions(self):
        """Input-space directions ``u_i ~ S^{1/2} p_i`` (unit columns): ``W u_i = 0`` iff i is masked out."""
        U = self.S_half @ self.P
        return U / np.linalg.norm(U, axis=0)


@dataclass(frozen=True)
class StationaryPoint:
    """One stationary point of the effective landscape.

    Attributes
    ----------
    mask : tuple of int
        Indices (into ``Whitened.lam``, descending) of the directions that are not collapsed.
    h : ndarray (d0,)
        Eigenvalues of ``S^{1/2} W^T W S^{1/2}`` in the whitened eigenbasis.
    W : ndarray (d1, d0)
        A representative (every ``O W`` with ``O`` orthogonal is equivalent).
    b : ndarray (d1,) or None
    WtW : ndarray (d0, d0)
    eigenvalues : ndarray (d0,)
        Of ``W^T W``, descending.
    rank : int
    value : float
        Landscape value (for ``kappa = inf`` the penalty is zero on the constraint).
    rho : float
        ``Tr[W S W^T]``.
    kappa : float
    kind : {"minimum", "saddle", "maximum"} or None
        From the Hessian (None when not classified).
    hessian_eigenvalues : ndarray or None
        Of the Hessian (``kappa = inf``: of the Lagrangian's Hessian on the tangent space).
    n_zero : int
        Hessian eigenvalues within round-off of zero.
    n_symmetry : int
        Zero modes explained by the symmetry ``W -> O W`` (and ``b -> O' b``).
    """

    mask: tuple
    h: np.ndarray
    W: np.ndarray
    b: np.ndarray | None
    WtW: np.ndarray
    eigenvalues: np.ndarray
    rank: int
    value: float
    rho: float
    kappa: float
    kind: str | None = None
    hessian_eigenvalues: np.ndarray | None = field(default=None, repr=False)
    n_zero: int = 0
    n_symmetry: int = 0

    @property
    def degenerate(self):
        """More flat Hessian directions than the symmetry explains (e.g. equal eigenvalues)."""
        return self.n_zero > self.n_symmetry

    def as_dict(self):
        return {"mask": list(self.mask), "eigenvalues": self.eigenvalues.tolist(), "rank": self.rank,
                "value": self.value, "rho": self.rho, "kind": self.kind,
                "bias_norm2": None if self.b is None else float(self.b @ self.b)}


def _check_land(land, kappa, bias):
    if not isinstance(land, Landscape):
        raise TypeError(f"land == {land!r}, must be a minissl.Landscape.")
    if land.quartic != QUARTIC_TRACE:
        raise ValueError("the closed forms need quartic='trace'; use Landscape.minimize() for 'barlow'.")
    kappa = land.kappa if kappa is None else kappa
    kappa = V.check_scalar("kappa", kappa, lo=0.0, allow_inf=True)
    scale = max(1.0, float(np.max(np.abs(land.S))))
    if kappa > 0 and np.max(np.abs(land.Sigma - land.S)) > 1e-12 * scale:
        raise ValueError("normalization closed forms (Props. 3-4, Theorems 2-3) need Sigma == S.")
    if bias and kappa == 0:
        raise ValueError("bias=True: without normalization (kappa == 0) the bias drops out of "
                         "the landscape; give kappa > 0 or np.inf.")
    return kappa


def whiten(land):
    """Eigendecomposition of ``S^{-1/2} B S^{-1/2}`` (Theorem 1), eigenvalues descending.

    Raises
    ------
    ValueError
        If ``S`` is not positive definite.
    """
    w, U = np.linalg.eigh(land.S)
    if w[0] <= 1e-12 * max(1.0, w[-1]):
        what = "is not positive definite" if w[0] <= 0 else f"is too ill-conditioned (condition number {w[-1] / w[0]:.3g})"
        raise ValueError(f"S = A0 + C {what}: smallest eigenvalue {w[0]:.3g}, largest {w[-1]:.3g}; "
                         "the closed forms need a positive definite S with condition number below 1e12.")
    S_half = (U * np.sqrt(w)) @ U.T
    S_inv_half = (U / np.sqrt(w)) @ U.T
    K = S_inv_half @ land.B @ S_inv_half
    lam, P = np.linalg.eigh(0.5 * (K + K.T))
    order = np.argsort(lam, kind="stable")[::-1]
    return Whitened(lam=lam[order], P=P[:, order], S_half=S_half, S_inv_half=S_inv_half)


def normalized_gap(lam_sum, d_mask, kappa, c, k=1.0):
    """``c - rho`` at a stationary point of the penalised landscape (Prop. 4, general k).

    ``c - rho = (c - Lambda_M / (2k)) / (1 + kappa d_M / k)``; ``kappa = inf`` gives 0.
    """
    if np.isinf(kappa):
        return 0.0
    return (c - lam_sum / (2.0 * k)) / (1.0 + kappa * d_mask / k)


def survives_normalization(lam_mask, c=1.0, k=1.0):
    """Eq. (13) (general k): which masked directions survive in the ``kappa -> inf`` limit.

    ``lambda_i + 2 k c / d_M > mean(lambda_M)`` for the eigenvalues ``lambda_M`` of the
    whitened ``B`` kept by the mask.
    """
    lam_mask = np.asarray(lam_mask, dtype=np.float64)
    d = lam_mask.size
    return lam_mask + 2.0 * k * c / d > lam_mask.mean()


def _mask_h(lam, mask, k, kappa, c, tol):
    """``h`` of the stationary point with this mask, or None if the mask is not admissible."""
    h = np.zeros_like(lam)
    if not mask:
        return None if np.isinf(kappa) else h
    idx = list(mask)
    lm = lam[idx]
    if kappa == 0:
        shift = 0.0
    elif np.isinf(kappa):
        shift = (2.0 * k * c - lm.sum()) / len(idx)
    else:
        shift = 2.0 * kappa * normalized_gap(lm.sum(), len(idx), kappa, c, k)
    hm = (lm + shift) / (2.0 * k)
    if np.any(hm <= tol):
        return None
    h[idx] = hm
    return h


def _constraint_parts(land, W, b):
    """Hessian and gradient of the landscape without penalty, grad r, and Hess r (flattened)."""
    flat = Landscape(B=land.B, S=land.S, k=land.k, Sigma=land.Sigma, kappa=0.0, c=land.c)
    Hf = flat.hessian(W, b)
    _, gW, _ = flat.value_and_grad(W, b)
    gf = np.concatenate([gW.ravel()] + ([] if b is None else [np.zeros_like(b)]))
    gr = np.concatenate([(2.0 * W @ land.Sigma).ravel()] + ([] if b is None else [2.0 * b]))
    d1, d0 = W.shape
    Hr = np.zeros_like(Hf)
    Hr[: d1 * d0, : d1 * d0] = 2.0 * np.kron(np.eye(d1), land.Sigma)
    if b is not None:
        Hr[d1 * d0:, d1 * d0:] = 2.0 * np.eye(d1)
    return Hf, gf, gr, Hr


def _symmetry_modes(d1, rank, has_b):
    orbit = d1 * (d1 - 1) // 2 - (d1 - rank) * (d1 - rank - 1) // 2
    return orbit + ((d1 - 1) if has_b else 0)


def classify(land, W, b=None, kappa=None, rtol=1e-9):
    """Type of a stationary point from the exact Hessian (Prop. 2).

    ``(W, b)`` must be a stationary point (the multiplier of the normalization penalty is
    read from the stationarity condition, which keeps the classification exact at any
    ``kappa``, up to ``1e300``).

    Parameters
    ----------
    land : Landscape
    W, b : the point.
    kappa : float, optional
        ``np.inf`` classifies on the constraint surface ``Tr[W S W^T] + |b|^2 = c`` by the
        Hessian of the Lagrangian projected on its tangent space (the ``kappa -> inf``
        limit, Theorem 2); default ``land.kappa``.
    rtol : float
        Eigenvalues with ``|e| <= rtol * max(1, max |e|)`` count as zero; for finite
        ``kappa > 0`` the maximum excludes the penalty's rank-one term ``2 kappa grad(r)
        grad(r)^T`` (which would otherwise swamp the tolerance at large kappa).

    Returns
    -------
    kind : {"minimum", "saddle", "maximum"}
        For ``kappa = inf`` the type *on the constraint surface* (a "maximum" there is a
        saddle of any large finite-kappa landscape: the normal direction curves upwards).
    eigenvalues : ndarray
    n_zero : int
    """
    kappa = _check_land(land, kappa, False)
    # pieces shared by both cases: f = the landscape without the penalty, r = rho + |b|^2 - c
    Hf, gf, gr, Hr = _constraint_parts(land, W, b)
    nn = float(gr @ gr)
    if np.isinf(kappa):
        if nn == 0.0:
            raise ValueError("the constraint rho + |b|^2 = c is singular at this point (W = 0, b = 0).")
        mu = -float(gf @ gr) / nn
        # orthonormal basis of the tangent space {v : grad(r) . v = 0}
        Q, _ = np.linalg.qr(np.column_stack([gr / np.sqrt(nn), np.eye(gr.size)]))
        T = Q[:, 1:]
        ev = np.linalg.eigvalsh(T.T @ (Hf + mu * Hr) @ T)
    else:
        # H = H_f + 4 kappa r (I kron Sigma) + 2 kappa grad(r) grad(r)^T.
        # kappa r is taken from stationarity (grad f + 2 kappa r grad r = 0), not from r itself,
        # whose round-off kappa would amplify; at large kappa the rank-one term dwarfs the
        # rest, so the tangent block and the normal direction are classified apart.
        kr = -float(gf @ gr) / (2.0 * nn) if nn > 0 else kappa * (-land.c)
        rest = Hf + 2.0 * kr * Hr
        scale = max(1.0, float(np.max(np.abs(np.linalg.eigvalsh(rest)))))
        if nn > 0 and 2.0 * kappa * nn > 1e6 * scale:
            Q, _ = np.linalg.qr(np.column_stack([gr / np.sqrt(nn), np.eye(gr.size)]))
            T = Q[:, 1:]
            ev = np.sort(np.append(np.linalg.eigvalsh(T.T @ rest @ T), 2.0 * kappa * nn))
        else:
            ev = np.linalg.eigvalsh(rest + 2.0 * kappa * np.outer(gr, gr))
        tol = rtol * scale
        n_zero = int(np.sum(np.abs(ev) <= tol))
        kind = "minimum" if ev[0] >= -tol else ("maximum" if ev[-1] <= tol else "saddle")
        return kind, ev, n_zero
    tol = rtol * max(1.0, float(np.max(np.abs(ev))))
    n_zero = int(np.sum(np.abs(ev) <= tol))
    if ev[0] >= -tol:
        kind = "minimum"
    elif ev[-1] <= tol:
        kind = "maximum"
    else:
        kind = "saddle"
    return kind, ev, n_zero


def _point(land, wh, mask, h, d1, kappa, bias_norm2, do_classify):
    d0 = land.dim
    idx = list(mask)
    W = np.zeros((d1, d0))
    if idx:
        W[: len(idx)] = (np.sqrt(h[idx])[:, None] * wh.P[:, idx].T) @ wh.S_inv_half
    b = None
    if bias_norm2 is not None:
        b = np.zeros(d1)
        b[-1] = np.sqrt(max(bias_norm2, 0.0))
    WtW = W.T @ W
    ev = np.clip(np.linalg.eigvalsh(WtW)[::-1], 0.0, None)
    rank = len(idx)
    ev[rank:] = 0.0
    rho = float(h.sum())
    value = _h_value(wh.lam, h, mask, land.k, kappa, land.c, bool(bias_norm2))
    kind, hev, n_zero = (None, None, 0)
    if do_classify:
        kind, hev, n_zero = classify(land, W, b, kappa=kappa)
    has_b = b is not None and bias_norm2 > 0
    return StationaryPoint(mask=tuple(mask), h=h, W=W, b=b, WtW=WtW, eigenvalues=ev, rank=rank,
                           value=float(value), rho=rho, kappa=float(kappa), kind=kind,
                           hessian_eigenvalues=hev, n_zero=n_zero,
                           n_symmetry=_symmetry_modes(d1, rank, has_b))


def stationary_points(land, d1, kappa=None, bias=False, classify_points=True, max_masks=1 << 16):
    """All stationary points of the effective landscape (Theorem 1, Props. 3-4, Theorems 2-3).

    Parameters
    ----------
    land : Landscape
        "trace" quartic, ``S`` positive definite (``Sigma == S`` when ``kappa > 0``).
    d1 : int
        Output dimension; masks keep at most ``d* = min(d0, d1)`` directions.
    kappa : float, optional
        Normalization penalty (Eq. 10): 0 (Theorem 1), finite (Props. 3-4) or ``np.inf``
        (Theorem 2). Default ``land.kappa``.
    bias : bool
        Add a bias ``b`` (Theorem 3); needs ``kappa > 0``.
    classify_points : bool
        Compute each point's type from the Hessian (cost O((d1 d0)^3) per point).
    max_masks : int
        Refuse problems with more masks than this (``sum_{j <= d*} C(d0, j)``).

    Returns
    -------
    list of StationaryPoint
        Sorted by value (the first is a global minimum). When whitened eigenvalues are
        degenerate, each point stands for a continuous family (rotations inside the
        eigenspace); one representative per mask is returned.
    """
    d1 = V.check_int("d1", d1, lo=1)
    bias = V.check_bool("bias", bias)
    kappa = _check_land(land, kappa, bias)
    max_masks = V.check_int("max_masks", max_masks, lo=1)
    wh = whiten(land)
    d0 = land.dim
    dstar = min(d0, d1)
    n_masks = count_masks(d0, d1)
    if n_masks > max_masks:
        raise ValueError(f"d0 == {d0}, d1 == {d1} give {n_masks} masks, more than max_masks == {max_masks}.")
    k, c = land.k, land.c
    tol = 1e-12 * (float(np.max(np.abs(wh.lam))) / (2.0 * k) + c)
    points = []
    for j in range(dstar + 1):
        for mask in itertools.combinations(range(d0), j):
            h = _mask_h(wh.lam, mask, k, kappa, c, tol)
            if h is not None:
                points.append(_point(land, wh, mask, h, d1, kappa, 0.0 if bias else None,
                                     classify_points))
            if bias:
                # Theorem 3: the penalty vanishes (|b|^2 = c - rho), W is an unnormalized point
                hu = _mask_h(wh.lam, mask, k, 0.0, c, tol)
                if hu is not None and hu.sum() < c * (1.0 - 1e-12):
                    points.append(_point(land, wh, mask, hu, d1, kappa, c - hu.sum(), classify_points))
    points.sort(key=lambda p: p.value)
    return points


def _h_value(lam, h, mask, k, kappa, c, bias_branch):
    """Landscape value at ``H = P diag(h) P^T``: ``-sum lam h + k sum h^2 + kappa g^2``.

    ``g = c - rho`` is taken from Prop. 4 in closed form (not as ``c - sum h``, whose
    round-off ``kappa`` would amplify); it is 0 for ``kappa = inf`` and on the bias branch.
    """
    v = -float(lam @ h) + k * float(h @ h)
    if kappa and not np.isinf(kappa) and not bias_branch:
        g = normalized_gap(float(lam[list(mask)].sum()), len(mask), kappa, c, k) if mask else c
        v += kappa * g * g
    return v


def count_masks(d0, d1):
    """Number of masks Theorem 1 enumerates: ``sum_{j <= min(d0, d1)} C(d0, j)``."""
    from math import comb

    return sum(comb(d0, j) for j in range(min(d0, d1) + 1))


def global_minimum(land, d1, kappa=None, bias=False):
    """The stationary point of lowest value (closed form; not classified).

    Only the masks that keep the ``j`` largest whitened eigenvalues (``j <= d*``) are
    candidates: in ``H = S^{1/2} W^T W S^{1/2}`` the landscape is convex (strictly, by the
    quartic), so its minimiser has ``h_i = max(0, (lambda_i - nu) / (2k))`` -- a prefix of
    the sorted eigenvalues -- and with at most ``d*`` nonzero ``h_i`` exchanging a kept
    direction for one with a larger ``lambda`` lowers the loss. Cost O(d0) masks instead of
    ``2^d0``; ``tests/test_theory.py`` checks it against the full enumeration.
    """
    d1 = V.check_int("d1", d1, lo=1)
    bias = V.check_bool("bias", bias)
    kappa = _check_land(land, kappa, bias)
    wh = whiten(land)
    d0 = land.dim
    k, c = land.k, land.c
    tol = 1e-12 * (float(np.max(np.abs(wh.lam))) / (2.0 * k) + c)
    best = None
    for j in range(min(d0, d1) + 1):
        for mask in (tuple(range(j)),):
            cands = []
            h = _mask_h(wh.lam, mask, k, kappa, c, tol)
            if h is not None:
                cands.append((h, 0.0 if bias else None))
            if bias:
                hu = _mask_h(wh.lam, mask, k, 0.0, c, tol)
                if hu is not None and hu.sum() < c * (1.0 - 1e-12):
                    cands.append((hu, c - hu.sum()))
            for h_, b2 in cands:
                v = _h_value(wh.lam, h_, mask, k, kappa, c, bool(b2))
                if best is None or v < best[0]:
                    best = (v, mask, h_, b2)
    _, mask, h, b2 = best
    return _point(land, wh, mask, h, d1, kappa, b2, False)
