"""The report's tables: one row per (loss, seed, level, source), their means per level, the verdicts,
the agreement of learned and theory, and the data of each level."""

from __future__ import annotations

import math

import numpy as np

from ...metrics import eigenspace_angle, eigenvalue_agreement
from .geometry import seed_setup
from .settings import FIGURE, INFONCE_FAMILY, ROBUST_LOSS, SOURCES, level_key, level_label
from .verdicts import errata_e4, robustness_verdicts

__all__ = ["METRICS", "learned_rows", "ensemble_rows", "summarise"]

METRICS = ("spectrum_change", "angle", "stable_rank", "probe_accuracy", "minority_accuracy", "minority_separation",
            "probe_drop", "minority_drop", "mean_captured")


def learned_rows(s, recs):
    """Rows of ``data.csv``: every trained (loss, seed, level) and source, with the learned-vs-theory columns."""
    rows = []
    ksub = min(s["d1"], s["classes"] - 1)
    for loss in s["losses"]:
        for seed in range(s["seeds"]):
            for li, level in enumerate(s["levels"]):
                for src in SOURCES:
                    r = recs[loss, seed, li, src]
                    row = {"loss": loss, "seed": seed, "level": level, "source": src,
                           **{f"eig{j + 1}": float(r["eigenvalues"][j]) for j in range(s["d1"])},
                           **{k: r[k] for k in METRICS}}
                    if src == "learned":
                        der, pap = recs[loss, seed, li, "derived"], recs[loss, seed, li, "paper"]
                        pe = np.asarray(der["eigenvalues"])
                        row.update({
                            "eig_error_vs_derived": eigenvalue_agreement(r["eigenvalues"], pe)["max_error"],
                            "angle_vs_derived": eigenspace_angle(r["M"], der["M"], ksub),
                            "angle_vs_paper": eigenspace_angle(r["M"], pap["M"], ksub),
                            "u": r["u"] if loss in INFONCE_FAMILY else None,
                            "converged": r["converged"], "steps": r["steps"], "replicates": r["replicates"]})
                    else:
                        row.update({k: None for k in ("eig_error_vs_derived", "angle_vs_derived", "angle_vs_paper",
                                                      "u", "converged", "steps", "replicates")})
                    rows.append(row)
    return rows


def ensemble_rows(s, ens):
    """Rows of ``theory_ensemble.csv``: every (loss, geometry, level) and theory source."""
    rows = []
    for loss in s["losses"]:
        for seed in range(s["theory_seeds"]):
            for li, level in enumerate(s["levels"]):
                for src in SOURCES[1:]:
                    r = ens[loss, seed, li, src]
                    rows.append({"loss": loss, "seed": seed, "level": level, "source": src,
                                 **{f"eig{j + 1}": float(r["eigenvalues"][j]) for j in range(s["d1"])},
                                 **{k: r[k] for k in METRICS}})
    return rows


def _stats(vals):
    a = np.asarray([v for v in vals if v is not None], dtype=np.float64)
    if a.size == 0:
        return None, None
    return float(a.mean()), (float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else None)


