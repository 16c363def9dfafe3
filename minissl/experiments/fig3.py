"""Fig. 3 of Ziyin et al. (2023): phase diagram (top) and downstream ridge regression (bottom).

Data ``x = (content, style)``, label ``y = x_1``; beta-InfoNCE with beta = 1/2 and the
structured augmentation ``sigma R xi``, ``R = diag(sqrt(1 - theta), sqrt(theta))``.

Top: the phase of the closed-form global minimum on a (sigma, theta) grid, checked at a
coarse set of points against exact-loss training. Bottom: the population error of the
ridge regressor ``min_G E|G z - y|^2 + lam |G|^2`` on ``z = W x_hat`` vs sigma, for
isotropic (theta = 0.5) and style-aligned (theta = 1) augmentation, from the learned W
and from the closed-form W.
"""

from __future__ import annotations

import numpy as np

from ..data import StructuredNoise
from ..theory import PHASE_LABELS, format_phase_map, global_minimum, landscape_for, phase_diagram
from .common import point_cache, settings_loss, settings_params, simulate_kwargs, write_csv
from .spectra import spectrum_record

__all__ = ["fig3_phase", "ridge_error"]


def ridge_error(A0, lam, *, W=None, WtW=None, content=0):
    """Population MSE of the ridge regressor of ``y = x[content]`` on ``z = W x``.

    ``G = v^T (M + lam I)^{-1}`` with ``M = W A0 W^T``, ``v = W A0 e``; returns
    ``E[(G z - y)^2] = a - 2 G v + G M G^T``. Depends on W only through ``W^T W`` (a
    rotation of z changes nothing), so give exactly one of ``W`` or ``WtW``.
    """
    if (W is None) == (WtW is None):
        raise ValueError("ridge_error: give exactly one of W= or WtW=.")
    A0 = np.asarray(A0, dtype=np.float64)
    if W is None:
        w, U = np.linalg.eigh(np.asarray(WtW, dtype=np.float64))
        W = (U * np.sqrt(np.clip(w, 0.0, None))).T  # a W with W^T W = WtW
    W = np.asarray(W, dtype=np.float64)
    M = W @ A0 @ W.T
    e = np.zeros(A0.shape[0])
    e[content] = 1.0
    v = W @ A0 @ e
    G = np.linalg.solve(M + lam * np.eye(M.shape[0]), v)
    return float(A0[content, content] - 2 * G @ v + G @ M @ G)


def _phase_of(ev_diag, tol, floor=1e-10):
    """Phase code from diag(W^T W): a direction is alive above ``tol`` x the largest and above
    the absolute ``floor`` (collapsed runs decay towards 0 without reaching it)."""
    alive = ev_diag > max(tol * float(ev_diag.max()), floor)
    code = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 4}
    return code[(bool(alive[0]), bool(alive[1]))]


