"""Benchmark: exact InfoNCE gradient step, NumPy reference vs Numba vs (optional) PyTorch and JAX.

Run:  python benchmarks/bench_infonce.py [--quick] [--load K] [--out benchmarks/results.md] [--readme README.md]

Measures, in one run on this machine:
* the float64 / float32 matmul peak (best of several 2048 x 2048 products);
* start-up in fresh processes: ``import minissl``, the first ``minissl simulate`` on an
  empty Numba cache and the next one, and peak resident memory (the child's ``VmHWM``) of those and
  of InfoNCE steps at N = 2048 and 4096;
* per-step time of value-and-gradient of InfoNCE (Eq. 1) for a linear model, d = 32,
  N in {128, 512, 2048, 4096}, float64 and float32: NumPy reference, Numba engine, PyTorch
  CPU autograd when ``torch`` is importable (install ``torch==2.13.0`` for this only) and a
  ``jax.jit`` of the same loss and gradient when ``jax`` is (``pip install jax``); neither is
  ever a dependency of minissl. ``--load K`` runs these timings beside K busy processes;
* a whole training run (Adam, fresh noise every step): the compiled loop against the
  Python loop with the NumPy reference;
* sweep throughput: complete d = 2 (and d = 8) effective-landscape descents per second
  (``minissl.landscape.descend_batch``, to gradient norm < 1e-8), and small training runs
  per second with ``minissl.simulate_batch`` (parallel across runs) against one
  ``simulate`` after another.

Each figure is the median of several repetitions after a warm-up (compilation excluded and
reported separately). Engines are timed in separate phases with a pause between them,
because OpenBLAS, Numba and PyTorch keep their thread pools spinning for a while after
work, and two pools on two cores slow each other down several-fold. GFLOP/s use the cost
model ``6 N^2 d + 8 N d^2 + 7 N^2`` (each exp counted once; the direct computation's flops, so
Numba's symmetric kernel, which executes ``4 N^2 d`` of the ``6 N^2 d``, shows an effective rate).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import minissl  # noqa: E402
from minissl._io import atomic_write_text  # noqa: E402
from minissl.losses import kernels  # noqa: E402

D = 32


def flops(n, d=D):
    return 6 * n * n * d + 8 * n * d * d + 7 * n * n


def median_time(fn, reps, min_seconds=0.0):
    fn()
    ts = []
    start = time.perf_counter()
    while len(ts) < reps or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), (min(ts), max(ts))


def _cell(row, impl):
    """``median ms [min–max]`` of one implementation in a result row, or n/a."""
    t = row[impl]
    if not t:
        return "n/a"
    lo, hi = row["spread"][impl]
    digits = 3 if t < 0.01 else 2
    return f"{t * 1e3:.{digits}f} ms [{lo * 1e3:.{digits}f}–{hi * 1e3:.{digits}f}]"


def pause():
    time.sleep(0.5)


def matmul_peak(dtype, n=2048, reps=5):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)).astype(dtype)
    a @ a
    best = min(median_time(lambda: a @ a, 1)[0] for _ in range(reps))
    return 2 * n**3 / best / 1e9


def problem(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    W = (0.1 * rng.normal(size=(D, D))).astype(dtype)
    x1 = rng.normal(size=(n, D)).astype(dtype)
    x2 = (x1 + 0.5 * rng.normal(size=(n, D))).astype(dtype)
    return W, x1, x2


def torch_step_fn(n, dtype):
    import torch

    tdt = torch.float64 if dtype == np.float64 else torch.float32
    W, x1, x2 = (torch.tensor(a, dtype=tdt) for a in problem(n, dtype))
    W.requires_grad_(True)
    eye = torch.eye(n, dtype=torch.bool)

    def step():
        z1 = x1 @ W.T
        z2 = x2 @ W.T
        pos = ((z1 - z2) ** 2).sum(1)
        d11 = torch.cdist(z1, z1) ** 2
        logits = torch.cat([(-0.5 * d11).masked_fill(eye, float("-inf")), (-0.5 * pos)[:, None]], 1)
        loss = (0.5 * pos + torch.logsumexp(logits, 1)).mean()
        W.grad = None
        loss.backward()
        return loss.detach().item(), W.grad.numpy().copy()

    return step


def jax_step_fn(n, dtype):
    """The same loss and gradient in JAX, ``jit``-compiled (benchmark-only install: ``pip install jax``)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    W, x1, x2 = (jnp.asarray(a) for a in problem(n, dtype))
    eye = jnp.eye(n, dtype=bool)

    def loss(W):
        z1 = x1 @ W.T
        z2 = x2 @ W.T
        pos = ((z1 - z2) ** 2).sum(1)
        sq = (z1 * z1).sum(1)
        d11 = sq[:, None] + sq[None, :] - 2.0 * z1 @ z1.T
        logits = jnp.concatenate([jnp.where(eye, -jnp.inf, -0.5 * d11), (-0.5 * pos)[:, None]], 1)
        return (0.5 * pos + jax.scipy.special.logsumexp(logits, 1)).mean()

    f = jax.jit(jax.value_and_grad(loss))

    def step():
        v, g = f(W)
        g.block_until_ready()
        return float(v), np.asarray(g)

    return step


