"""Text of ``minissl simulate --loss simsiam|byol`` (from :func:`minissl.comparison.compare_siamese`)."""

from __future__ import annotations


def format_siamese(r):
    s = r["settings"]
    mech = [("predictor", s["predictor"]), ("stop-gradient", s["stop_gradient"])]
    if s["method"] == "byol":
        mech = [("predictor", s["predictor"]), (f"EMA target (ema={s['ema']:g})", True)]
    mech.append(("batch norm", s["batchnorm"]))
    title = {"simsiam": "SimSiam", "byol": "BYOL"}[s["method"]]
    lines = [f"minissl simulate: linear {title} ({s['objective']} objective), "
             + ", ".join(("with " if on else "WITHOUT ") + m for m, on in mech)
             + f"; weight decay {s['weight_decay']:g}",
             f"data: N={s['n']}, d0={s['d0']} -> d1={s['d1']}; augmentation {s['augmentation']}"
             + (f" sigma={s['sigma']:g}" if s["sigma"] is not None else ""),
             f"train: {s['optimizer']} lr={s['lr']:g} ({s['lr_schedule']}), predictor lr x{s['predictor_lr']:g}, "
             f"{s['steps']} steps, fresh noise, seed={s['seed']}  [{s['train_seconds']:.1f} s]", ""]
    pred = r["predicted_eigenvalues"]
    lines.append("  i   learned eig(W^T W)   predicted     F eigenvalue  learned P eig  p_+ (theory)  E-step s/(s+c)")
    for i, lv in enumerate(r["learned_eigenvalues"]):
        cells = [f"  {i + 1:<3} {lv:<20.5g}"]
        if pred is not None:
            cells.append(f"{pred[i]:<13.5g}")
        else:
            cells.append(f"{'n/a':<13}")
        cells.append(f"{r['F_eigenvalues'][i]:<13.4g}" if i < len(r["F_eigenvalues"]) else f"{'':<13}")
        pe = r["learned_predictor_eigenvalues"]
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
    if pred is not None:
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
