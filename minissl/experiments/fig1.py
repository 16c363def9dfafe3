"""Fig. 1 of Ziyin et al. (2023): the landscape of a toy model ``W = diag(r1, r2)``.

Three augmentation strengths give the three regimes: no collapse (the origin is a
maximum, minima at ``r1, r2 != 0``), dimensional collapse (minima at ``r1 = 0``) and
complete collapse (the origin is the only minimum). Each landscape is computed twice:
the effective fourth-order landscape (derived constants) and the exact beta-InfoNCE loss
averaged over a fixed set of noise draws (common random numbers, so the surface is
smooth). Local minima are located on the grid and compared with the theory's.
"""

from __future__ import annotations

import numpy as np

from ..data import IsotropicNoise, gaussian_data
from ..regimes import REGIMES, grid_minima, grid_regime, rank_regime
from ..theory import global_minimum, landscape_for, stationary_points
from .common import settings_loss, settings_params, write_csv

__all__ = ["fig1_toy", "grid_rows"]


def grid_rows(r, grids, **fixed):
    """CSV rows ``{**fixed, r1, r2, name: grid[i, j] for each grid}`` of square grids over ``r``."""
    return [{**fixed, "r1": float(r1), "r2": float(r2), **{k: float(G[i, j]) for k, G in grids.items()}}
            for i, r1 in enumerate(r) for j, r2 in enumerate(r)]


def fig1_toy(cfg, out, seeds, engine, protocol, progress):
    fig, run = cfg["figure"], cfg["run"]
    a = np.array([float(v) for v in run["variances"]])
    n = int(run["n"])
    draws = int(fig["draws"])
    m = int(fig["grid"])
    loss = settings_loss(run, engine=engine)
    beta = loss.beta
    data = gaussian_data(n, a, seed=0)
    rows, summary, panels = [], [], []
    for name, sigma in zip(REGIMES, fig["sigmas"]):
        sigma = float(sigma)
        aug = IsotropicNoise(sigma, 2)
        land = landscape_for(loss, data.A0, aug.C, n=n, mean=data.x.mean(0))
        best = global_minimum(land, 2)
        pts = stationary_points(land, 2)
        pred_min = [p for p in pts if p.kind == "minimum"]
        r_pred = np.sqrt(np.diag(best.WtW))
        R = 1.6 * max(float(r_pred.max()), 0.2)
        r = np.linspace(-R, R, m)
        step = float(r[1] - r[0])
        rng = np.random.default_rng(1)
        v1, v2 = aug.views(data.x, rng, replicates=draws)
        L_eff = np.empty((m, m))
        L_ex = np.empty((m, m))
        for i, r1 in enumerate(r):
            for j, r2 in enumerate(r):
                W = np.diag([r1, r2])
                L_eff[i, j] = land.value(W)
                L_ex[i, j] = np.mean([loss.value(W, v1[t], v2[t]) for t in range(draws)])
        L_ex -= L_ex[m // 2, m // 2] if m % 2 else 0.0
        min_eff, min_ex = grid_minima(L_eff, r), grid_minima(L_ex, r)
        predicted = rank_regime(best.rank, 2)
        err = max((min(np.hypot(x - r_pred[0] * sx, y - r_pred[1] * sy) for sx in (-1, 1) for sy in (-1, 1))
                   for x, y in min_ex), default=np.nan) / step
        summary.append({"regime": name, "sigma": sigma, "predicted_regime": predicted,
                        "effective_grid_regime": grid_regime(min_eff, step, dead_axis=0),
                        "exact_grid_regime": grid_regime(min_ex, step, dead_axis=0),
                        "predicted_minimum_r": r_pred.tolist(), "n_predicted_minima_orbits": len(pred_min),
                        "exact_minima": min_ex, "exact_minima_distance_in_grid_steps": err,
                        "B_diagonal": np.diag(land.B).tolist()})
        panels.append((name, sigma, r, L_eff, L_ex, min_ex, r_pred))
        rows += grid_rows(r, {"effective": L_eff, "exact": L_ex}, regime=name, sigma=sigma)
    write_csv(out / "data.csv", rows)
    agree = sum(s["exact_grid_regime"] == s["predicted_regime"] for s in summary)
    report = {"figure": "fig1", **settings_params(loss, run), "variances": a.tolist(), "n": n, "draws": draws,
              "regime_agreement": f"{agree}/{len(summary)}", "panels": summary}
    md = [f"# Fig. 1: toy landscape W = diag(r1, r2), beta-InfoNCE beta = {beta:g}, variances {a.tolist()}", "",
          "| panel | sigma | B diagonal | theory | effective landscape grid | exact loss grid | exact minima vs theory |",
          "|---|---|---|---|---|---|---|"]
    for s in summary:
        md.append(f"| {s['regime']} | {s['sigma']:g} | {', '.join(f'{b:.3g}' for b in s['B_diagonal'])} | "
                  f"{s['predicted_regime']} | {s['effective_grid_regime']} | {s['exact_grid_regime']} | "
                  f"{s['exact_minima_distance_in_grid_steps']:.1f} grid steps |")
    md += ["", f"Regime of the exact loss's grid minima = theory's regime in {agree}/{len(summary)} panels."]

    def draw(plt):
        f, axes = plt.subplots(1, 4, figsize=(13, 3.2))
        for name, sigma, r, L_eff, L_ex, mins, r_pred in panels:
            j = len(r) // 2
            axes[0].plot(r, L_ex[:, j] - L_ex[j, j], label=f"{name} (sigma={sigma:g})")
        axes[0].set_xlabel("r1 (r2 = 0)")
        axes[0].set_ylabel("L - L(0)")
        axes[0].legend(fontsize=6)
        for ax, (name, sigma, r, L_eff, L_ex, mins, r_pred) in zip(axes[1:], panels):
            ax.contourf(r, r, L_ex.T, levels=30, cmap="coolwarm")
            for x, y in mins:
                ax.plot(x, y, "k*", ms=8)
            ax.set_title(f"{name}, sigma={sigma:g}", fontsize=8)
            ax.set_xlabel("r1")
            ax.set_ylabel("r2")
        return f

    return report, "\n".join(md), draw
