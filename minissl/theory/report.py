"""One-call answer to "what does the theory predict for this loss, data and augmentation?"."""

from __future__ import annotations

import numpy as np

from .. import _validation as V
from ..losses import check_loss_object
from .stationary import count_masks, global_minimum, stationary_points, whiten
from .thresholds import collapse_thresholds, critical_n_weighted, landscape_for

__all__ = ["analyze"]


def analyze(loss, A0, C, C_unit=None, n=None, mean=None, d1=None, kappa=None, bias=False, classify=True,
            max_masks=4096, scale=False):
    """Stationary points, global minimum, collapsed directions and thresholds of one setting.

    Parameters
    ----------
    loss : Loss
        From :func:`minissl.get_loss`; ``loss.normalize`` selects the ``kappa -> inf``
        limit (Theorem 2) unless ``kappa`` is given.
    A0, C : array_like (d0, d0)
        Clean second moment (population or empirical) and augmentation covariance.
    C_unit : array_like, optional
        Shape of the augmentation for the thresholds (``C = sigma^2 C_unit``); default
        ``C / (tr C / d0)`` (so isotropic noise gives the identity).
    n : int, optional
        Dataset size for N-dependent constants (None: N -> infinity).
    mean : array_like (d0,), optional
        Mean of the clean data (translation-invariant losses see ``A0 - mean mean^T``).
    d1 : int, optional
        Output dimension (default d0).
    kappa : float, optional
        Normalization strength (0, finite, or ``np.inf``).
    bias : bool
        With a bias (Theorem 3; needs normalization).
    classify : bool
        Classify every stationary point from its Hessian (Prop. 2).
    max_masks : int
        Enumerate all stationary points only when Theorem 1 has at most this many masks
        (``2^d0`` for ``d1 >= d0``); otherwise only the global minimum is computed (in O(d0))
        and ``stationary_points``/``minima`` are None.
    scale : bool
        The scale augmentation of App. F.1 (``A0 = C = b^2 A_hat``): the InfoNCE family's
        landscape has Eq. (10)'s form with ``kappa = 5 beta / 8``, ``c = 0`` (docs/errata.md
        E10), so Propositions 3-4 give its stationary points. No thresholds in sigma (there
        is no sigma), no paper constants; not with normalization or ``kappa``.

    Returns
    -------
    dict
        JSON-ready: ``B_eigenvalues`` (derived) and ``paper_B_eigenvalues`` (None when the
        paper prints none), ``m``, ``d_star``, ``eigenvalues`` of ``W^T W`` at the global
        minimum, ``rank``, ``collapsed`` (list of input directions), ``stationary_points``
        (counts by kind), ``thresholds`` (derived and paper), ``critical_n`` (weighted).
    """
    check_loss_object(loss)
    A0 = V.check_covariance("A0", A0)
    d0 = A0.shape[0]
    C = V.check_covariance("C", C, dim=d0)
    d1 = V.check_int("d1", d0 if d1 is None else d1, lo=1)
    scale = V.check_bool("scale", scale)
    if scale and (loss.normalize or kappa is not None):
        raise ValueError(f"scale=True with normalize == {loss.normalize!r}, kappa == {kappa!r}: the scale "
                         "augmentation's landscape is derived without normalization; use normalize=False, no kappa.")
    kappa = V.check_scalar("kappa", np.inf if (kappa is None and loss.normalize) else (kappa or 0.0),
                           lo=0.0, allow_inf=True)
    if C_unit is None:
        tr = float(np.trace(C)) / d0
        C_unit = C / tr if tr > 0 else np.eye(d0)
    land = landscape_for(loss, A0, C, n=n, mean=mean, d1=d1, scale=scale)
    if scale:
        kappa = land.kappa
    enumerate_all = count_masks(d0, d1) <= max_masks
    pts = stationary_points(land, d1, kappa=kappa, bias=bias, classify_points=classify) if enumerate_all else None
    best = global_minimum(land, d1, kappa=kappa, bias=bias)
    wh = whiten(land)
    dirs = wh.directions()
    collapsed = []
    for i in range(d0):
        if i in best.mask:
            continue
        u = dirs[:, i]
        j = int(np.argmax(np.abs(u)))
        collapsed.append({"direction": (u * np.sign(u[j])).tolist(), "axis": j,
                          "data_variance": float(u @ A0 @ u), "whitened_B_eigenvalue": float(wh.lam[i])})
    B_ev = np.linalg.eigvalsh(land.B)[::-1]
    try:
        paper = landscape_for(loss, A0, C, n=n, d1=d1, constants="paper", scale=scale)  # no centring
        paper_ev = np.linalg.eigvalsh(paper.B)[::-1].tolist()
        paper_min = global_minimum(paper, d1, kappa=kappa, bias=bias)
        paper_spec = paper_min.eigenvalues.tolist()
    except ValueError:
        paper_ev, paper_spec = None, None

    def thr(constants):
        if scale:
            return None
        try:
            out = collapse_thresholds(loss, A0, C_unit, n=n, mean=mean, d1=d1, constants=constants, kappa=kappa,
                                      bias=bias)
        except ValueError:
            return None
        return [{"sigma": t["sigma"], "rank_below": t["rank_below"], "rank_above": t["rank_above"],
                 "direction": np.round(t["direction"], 12).tolist()} for t in out]

    kinds = {k: 0 for k in ("minimum", "saddle", "maximum")}
    for p in pts or ():
        if p.kind:
            kinds[p.kind] += 1
    classified = classify and pts is not None
    result = {
        "loss": loss.name, "params": dict(loss.params), "normalize": loss.normalize,
        "kappa": None if np.isinf(kappa) else kappa, "normalized_limit": bool(np.isinf(kappa)),
        "bias": bias, "scale_augmentation": scale, "n": n, "d0": d0, "d1": d1, "d_star": min(d0, d1),
        "k": land.k, "B_eigenvalues": B_ev.tolist(), "paper_B_eigenvalues": paper_ev,
        "m": int(np.sum(wh.lam > 0)), "eigenvalues": best.eigenvalues.tolist(), "rank": best.rank,
        "value": best.value, "rho": best.rho, "paper_eigenvalues": paper_spec,
        "collapsed": collapsed, "n_stationary_points": None if pts is None else len(pts),
        "stationary_points": kinds if classified else None,
        "minima": [p.as_dict() for p in pts if p.kind == "minimum"] if classified else None,
        "thresholds": {"derived": thr("derived"), "paper": thr("paper")},
    }
    if loss.spec.paper_critical_n:
        a_ev, U = np.linalg.eigh(A0)
        c_ev = np.einsum("ij,ik,kj->j", U, C, U)  # augmentation variance along each data direction
        result["critical_n"] = {conv: [critical_n_weighted(loss.alpha, float(a), float(c), conv)
                                       for a, c in zip(a_ev, c_ev) if a > 0]
                                for conv in ("derived", "main", "appendix")}
    return result