def bench_steps(sizes, reps, have_torch, have_jax=False):
    rows = []
    for dtype in (np.float64, np.float32):
        for n in sizes:
            W, x1, x2 = problem(n, dtype)
            ref = minissl.get_loss("infonce", engine="numpy")
            fast = minissl.get_loss("infonce", engine="numba")
            pause()
            t_fast, s_fast = median_time(lambda: fast.value_and_grad_unchecked(W, x1, x2), reps, 0.5)
            v_fast, g_fast, _ = fast.value_and_grad_unchecked(W, x1, x2)
            pause()
            r_reps = max(3, reps // (4 if n >= 2048 else 1))
            t_ref, s_ref = median_time(lambda: ref.value_and_grad_unchecked(W, x1, x2), r_reps)
            v_ref, g_ref, _ = ref.value_and_grad_unchecked(W, x1, x2)
            tol = 1e-10 if dtype == np.float64 else 1e-3
            err = float(np.max(np.abs(g_fast - g_ref)) / np.max(np.abs(g_ref)))
            assert err < tol, f"numba result differs from the reference: {err:.3g}"
            t_torch = s_torch = None
            if have_torch:
                import torch

                torch.set_num_threads(os.cpu_count() or 1)
                step = torch_step_fn(n, dtype)
                pause()
                t_torch, s_torch = median_time(step, r_reps)
                v_t, g_t = step()
                assert np.max(np.abs(g_t - g_ref)) / np.max(np.abs(g_ref)) < 1e-3
            t_jax = s_jax = None
            if have_jax:
                step = jax_step_fn(n, dtype)
                pause()
                t_jax, s_jax = median_time(step, reps, 0.5)
                v_j, g_j = step()
                assert np.max(np.abs(g_j - g_ref)) / np.max(np.abs(g_ref)) < 1e-3
            rows.append(dict(n=n, dtype=np.dtype(dtype).name, numpy=t_ref, numba=t_fast, torch=t_torch,
                             jax=t_jax, err=err, spread=dict(numpy=s_ref, numba=s_fast, torch=s_torch, jax=s_jax)))
            print(f"  N={n:5d} {np.dtype(dtype).name}: numpy {t_ref * 1e3:8.2f} ms  numba {t_fast * 1e3:7.3f} ms"
                  + (f"  torch {t_torch * 1e3:8.2f} ms" if t_torch else "")
                  + (f"  jax {t_jax * 1e3:8.2f} ms" if t_jax else ""), flush=True)
    return rows


def bench_training(sizes, steps):
    rows = []
    for n in sizes:
        common = dict(n=n, variances=np.linspace(0.5, 4.0, D), sigma=1.0, steps=steps, seed=0, warn=False)
        pause()
        t0 = time.perf_counter()
        res = minissl.simulate("infonce", engine="numba", **common)
        t_fast = time.perf_counter() - t0
        assert res.settings["compiled_loop"]
        pause()
        t0 = time.perf_counter()
        minissl.simulate("infonce", engine="numpy", **common)
        t_ref = time.perf_counter() - t0
        rows.append(dict(n=n, steps=steps, numba=res.settings["train_seconds"], numba_total=t_fast,
                         numpy=t_ref))
        print(f"  training N={n}: compiled loop {res.settings['train_seconds']:.2f} s, "
              f"NumPy loop {t_ref:.2f} s per {steps} steps", flush=True)
    return rows


def bench_dtype_loop(sizes):
    """The compiled training loop in float64 and float32 (same run otherwise): ms per step."""
    rows = []
    for n in sizes:
        steps = 400 if n <= 512 else 100
        common = dict(n=n, variances=np.linspace(0.5, 4.0, D), d1=D, sigma=1.0, steps=steps, seed=0, warn=False)
        t = {}
        for dt in (np.float64, np.float32):
            minissl.simulate("infonce", dtype=dt, **dict(common, steps=2))  # compiled / loaded
            pause()
            reps = []
            for _ in range(3):
                res = minissl.simulate("infonce", dtype=dt, **common)
                assert res.settings["compiled_loop"] and res.W.dtype == dt
                reps.append(res.settings["train_seconds"] / steps)
            t[np.dtype(dt).name] = (statistics.median(reps), min(reps), max(reps))
        rows.append(dict(n=n, steps=steps, **t))
        print(f"  compiled loop N={n}: float64 {t['float64'][0] * 1e3:.2f} ms/step, "
              f"float32 {t['float32'][0] * 1e3:.2f} ms/step", flush=True)
    return rows


def bench_sweeps():
    """Landscape descents per second (d = 2, 8) and batched vs sequential small training runs."""
    from minissl.landscape import descend_batch, effective_landscape

    out = {}
    rng = np.random.default_rng(0)
    for d, K in ((2, 4000), (8, 500)):
        Bs, Ss, ks = [], [], []
        for _ in range(K):
            Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
            A0 = Q @ np.diag(rng.uniform(0.2, 4.0, d)) @ Q.T
            C = np.diag(rng.uniform(0.0, 3.0, d))
            land = effective_landscape(minissl.get_loss("beta", beta=0.5), A0, C)
            Bs.append(land.B)
            Ss.append(land.S)
            ks.append(land.k)
        Bs, Ss, ks = np.array(Bs), np.array(Ss), np.array(ks)
        descend_batch(Bs[:4], Ss[:4], ks[:4])
        pause()
        t, _ = median_time(lambda: descend_batch(Bs, Ss, ks), 3)
        res = descend_batch(Bs, Ss, ks)
        assert res["converged"].all()
        out[f"descents_d{d}"] = K / t
        print(f"  landscape descents d={d}: {K / t:,.0f} per second", flush=True)
    configs = [{"sigma": s, "seed": k} for s in np.linspace(0.5, 2.5, 8) for k in range(4)]
    common = dict(loss="beta", beta=0.5, n=64, variances=[0.5, 1.0, 2.0, 3.0], steps=1000, warn=False)
    minissl.simulate_batch(configs[:2], **common)
    pause()
    t0 = time.perf_counter()
    minissl.simulate_batch(configs, **common)
    t_batch = time.perf_counter() - t0
    pause()
    t0 = time.perf_counter()
    for cfg in configs:
        minissl.simulate(**common, **cfg)
    t_seq = time.perf_counter() - t0
    out.update(runs=len(configs), batch=t_batch, sequential=t_seq)
    print(f"  {len(configs)} runs (N=64, d=4, 1000 steps): batch {t_batch:.2f} s, one by one {t_seq:.2f} s", flush=True)
    return out


def compile_times():
    """Cold compile of the step kernel in a fresh process with an empty cache, and a warm start."""
    import subprocess
    import tempfile

    code = ("import time, numpy as np, minissl; W=np.ones((4,4))*.1; x=np.ones((8,4)); "
            "L=minissl.get_loss('infonce'); t=time.perf_counter(); L.value_and_grad(W,x,x+1); "
            "print(time.perf_counter()-t)")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out[label] = float(r.stdout.strip().splitlines()[-1])
    return out


_SIMULATE = "import sys; from minissl.cli import main; sys.argv = ['minissl', 'simulate'] + sys.argv[1:]; main()"
_STEP = ("import sys, numpy as np, minissl; n = int(sys.argv[1]); dt = np.dtype(sys.argv[2]); "
         "rng = np.random.default_rng(0); W = (0.1 * rng.normal(size=(32, 32))).astype(dt); "
         "x = rng.normal(size=(n, 32)).astype(dt); L = minissl.get_loss('infonce'); "
         "[L.value_and_grad(W, x, x + np.float32(0.5)) for _ in range(3)]")


# the child reports its own peak resident memory (VmHWM: reset by exec, unlike ru_maxrss,
# which a child inherits from this large benchmark process)
_PEAK = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('\\n' + next(ln for ln in "
         "open('/proc/self/status') if ln.startswith('VmHWM'))))\n")


def _child(args, env=None):
    """Run ``python -c code [argv]`` in a fresh process; returns ``(wall seconds, peak RSS in MiB)``."""
    import subprocess

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _PEAK + args[0]] + args[1:], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{args} failed: {r.stderr[-2000:]}")
    kib = int([ln for ln in r.stderr.splitlines() if ln.startswith("VmHWM")][-1].split()[1])  # "VmHWM: 1234 kB"
    return wall, kib / 1024.0


def startup_and_memory():
    """Fresh processes: ``import minissl`` beyond NumPy, the first ``minissl simulate`` on an empty
    ``NUMBA_CACHE_DIR`` and the next one (warm cache), and peak resident memory of a step."""
    import subprocess
    import tempfile

    code = ("import time, numpy; t = time.perf_counter(); import minissl; "
            "print(time.perf_counter() - t)")
    imports = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.strip()) for _ in range(5)]
    out = {"import": statistics.median(imports)}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out["simulate_cold"], out["simulate_cold_rss"] = _child([_SIMULATE], env)
        out["simulate_warm"], out["simulate_warm_rss"] = _child([_SIMULATE], env)
        for n in (2048, 4096):
            for dt in ("float64", "float32"):
                _child([_STEP, str(n), dt], env)  # compile into the cache first
                out[f"rss_{n}_{dt}"] = _child([_STEP, str(n), dt], env)[1]
    out["rss_numpy"] = _child(["import numpy"])[1]
    return out


