"""Measure each non-contrastive mechanism over several seeds (issue 7's figures).

Run: ``python benchmarks/siamese_mechanisms.py [--seeds 5]`` (about 1 min on 2 cores).
For every variant: how many seeds end in complete collapse (|W| / |W_0| < 1e-3), the
embedding covariance's stable rank, and, where the theory applies (MSE, no BN), the
largest relative error of the alive eigenvalues of W^T W against the derived fixed
point, the largest principal angle to F's top eigenvectors (trivially small when 2k > d0), the
share of |W|^2 outside that eigenspace (not trivial), and the predictor's distance
to the E-step optimum next to its predicted O(eta) value.
"""

from __future__ import annotations

import argparse

import numpy as np

from minissl.siamese import train_siamese

BASE = dict(sigma=1.0, steps=8000, lr=0.05, lr_schedule="cosine", weight_decay=0.05)
VARIANTS = [
    ("SimSiam (predictor + stop-grad)", dict(method="simsiam")),
    ("BYOL (predictor + EMA 0.99)", dict(method="byol")),
    ("SimSiam, no predictor", dict(method="simsiam", predictor=False)),
    ("SimSiam, no stop-gradient", dict(method="simsiam", stop_gradient=False)),
    ("BYOL, no predictor", dict(method="byol", predictor=False, lr_schedule="constant")),
    ("SimSiam, no predictor, BN", dict(method="simsiam", predictor=False, batchnorm=True)),
    ("SimSiam + BN", dict(method="simsiam", batchnorm=True)),
    ("SimSiam, cosine objective", dict(method="simsiam", objective="cosine")),
    ("SimSiam, cosine, no predictor", dict(method="simsiam", objective="cosine", predictor=False)),
    ("SimSiam, weight decay 0.005", dict(method="simsiam", weight_decay=0.005)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    print(f"settings: {BASE}, default data (variances 0.5..4, N = 256), {args.seeds} seeds\n")
    print("| variant | complete collapse | stable rank of Sigma_z | alive (learned per seed / theory) | max rel. "
          "error of eigenvalues alive in both | max principal angle (deg) | share of |W|² outside F's top "
          "eigenspace | |P - A*|/|A*| (predicted) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kw in VARIANTS:
        rows = []
        for seed in range(args.seeds):
            r = train_siamese(**{**BASE, **kw, "seed": seed})
            th = r.theory
            # the stable rank of a completely collapsed (W ~ 0) embedding means nothing: omitted
            row = {"cc": r.checks["complete_collapse"],
                   "sr": None if r.checks["complete_collapse"] else r.checks["stable_rank"],
                   "alive": int(np.sum(r.eigenvalues > 1e-3 * max(r.eigenvalues[0], 1e-300)))
                   if not r.checks["complete_collapse"] else 0}
            if th is not None and th["collapse"] is None:
                a = int(np.sum(th["alive"]))
                row["th_alive"] = a
                k = min(a, row["alive"])  # directions alive in both (a weak one can fall into w = 0)
                row["err"] = float(np.max(np.abs(r.eigenvalues[:k] / th["w2_sorted"][:k] - 1))) if k else 0.0
                row["ang"] = max(r.checks.get("principal_angles_deg", [np.nan]))
                row["out"] = r.checks.get("energy_outside_top", np.nan)
                al = th["alive"]
                row["gap"] = r.checks.get("predictor_gap")
                row["gap_pred"] = float(np.linalg.norm((th["estep"] - th["p"])[al]) / np.linalg.norm(th["estep"][al]))
            elif th is not None:
                row["th_alive"] = 0
            rows.append(row)

        def col(k, fmt):
            v = [r_[k] for r_ in rows if k in r_ and r_[k] is not None]
            if not v:
                return "-"
            return fmt.format(np.median(v)) + (f" ({fmt.format(min(v))}-{fmt.format(max(v))})" if len(v) > 1 else "")

        cc = sum(r_["cc"] for r_ in rows)
        th_alive = rows[0].get("th_alive", "-")
        alive = "/".join(str(r_["alive"]) for r_ in rows)
        gap = col("gap", "{:.3f}")
        if "gap_pred" in rows[0]:
            gap += f" ({rows[0]['gap_pred']:.3f})"
        print(f"| {name} | {cc}/{len(rows)} | {col('sr', '{:.3f}')} | {alive} / {th_alive} | {col('err', '{:.3g}')} "
              f"| {col('ang', '{:.2f}')} | {col('out', '{:.1e}')} | {gap} |")


if __name__ == "__main__":
    main()
