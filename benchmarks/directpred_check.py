"""DirectPred against its predicted fixed point / shape and decay, over seeds and N (issue 16).

Run: ``python benchmarks/directpred_check.py [--seeds 3]`` (about 3 min on 2 cores).
Prints the Markdown table of docs/companion.md, section 2 ("DirectPred"): for linear
SimSiam and BYOL with the DirectPred predictor (``minissl.directpred``), scale "none"
(a non-collapsed fixed point) and "max" (Tian et al.'s rule: |W| shrinks, the shape
converges), the largest relative error of ``|W u_j|^2`` (or of the shape) along F's
eigenvectors, the largest error of the predictor along them, and for "max" the relative
error of the measured decay rate ``1 - q``; medians over seeds with (min-max).
"""

from __future__ import annotations

import argparse

import numpy as np

from minissl.siamese import train_siamese

BASE = dict(sigma=1.0, lr=0.05, weight_decay=0.02, directpred=True)
SCALES = {"none": dict(directpred_scale="none", steps=4000, lr_schedule="cosine"),
          "max": dict(directpred_scale="max", steps=2000, lr_schedule="constant")}


def measure(method, scale, n, seed):
    r = train_siamese(method, n=n, seed=seed, **BASE, **SCALES[scale])
    th, c = r.theory, r.checks
    learned = np.asarray(c["shape_along_F"] if scale == "max" else c["w2_along_F"])
    row = {"w2": float(np.max(np.abs(learned / th["w2"] - 1))),
           "p": float(np.max(np.abs(np.asarray(c["p_along_F"]) - th["p"]))),
           "norm": c["norm_ratio"]}
    if scale == "max":
        row["rate"] = (1 - c["decay_per_step"]) / (1 - th["decay_per_step"]) - 1
    return row


def _fmt(vals, spec):
    v = np.asarray(vals)
    return f"{np.median(v):{spec}} ({v.min():{spec}} to {v.max():{spec}})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n", type=int, nargs="+", default=[256, 2048])
    args = ap.parse_args()
    print(f"settings: {BASE}, {SCALES}, variances 0.5..4, {args.seeds} seeds\n")
    print("| method | scale | N | max rel. error of \\|W u_j\\|² (none) or of the shape (max) | max \\|p_j - "
          "theory\\| | rel. error of the decay rate 1 - q (max) | \\|W\\| / \\|W_0\\| |")
    print("|---|---|---|---|---|---|---|")
    for method in ("simsiam", "byol"):
        for scale in ("none", "max"):
            for n in args.n:
                rows = [measure(method, scale, n, seed) for seed in range(args.seeds)]
                rate = _fmt([r["rate"] for r in rows], "+.3f") if scale == "max" else "-"
                print(f"| {method} | {scale} | {n} | {_fmt([r['w2'] for r in rows], '.3f')} | "
                      f"{_fmt([r['p'] for r in rows], '.3f')} | {rate} | {_fmt([r['norm'] for r in rows], '.2g')} |",
                      flush=True)


if __name__ == "__main__":
    main()