def machine():
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    return (f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
            f"NumPy {np.__version__}, Numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads)")


def readme_markers(name):
    """The lines that enclose the README's generated copy of benchmark output ``name``."""
    return (f"<!-- {name}: begin (generated by benchmarks/bench_infonce.py --readme; do not edit) -->",
            f"<!-- {name}: end -->")


def update_readme(path, name, body):
    """Replace the block between :func:`readme_markers` in ``path`` by ``body``."""
    begin, end = readme_markers(name)
    with open(path, encoding="utf-8") as fh:
        old = fh.read()
    i, j = old.find(begin), old.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"{path}: no block {begin!r} ... {end!r} to fill")
    atomic_write_text(path, old[:i + len(begin)] + "\n" + body.rstrip("\n") + "\n" + old[j:])


def _ms(cell):
    """The median in milliseconds of a table cell ``"21.25 ms [20.62–31.26]"``, or None (n/a)."""
    return float(cell.split(" ms")[0]) if " ms" in cell else None


def load_summary(text, name, load):
    """One sentence for the README, generated from the per-step table of a ``--load`` run."""
    parts = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or cells[0] != "2048":
            continue
        numba, torch, jax = _ms(cells[3]), _ms(cells[4]), _ms(cells[5])
        out = [f"Numba {numba:.1f} ms"]
        for t, label in ((jax, "JAX"), (torch, "PyTorch")):
            if t:
                out.append(f"{label} {t:.1f} ms ({t / numba:.1f}×)")
        parts.append(f"{cells[1]} " + ", ".join(out))
    return (f"The same with {load} busy background processes during the per-step timings: "
            f"[benchmarks/{name}](benchmarks/{name}) (`--load {load}`); at N = 2048 " + "; ".join(parts) + ".")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N in {128, 512} only, fewer repetitions")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.md"))
    ap.add_argument("--load", type=int, default=0, help="busy background processes during the per-step timings")
    ap.add_argument("--readme", default=None, metavar="README.md",
                    help="also fill this file's generated block for the output (the tables, or with --load "
                         "a one-sentence summary)")
    args = ap.parse_args()
    if args.readme and args.quick:
        ap.error("--readme fills README with the full tables; it does not go with --quick")
    sizes = [128, 512] if args.quick else [128, 512, 2048, 4096]
    reps = 5 if args.quick else 9
    try:
        import torch  # noqa: F401

        have_torch = True
        torch_version = torch.__version__
    except ImportError:
        have_torch = False
        torch_version = None
    try:
        import jax

        have_jax = True
        jax_version = jax.__version__
    except ImportError:
        have_jax = False
        jax_version = None
    print("machine:", machine(), flush=True)
    comp = compile_times()
    print(f"compile: cold {comp['cold']:.1f} s, warm cache {comp['warm']:.2f} s", flush=True)
    start = startup_and_memory()
    print(f"import minissl {start['import']:.2f} s; minissl simulate: cold {start['simulate_cold']:.1f} s, "
          f"warm {start['simulate_warm']:.1f} s; peak RSS {start['simulate_cold_rss']:.0f} MiB", flush=True)
    peak64 = matmul_peak(np.float64)
    peak32 = matmul_peak(np.float32)
    print(f"matmul peak: {peak64:.0f} GFLOP/s float64, {peak32:.0f} GFLOP/s float32", flush=True)
    import subprocess

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        steps = bench_steps(sizes, reps, have_torch, have_jax)
    finally:
        for p in busy:
            p.kill()
    train = bench_training([128, 512], 1000 if args.quick else 2000)
    loop_dt = bench_dtype_loop([512] if args.quick else [512, 2048])
    sweeps = bench_sweeps()

    lines = [f"Machine: {machine()}. Measured {time.strftime('%Y-%m-%d')} with "
             f"`python benchmarks/bench_infonce.py{' --quick' if args.quick else ''}"
             + (f" --load {args.load}`, {args.load} busy background processes during the per-step timings"
                if args.load else "`, idle")
             + (f", PyTorch {torch_version} (CPU)" if have_torch else "; PyTorch not installed")
             + (f", JAX {jax_version} (jit)." if have_jax else "; JAX not installed."),
             "",
             f"Matmul peak in the same run: {peak64:.0f} GFLOP/s (float64), {peak32:.0f} GFLOP/s (float32). "
             f"Numba compile time of the step kernel: {comp['cold']:.1f} s cold, {comp['warm']:.2f} s "
             "from the on-disk cache.",
             "",
             "Start-up and memory, each in a fresh process (`NUMBA_CACHE_DIR` an empty folder for the cold run):",
             "",
             "| what | time | peak RSS |",
             "|---|---|---|",
             f"| `import minissl` (beyond NumPy; median of 5) | {start['import']:.2f} s | |",
             f"| first `minissl simulate` (defaults), empty cache: compiles its loop | {start['simulate_cold']:.1f} s | "
             f"{start['simulate_cold_rss']:.0f} MiB |",
             f"| the next `minissl simulate` (warm cache) | {start['simulate_warm']:.1f} s | "
             f"{start['simulate_warm_rss']:.0f} MiB |",
             f"| InfoNCE step, N = 2048, float64 / float32 (Python + NumPy + Numba + buffers) | | "
             f"{start['rss_2048_float64']:.0f} / {start['rss_2048_float32']:.0f} MiB |",
             f"| InfoNCE step, N = 4096, float64 / float32 | | "
             f"{start['rss_4096_float64']:.0f} / {start['rss_4096_float32']:.0f} MiB |",
             f"| `python -c 'import numpy'` (baseline) | | {start['rss_numpy']:.0f} MiB |",
             "",
             "InfoNCE value + gradient for a linear model, d = 32 (median per step, [fastest–slowest] "
             "repetition below it; GFLOP/s of the median with the cost model 6N²d + 8Nd² + 7N², the flops of "
             "the direct computation that PyTorch and JAX run; % of the matmul peak of the same dtype). These "
             "are *effective* rates for Numba: its symmetric kernel (negatives from the first view, the "
             "default) executes 4N²d of the 6N²d, so its executed rate is about 2/3 of the column:",
             "",
             "| N | dtype | NumPy ref | Numba | PyTorch autograd | JAX jit | Numba vs NumPy | Numba vs PyTorch | "
             "Numba vs JAX | Numba GFLOP/s | % of peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in steps:
        peak = peak64 if r["dtype"] == "float64" else peak32
        gf = flops(r["n"]) / r["numba"] / 1e9
        tt = _cell(r, "torch")
        vs_t = f"{r['torch'] / r['numba']:.1f}×" if r["torch"] else "n/a"
        tj = _cell(r, "jax")
        vs_j = f"{r['jax'] / r['numba']:.1f}×" if r["jax"] else "n/a"
        lines.append(f"| {r['n']} | {r['dtype']} | {_cell(r, 'numpy')} | {_cell(r, 'numba')} | {tt} | "
                     f"{tj} | {r['numpy'] / r['numba']:.1f}× | {vs_t} | {vs_j} | {gf:.1f} | {100 * gf / peak:.0f}% |")
    lines += ["", "Whole training run (InfoNCE, Adam, fresh isotropic noise every step, d = 32):", "",
              "| N | steps | compiled loop (Numba) | Python loop (NumPy reference) | ratio |", "|---|---|---|---|---|"]
    for r in train:
        lines.append(f"| {r['n']} | {r['steps']} | {r['numba']:.2f} s | {r['numpy']:.2f} s | "
                     f"{r['numpy'] / r['numba']:.1f}× |")
    lines += ["", "The compiled training loop in float64 and float32 (InfoNCE, Adam, fresh noise, d0 = d1 = 32; "
              "median of 3 runs [fastest–slowest] per step; noise drawing and the optimizer are float64 in both):", "",
              "| N | steps | float64 | float32 | float32 speed-up |", "|---|---|---|---|---|"]
    for r in loop_dt:
        f64, f32 = r["float64"], r["float32"]
        lines.append(f"| {r['n']} | {r['steps']} | {f64[0] * 1e3:.2f} ms [{f64[1] * 1e3:.2f}–{f64[2] * 1e3:.2f}] | "
                     f"{f32[0] * 1e3:.2f} ms [{f32[1] * 1e3:.2f}–{f32[2] * 1e3:.2f}] | {f64[0] / f32[0]:.2f}× |")
    lines += ["", "Sweeps: effective-landscape descents to |grad| < 1e-8 (`descend_batch`, random "
              "β-InfoNCE problems) and batched training runs (`simulate_batch`):", "",
              "| workload | throughput |", "|---|---|",
              f"| d = 2 landscape descents | {sweeps['descents_d2']:,.0f} per second |",
              f"| d = 8 landscape descents | {sweeps['descents_d8']:,.0f} per second |",
              f"| {sweeps['runs']} training runs (N = 64, d = 4, 1000 steps), `simulate_batch` | "
              f"{sweeps['batch']:.2f} s ({sweeps['runs'] / sweeps['batch']:.1f} runs/s) |",
              f"| the same runs, one `simulate` after another | {sweeps['sequential']:.2f} s "
              f"({sweeps['runs'] / sweeps['sequential']:.1f} runs/s) |"]
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out, text)
    if args.readme:
        name = os.path.basename(args.out)
        body = text if not args.load else load_summary(text, name, args.load)
        update_readme(args.readme, name, body)
    print()
    print(text)


if __name__ == "__main__":
    main()
