"""Is SCL more robust to imbalance than the reference loss? Paired comparisons per metric, and whether
the run confirms errata E4."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _scipy_stats

from .settings import ROBUST_LOSS

__all__ = ["ROBUST", "DEGENERATE_PROBE", "robustness_verdicts", "errata_e4", "pct"]

DEGENERATE_PROBE = 1.5    # a balanced probe accuracy below this x chance (1/K) marks a degenerate representation
_E4_MAX_REL_ERROR = 0.10  # errata E4 counts as confirmed when SCL's learned eigenvalues are this close to B = 2 A0
_E4_MIN_ANGLE = 45.0      # ... and its learned subspace at least this far (deg) from the paper's B = 2C prediction

ROBUST = (("spectrum_change", "normalised spectrum change"), ("angle", "top-subspace angle (deg)"),
           ("probe_drop", "probe accuracy drop"), ("minority_drop", "minority accuracy drop"))
# differences below these are within the resolution of the measurement (test-set size, jitter)
_FLOORS = {"spectrum_change": 0.01, "angle": 1.0, "probe_drop": 0.005, "minority_drop": 0.01}


def _compare(a, b, floor0, unit="seed"):
    """SCL's changes ``a`` vs the reference loss's ``b`` (paired by seed or geometry).

    With one pair there is no standard error: the verdict is ``"undetermined (1 seed)"``.
    With ``n >= 2`` pairs a difference counts when its mean exceeds both the resolution
    ``floor0`` and the two-sided 95% Student-t threshold ``t_{0.975, n-1} * SE`` of the
    paired difference; it is "slight" below 20% of the larger of the two mean changes.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 1:
        raise ValueError(f"a and b have shapes {a.shape} and {b.shape}, must be equal 1-d with at least one entry.")
    d = a - b
    n = int(d.size)
    mean = float(d.mean())
    scale = max(abs(float(a.mean())), abs(float(b.mean())), 1e-300)
    out = {ROBUST_LOSS: float(a.mean()), "reference": float(b.mean()), "difference": mean, "difference_se": None,
           "t_quantile": None, "threshold": None, "relative": mean / scale, "n": n}
    if n == 1:
        return {**out, "verdict": f"undetermined (1 {unit})"}
    se = float(d.std(ddof=1) / math.sqrt(n))
    tq = float(_scipy_stats.t.ppf(0.975, n - 1))
    threshold = max(float(floor0), tq * se)
    if abs(mean) <= threshold:
        verdict = "no clear difference"
    else:
        verdict = ("SCL " + ("slightly " if abs(mean) < 0.2 * scale else "")
                   + ("more" if mean < 0 else "less") + " robust")
    return {**out, "difference_se": se, "t_quantile": tq, "threshold": threshold, "verdict": verdict}


def _degenerate(store, losses, seeds, last, src, classes):
    """Why the representations of ``losses`` cannot carry a robustness verdict, or None.

    Degenerate: rank 0 (``W^T W = 0``) at the balanced or the compared level in any used seed, or a
    balanced probe accuracy (mean over the used seeds) below ``DEGENERATE_PROBE / K``: near chance,
    every change is 0 or measures noise directions.
    """
    reasons = []
    chance = 1.0 / classes
    for loss in losses:
        name = "SCL" if loss == ROBUST_LOSS else loss
        zero = sum(any(store[loss, sd, li, src]["rank"] == 0 for li in (0, last)) for sd in seeds)
        if zero:
            reasons.append(f"{name}'s W^T W has rank 0 in {zero} of {len(seeds)} "
                           + ("seeds" if src == "learned" else "geometries"))
        probe = float(np.mean([store[loss, sd, 0, src]["probe_accuracy"] for sd in seeds]))
        if probe < DEGENERATE_PROBE * chance:
            reasons.append(f"{name}'s balanced probe accuracy {probe:.3f} < {DEGENERATE_PROBE:g}/K = "
                           f"{DEGENERATE_PROBE * chance:.3f}, chance {chance:.3f}")
    return "; ".join(reasons) or None


