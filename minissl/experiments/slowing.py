"""Learning dynamics against the theory: early rates and critical slowing down at a threshold.

:mod:`minissl.theory.dynamics` predicts, from the linearisation of the effective landscape at
``W = 0`` and its logistic saturation, each direction's per-step rate and the steps it takes
to settle (grow to within ``eps`` of its stationary eigenvalue, or decay to ``eps`` of its
start). This experiment trains the exact loss with SGD at a constant learning rate over a grid
of augmentation strengths around the collapse threshold ``sigma_c`` of one data direction and
measures both from the history of ``u_i(t) = |W(t) e_i|^2`` (``e_i`` the eigenvectors of the
run's own ``B``, which uses the run's empirical ``A0``):

* the early rate: the least-squares slope of ``ln u_i`` over the steps before ``u_i`` first
  reaches a tenth of its final value (growing directions) or while it is above ``e^-2`` of its
  start (decaying ones: further down, the gradient noise that the grown directions feed into a
  decaying one sets a floor, which ``report.md`` states);
* the learning time: the first recorded step at which ``u_i`` is within ``eps`` of its final
  value (the mean of the last tenth of the run) or below ``eps`` of its start.

Each seed has its own data, hence its own ``sigma_c`` (where its ``b`` of the followed
direction crosses zero, from a straight-line fit of ``b`` against ``sigma^2``); the learning
times are fitted against ``|sigma - sigma_c|`` on each side, and the fitted exponents are
reported beside the predicted ``-1``.
"""

from __future__ import annotations

import numpy as np

from ..theory.dynamics import CRITICAL_EXPONENT, learning_times
from .common import point_cache, simulate_kwargs, write_csv

__all__ = ["slowing", "dynamics_record", "RATE_FLOOR"]

EPS = 0.1
RATE_FLOOR = 0.1  # the 10% rate agreement is stated for directions with |b| >= this (noise dominates below)


def _directions(res):
    from ..landscape import effective_landscape

    land = effective_landscape(res.loss, res.A0_model, res.C, n=res.dataset.n, mean=res.mean_model,
                               d1=res.W.shape[0])
    w, U = np.linalg.eigh(land.B)
    order = np.argsort(w)[::-1]
    U = U[:, order]
    return land, w[order], U, np.einsum("ji,jk,ki->i", U, land.S, U)


