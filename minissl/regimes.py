"""Collapse regimes read from a loss landscape sampled on a 2-D grid (Figs. 1 and 7 of Ziyin et al. 2023).

A landscape ``L[i, j] = L(r[i], r[j])`` over two scale coordinates (the toy model's
``W = diag(r1, r2)`` of Fig. 1, or the plane of a last layer's singular values of Fig. 7) has
its local minima at ``r1, r2 != 0`` (no collapse), on one axis (dimensional collapse) or at
the origin only (complete collapse). :func:`grid_minima` finds the grid's local minima and
:func:`grid_regime` names the regime they show; :func:`rank_regime` names the regime of a
predicted global minimum from its rank.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REGIMES", "grid_minima", "grid_regime", "rank_regime"]

REGIMES = ("no collapse", "dimensional collapse", "complete collapse")


def grid_minima(L, r):
    """Grid points lower than their 8 neighbours (interior points only).

    Parameters
    ----------
    L : ndarray (m, m)
        The landscape on the grid ``r x r``; rows index ``r1``.
    r : ndarray (m,)
        The grid coordinates.

    Returns
    -------
    list of (float, float)
        The ``(r1, r2)`` of each strict local minimum, in row-major order.
    """
    out = []
    for i in range(1, len(r) - 1):
        for j in range(1, len(r) - 1):
            v = L[i, j]
            nb = L[i - 1:i + 2, j - 1:j + 2].copy()
            nb[1, 1] = np.inf
            if v < nb.min():
                out.append((float(r[i]), float(r[j])))
    return out


def grid_regime(minima, step, dead_axis=None):
    """The regime that the grid minima show.

    Parameters
    ----------
    minima : list of (float, float)
        From :func:`grid_minima`.
    step : float
        Grid spacing: a coordinate counts as nonzero beyond ``1.5 * step``.
    dead_axis : {0, 1, None}
        The axis that a dimensional collapse must zero (0 for ``r1``, 1 for ``r2``); minima on
        the other axis are reported as the other direction collapsing. None: either axis.

    Returns
    -------
    str
        One of :data:`REGIMES`, ``"dimensional collapse of the other direction"``,
        ``"none found"``, ``"more than 4 grid minima (degenerate)"`` or ``"mixed"``.
    """
    alive = {(abs(a) > 1.5 * step, abs(b) > 1.5 * step) for a, b in minima}
    if not minima:
        return "none found"
    if len(minima) > 4:  # more than the 4 sign copies: no isolated minima (e.g. a ring)
        return "more than 4 grid minima (degenerate)"
    if dead_axis is not None and alive in ({(True, False)}, {(False, True)}):
        ok = {(True, False)} if dead_axis == 1 else {(False, True)}
        return "dimensional collapse" if alive == ok else "dimensional collapse of the other direction"
    if alive == {(True, True)}:
        return REGIMES[0]
    if alive == {(False, False)}:
        return REGIMES[2]
    if all(x != y for x, y in alive):
        return REGIMES[1]
    return "mixed"


def rank_regime(rank, full_rank):
    """The regime of a global minimum of rank ``rank`` when ``full_rank`` directions can be kept.

    Returns
    -------
    str
        ``REGIMES[0]`` at full rank, ``REGIMES[2]`` at rank 0, ``REGIMES[1]`` in between.
    """
    return REGIMES[0] if rank >= full_rank else (REGIMES[2] if rank == 0 else REGIMES[1])
