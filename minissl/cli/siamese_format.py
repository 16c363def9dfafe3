"""Text of ``minissl simulate --loss simsiam|byol`` (from :func:`minissl.comparison.compare_siamese`)."""

from __future__ import annotations


_DIRECTPRED_SCOPE = ("prediction: DirectPred's closed form covers the MSE objective without batch norm, a noise "
                     "covariance that commutes with F, at most d1 surviving directions, and for scale max "
                     "constant-lr SGD (--lr-schedule constant) with rho < q^2")


def format_siamese(r):
    s = r["settings"]
    pname = "predictor"
    if s.get("directpred"):
        pname = (f"DirectPred predictor (eps={s['directpred_eps']:g}, rho={s['directpred_rho']:g}, "
                 f"scale {s['directpred_scale']})")
    mech = [(pname, s["predictor"]), ("stop-gradient", s["stop_gradient"])]
    if s["method"] == "byol":
        mech = [(pname, s["predictor"]), (f"EMA target (ema={s['ema']:g})", True)]
    mech.append(("batch norm", s["batchnorm"]))
    title = {"simsiam": "SimSiam", "byol": "BYOL"}[s["method"]]
    lines = [f"minissl simulate: linear {title} ({s['objective']} objective), "
             + ", ".join(("with " if on else "WITHOUT ") + m for m, on in mech)
             + f"; weight decay {s['weight_decay']:g}",
             f"data: N={s['n']}, d0={s['d0']} -> d1={s['d1']}; augmentation {s['augmentation']}"
             + (f" sigma={s['sigma']:g}" if s["sigma"] is not None else ""),
             f"train: {s['optimizer']} lr={s['lr']:g} ({s['lr_schedule']}), "
             + ("" if s.get("directpred") else f"predictor lr x{s['predictor_lr']:g}, ")
             + f"{s['steps']} steps, fresh noise, seed={s['seed']}  [{s['train_seconds']:.1f} s]", ""]
    pred = r["predicted_eigenvalues"]
    along = r.get("along_F", False)
    shape = "shape_steps" in r["checks"]
    if along:  # DirectPred: one row per eigendirection u_j of F
        if shape:
            lines.append(f"  along F's eigenvectors u_j: the shape |W u_j|^2 / max_k |W u_k|^2 (mean over steps "
                         f"{r['checks']['shape_steps'][0]}-{r['checks']['shape_steps'][1]}); |W| shrinks, the shape "
                         "converges")
        else:
            lines.append("  along F's eigenvectors u_j: |W u_j|^2 and the predictor along W u_j")
        lines.append(f"  j   learned {'shape' if shape else '|W u_j|^2':<13} predicted     F eigenvalue  "
                     "learned P      p (theory)    E-step s/(s+c)")
    else:
        lines.append("  i   learned eig(W^T W)   predicted     F eigenvalue  learned P eig  p_+ (theory)  E-step s/(s+c)")
    rows = r["learned_along_F"] if along else r["learned_eigenvalues"]
    pe = r["learned_predictor_along_F"] if along else r["learned_predictor_eigenvalues"]
    for i, lv in enumerate(rows):
        cells = [f"  {i + 1:<3} {lv:<20.5g}"]
        if pred is not None:
            cells.append(f"{pred[i]:<13.5g}")
        else:
            cells.append(f"{'n/a':<13}")
        cells.append(f"{r['F_eigenvalues'][i]:<13.4g}" if i < len(r["F_eigenvalues"]) else f"{'':<13}")
        cells.append(f"{pe[i]:<14.4g}" if i < len(pe) and s["predictor"] else f"{'-':<14}")
        if r["predicted_predictor"] is not None:
            cells.append(f"{r['predicted_predictor'][i]:<13.4g} {r['estep_optimum'][i]:<.4g}")
        lines.append(" ".join(cells))
    lines.append("")
    c = r["checks"]
    if c["complete_collapse"]:
        lines.append(f"COMPLETE COLLAPSE: |W| / |W_0| = {c['norm_ratio']:.3g}")
    else:
        lines.append(f"no complete collapse: |W| / |W_0| = {c['norm_ratio']:.3g}; stable rank of the embedding "
                     f"covariance {c['stable_rank']:.3f}" + (" (dimensional collapse to one direction)"
                                                           if c["stable_rank"] < 1.05 and s["d1"] > 1 else ""))
    if r["predicted_collapse"]:
        lines.append(f"prediction: complete collapse ({r['predicted_collapse']})")
    if shape:
        meas, q = r["measured_decay_per_step"], r["predicted_decay_per_step"]
        lines.append(f"|W| shrinks per step by {meas:.6g} (measured)" if meas is not None else
                     "|W| decay per step: too few snapshots to measure")
        if q is not None and meas is not None:
            lines[-1] += f", {q:.6g} (predicted; rate 1 - q off by {(1 - meas) / (1 - q) - 1:+.1%})"
        if pred is not None:
            lines.append(f"shape rank (> {r['rank_tol']:g} x largest): learned {r['shape_rank']}, predicted "
                         f"{r['predicted_rank']}; largest shape error {r['max_eig_error']:.1%} (floor "
                         f"{r['agreement_floor']:.3g})")
        else:
            lines.append(_DIRECTPRED_SCOPE)
    elif pred is not None:
        lines.append(f"rank (eigenvalues > {r['rank_tol']:g} x largest; 0 after complete collapse): learned "
                     f"{r['learned_rank']}, predicted {r['predicted_rank']}"
                     + (f"; largest eigenvalue error {r['max_eig_error']:.1%} (each against its own "
                        f"prediction, floor {r['agreement_floor']:.3g})" if "max_eig_error" in r else ""))
    elif r["predicted_alive"] is not None and s["predictor"] and s["stop_gradient"]:
        lines.append("prediction: without weight decay W is not pinned (w^2 - p^2 / rho is conserved); "
                     "use --weight-decay > 0 for a predicted spectrum")
    elif r["predicted_alive"] is not None:
        lines.append("prediction: W does not move along directions with no augmentation noise and no weight "
                     "decay (c + eta = 0); the other directions decay to 0")
    elif s.get("directpred"):
        lines.append(_DIRECTPRED_SCOPE)
    else:
        lines.append("prediction: the closed form covers the MSE objective without batch norm and a noise "
                     "covariance that commutes with F")
    if "principal_angles_deg" in c:
        ang = c["principal_angles_deg"]
        lines.append(f"principal angles between W's row space and F's top {len(ang)} eigenvectors (deg): "
                     + ", ".join(f"{a:.2f}" for a in ang)
                     + f"; share of |W|^2 outside that eigenspace {c['energy_outside_top']:.2g}")
    if "predictor_gap" in c:
        lines.append(f"predictor vs E-step optimum A* = Sigma21 Sigma11^-1: |P - A*| / |A*| = {c['predictor_gap']:.3g}"
                     " (O(weight decay) at the fixed point)")
    return "\n".join(lines)
