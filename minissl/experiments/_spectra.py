"""Turn a training result into a point record: learned spectrum next to the theory's."""

from __future__ import annotations

import numpy as np

from ..theory import analyze


def spectrum_record(res, spec, rank_tol=1e-3):
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
        r = analyze(loss, res.A0_model, res.C, n=res.dataset.n, mean=res.mean_model, d1=d1, classify=False)
        pred, paper = r["eigenvalues"], r["paper_eigenvalues"]
    except ValueError:
        pred, paper = None, None
    # a direction counts as alive above rank_tol x a reference scale: the theory's top eigenvalue
    # (so that a run whose whole spectrum has decayed towards 0 has rank 0), or 1e-6 when the
    # theory predicts complete collapse
    ref = max(float(pred[0]), 1e-6) if pred is not None else max(float(ev[0]), 1e-300)
    A0c = res.dataset.A0_centered
    w, U = np.linalg.eigh(A0c)
    U = U[:, ::-1]
    WtW = res.W.T @ res.W * (ev[0] / max(float(res.eigenvalues[0]), 1e-300) if loss.normalize else 1.0)
    return {
        "eigenvalues": ev.tolist(),
        "predicted": pred,
        "paper_predicted": paper,
        "rank": int(np.sum(ev > rank_tol * ref)),
        "predicted_rank": None if pred is None else int(np.sum(np.array(pred) > rank_tol * ref)),
        "data_basis_diag": np.einsum("ij,ik,kj->j", U, WtW, U).tolist(),
        "u": 2.0 * rho if not loss.normalize else None,
        "A0_eigenvalues": np.linalg.eigvalsh(res.dataset.A0_centered)[::-1].tolist(),
    }


def rel_error(learned, predicted):
    """max |learned - predicted| / max(predicted) over the spectrum."""
    learned = np.asarray(learned, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    return float(np.max(np.abs(learned - predicted)) / max(float(np.max(predicted)), 1e-300))
