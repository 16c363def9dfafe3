"""MLP (Appendix B) speed: training step and landscape-grid throughput, NumPy reference vs Numba.

    python benchmarks/bench_mlp.py

Medians of repeated calls, both engines in the same run. (No GPU path yet.)
"""

from __future__ import annotations

import time

import numpy as np

from minissl import gaussian_data, get_loss
from minissl.data import IsotropicNoise
from minissl.nonlinear import init_mlp, plane_probe, value_and_grad


def median_time(fn, reps=20):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    loss = get_loss("beta", beta=0.5)
    rows = ["| N | widths | NumPy step | Numba step | ratio |", "|---|---|---|---|---|"]
    for n, w in ((128, (16, 16)), (512, (64, 64)), (1024, (64, 64))):
        rng = np.random.default_rng(0)
        mlp = init_mlp(2, w, 2, "tanh", seed=0)
        x1 = rng.standard_normal((n, 2))
        x2 = x1 + rng.standard_normal((n, 2))
        t_np = median_time(lambda: value_and_grad(mlp, loss, x1, x2, engine="numpy"))
        t_nb = median_time(lambda: value_and_grad(mlp, loss, x1, x2, engine="numba"))
        rows.append(f"| {n} | {w} | {t_np * 1e3:.2f} ms | {t_nb * 1e3:.2f} ms | {t_np / t_nb:.1f}x |")
    data = gaussian_data(128, [1.0, 2.0], seed=0)
    mlp = init_mlp(2, (16, 16), 2, "tanh", seed=0)
    r = np.linspace(-1.6, 1.6, 33)
    t0 = time.perf_counter()
    plane_probe(mlp, loss, data.x, IsotropicNoise(1.0, 2), r, draws=16)
    dt = time.perf_counter() - t0
    rows += ["", f"2-D landscape grid (33 x 33 points x 16 noise draws, N = 128, NumPy core): {dt:.2f} s "
             f"({33 * 33 * 16 / dt:,.0f} loss evaluations per second)"]
    print("\n".join(rows))


if __name__ == "__main__":
    main()
