"""Fig. 6 of Ziyin et al. (2023): normalization f -> f/|f| causes dimensional collapse."""

from __future__ import annotations

import numpy as np

from .common import point_cache, simulate_kwargs, write_csv
from .spectra import AGREEMENT_NOTE, agreement, draw_smallest, mean_over_seeds, smallest_cells

__all__ = ["fig6_normalized"]


def _mean_fields(rs):
    """Per-sigma means over seeds of the data-mean fields of :func:`spectra.spectrum_record`."""
    return {"mean_share_collapsed": float(np.mean([r["mean_share_collapsed"] for r in rs])),
            "collapsed_without_mean": int(round(np.mean([r["collapsed_without_mean"] for r in rs]))),
            "learned_min1_without_mean": float(np.mean([r["eigenvalues_without_mean"][-1] for r in rs]))}


def fig6_normalized(cfg, out, seeds, engine, protocol, progress):
    """Three smallest eigenvalues of W^T W (rescaled to E|f|^2 = 1) vs sigma, normalized InfoNCE.

    Prediction: the kappa -> inf limit of the penalty model (Theorem 2, Eq. 13) with the
    run's empirical A0. The penalty is the paper's *model* of normalization, not an
    expansion of the normalized loss, so only the collapse pattern is expected to agree.
    """
    fig, run = cfg["figure"], cfg["run"]
    base = simulate_kwargs(run, engine)
    base["normalize"] = True
    sigmas = [float(s) for s in fig["sigmas"]]
    specs = [(f"sigma{s!r}-seed{k}", {**base, "sigma": s, "seed": k}) for s in sigmas for k in range(seeds)]
    recs = point_cache(out / "points", run, progress, protocol, executor=out.executor).run(specs)
    rows = []
    feature_var = float(np.mean(base["variances"]))
    for i, s in enumerate(sigmas):
        rs = recs[i * seeds:(i + 1) * seeds]
        ev, pr = mean_over_seeds(rs, "eigenvalues"), mean_over_seeds(rs, "predicted")
        rows.append({"sigma": s, "sigma2_over_feature_variance": s**2 / feature_var,
                     **{f"learned_min{j + 1}": float(ev[-1 - j]) for j in range(3)},
                     **{f"predicted_min{j + 1}": float(pr[-1 - j]) for j in range(3)},
                     "learned_rank": int(round(np.mean([r["rank"] for r in rs]))),
                     "predicted_rank": int(round(np.mean([r["predicted_rank"] for r in rs]))),
                     **_mean_fields(rs), **agreement(ev, pr), "converged": all(r["converged"] for r in rs)})
    write_csv(out / "data.csv", rows)
    d = len(base["variances"])
    first = lambda key: next((r["sigma"] for r in rows if r[key] < d), None)  # noqa: E731
    s_learned, s_pred = first("learned_rank"), first("predicted_rank")
    s_aug = next((r["sigma"] for r in rows if r["collapsed_without_mean"] > 0), None)
    mean_rows = [r for r in rows if r["mean_share_collapsed"] > 0.5]
    rank_agree = sum(r["learned_rank"] == r["predicted_rank"] for r in rows)
    report = {"figure": "fig6-normalized", "protocol": protocol,
              "first_collapse_sigma_learned": s_learned, "first_collapse_sigma_predicted": s_pred,
              "feature_variance": feature_var,
              "collapse_below_feature_variance": s_learned is not None and s_learned**2 < feature_var,
              "first_collapse_sigma_off_the_mean": s_aug,
              "sigmas_with_the_mean_direction_collapsed": [r["sigma"] for r in mean_rows],
              "rank_agreement": f"{rank_agree}/{len(rows)}",
              "max_eig_error": max(r["eig_error"] for r in rows),
              "all_converged": all(r["converged"] for r in rows), "points": rows}
    md = [f"# Fig. 6: InfoNCE with f/|f| normalization, d0 = {d}, protocol `{protocol}`", "",
          f"First dimensional collapse (learned rank < {d}): sigma = {s_learned} (sigma^2 / feature variance = "
          f"{'n/a' if s_learned is None else f'{s_learned**2 / feature_var:.3g}'}); the kappa -> inf penalty model "
          f"(Theorem 2) predicts sigma = {s_pred}. Learned rank = predicted rank at {rank_agree}/{len(rows)} sigmas.",
          "",
          f"The data-mean direction (which the translation-invariant loss never sees) is collapsed at sigma = "
          f"{[r['sigma'] for r in mean_rows] or 'none'}"
          + (" — including sigma = 0, without any augmentation" if any(r["sigma"] == 0 for r in mean_rows) else "")
          + f". Collapse of a direction orthogonal to the mean, i.e. driven by the augmentation, starts at sigma = "
          f"{s_aug} (sigma^2 / feature variance = {'n/a' if s_aug is None else f'{s_aug**2 / feature_var:.3g}'}).",
          "", "| sigma | learned 3 smallest (E|f|^2 = 1) | Theorem 2 | learned rank | predicted rank | "
          "mean's share in the collapsed subspace | collapsed off the mean | smallest off the mean | "
          "max eigenvalue error (worst) | converged |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['sigma']:g} | {smallest_cells(r)} | {r['learned_rank']} | {r['predicted_rank']} | "
                  f"{r['mean_share_collapsed']:.2f} | {r['collapsed_without_mean']} | "
                  f"{r['learned_min1_without_mean']:.3g} | "
                  f"{r['eig_error']:.1%} ({r['worst_eigenvalue']}) | {'yes' if r['converged'] else 'NO'} |")
    md += ["", AGREEMENT_NOTE]

    def draw(plt):
        f, ax = plt.subplots(figsize=(4.8, 3.6))
        draw_smallest(ax, sigmas, rows, "Theorem 2 (smallest)")
        ax.plot(sigmas, [r["learned_min1_without_mean"] for r in rows], "kx", ms=6,
                label="learned, smallest off the data mean")
        ax.axvline(np.sqrt(feature_var), color="r", ls="--", label="sigma^2 = feature variance")
        ax.set_xlabel("augmentation strength sigma")
        ax.set_ylabel("eigenvalue of W^T W (E|f|^2 = 1)")
        ax.legend(fontsize=7)
        return f

    return report, "\n".join(md), draw
