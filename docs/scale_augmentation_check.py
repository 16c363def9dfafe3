"""The measurement behind docs/errata.md E10's last paragraph: how far the scale augmentation's
quartic landscape is from training, against the expansion parameter u.

    python docs/scale_augmentation_check.py      # about 1 min on 2 cores

Exact beta-InfoNCE, views s x_hat with s ~ Exp(mean 1), d0 = 4 (variances 0.5, 1, 1.5, 2),
N = 256, Adam lr 3e-3 (cosine), 6000 steps, seeds 0 and 1. Prints one markdown row per run:
u = 2 Tr[W Sigma W^T], the largest error of an eigenvalue against its own prediction
(minissl.metrics.eigenvalue_agreement), learned/predicted rank and whether the convergence
diagnostics pass.
"""

import warnings

import minissl
from minissl.comparison import compare


def main():
    print("| beta | seed | u | largest eigenvalue error | rank learned / predicted | converged |")
    print("|---|---|---|---|---|---|")
    for beta in (0.53, 0.55, 0.6, 0.75):
        for seed in (0, 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", minissl.ConvergenceWarning)
                res = minissl.simulate(minissl.get_loss("beta", beta=beta), n=256, variances=[0.5, 1.0, 1.5, 2.0],
                                       augmentation="scale", scale_b=1.0, steps=6000, seed=seed)
            r = compare(res)
            print(f"| {beta:g} | {seed} | {r['expansion_u']:.3f} | {r['max_eig_error']:.0%} | "
                  f"{r['learned_rank']} / {r['predicted_rank']} | {'yes' if res.converged else 'no'} |")


if __name__ == "__main__":
    main()
