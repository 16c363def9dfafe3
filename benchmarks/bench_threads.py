"""Threading under real conditions: `minissl simulate` (defaults) idle and beside busy processes.

    python benchmarks/bench_threads.py [--reps 3] [--out benchmarks/threads.md]

Each variant runs the default `minissl simulate --json FILE` in a fresh process (warm Numba
cache: one untimed run first) with its environment, reps times, idle and with two busy
background processes (pure-Python spin loops, one per core of a 2-core machine). Reported:
the run's own training time (`settings.train_seconds` of the JSON) and the whole command's
wall time, median [min-max], and the ratio of each to the single-thread run under the same
load. Variants:

* ``default``: what minissl does without any setting of the user's (since issue 13: a short
  OpenMP spin, ``minissl._config.THREAD_SPIN``);
* ``1 thread``: ``NUMBA_NUM_THREADS=1``;
* ``omp active``: ``OMP_WAIT_POLICY=ACTIVE`` (GNU OpenMP threads spin at barriers);
* ``omp passive``: ``OMP_WAIT_POLICY=PASSIVE``;
* ``workqueue``: ``NUMBA_THREADING_LAYER=workqueue``;
* ``spin 1k/3k/10k/100k``: ``GOMP_SPINCOUNT`` (how long GNU OpenMP threads spin before sleeping).

Numbers from one run of this script only are comparable (the machine's speed drifts).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

VARIANTS = {
    "default": {},
    "1 thread": {"NUMBA_NUM_THREADS": "1"},
    "omp active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "omp passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    "spin 1k": {"GOMP_SPINCOUNT": "1000"},
    "spin 3k": {"GOMP_SPINCOUNT": "3000"},
    "spin 10k": {"GOMP_SPINCOUNT": "10000"},
    "spin 100k": {"GOMP_SPINCOUNT": "100000"},
}
_CLEAR = ("NUMBA_NUM_THREADS", "OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")


def run_once(extra, sim_args=()):
    env = {k: v for k, v in os.environ.items() if k not in _CLEAR}
    env.update(extra)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.json")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from minissl.cli import main; main()", "simulate", *sim_args, "--json", path],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        with open(path) as fh:
            train = json.load(fh)["settings"]["train_seconds"]
    return train, wall


def busy(n):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def fmt(xs):
    return f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--simulate-args", default="", help="extra options of minissl simulate, e.g. '--n 512'")
    args = ap.parse_args()
    names = args.variants.split(",")
    sim = tuple(args.simulate_args.split())
    run_once({}, sim)  # warm the cache
    lines = [f"`minissl simulate {' '.join(sim) or '(defaults)'}`, {os.cpu_count()} cores, {args.reps} runs each, "
             f"{time.strftime('%Y-%m-%d')}; seconds, median [min-max]; ratio: median over the 1-thread median "
             "under the same load.", "",
             "| load | variant | training (s) | ratio | whole command (s) | ratio |", "|---|---|---|---|---|---|"]
    for load in (0, 2):
        procs = busy(load)
        try:
            time.sleep(1.0)
            res = {}
            for _ in range(args.reps):  # interleave variants so drift hits them alike
                for name in names:
                    res.setdefault(name, []).append(run_once(VARIANTS[name], sim))
        finally:
            for p in procs:
                p.kill()
        base_t = statistics.median(r[0] for r in res.get("1 thread", res[names[0]]))
        base_w = statistics.median(r[1] for r in res.get("1 thread", res[names[0]]))
        for name in names:
            tr = [r[0] for r in res[name]]
            wl = [r[1] for r in res[name]]
            lines.append(f"| {'idle' if load == 0 else f'{load} busy processes'} | {name} | {fmt(tr)} | "
                         f"{statistics.median(tr) / base_t:.2f} | {fmt(wl)} | {statistics.median(wl) / base_w:.2f} |")
        print("\n".join(lines[-len(names):]), flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
