"""Fig. 7 of Ziyin et al. (2023), Appendix B: the last-layer landscape of a small MLP.

For each activation and augmentation strength (weak / intermediate / strong), an MLP with
output dimension 2 is trained on the exact loss; the last layer is probed along ``a W3``
(1-D) and on the ``(r1, r2)`` plane of its singular values (2-D). The regime read from the
grid minima is compared with the linear theory's regime for the same data and augmentation.
"""

from __future__ import annotations

import numpy as np

from ..data import IsotropicNoise, gaussian_data
from ..nonlinear import classify_regime, linear_regime, plane_probe, scale_probe, train_mlp
from .common import settings_loss, write_csv
from .fig1 import grid_rows

__all__ = ["fig7_mlp", "run_nonlinear", "nonlinear_outputs", "panel_records"]


def run_nonlinear(loss, data, sigma, activation, widths, steps, lr, optimizer, seed, engine, a_values, r_values,
                  draws):
    """Train one MLP (or, with ``activation="linear"``, the linear model f = W x) and probe its
    last layer; returns (summary dict, 1-D curve, 2-D grid)."""
    aug = IsotropicNoise(sigma, data.x.shape[1])
    if activation == "linear":
        from ..nonlinear import LinearModel
        from ..train import simulate

        res = simulate(loss, data=data, augmentation=aug, d1=2, steps=steps, seed=seed, warn=False,
                       engine="numba" if engine == "cuda" else engine)
        mlp, hist = LinearModel(res.W), {"loss": [float(res.history["loss"][-1])]}
    else:
        mlp, hist = train_mlp(loss, data, aug, widths=widths, d_out=2, activation=activation, steps=steps, lr=lr,
                              optimizer=optimizer, seed=seed, engine=engine)
    curve = scale_probe(mlp, loss, data.x, aug, a_values, draws=draws)
    if engine == "cuda" and activation != "linear":
        from ..nonlinear.cuda import plane_probe_gpu

        grid = plane_probe_gpu(mlp, loss, data.x, aug, r_values, draws=draws)
    else:
        grid = plane_probe(mlp, loss, data.x, aug, r_values, draws=draws)
    regime, minima = classify_regime(grid, r_values)
    lin, rep = linear_regime(loss, data.A0, aug.C, 2, n=data.n, mean=data.x.mean(0))
    summary = {"activation": activation, "sigma": sigma, "mlp_regime": regime, "linear_regime": lin,
               "agree": regime == lin, "grid_minima": minima, "a_at_min": float(a_values[int(np.argmin(curve))]),
               "singular_values_W3": np.linalg.svd(mlp.W3, compute_uv=False).tolist(),
               "final_loss": hist["loss"][-1], "linear_B_eigenvalues": rep["B_eigenvalues"]}
    return summary, curve, grid


def panel_records(command, payloads, threads=None):
    """Train and probe Fig. 7 panels (the job function of the sweep machinery; a Dask worker runs
    it too): ``[("ok", {"summary", "curve", "grid"}), ...]`` for :func:`run_nonlinear`'s arguments."""
    from .._io import jsonable

    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    out = []
    for p in payloads:
        summ, curve, grid = run_nonlinear(**p)
        out.append(("ok", jsonable({"summary": summ, "curve": curve, "grid": grid})))
    return out


