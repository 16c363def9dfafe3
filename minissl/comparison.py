"""What a run learned next to what the theory predicts: the comparison ``minissl simulate`` prints.

:func:`compare` (a :class:`~minissl.train.SimulationResult` against the effective
landscape's prediction, :func:`minissl.predict`) and :func:`compare_siamese` (a linear
SimSiam/BYOL run against its per-mode fixed points, :mod:`minissl.siamese`) return plain,
JSON-friendly dicts; the CLI only formats them.
"""

from __future__ import annotations

import numpy as np

from .landscape import predict
from .metrics import COLLAPSE_SCALE, RANK_RTOL, eigenvalue_agreement, numerical_rank, stable_rank

__all__ = ["comparable_eigenvalues", "compare", "compare_siamese"]


def comparable_eigenvalues(res):
    """Learned eigenvalues of ``W^T W`` on the theory's scale, and the factor applied.

    For a scale-free loss (normalized outputs, or a self-normalising one such as SimCLR's
    cosine similarity) ``W``'s overall scale is not determined by the loss; the values are
    rescaled so that ``E|Wx + b|^2 = c`` (``c = 1`` for a self-normalising loss). Returns
    ``(eigenvalues, factor)`` with ``factor`` None when nothing was rescaled.
    """
    ev = res.eigenvalues.copy()
    if not (res.loss.normalize or not res.loss.spec.normalize_allowed):
        return ev, None
    rho = float(np.sum((res.W @ res.Sigma) * res.W)) + (0.0 if res.b is None else float(res.b @ res.b))
    scale = res.loss.c / rho if rho > 0 else 1.0
    return ev * scale, scale


def compare(res, rank_tol=RANK_RTOL, kappa=None):
    """Learned spectrum, ranks and expansion parameter next to the effective landscape's prediction.

    Parameters
    ----------
    res : SimulationResult
        A run of :func:`minissl.simulate`.
    rank_tol : float
        Relative tolerance of the numerical rank (:func:`minissl.metrics.numerical_rank`).
    kappa : float, optional
        Normalization penalty of Eq. (10) for the prediction (normalized losses).

    Returns
    -------
    dict
        ``learned_eigenvalues`` (rescaled for scale-free losses, see
        :func:`comparable_eigenvalues`), ``learned_scale_factor``,
        ``predicted_eigenvalues`` (None where the theory has no prediction, with the
        reason in ``prediction_method``), ranks and stable ranks of both, the expansion
        parameter ``expansion_u = 2 Tr[W Sigma W^T]`` (Prop. 1 is an expansion in it),
        the eigenvalues of ``A0`` and ``C``, and where there is a prediction the agreement
        (:func:`minissl.metrics.eigenvalue_agreement`): ``eigenvalue_errors`` (each learned
        eigenvalue against its own prediction), ``max_eig_error`` and ``agreement_floor``.
    """
    ds = res.dataset
    learned, scale = comparable_eigenvalues(res)
    pred, pred_note = None, None
    try:
        p = predict(res.loss, res.A0_model, res.C, n=ds.n, mean=res.mean_model,
                    d1=res.W.shape[0], bias=res.b is not None, kappa=kappa, seed=0,
                    scale=res.scale_augmentation)
        pred = p["eigenvalues"]
        pred_note = p["method"]
    except ValueError as exc:
        pred_note = f"not available: {str(exc).rstrip('.')}"
    Wsig = float(np.sum((res.W @ res.Sigma) * res.W)) * (1.0 if scale is None else scale)
    out = {
        "learned_eigenvalues": learned,
        "learned_scale_factor": scale,
        "predicted_eigenvalues": pred,
        "prediction_method": pred_note,
        "prediction_models": "noise-averaged loss (noise='fresh')",
        "rank_tol": rank_tol,
        "learned_rank": numerical_rank(learned, rank_tol) if pred is None else _rank_against(learned, pred, rank_tol),
        "predicted_rank": None if pred is None else _rank_against(pred, pred, rank_tol),
        "learned_stable_rank": stable_rank(learned),
        "predicted_stable_rank": None if pred is None else stable_rank(pred),
        "expansion_u": 2.0 * Wsig,
        "A0_eigenvalues": np.linalg.eigvalsh(ds.A0)[::-1],
        "C_eigenvalues": np.linalg.eigvalsh(res.C)[::-1],
    }
    if pred is not None:
        out.update(_agreement(learned, pred, rank_tol))
    return out