def robustness_verdicts(s, recs, ens, ref):
    """SCL vs ``ref`` at the most imbalanced level, per source and metric.

    Learned: only seeds whose runs converged for both losses at the balanced and at the compared
    level. Each metric's entry holds the :func:`_compare` numbers, ``comparison`` (its verdict),
    ``degenerate`` (a reason or None) and ``verdict`` (what is reported: ``"not meaningful (...)"``
    for a degenerate representation, ``"undetermined: no converged seeds"`` without seeds).
    """
    last = len(s["levels"]) - 1
    pair = (ROBUST_LOSS, ref)
    out = {}
    for src, store, nseed in (("learned", recs, s["seeds"]), ("derived", ens, s["theory_seeds"]),
                              ("paper", ens, s["theory_seeds"])):
        if src == "learned":
            seeds = [sd for sd in range(nseed) if all(bool(store[loss, sd, li, src]["converged"])
                                                      for loss in pair for li in (0, last))]
            excluded = [sd for sd in range(nseed) if sd not in seeds]
        else:
            seeds, excluded = list(range(nseed)), []
        unit = "seed" if src == "learned" else "geometry"
        degenerate = _degenerate(store, pair, seeds, last, src, s["classes"]) if seeds else None
        out[src] = {}
        for key, label in ROBUST:
            if not seeds:
                e = {ROBUST_LOSS: None, "reference": None, "difference": None, "difference_se": None,
                     "t_quantile": None, "threshold": None, "relative": None, "n": 0,
                     "verdict": "undetermined: no converged seeds"}
            else:
                e = _compare([store[ROBUST_LOSS, sd, last, src][key] for sd in seeds],
                             [store[ref, sd, last, src][key] for sd in seeds], _FLOORS[key], unit)
            e["comparison"] = e["verdict"]
            e["degenerate"] = degenerate
            if degenerate is not None:
                e["verdict"] = f"not meaningful (degenerate representation: {degenerate})"
            out[src][key] = {"label": label, **e, "excluded_seeds": excluded}
    return out


def pct(x):
    """A relative error as a short percentage (no 300-digit numbers)."""
    return f"{x:.1%}" if abs(x) < 10 else f"{100 * x:.3g}%"


def errata_e4(s, rows):
    """Does this run confirm errata E4 (SCL learns B = 2 A0, not the paper's B = 2C)? Converged runs only."""
    sel = [r for r in rows if r["source"] == "learned" and r["loss"] == ROBUST_LOSS]
    conv = [r for r in sel if r["converged"]]
    out = {"criteria": f"largest eigenvalue error vs derived (each against its own prediction) <= "
                       f"{_E4_MAX_REL_ERROR:.0%} and subspace angle vs paper "
                       f">= {_E4_MIN_ANGLE:g} deg, over converged SCL runs",
           "converged_runs": len(conv), "runs": len(sel), "max_eig_error_vs_derived": None,
           "min_angle_vs_paper": None, "confirmed": False}
    if not sel:
        return None
    if not conv:
        out["text"] = (f"errata E4: this run does not confirm it: no SCL training run converged (0/{len(sel)}), "
                       "so the learned models say nothing about B")
        return out
    err = max(r["eig_error_vs_derived"] for r in conv)
    ang = min(r["angle_vs_paper"] for r in conv)
    out.update(max_eig_error_vs_derived=err, min_angle_vs_paper=ang)
    note = "" if len(conv) == len(sel) else ", the unconverged ones left out"
    problems = []
    if not err <= _E4_MAX_REL_ERROR:
        problems.append(f"SCL's learned eigenvalues differ from the derived B = 2 A0 prediction by up to {pct(err)} "
                        f"(more than {_E4_MAX_REL_ERROR:.0%})")
    if not ang >= _E4_MIN_ANGLE:
        problems.append(f"its learned subspace is only {ang:.0f} deg from the paper's B = 2C prediction "
                        f"(less than {_E4_MIN_ANGLE:g} deg)")
    if problems:
        out["text"] = (f"errata E4: this run does not confirm it ({len(conv)}/{len(sel)} SCL runs converged{note}): "
                       + "; ".join(problems))
    else:
        out["confirmed"] = True
        out["text"] = (f"errata E4 confirmed ({len(conv)}/{len(sel)} SCL runs converged{note}): SCL's learned "
                       f"eigenvalues are within {pct(err)} of the derived B = 2 A0 prediction and its learned "
                       f"subspace is >= {ang:.0f} deg from the paper's B = 2C prediction")
    return out
