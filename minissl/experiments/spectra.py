"""Learned spectra next to the theory's: a training result as a point record, and the tables and
plots of the smallest eigenvalues that Figs. 5 and 6 share."""

from __future__ import annotations

import numpy as np

from ..metrics import COLLAPSE_SCALE, RANK_RTOL, eigenvalue_agreement
from ..theory import analyze

__all__ = ["spectrum_record", "agreement", "mean_over_seeds", "smallest_cells", "draw_smallest"]


def spectrum_record(res, spec, rank_tol=RANK_RTOL):
    """Learned eigenvalues of ``W^T W`` with the derived and the paper's predictions.

    Normalized losses: the learned spectrum is rescaled so that ``E|f|^2 = c`` (the
    scale of W is free) and the prediction is the kappa -> inf limit (Theorem 2).
    """
    loss = res.loss
    ev = np.asarray(res.eigenvalues, dtype=np.float64)
    rho = float(np.sum((res.W @ res.Sigma) * res.W))
    if loss.normalize and rho > 0:
        ev = ev * loss.c / rho
    d1 = res.W.shape[0]
    try:
        r = analyze(loss, res.A0_model, res.C, n=res.dataset.n, mean=res.mean_model, d1=d1, classify=False,
                    scale=res.scale_augmentation)
        pred, paper = r["eigenvalues"], r["paper_eigenvalues"]
    except ValueError:
        pred, paper = None, None
    # a direction counts as alive above rank_tol x a reference scale: the theory's top eigenvalue
    # (so that a run whose whole spectrum has decayed towards 0 has rank 0), or COLLAPSE_SCALE when
    # the theory predicts complete collapse (the floor of minissl.metrics.eigenvalue_agreement)
    ref = max(float(pred[0]), COLLAPSE_SCALE) if pred is not None else max(float(ev[0]), 1e-300)
    A0c = res.dataset.A0_centered
    w, U = np.linalg.eigh(A0c)
    U = U[:, ::-1]
    WtW = res.W.T @ res.W * (ev[0] / max(float(res.eigenvalues[0]), 1e-300) if loss.normalize else 1.0)
    return {
        **_mean_direction(res.dataset.x, WtW, rank_tol * ref),
        "eigenvalues": ev.tolist(),
        "predicted": pred,
        "paper_predicted": paper,
        "rank": int(np.sum(ev > rank_tol * ref)),
        "predicted_rank": None if pred is None else int(np.sum(np.array(pred) > rank_tol * ref)),
        "data_basis_diag": np.einsum("ij,ik,kj->j", U, WtW, U).tolist(),
        "u": 2.0 * rho if not loss.normalize else None,
        "A0_eigenvalues": np.linalg.eigvalsh(res.dataset.A0_centered)[::-1].tolist(),
    }


def _mean_direction(x, WtW, threshold):
    """How much of the collapse is the data mean's direction, which a translation-invariant
    loss never sees: the share of the unit mean ``m`` inside the collapsed subspace (eigenvalues
    of ``W^T W`` at or below ``threshold``), and the spectrum of ``W^T W`` on the complement of
    ``m`` (``d0 - 1`` eigenvalues) with the number of them at or below ``threshold``: the
    directions collapsed by something else, the augmentation."""
    m = np.asarray(x, dtype=np.float64).mean(0)
    nm = float(np.linalg.norm(m))
    w, U = np.linalg.eigh(0.5 * (WtW + WtW.T))
    collapsed = U[:, w <= threshold]
    if nm == 0.0:
        return {"mean_share_collapsed": None, "eigenvalues_without_mean": None, "collapsed_without_mean": None}
    mhat = m / nm
    # orthonormal basis of the complement of mhat: the last d0 - 1 columns of a QR with mhat first
    Q = np.linalg.qr(np.column_stack([mhat, np.eye(len(m))]))[0][:, 1:len(m)]
    perp = np.sort(np.linalg.eigvalsh(Q.T @ WtW @ Q))[::-1]
    return {"mean_share_collapsed": float(np.sum((collapsed.T @ mhat) ** 2)),
            "eigenvalues_without_mean": perp.tolist(),
            "collapsed_without_mean": int(np.sum(perp <= threshold))}


def agreement(learned, predicted):
    """Row fields of the agreement metric (:func:`minissl.metrics.eigenvalue_agreement`): the
    largest per-eigenvalue error ``eig_error`` and which eigenvalue it is, ``worst_eigenvalue``
    (1 = the largest, d = the smallest)."""
    a = eigenvalue_agreement(learned, predicted)
    return {"eig_error": a["max_error"], "worst_eigenvalue": a["worst"] + 1}


AGREEMENT_NOTE = ("Agreement: each learned eigenvalue against its own prediction, |learned - predicted| / "
                  "max(predicted, 1e-3 x the predicted top eigenvalue) (minissl.metrics.eigenvalue_agreement); "
                  "'worst' is the eigenvalue with the largest error (1 = largest).")


def mean_over_seeds(records, key):
    """Mean over the seeds' records of ``record[key]`` (a number or a list), as a float array."""
    return np.mean([np.array(r[key], dtype=np.float64) for r in records], axis=0)


def smallest_cells(row):
    """Table cells ``"learned 3 smallest | predicted 3 smallest"`` of a row with ``learned_min1..3``
    and ``predicted_min1..3``."""
    return (", ".join(f"{row[f'learned_min{j}']:.3g}" for j in (1, 2, 3)) + " | "
            + ", ".join(f"{row[f'predicted_min{j}']:.3g}" for j in (1, 2, 3)))


def draw_smallest(ax, xs, rows, theory_label, method="plot", floor=None):
    """Plot the three smallest learned eigenvalues (markers) and the theory's smallest (line).

    Parameters
    ----------
    ax : matplotlib Axes
    xs : sequence of float
        The x coordinate of each row.
    rows : list of dict
        With ``learned_min1..3`` and ``predicted_min1``.
    theory_label : str
    method : str
        The Axes method that draws (``"plot"``, ``"loglog"``, ``"semilogx"``).
    floor : float, optional
        Values below it are drawn at it (for log axes).
    """
    fix = (lambda v: max(v, floor)) if floor else (lambda v: v)  # noqa: E731
    draw = getattr(ax, method)
    for j in range(3):
        draw(xs, [fix(r[f"learned_min{j + 1}"]) for r in rows], "o", ms=4, label=f"learned, {j + 1}. smallest")
    draw(xs, [fix(r["predicted_min1"]) for r in rows], "k-", label=theory_label)