def _rank_against(ev, pred, rank_tol):
    """Eigenvalues above ``rank_tol x max(predicted top, COLLAPSE_SCALE)``: both ranks on the
    theory's scale (as in the figures, :func:`minissl.experiments.spectra.spectrum_record`),
    so a run that decays to 1e-80 where the theory predicts complete collapse has rank 0, not
    the rank 1 of its own largest round-off eigenvalue."""
    ref = max(float(np.max(pred, initial=0.0)), COLLAPSE_SCALE)
    return int(np.sum(np.asarray(ev) > rank_tol * ref))


def _agreement(learned, pred, rank_tol, paired=False):
    a = eigenvalue_agreement(learned, pred, rtol=rank_tol, paired=paired)
    return {"eigenvalue_errors": a["errors"], "max_eig_error": a["max_error"], "agreement_floor": a["floor"]}


def compare_siamese(res, rank_tol=RANK_RTOL):
    """A linear SimSiam/BYOL run (:class:`minissl.siamese.SiameseResult`) next to its fixed points.

    Returns the learned spectrum of ``W^T W`` and the predictor's eigenvalues beside the
    per-mode theory (``w^2 = p_+^2``, the surviving modes, the E-step optimum), the learned
    rank (0 on complete collapse) and, where the theory applies, the predicted rank and the
    agreement of :func:`compare` (``eigenvalue_errors``, ``max_eig_error``, ``agreement_floor``).

    With DirectPred (:mod:`minissl.directpred`) the comparison is per eigendirection ``u_j``
    of ``F`` (rows in descending ``s``; ``along_F`` is True): ``learned_along_F`` is
    ``u_j^T W^T W u_j`` or, for ``scale="max"``, where ``|W|`` shrinks, its *shape*
    (divided by the largest, averaged over the later snapshots; ``shape_rank``), beside
    ``predicted_eigenvalues`` in the same order, and the decay factor of ``|W|`` per step
    (``measured_decay_per_step``, ``predicted_decay_per_step``).
    """
    th = res.theory
    learned = res.eigenvalues
    c = res.checks
    along = "w2_along_F" in c
    w2 = None if th is None else (th["w2"] if along else th["w2_sorted"])
    out = {
        "learned_eigenvalues": learned,
        "predicted_eigenvalues": None if th is None or np.any(np.isnan(w2)) else w2,
        "F_eigenvalues": np.linalg.eigvalsh(res.F)[::-1] if th is None else th["s"],
        "C_eigenvalues_along_F": None if th is None else th["c"],
        "predicted_alive": None if th is None else th["alive"],
        "predicted_predictor": None if th is None or (th["collapse"] and "decay_per_step" not in th) else th["p"],
        "predicted_collapse": None if th is None else th["collapse"],
        "estep_optimum": None if th is None else th["estep"],
        # real parts (P need not be symmetric; at the fixed point its eigenvalues are real)
        "learned_predictor_eigenvalues": np.sort(np.linalg.eigvals(res.P).real)[::-1],
        "rank_tol": rank_tol,
        "learned_rank": 0 if c["complete_collapse"] else numerical_rank(learned, rank_tol),
        "checks": c,
        "along_F": along,
    }
    if along:
        shape = "shape_along_F" in c
        out["learned_along_F"] = np.asarray(c["shape_along_F"] if shape else c["w2_along_F"])
        out["learned_predictor_along_F"] = np.asarray(c["p_along_F"])
        if shape:
            out["shape_rank"] = numerical_rank(np.sort(out["learned_along_F"])[::-1], rank_tol)
            out["measured_decay_per_step"] = c.get("decay_per_step")
            out["predicted_decay_per_step"] = None if th is None else th["decay_per_step"]
    if out["predicted_eigenvalues"] is not None:
        pred = out["predicted_eigenvalues"]
        out["predicted_rank"] = int(np.sum(th["alive"]))
        out.update(_agreement(out["learned_along_F"] if along else learned, pred, rank_tol, paired=along))
    return out
