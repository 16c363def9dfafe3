"""What is measured of each ``M = W^T W``: reference-free metrics, changes against the balanced level,
and the theory's matrices for the same data (see the package docstring)."""

from __future__ import annotations

import numpy as np

from ...losses import get_loss
from ...metrics import eigenspace_angle, stable_rank, top_eigenvectors
from ...theory import global_minimum, landscape_for
from .settings import SOURCES

__all__ = ["RANK_TOL", "representation_metrics", "relative_metrics", "theory_matrices", "evaluate_seed"]

RANK_TOL = 1e-3           # a direction of M is kept above this fraction of its top eigenvalue


def _kept_rank(M, d1):
    ev = np.clip(np.linalg.eigvalsh(0.5 * (M + M.T))[::-1], 0.0, None)
    if ev[0] <= 0:
        return 0
    return int(min(d1, np.sum(ev > RANK_TOL * ev[0])))


def representation_metrics(M, d1, means, within, test, minority, mean=None):
    """Reference-free metrics of one ``M = W^T W`` (see the package docstring).

    Parameters
    ----------
    M : ndarray (d0, d0)
    d1 : int
        Output dimension (at most ``d1`` directions are kept).
    means : ndarray (K, d0)
        Population class means.
    within : float
        Within-class standard deviation (> 0).
    test : (x, y)
        Balanced labelled test set (:func:`minissl.data.probe_test_set`).
    minority : int
        The class whose accuracy and separation are reported.
    mean : ndarray (d0,), optional
        The training data's mean, for ``mean_captured``.

    Returns
    -------
    dict
        ``eigenvalues`` (top d1), ``stable_rank``, ``rank`` (kept directions),
        ``class_accuracy`` (per class), ``probe_accuracy``, ``minority_accuracy``,
        ``minority_separation``, ``mean_captured`` (None without ``mean``).
    """
    M = 0.5 * (M + M.T)
    ev = np.clip(np.linalg.eigvalsh(M)[::-1], 0.0, None)
    r = _kept_rank(M, d1)
    x, y = test
    k = means.shape[0]
    cap = None
    if r == 0:
        acc = np.full(k, 1.0 / k)
        sep = 0.0
        cap = 0.0 if mean is not None else None
    else:
        U = top_eigenvectors(M, r)
        zx, zm = x @ U, means @ U
        # nearest projected class mean: argmin_j |z - m_j|^2 = argmin_j (|m_j|^2 - 2 z.m_j)
        pred = np.argmin((zm * zm).sum(1)[None, :] - 2.0 * (zx @ zm.T), axis=1)
        acc = np.bincount(y, weights=(pred == y), minlength=k) / np.maximum(np.bincount(y, minlength=k), 1)
        diff = np.linalg.norm(zm - zm[minority], axis=1)
        diff[minority] = np.inf
        sep = float(diff.min() / within)
        if mean is not None:
            m2 = float(mean @ mean)
            cap = float(np.sum((U.T @ mean) ** 2) / m2) if m2 > 0 else None
    return {"eigenvalues": ev[:d1].tolist(), "stable_rank": stable_rank(M) if ev[0] > 0 else 0.0, "rank": r,
            "class_accuracy": acc.tolist(), "probe_accuracy": float(acc.mean()),
            "minority_accuracy": float(acc[minority]), "minority_separation": sep, "mean_captured": cap}


def relative_metrics(rec, ref, k, minority):
    """Changes of one record (with its matrix under ``"M"``) against the balanced one of the same seed.

    ``spectrum_change``, ``angle`` (top-``k`` eigenspaces), ``probe_drop`` and
    ``minority_drop`` (accuracy of class ``minority`` lost against the balanced run).
    """
    p = np.asarray(rec["eigenvalues"], dtype=np.float64)
    q = np.asarray(ref["eigenvalues"], dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    return {"spectrum_change": float(np.linalg.norm(p - q) / max(np.linalg.norm(q), 1e-300)),
            "angle": eigenspace_angle(rec["M"], ref["M"], k),
            "probe_drop": ref["probe_accuracy"] - rec["probe_accuracy"],
            "minority_drop": ref["class_accuracy"][minority] - rec["class_accuracy"][minority]}


def theory_matrices(loss, data, C, d1):
    """``W^T W`` at the global minimum of the effective landscape on this dataset.

    Returns ``{"derived": M, "paper": M}``: the derived constants (the landscape of
    :func:`minissl.predict`, centred ``A0`` for the InfoNCE family) and the paper's printed
    ones (:func:`minissl.paper_B`, ``k = 1``, no centring).
    """
    mean = np.asarray(data.x, dtype=np.float64).mean(0)
    out = {}
    for constants in ("derived", "paper"):
        land = landscape_for(loss, data.A0, C, n=data.n, mean=mean if constants == "derived" else None, d1=d1,
                             constants=constants)
        out[constants] = global_minimum(land, d1).WtW
    return out


def evaluate_seed(loss, s, C, setup, learned=None):
    """Metrics of every level for one loss and seed: ``{source: [record per level]}``.

    ``setup``: :func:`~.geometry.seed_setup`; ``learned``: the trained ``W`` of each level, or None
    for the theory alone (sources ``derived`` and ``paper``). Each record keeps its matrix under ``"M"``.
    """
    L = get_loss(loss)
    ksub = min(s["d1"], s["classes"] - 1)
    out = {src: [] for src in (SOURCES if learned is not None else SOURCES[1:])}
    for li, ds in enumerate(setup["data"]):
        mats = theory_matrices(L, ds, C, s["d1"])
        if learned is not None:
            W = np.asarray(learned[li], dtype=np.float64)
            mats["learned"] = W.T @ W
        for src in out:
            r = representation_metrics(mats[src], s["d1"], setup["means"], s["within"], setup["test"],
                                       setup["minority"][li], mean=np.asarray(ds.x, dtype=np.float64).mean(0))
            r["M"] = mats[src]
            out[src].append(r)
    for src, recs in out.items():
        for li, r in enumerate(recs):
            r.update(relative_metrics(r, recs[0], ksub, setup["minority"][li]))
    return out