def fig3_phase(cfg, out, seeds, engine, protocol, progress):
    fig, run = cfg["figure"], cfg["run"]
    base = simulate_kwargs(run, engine)
    base.update({"augmentation": "structured", "content_dims": 1})
    a = np.array(base["variances"])
    lam = float(fig.get("ridge", 1e-3))
    loss = settings_loss(run)
    beta = loss.beta
    sig_grid = np.linspace(*[float(x) for x in fig["phase_sigmas"][:2]], int(fig["phase_sigmas"][2]))
    th_grid = np.linspace(*[float(x) for x in fig["phase_thetas"][:2]], int(fig["phase_thetas"][2]))
    pd = phase_diagram(sig_grid, th_grid, loss=loss, variances=a)
    # exact-loss checks of the phase at coarse points, and the ridge curves
    check_pts = [(float(s), float(t)) for s in fig["check_sigmas"] for t in fig["check_thetas"]]
    ridge_sig = [float(s) for s in fig["ridge_sigmas"]]
    specs = [(f"phase-s{s!r}-t{t!r}-seed{k}", {**base, "sigma": s, "theta": t, "seed": k})
             for s, t in check_pts for k in range(seeds)]
    specs += [(f"ridge-t{t!r}-s{s!r}-seed{k}", {**base, "sigma": s, "theta": t, "seed": k})
              for t in (0.5, 1.0) for s in ridge_sig for k in range(seeds)]

    def evaluate(res, spec):
        rec = spectrum_record(res, spec)
        rec["diag"] = np.diag(res.W.T @ res.W).tolist()
        rec["ridge_error"] = ridge_error(np.diag(a), lam, W=res.W)
        # theory for the same training set: closed-form W^T W from the run's empirical A0
        land = landscape_for(loss, res.A0_model, res.C, n=res.dataset.n, mean=res.mean_model)
        rec["ridge_theory"] = ridge_error(np.diag(a), lam, WtW=global_minimum(land, 2).WtW)
        return rec

    evaluate.__name__ = "fig3_evaluate"
    recs = point_cache(out / "points", run, progress, protocol, evaluate=evaluate, context={"ridge": lam},
                       executor=out.executor).run(specs)
    by_key = {key: rec for (key, _), rec in zip(specs, recs)}

    phase_rows, agree, near = [], 0, 0
    for s, t in check_pts:
        rs = [by_key[f"phase-s{s!r}-t{t!r}-seed{k}"] for k in range(seeds)]
        learned = _phase_of(np.mean([r["diag"] for r in rs], axis=0), 1e-3)
        land = landscape_for(loss, np.diag(a), StructuredNoise(s, t, 2, 1).C)
        predicted = _phase_of(np.diag(global_minimum(land, 2).WtW), 1e-9, floor=0.0)
        sc = np.sqrt(beta * a[0] / ((1 - beta) * (1 - t))) if t < 1 else np.inf
        ss = np.sqrt(beta * a[1] / ((1 - beta) * t)) if t > 0 else np.inf
        close = min(abs(s / sc - 1), abs(s / ss - 1)) < 0.1
        near += close
        agree += learned == predicted
        phase_rows.append({"sigma": s, "theta": t, "learned_phase": PHASE_LABELS[learned],
                           "predicted_phase": PHASE_LABELS[predicted], "within_10pct_of_boundary": close,
                           "converged": all(r["converged"] for r in rs)})
    ridge_rows = []
    for t in (0.5, 1.0):
        for s in ridge_sig:
            rs = [by_key[f"ridge-t{t!r}-s{s!r}-seed{k}"] for k in range(seeds)]
            ridge_rows.append({"theta": t, "sigma": s,
                               "ridge_error_learned": float(np.mean([r["ridge_error"] for r in rs])),
                               "ridge_error_theory": float(np.mean([r["ridge_theory"] for r in rs])),
                               "converged": all(r["converged"] for r in rs)})
    rows = [{"kind": "phase", **r, "ridge_error_learned": "", "ridge_error_theory": ""} for r in phase_rows]
    rows += [{"kind": "ridge", "sigma": r["sigma"], "theta": r["theta"], "learned_phase": "", "predicted_phase": "",
              "within_10pct_of_boundary": "", "converged": r["converged"],
              "ridge_error_learned": r["ridge_error_learned"], "ridge_error_theory": r["ridge_error_theory"]}
             for r in ridge_rows]
    write_csv(out / "data.csv", rows)
    write_csv(out / "phase_grid.csv", [{"theta": float(t), "sigma": float(s), "phase": PHASE_LABELS[pd.phase[i, j]]}
                                       for i, t in enumerate(th_grid) for j, s in enumerate(sig_grid)])
    iso = [r for r in ridge_rows if r["theta"] == 0.5]
    sty = [r for r in ridge_rows if r["theta"] == 1.0]
    rerr = max(abs(r["ridge_error_learned"] - r["ridge_error_theory"]) for r in ridge_rows)
    report = {"figure": "fig3", **settings_params(loss, run), "variances": a.tolist(), "ridge_lambda": lam,
              "phase_agreement": f"{agree}/{len(phase_rows)}", "points_near_boundary": near,
              "phase_points": phase_rows, "ridge": ridge_rows, "max_abs_ridge_error_difference": rerr,
              "isotropic_error_first_last": [iso[0]["ridge_error_learned"], iso[-1]["ridge_error_learned"]],
              "style_error_first_last": [sty[0]["ridge_error_learned"], sty[-1]["ridge_error_learned"]],
              "all_converged": all(r["converged"] for r in phase_rows + ridge_rows),
              "sigma_content_boundary": pd.as_dict()["sigma_content"], "sigma_style_boundary": pd.as_dict()["sigma_style"],
              "thetas": th_grid.tolist()}
    md = [f"# Fig. 3: beta-InfoNCE beta = {beta:g}, variances (content, style) = {a.tolist()}", "",
          "## Top: phase diagram (closed-form global minimum)", "", "```", format_phase_map(pd), "```", "",
          f"Exact-loss training at {len(phase_rows)} points: learned phase = predicted phase at {agree} "
          f"({near} of the points lie within 10% of a boundary).", "",
          "| sigma | theta | learned | predicted | near boundary |", "|---|---|---|---|---|"]
    for r in phase_rows:
        md.append(f"| {r['sigma']:g} | {r['theta']:g} | {r['learned_phase']} | {r['predicted_phase']} | "
                  f"{'yes' if r['within_10pct_of_boundary'] else ''} |")
    md += ["", f"## Bottom: ridge regression (lambda = {lam:g}) of y = x_content on z = W x", "",
           "Theory: the closed-form W of each run's own training set (empirical A0), evaluated like the learned W "
           "on the population.", "",
           "| sigma | isotropic: learned | theory | style-aligned: learned | theory |", "|---|---|---|---|---|"]
    for ri, rs_ in zip(iso, sty):
        md.append(f"| {ri['sigma']:g} | {ri['ridge_error_learned']:.3g} | {ri['ridge_error_theory']:.3g} | "
                  f"{rs_['ridge_error_learned']:.3g} | {rs_['ridge_error_theory']:.3g} |")
    md += ["", f"Max |learned - theory| of the ridge error: {rerr:.3g}."]

    def draw(plt):
        f, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 3.8), gridspec_kw={"wspace": 0.75})
        im = ax1.pcolormesh(sig_grid, th_grid, pd.phase, shading="nearest", cmap="viridis", vmin=0, vmax=4)
        cb = f.colorbar(im, ax=ax1, ticks=range(5))
        cb.ax.set_yticklabels(PHASE_LABELS, fontsize=6)
        for r in phase_rows:
            ax1.plot(r["sigma"], r["theta"], "w^" if r["learned_phase"] == r["predicted_phase"] else "rx", ms=5)
        ax1.set_xlabel("sigma")
        ax1.set_ylabel("theta")
        ax1.set_title("phase (theory); markers: exact-loss runs", fontsize=8)
        for rr, lab in ((iso, "isotropic theta=0.5"), (sty, "style theta=1")):
            ax2.plot([r["sigma"] for r in rr], [r["ridge_error_learned"] for r in rr], "o", label=f"{lab}, learned")
            ax2.plot([r["sigma"] for r in rr], [r["ridge_error_theory"] for r in rr], "-", label=f"{lab}, theory")
        ax2.set_xlabel("sigma")
        ax2.set_ylabel("downstream ridge MSE")
        ax2.legend(fontsize=7)
        return f

    return report, "\n".join(md), draw