def fig7_mlp(cfg, out, seeds, engine, protocol, progress):
    from ..sweep import Embedded, Store, run_sweep
    from .runs import settings_digest

    fig, run = cfg["figure"], cfg["run"]
    loss = settings_loss(run)
    data = gaussian_data(int(run["n"]), [float(v) for v in run["variances"]], seed=0)
    a = np.linspace(*[float(v) for v in fig["a_range"][:2]], int(fig["a_range"][2]))
    r = np.linspace(-float(fig["r_max"]), float(fig["r_max"]), int(fig["grid"]))
    # every panel a point of the sweep machinery: stored as it finishes, resumable, --scheduler
    points, names = [], []
    for act in fig["activations"]:
        for name, sigma in zip(("weak", "intermediate", "strong"), fig["sigmas"]):
            args = dict(loss=loss, data=data, sigma=float(sigma), activation=act, widths=tuple(run["widths"]),
                        steps=int(run["steps"]), lr=float(run["lr"]), optimizer=run.get("optimizer", "sgd"),
                        seed=0, engine=engine, a_values=a, r_values=r, draws=int(fig["draws"]))
            digest = settings_digest({"version": "fig7/1", "run": run, "figure": fig, "activation": act,
                                      "sigma": float(sigma), "engine": engine, "loss": repr(loss)})
            points.append((f"{act}-{name}@{digest}", args))
            names.append(name)
    with Store(out / "points") as store:
        done = run_sweep("fig7-panels", points, store, out.executor or Embedded(chunk=1), panel_records,
                         progress=None if progress else False, desc="panels", raise_errors=True)
        if done.interrupted:
            raise KeyboardInterrupt
        recs = [store.get(k)["result"] for k, _ in points]
    panels, rows = [], []
    for (key, args), name, rec in zip(points, names, recs):
        summ, curve, grid = rec["summary"], np.asarray(rec["curve"]), np.asarray(rec["grid"])
        act, sigma = args["activation"], args["sigma"]
        summ["augmentation"] = name
        panels.append((summ, curve, grid))
        rows += [{"activation": act, "sigma": float(sigma), "kind": "scale", "a": float(ai), "r1": "", "r2": "",
                  "loss": float(li)} for ai, li in zip(a, curve)]
        rows += grid_rows(r, {"loss": grid}, activation=act, sigma=float(sigma), kind="plane", a="")
    write_csv(out / "data.csv", rows)
    summaries = [p[0] for p in panels]
    agree = sum(s["agree"] for s in summaries)
    report = {"figure": "fig7", "loss": loss.name, "params": dict(loss.params), "variances": run["variances"],
              "regime_agreement": f"{agree}/{len(summaries)}", "panels": summaries}
    md = [f"# Fig. 7: last-layer landscape of a 3-layer MLP ({loss.name}, output dimension 2)", "",
          "| activation | augmentation | sigma | MLP regime (grid minima) | linear theory | agree |",
          "|---|---|---|---|---|---|"]
    for s in summaries:
        md.append(f"| {s['activation']} | {s['augmentation']} | {s['sigma']:g} | {s['mlp_regime']} | "
                  f"{s['linear_regime']} | {'yes' if s['agree'] else 'NO'} |")
    md += ["", f"The MLP's regime equals the linear theory's in {agree}/{len(summaries)} panels. The linear theory "
           "is for f(x) = W x on the same data and augmentation; the MLP's last layer sees nonlinear features, "
           "whose variance and augmentation covariance differ, so disagreements near a threshold are expected."]

    def draw(plt):
        nrow = len(fig["activations"])
        f, axes = plt.subplots(nrow, 4, figsize=(13, 3.0 * nrow), squeeze=False)
        for k, act in enumerate(fig["activations"]):
            mine = [p for p in panels if p[0]["activation"] == act]
            for summ, curve, grid in mine:
                axes[k, 0].plot(a, curve - curve[0], label=f"{summ['augmentation']} (sigma={summ['sigma']:g})")
            axes[k, 0].set_xlabel("a (W3 -> a W3)")
            axes[k, 0].set_ylabel(f"{act}: L - L(0)")
            axes[k, 0].legend(fontsize=6)
            for ax, (summ, curve, grid) in zip(axes[k, 1:], mine):
                ax.contourf(r, r, grid.T, levels=30, cmap="coolwarm")
                for x_, y_ in summ["grid_minima"]:
                    ax.plot(x_, y_, "k*", ms=7)
                ax.set_title(f"{act}, {summ['augmentation']}: {summ['mlp_regime']}", fontsize=7)
                ax.set_xlabel("r1 (larger singular value)")
                ax.set_ylabel("r2")
        f.tight_layout()
        return f

    return report, "\n".join(md), draw


def nonlinear_outputs(out, summary, a_values, curve, r_values, grid):
    """``data.csv`` (1-D and 2-D probes) and ``figure.png`` of one :func:`run_nonlinear` in ``out``.

    Returns None when the figure was written, else the reason it was skipped.
    """
    import os

    from .._io import save_png

    write_csv(os.path.join(out, "data.csv"),
              [{"kind": "scale", "a": float(ai), "r1": "", "r2": "", "loss": float(li)}
               for ai, li in zip(a_values, curve)]
              + [{"kind": "plane", "a": "", "r1": float(r1), "r2": float(r2), "loss": float(grid[i, j])}
                 for i, r1 in enumerate(r_values) for j, r2 in enumerate(r_values)])

    def draw(plt):
        f, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
        ax1.plot(a_values, curve)
        ax1.set_xlabel("a (W3 -> a W3)")
        ax1.set_ylabel("loss")
        ax2.contourf(r_values, r_values, grid.T, levels=30, cmap="coolwarm")
        for x_, y_ in summary["grid_minima"]:
            ax2.plot(x_, y_, "k*", ms=8)
        ax2.set_title(summary["mlp_regime"], fontsize=8)
        return f

    return save_png(os.path.join(out, "figure.png"), draw)
