"""The lambda sweep of Barlow Twins and VICReg in docs/companion.md, section 6 (issue 16).

Run from the repository root: ``python docs/lambda_sweep.py [--seeds 3]`` (about 2 min).
Prints the Markdown tables of that section: for each lambda, the rank of the embedding
(Barlow: of the output correlation matrix; VICReg: of the embedding covariance;
eigenvalues above 1e-2 of the largest) reached by training from a small random
initialisation for each seed, the number of seeds with dimensional collapse (rank below
d1 = 5) and complete collapse (rank 0), beside the rank of the numerically minimised
expected loss and the derived thresholds of ``minissl.theory.decorrelation``.
"""

from __future__ import annotations

import argparse

import numpy as np

import minissl
from minissl.theory import decorrelation as D

VARIANCES = np.array([4.0, 3.0, 2.0, 1.0, 0.5])
A0, C = np.diag(VARIANCES), np.eye(5)
VIC_EPS = 0.01
TRAIN = dict(variances=VARIANCES, sigma=1.0, n=1024, steps=4000, lr=0.01, warn=False)


def trained_rank(loss, seed, **params):
    r = minissl.simulate(loss, seed=seed, **TRAIN, **params)
    S = r.W @ (r.dataset.A0 + C) @ r.W.T
    if loss == "barlow":
        dn = 1.0 / np.sqrt(np.diag(S))
        S = dn[:, None] * S * dn[None, :]
    spec = np.sort(np.linalg.eigvalsh(S))[::-1]
    return int(np.sum(spec > 1e-2 * spec[0])) if spec[0] > D.COLLAPSED else 0


def sweep(loss, grid, seeds, name, **fixed):
    print(f"| {name} | ranks trained (seeds 0-{seeds - 1}) | dimensional collapse (rank < 5) | complete collapse "
          "| rank of the minimised expected loss |")
    print("|---|---|---|---|---|")
    for label, value in grid:
        ranks = [trained_rank(loss, s, **{name: value}, **fixed) for s in range(seeds)]
        pop = D.population_minimum(loss, A0, C, **{name: value}, **fixed)["rank"]
        print(f"| {label} | {' '.join(map(str, ranks))} | {sum(r < 5 for r in ranks)}/{seeds} | "
              f"{sum(r == 0 for r in ranks)}/{seeds} | {pop} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    lam1 = D.barlow_rank_one_threshold(A0, C, 5)
    vt = D.vicreg_thresholds(A0, C, 5, eps=VIC_EPS)
    print(f"data: variances {VARIANCES.tolist()}, isotropic noise sigma = 1, N = 1024, d1 = 5; "
          f"Adam lr 0.01, 4000 steps (cosine)\n")
    print(f"Barlow Twins: canonical correlations {np.round(D.canonical_correlations(A0, C), 4).tolist()}; "
          f"derived lam_1 = {lam1:.4g}\n")
    grid = [(f"{v:g}", v) for v in (0.0, 1e-3)] + [(f"0.7 lam_1 = {0.7 * lam1:.3g}", 0.7 * lam1),
                                                   (f"1.3 lam_1 = {1.3 * lam1:.3g}", 1.3 * lam1),
                                                   (f"1.6 lam_1 = {1.6 * lam1:.3g}", 1.6 * lam1)]
    grid += [(f"{v:g}", v) for v in (0.01, 0.03, 0.1, 0.3, 1.0)]
    sweep("barlow", grid, args.seeds, "lam")
    print(f"\nVICReg (var 25, cov 1, gamma 1, eps {VIC_EPS:g}): derived inv_1 = {vt['rank_one']:.4g}, "
          f"inv_c = {vt['complete']:.4g}\n")
    i1, ic = vt["rank_one"], vt["complete"]
    grid = [(f"{v:g}", v) for v in (1.0, 5.0, 10.0, 25.0)]
    grid += [(f"0.8 inv_1 = {0.8 * i1:.3g}", 0.8 * i1), (f"1.25 inv_1 = {1.25 * i1:.3g}", 1.25 * i1),
             ("150", 150.0), (f"0.95 inv_c = {0.95 * ic:.4g}", 0.95 * ic), (f"1.05 inv_c = {1.05 * ic:.4g}", 1.05 * ic)]
    sweep("vicreg", grid, args.seeds, "inv", eps=VIC_EPS)


if __name__ == "__main__":
    main()
