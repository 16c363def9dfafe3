"""Sweep throughput: the embedded executor vs a 2-worker Dask LocalCluster (issue 15).

Run:  python benchmarks/bench_sweep.py [--reps 3] [--load K] [--out benchmarks/sweep.md]

Three workloads, each a fresh store per repetition (nothing reused), after one untimed warm-up
per executor (Numba kernels compiled or loaded from the cache, worker processes started):

* **small**: ``simulate`` beta-InfoNCE, d0 = d1 = 5, N = 256, 400 steps, 16 points (4 sigma x 4 seeds);
* **large**: ``simulate`` beta-InfoNCE, d0 = d1 = 5, N = 2048, 60 steps, 4 points;
* **theory**: ``theory`` (minissl theory point), 40 points of a few tens of ms each.

Each workload is also run **directly** (``run_points`` on one point at a time in this process: no
store, no executor, no batching), the baseline of the *overhead per point*: wall time per point
of an executor minus that of the direct loop (negative where batching or parallel workers win).
Reported: points per second (median over ``--reps``, with min-max) and the wall time per point.
``--load K`` runs K busy processes (``while True: pass``) beside the timings. Needs the ``dist``
extra (``pip install -e ".[dist]"``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

WORKLOADS = {
    "small": ("simulate", {"loss": "beta", "beta": 0.5, "n": 256, "steps": 400},
              {"sigma": [0.5, 1.0, 1.5, 2.0], "seed": [0, 1, 2, 3]}),
    "large": ("simulate", {"loss": "beta", "beta": 0.5, "n": 2048, "steps": 60}, {"seed": [0, 1, 2, 3]}),
    "theory": ("theory", {"loss": "beta"}, {"sigma": [0.25 * k for k in range(1, 11)], "beta": [0.3, 0.5, 0.7, 0.9]}),
}


def _points(command, fixed, grid):
    from minissl.cli.sweep_spec import parse_spec

    spec = parse_spec({"command": command, "fixed": fixed, "grid": grid})
    return spec.command, [(spec.key(o), o) for _, o in spec.points()]


def time_sweep(executor, command, pts):
    """Wall seconds of one sweep of ``pts`` into a fresh store."""
    from minissl.cli.points import batch_group, run_points
    from minissl.sweep import Store, run_sweep

    folder = tempfile.mkdtemp(prefix="bench-sweep-")
    try:
        with Store(folder) as store:
            t0 = time.perf_counter()
            out = run_sweep(command, pts, store, executor, run_points, group=batch_group, progress=False)
            wall = time.perf_counter() - t0
        assert out.computed == len(pts) and not out.failed, out
        return wall
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def time_direct(command, pts):
    """Wall seconds of computing ``pts`` one at a time with run_points (the baseline)."""
    from minissl.cli.points import run_points

    t0 = time.perf_counter()
    for _, o in pts:
        [(status, _)] = run_points(command, [o])
        assert status == "ok"
    return time.perf_counter() - t0


def bench(reps, workers):
    from minissl.sweep import DaskExecutor, Embedded

    rows = []
    t0 = time.perf_counter()
    dask = DaskExecutor("local", workers=workers)
    start = time.perf_counter() - t0
    executors = {"embedded": Embedded(), f"dask LocalCluster ({workers} workers)": dask}
    try:
        for name, (command, fixed, grid) in WORKLOADS.items():
            command, pts = _points(command, fixed, grid)
            time_direct(command, pts)  # warm-up
            walls = [time_direct(command, pts) for _ in range(reps)]
            rate = [len(pts) / w for w in walls]
            base = statistics.median(walls) / len(pts)
            rows.append((name, "direct (baseline)", len(pts), statistics.median(rate), min(rate), max(rate), base,
                         None))
            for ex_name, ex in executors.items():
                time_sweep(ex, command, pts)  # warm-up: compile / load, start workers' imports
                walls = [time_sweep(ex, command, pts) for _ in range(reps)]
                rate = [len(pts) / w for w in walls]
                per = statistics.median(walls) / len(pts)
                rows.append((name, ex_name, len(pts), statistics.median(rate), min(rate), max(rate), per, per - base))
    finally:
        dask.close()
    return rows, start


def machine():
    import numba

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, numba {numba.__version__}, Numba threads {numba.get_num_threads()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--load", type=int, default=0, help="busy background processes during the timings")
    ap.add_argument("--out", default=None, help="write the Markdown table here (else print it)")
    args = ap.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        rows, start = bench(args.reps, args.workers)
    finally:
        for p in busy:
            p.kill()
    lines = [f"# Sweep throughput: embedded vs Dask LocalCluster", "",
             f"`python benchmarks/bench_sweep.py --reps {args.reps} --workers {args.workers}"
             + (f" --load {args.load}`, {args.load} busy background processes" if args.load else "`, idle")
             + f"; {machine()}. Medians over {args.reps} sweeps into fresh stores, after one warm-up each; "
             f"LocalCluster start-up {start:.1f} s (not in the rates).", "",
             "| workload | executor | points | points/s (median) | min - max | wall s per point | "
             "overhead s per point |",
             "|---|---|---|---|---|---|---|"]
    for name, ex, n, med, lo, hi, per, over in rows:
        lines.append(f"| {name} | {ex} | {n} | {med:.3g} | {lo:.3g} - {hi:.3g} | {per:.3g} | "
                     + ("-" if over is None else f"{over:+.3g}") + " |")
    lines += ["", "Workloads: " + "; ".join(
        f"**{k}** `{c}` {f} x grid {g}" for k, (c, f, g) in WORKLOADS.items()) + "."]
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