def _fit_rate(steps, u, grow):
    """Slope of ln u over the early window (None with fewer than 4 usable records)."""
    if grow:
        final = float(np.mean(u[-max(len(u) // 10, 1):]))
        end = int(np.argmax(u >= 0.1 * final)) if np.any(u >= 0.1 * final) else len(u)
    else:
        below = u <= u[0] * np.exp(-2.0)  # above the floor the gradient noise of the big directions sets
        end = int(np.argmax(below)) if np.any(below) else len(u)
    sel = slice(0, end)
    x, y = steps[sel], u[sel]
    ok = y > 0
    if ok.sum() < 4:
        return None
    return float(np.polyfit(x[ok], np.log(y[ok]), 1)[0])


def _settle_time(steps, u, grow, eps=EPS):
    if grow:
        final = float(np.mean(u[-max(len(u) // 10, 1):]))
        hit = np.abs(u - final) <= eps * final
    else:
        hit = u <= eps * u[0]
    return float(steps[int(np.argmax(hit))]) if np.any(hit) else None


def dynamics_record(res, spec):
    """Measured and predicted early rates and learning times of every direction of one run."""
    land, b, U, s = _directions(res)
    steps = np.asarray(res.history["step"], dtype=np.float64)
    Ws = np.asarray(res.history["W"], dtype=np.float64)
    u = np.einsum("tpq,qi->tip", Ws, U)
    u = np.einsum("tip,tip->ti", u, u)  # u[t, i] = |W(t) e_i|^2
    pred = learning_times(b, s, land.k, spec["lr"], u[0], momentum=spec.get("momentum", 0.0), eps=EPS)
    A0 = np.asarray(res.dataset.A0_centered if res.loss.translation_invariant else res.dataset.A0)
    return {
        "b": b.tolist(), "variance": np.einsum("ji,jk,ki->i", U, A0, U).tolist(),
        "rate_predicted": pred["rate"].tolist(),
        "rate_measured": [_fit_rate(steps, u[:, i], b[i] > 0) for i in range(b.size)],
        "steps_predicted": [None if not np.isfinite(x) else float(x) for x in pred["steps"]],
        "steps_measured": [_settle_time(steps, u[:, i], b[i] > 0) for i in range(b.size)],
        "u_star": pred["u_star"].tolist(), "u_final": u[-max(len(u) // 10, 1):].mean(0).tolist(),
    }


def _sigma_c(sigmas, bs):
    """Where a straight line through (sigma^2, b) crosses b = 0 (None if it does not)."""
    slope, icpt = np.polyfit(np.square(sigmas), bs, 1)
    if slope >= 0 or icpt <= 0:
        return None
    return float(np.sqrt(-icpt / slope))


def _exponent(dist, times):
    ok = [(d, t) for d, t in zip(dist, times) if d > 0 and t is not None and t > 0]
    if len(ok) < 3:
        return None
    d, t = np.array(ok).T
    return float(np.polyfit(np.log(d), np.log(t), 1)[0])


def slowing(cfg, out, seeds, engine, protocol, progress):
    """Early rates (theory vs simulation) and the learning time of one direction across its threshold."""
    fig, run = cfg["figure"], cfg["run"]
    if protocol != "converged":
        raise ValueError(f"protocol == {protocol!r}: the slowing experiment has its own training protocol (SGD, "
                         "constant learning rate); use protocol 'converged'.")
    follow = float(fig["follow_variance"])
    sigmas = sorted(float(v) for v in fig["sigmas"])
    base = {**simulate_kwargs(run, engine), "optimizer": "sgd", "lr_schedule": "constant",
            "record_every": int(fig["record_every"])}
    specs = [(f"sigma{sg!r}-seed{k}", {**base, "sigma": sg, "seed": k}) for k in range(seeds) for sg in sigmas]
    recs = point_cache(out / "points", run, progress, protocol, evaluate=dynamics_record,
                       executor=out.executor).run(specs)
    rows, rate_pairs, floor = [], [], []
    for k in range(seeds):
        rs = recs[k * len(sigmas):(k + 1) * len(sigmas)]
        j = [int(np.argmin(np.abs(np.array(r["variance"]) - follow))) for r in rs]
        sc = _sigma_c(sigmas, [r["b"][i] for r, i in zip(rs, j)])
        for sg, r, i in zip(sigmas, rs, j):
            floor.extend(uf for bb, uf in zip(r["b"], r["u_final"]) if bb < -RATE_FLOOR)
            rows.append({"seed": k, "sigma": sg, "sigma_c": sc, "b": r["b"][i],
                         "steps_measured": r["steps_measured"][i], "steps_predicted": r["steps_predicted"][i]})
            for d in range(len(r["b"])):
                if r["rate_measured"][d] is not None:
                    rate_pairs.append({"seed": k, "sigma": sg, "direction": d + 1, "b": r["b"][d],
                                       "rate_predicted": r["rate_predicted"][d],
                                       "rate_measured": r["rate_measured"][d]})
    write_csv(out / "data.csv", rows)
    write_csv(out / "rates.csv", rate_pairs)
    report, md = _summary(cfg, rows, rate_pairs, follow, floor)

    def draw(plt):
        f, (a1, a2) = plt.subplots(1, 2, figsize=(9.6, 3.8))
        rp = np.array([[p["rate_predicted"], p["rate_measured"]] for p in rate_pairs])
        strong = np.array([abs(p["b"]) >= RATE_FLOOR for p in rate_pairs])
        a1.scatter(rp[strong, 0], rp[strong, 1], s=10, label=f"|b| >= {RATE_FLOOR:g}")
        a1.scatter(rp[~strong, 0], rp[~strong, 1], s=10, marker="x", label=f"|b| < {RATE_FLOOR:g}")
        lim = [rp.min() * 1.1, rp.max() * 1.1]
        a1.plot(lim, lim, "k--", lw=0.8, label="measured = predicted")
        a1.set_xlabel("predicted rate of u per step")
        a1.set_ylabel("measured (early window)")
        a1.legend(fontsize=7)
        for k in range(seeds):
            rk = [r for r in rows if r["seed"] == k]
            a2.semilogy([r["sigma"] for r in rk], [r["steps_measured"] or np.nan for r in rk], "o",
                        color=f"C{k}", ms=4, label="measured" if k == 0 else None)
            a2.semilogy([r["sigma"] for r in rk], [r["steps_predicted"] or np.nan for r in rk], "-",
                        color=f"C{k}", lw=1, label="predicted" if k == 0 else None)
            if rk[0]["sigma_c"]:
                a2.axvline(rk[0]["sigma_c"], color=f"C{k}", ls=":", lw=0.8)
        a2.set_xlabel("augmentation strength sigma")
        a2.set_ylabel(f"steps to settle (direction of variance ~{follow:g})")
        ex = report["fitted_exponent_measured"]
        a2.set_title("critical slowing down: exponent " + ", ".join(
            f"{side} {ex[side]:.2f}" for side in ("below", "above") if ex[side] is not None)
            + f" (theory {CRITICAL_EXPONENT:g})", fontsize=8)
        a2.legend(fontsize=7)
        f.tight_layout()
        return f

    return report, md, draw


def _summary(cfg, rows, rate_pairs, follow, floor):
    strong = [p for p in rate_pairs if abs(p["b"]) >= RATE_FLOOR]
    errs = [abs(p["rate_measured"] / p["rate_predicted"] - 1.0) for p in strong]
    worst = strong[int(np.argmax(errs))] if errs else None
    within = sum(e <= 0.1 for e in errs)
    fitted, pred_slope = {}, {}
    for side, sign in (("below", -1), ("above", 1)):  # sigma below sigma_c: the direction survives (b > 0)
        sel = [r for r in rows if r["sigma_c"] and np.sign(r["sigma"] - r["sigma_c"]) == sign]
        dist = [abs(r["sigma"] - r["sigma_c"]) for r in sel]
        fitted[side] = _exponent(dist, [r["steps_measured"] for r in sel])
        pred_slope[side] = _exponent(dist, [r["steps_predicted"] for r in sel])
    report = {"figure": "slowing", "protocol": "sgd-constant", "follow_variance": follow,
              "rate_max_relative_error": max(errs) if errs else None, "rate_points": len(strong),
              "rate_points_within_10pct": within,
              "decaying_final_u_range": [min(floor), max(floor)] if floor else None,
              "rate_median_relative_error": float(np.median(errs)) if errs else None,
              "rate_floor_b": RATE_FLOOR, "predicted_exponent": CRITICAL_EXPONENT,
              "fitted_exponent_measured": fitted, "fitted_exponent_of_predicted_times": pred_slope,
              "sigma_c": sorted({r["sigma_c"] for r in rows if r["sigma_c"]}), "points": rows}
    run = cfg["run"]
    md = [f"# Learning dynamics: {run.get('loss')} (beta = {run.get('beta')}), SGD lr = {run['lr']}, N = {run['n']}",
          "",
          f"Early rates of u_i = |W e_i|^2, directions with |b| >= {RATE_FLOOR:g}: " + (
              f"{within} of {len(strong)} (sigma, seed, direction) points within 10% of the prediction "
              f"(median error {np.median(errs):.1%}); the largest error, {max(errs):.1%}, is direction "
              f"{worst['direction']} at sigma = {worst['sigma']:g} (b = {worst['b']:+.3g}, seed {worst['seed']})"
              + "." if errs else "none measured.")
          + (f" Decaying directions (b <= -{RATE_FLOOR:g}) end at u = {min(floor):.2g} to {max(floor):.2g}, "
             f"not 0 (start {run['init_scale'] ** 2:.2g}): a floor that the noise-free "
             "prediction (decay to 0) does not have." if floor else ""), "",
          f"Critical slowing down of the direction of variance ~{follow:g} (sigma_c per seed: "
          + ", ".join(f"{v:.4g}" for v in report["sigma_c"]) + "): fitted exponent of the learning time in "
          "|sigma - sigma_c| " + "; ".join(
              f"{side} sigma_c {fitted[side]:.2f} (predicted times over the same points {pred_slope[side]:.2f})"
              for side in ("below", "above") if fitted[side] is not None and pred_slope[side] is not None)
          + f"; asymptotically {CRITICAL_EXPONENT:g}.", "",
          "| seed | sigma | b | steps measured | steps predicted |", "|---|---|---|---|---|"]
    for r in rows:
        sm = "never" if r["steps_measured"] is None else f"{r['steps_measured']:.0f}"
        sp = "inf" if r["steps_predicted"] is None else f"{r['steps_predicted']:.0f}"
        md.append(f"| {r['seed']} | {r['sigma']:g} | {r['b']:+.3g} | {sm} | {sp} |")
    return report, "\n".join(md)