def summarise(s, recs, ens, rows, ens_rows, empty):
    """The report (without run information): tables, verdicts, agreement and data statistics."""
    lv, losses = s["levels"], s["losses"]
    last = len(lv) - 1
    table, ens_table = [], []
    for li, level in enumerate(lv):
        for loss in losses:
            for src in SOURCES:
                sel = [r for r in rows if r["loss"] == loss and r["level"] == level and r["source"] == src]
                e = {"level": level_key(level), "loss": loss, "source": src,
                     "eigenvalues": np.mean([recs[loss, sd, li, src]["eigenvalues"] for sd in range(s["seeds"])],
                                            axis=0).tolist()}
                for key in METRICS:
                    e[key], e[key + "_se"] = _stats([r[key] for r in sel])
                if src == "learned":
                    e["converged"] = sum(bool(r["converged"]) for r in sel)
                    for key in ("eig_error_vs_derived", "angle_vs_derived", "angle_vs_paper", "u"):
                        e[key], _ = _stats([r[key] for r in sel])
                table.append(e)
            for src in SOURCES[1:]:
                sel = [r for r in ens_rows if r["loss"] == loss and r["level"] == level and r["source"] == src]
                e = {"level": level_key(level), "loss": loss, "source": src}
                for key in METRICS:
                    e[key], e[key + "_se"] = _stats([r[key] for r in sel])
                ens_table.append(e)
    ref = next((x for x in losses if x in INFONCE_FAMILY), None)
    verdicts = robustness_verdicts(s, recs, ens, ref) if ROBUST_LOSS in losses and ref is not None and last > 0 else {}
    between = []
    if ROBUST_LOSS in losses and ref is not None:
        ksub = min(s["d1"], s["classes"] - 1)
        for li, level in enumerate(lv):
            entry = {"level": level_key(level)}
            for src in ("learned", "derived"):
                entry[src] = float(np.mean([eigenspace_angle(recs[ROBUST_LOSS, sd, li, src]["M"],
                                                             recs[ref, sd, li, src]["M"], ksub)
                                            for sd in range(s["seeds"])]))
            between.append(entry)
    level_stats = []
    setup0 = seed_setup(s, 0)
    for li, level in enumerate(lv):
        ds = setup0["data"][li]
        m = np.asarray(ds.x, dtype=np.float64).mean(0)
        level_stats.append({"level": level_key(level), "label": level_label(s["scheme"], level),
                            "class_fractions": (ds.counts / ds.n).tolist(), "minority_class": setup0["minority"][li],
                            "empty_classes": [int(j) for j in np.flatnonzero(ds.counts == 0)],
                            "geometries_with_empty_classes": int(np.count_nonzero(empty[li])),
                            "mean_empty_classes": float(np.mean(empty[li])),
                            "A0_eigenvalues": np.linalg.eigvalsh(ds.A0)[::-1].tolist(),
                            "A0_centered_eigenvalues": np.linalg.eigvalsh(ds.A0_centered)[::-1].tolist(),
                            "mean_norm2": float(m @ m)})
    learned_rows = [r for r in rows if r["source"] == "learned"]
    agreement = {}
    for loss in losses:  # converged runs only: an unconverged W is not a minimum of anything
        lr_all = [r for r in learned_rows if r["loss"] == loss]
        lr = [r for r in lr_all if r["converged"]]
        a = {"runs": len(lr_all), "converged_runs": len(lr)}
        if lr:
            a.update({"max_eig_error_vs_derived": max(r["eig_error_vs_derived"] for r in lr),
                      "median_eig_error_vs_derived": float(np.median([r["eig_error_vs_derived"] for r in lr])),
                      "max_angle_vs_derived": max(r["angle_vs_derived"] for r in lr),
                      "median_angle_vs_derived": float(np.median([r["angle_vs_derived"] for r in lr])),
                      "min_angle_vs_paper": min(r["angle_vs_paper"] for r in lr),
                      "max_u": max((r["u"] for r in lr if r["u"] is not None), default=None)})
        else:
            a.update(dict.fromkeys(("max_eig_error_vs_derived", "median_eig_error_vs_derived", "max_angle_vs_derived",
                                    "median_angle_vs_derived", "min_angle_vs_paper", "max_u")))
        agreement[loss] = a
    n_conv = sum(bool(r["converged"]) for r in learned_rows)
    return {"figure": FIGURE, "levels": [level_key(v) for v in lv],
            "level_labels": [level_label(s["scheme"], v) for v in lv], "reference_loss": ref,
            "level_stats": level_stats, "table": table, "theory_ensemble": ens_table, "verdicts": verdicts,
            "errata_E4": errata_e4(s, rows) if ROBUST_LOSS in losses else None, "between_losses": between,
            "agreement": agreement, "converged": f"{n_conv}/{len(learned_rows)}",
            "all_converged": n_conv == len(learned_rows)}


# --------------------------------------------------------------------------- report
