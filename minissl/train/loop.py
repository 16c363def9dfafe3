"""The compiled training loop of the linear model (Numba): one run, or many runs in parallel.

The whole loop -- Gaussian augmentation noise, the loss's compiled step
(:func:`minissl.losses.step.linear_step`, any loss with a ``kernel_id``), Adam or SGD and the
learning-rate schedule (:mod:`minissl.train.optim`), the optional control variate
(:mod:`minissl.control_variate`) and the history -- runs inside compiled code. It is written
once, :func:`run_loop`; the loss's kernel family is a compile-time constant, so each family
compiles (once, then from Numba's cache) to a loop with its own kernels only. A single run
parallelises inside each step; a batch of runs (:func:`train_batch`) parallelises *across*
runs, each run executing the serial step.

Random numbers come from each run's own ``numpy.random.Generator``, which Numba drives with
NumPy's algorithms in NumPy's order: the compiled loop draws exactly the noise the Python
loop draws for the same seed, so ``engine="numba"`` and ``engine="numpy"`` follow the same
trajectory up to floating-point round-off. A run executes on one thread from start to end,
so results do not depend on the thread count or scheduling.

The loop runs in float64, or in float32 for a loss whose step has a float32 version
(:func:`minissl.losses.step.has_float32_step`, the InfoNCE family) when the data and the
initial weights are float32: views, weights and the step's products in float32; the noise
``F xi``, the gradient summed over replicates, the optimizer's moments and the update in
float64, each view and weight rounded to float32 once when it is stored. The views then
equal those of the Python loop (which also adds the noise in float64 and rounds once), up
to a rare double rounding where the compiled ``x + F xi`` is one fused multiply-add.

The loop allocates and copies only inside helper functions: a ``parallel=True`` function
turns array expressions into parallel regions, which must not start inside a batch's
parallel loop (Numba's default threading layer does not nest).
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager

import numpy as np
from numba import literally, njit, prange, typed
from numba.core.errors import NumbaPerformanceWarning

from .._config import CACHE, FASTMATH
from .._progress import watch_rows
from ..control_variate import quadratic_moment_into, subtract_control
from ..losses.step import has_float32_step, kernel_family, linear_step, step_workspace
from .minibatch import choose_batch_compiled
from .optim import lr_at_compiled, update_compiled

__all__ = ["run_loop", "train_linear", "train_batch", "warm_up", "n_records", "loss_args", "loop_dtype"]


@njit(fastmath=FASTMATH, cache=CACHE)
def _draw_views(x, rows, factor, diag, rng, x1, x2, x1T, x2T):
    """``x1[i] = x[rows[i]] + F xi1``, ``x2[i] = x[rows[i]] + F xi2`` (``F`` diagonal when ``diag``),
    and their transposes.

    ``xi`` is drawn from the NumPy Generator ``rng`` in the order of
    :meth:`minissl.data.GaussianNoise.sample` on ``x[rows]`` (row-major, first view then
    second), so the compiled loop sees exactly the noise of the Python loop for the same seed.
    """
    d0 = x.shape[1]
    xi = np.empty(d0)
    for v in range(2):
        out = x1 if v == 0 else x2
        outT = x1T if v == 0 else x2T
        for i in range(rows.shape[0]):
            src = rows[i]
            for q in range(d0):
                xi[q] = rng.standard_normal()
            for q in range(d0):
                if diag:
                    e = factor[q, q] * xi[q]
                else:
                    e = 0.0
                    for r in range(d0):
                        e += factor[q, r] * xi[r]
                val = x[src, q] + e
                out[i, q] = val
                outT[q, i] = val


@njit(cache=CACHE)
def _redraw(x, rows, factor, diag, rng, x1, x2, x1T, x2T, reps):
    for r in range(reps):
        _draw_views(x, rows, factor, diag, rng, x1[r], x2[r], x1T[r], x2T[r])


@njit(cache=CACHE)
def _gather(x1, x2, rows, xb1, xb2, xb1T, xb2T):
    """Rows ``rows`` of the fixed views ``x1, x2`` (reps, N, d0) into the batch's views and transposes."""
    for r in range(x1.shape[0]):
        for i in range(rows.shape[0]):
            for q in range(x1.shape[2]):
                v1 = x1[r, rows[i], q]
                v2 = x2[r, rows[i], q]
                xb1[r, i, q] = v1
                xb2[r, i, q] = v2
                xb1T[r, q, i] = v1
                xb2T[r, q, i] = v2


@njit(cache=CACHE)
def _buffers(n, nb, d0, d1, reps, both, W):
    """Transposed views, the step's workspace (for ``nb`` samples), the summed gradient, the
    optimizer moments and the control variate's scratch: ``x1T, x2T, ws, (gW, gb, mW, vW, mb,
    vb), (Mw, s1, s2)``.

    Views and workspace take the dtype of ``W``; the summed gradient, the optimizer moments
    and the control variate's scratch are float64 whatever it is.
    """
    state = (np.zeros((d1, d0)), np.zeros(d1), np.zeros((d1, d0)), np.zeros((d1, d0)), np.zeros(d1),
             np.zeros(d1))
    return (np.empty((reps, d0, n), W.dtype), np.empty((reps, d0, n), W.dtype), step_workspace(nb, d0, d1, both, W),
            state, (np.empty((d0, d0)), np.empty(d0), np.empty(d0)))


@njit(cache=CACHE)
def _batch_views(nb, x1, x2, x1T, x2T):
    """The views one step sees: the full views themselves, or new (reps, nb, d0) buffers for a minibatch."""
    reps, n, d0 = x1.shape
    if nb == n:
        return x1, x2, x1T, x2T
    return (np.empty((reps, nb, d0), x1.dtype), np.empty((reps, nb, d0), x1.dtype),
            np.empty((reps, d0, nb), x1.dtype), np.empty((reps, d0, nb), x1.dtype))


@njit(cache=CACHE)
def _zero(gW, gb):
    for p in range(gW.shape[0]):
        gb[p] = 0.0
        for q in range(gW.shape[1]):
            gW[p, q] = 0.0


@njit(cache=CACHE)
def _accumulate(gW, gb, dW, db, w):
    for p in range(gW.shape[0]):
        gb[p] += w * db[p]
        for q in range(gW.shape[1]):
            gW[p, q] += w * dW[p, q]


@njit(cache=CACHE)
def _sq_norm(gW, gb, has_bias):
    s = 0.0
    for p in range(gW.shape[0]):
        if has_bias:
            s += gb[p] * gb[p]
        for q in range(gW.shape[1]):
            s += gW[p, q] * gW[p, q]
    return s


@njit(cache=CACHE)
def _record(rec, W, b, hist_W, hist_b):
    for p in range(W.shape[0]):
        hist_b[rec, p] = b[p]
        for q in range(W.shape[1]):
            hist_W[rec, p, q] = W[p, q]


@njit(cache=CACHE)
def _after_step(t, value, W, b, has_bias, state, steps, lr, lr_final, cosine, adam, momentum, record_every, rec,
                hist_W, hist_b, hist_loss, hist_gn):
    """Record the history and update the weights; returns the next record index, -1 if diverged."""
    gW, gb, mW, vW, mb, vb = state
    gn = _sq_norm(gW, gb, has_bias)
    if not (np.isfinite(value) and np.isfinite(gn)):
        return -1
    if t % record_every == 0:
        _record(rec, W, b, hist_W, hist_b)
        hist_loss[rec] = value
        hist_gn[rec] = np.sqrt(gn)
        rec += 1
    if not update_compiled(W, b, has_bias, gW, gb, mW, vW, mb, vb, t,
                           lr_at_compiled(t, steps, lr, lr_final, cosine), adam, momentum):
        return -1
    return rec


@njit(cache=CACHE)
def _indices(n, nb):
    """``(0..n-1, scratch of n, first batch 0..nb-1)`` as int64 arrays."""
    return np.arange(n), np.arange(n), np.arange(nb)


@njit(cache=CACHE, nogil=True)  # nogil: a progress thread may watch hist_loss fill (minissl._progress)
def run_loop(family, kernel, parallel, x, factor, diag, rng, x1, x2, W, b, has_bias, steps, batch, lr, lr_final,
             cosine, adam, momentum, fresh, reps, record_every, prm, both, normalize, c, norm_eps, wd, cv, Mbar,
             hist_W, hist_b, hist_loss, hist_gn):
    """Train ``W`` (and ``b``) in place for ``steps`` steps; returns the steps done (fewer if diverged).

    ``family`` is a compile-time constant; ``family, kernel, parallel``: see :func:`linear_step`.
    ``batch`` samples per step (``batch == N``: the full batch; else a minibatch drawn by
    :func:`~minissl.train.minibatch.choose_batch_compiled` before the step's noise). ``x1, x2``
    (reps, N, d0) receive the views of all N samples (with fixed noise: the views used).
    History rows are written at steps ``0, record_every, ...`` and after the last step.
    """
    literally(family)
    literally(parallel)
    n, d0 = x.shape
    d1 = W.shape[0]
    x1T, x2T, ws, state, cv_scratch = _buffers(n, batch, d0, d1, reps, both, W)
    xb1, xb2, xb1T, xb2T = _batch_views(batch, x1, x2, x1T, x2T)
    every, perm, rows = _indices(n, batch)
    minibatch = batch < n
    gW, gb = state[0], state[1]
    dW, db = ws[13], ws[14]
    Mw, s1, s2 = cv_scratch
    rec = np.int64(0)  # not the literal 0: one specialisation of the helpers
    for t in range(steps):
        if minibatch:
            if t == 0 and not fresh:
                _redraw(x, every, factor, diag, rng, x1, x2, x1T, x2T, reps)
            choose_batch_compiled(rng, perm, rows)
            if fresh:
                _redraw(x, rows, factor, diag, rng, xb1, xb2, xb1T, xb2T, reps)
            else:
                _gather(x1, x2, rows, xb1, xb2, xb1T, xb2T)
        elif t == 0 or fresh:
            _redraw(x, every, factor, diag, rng, x1, x2, x1T, x2T, reps)
        _zero(gW, gb)
        value = 0.0
        for r in range(reps):
            value += linear_step(family, kernel, parallel, prm, W, b, has_bias, xb1[r], xb2[r], xb1T[r], xb2T[r],
                                 both, normalize, c, norm_eps, wd, ws) / reps
            if cv:
                quadratic_moment_into(xb1[r], xb2[r], prm[0], prm[1], both, Mw, s1, s2)
                subtract_control(W, Mw, Mbar, dW)
            _accumulate(gW, gb, dW, db, 1.0 / reps)
        rec = _after_step(t, value, W, b, has_bias, state, steps, lr, lr_final, cosine, adam, momentum,
                          record_every, rec, hist_W, hist_b, hist_loss, hist_gn)
        if rec < 0:
            return t
    _record(rec, W, b, hist_W, hist_b)
    return steps


@njit(parallel=True, cache=CACHE)
def _run_batch(family, kernel, xs, factors, diag, rngs, x1s, x2s, Ws, bs, has_bias, steps, batch, lr, lr_final, cosine,
               adam, momentum, fresh, reps, record_every, prm, both, normalize, c, norm_eps, wd, cv, Mbars, hist_W,
               hist_b, hist_loss, hist_gn, done):
    literally(family)
    for k in prange(xs.shape[0]):
        done[k] = run_loop(family, kernel, False, xs[k], factors[k], diag, rngs[np.int64(k)], x1s[k], x2s[k], Ws[k],
                           bs[k], has_bias, steps, batch, lr, lr_final, cosine, adam, momentum, fresh, reps,
                           record_every, prm, both, normalize, c, norm_eps, wd, cv, Mbars[k], hist_W[k],
                           hist_b[k], hist_loss[k], hist_gn[k])


_SPECIALISED = {}


def _start_thread_pool():
    """Start Numba's threading layer before a loop is compiled or loaded.

    The loop is not itself ``parallel=True`` but links the threaded step kernels. Loaded from
    the cache, nothing starts the thread pool first: linking then fails with ``LLVM ERROR:
    Symbol not found: allocate_sched``, or the loaded code calls an unresolved scheduler and
    the process dies with a segmentation fault (seen when the step was cached and the loop
    was not, and vice versa). Starting the pool is idempotent and cheap.
    """
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()


def _call(disp, literal, *args):
    """``disp(*args)`` with the arguments at the positions ``literal`` as compile-time constants,
    calling that compiled specialisation directly once it exists.

    A dispatcher called from Python with a ``literally`` argument first types its body with a
    plain integer and then retries with the literal: on a cold cache the first pass compiles
    the kernels of every branch, and on a warm one it costs ~15 ms per call (a sweep of short
    runs would pay that every time). The literal signature is compiled (or loaded from the
    cache) directly, and its entry point reused.
    """
    from numba import typeof
    from numba.core import types

    overloads = getattr(disp, "overloads", None)
    if overloads is None:  # NUMBA_DISABLE_JIT=1
        return disp(*args)
    _start_thread_pool()
    sig = tuple(types.literal(a) if i in literal else typeof(a) for i, a in enumerate(args))
    key = (disp.__name__,) + sig
    entry = _SPECIALISED.get(key)
    if entry is None:
        # compile (or load) the literal signature directly: a plain call would first type the
        # body with ordinary values, compiling every family's kernels (~10 s on a cold cache)
        # before ``literally`` asks for the retry that keeps only the one needed
        disp.compile(sig)
        entry = _SPECIALISED[key] = overloads[sig].entry_point
    return entry(*args)


def n_records(steps, record_every):
    """Rows of the history: steps ``0, record_every, ...`` below ``steps``, and the end."""
    return steps // record_every + (1 if steps % record_every else 0) + 1


def loss_args(loss):
    """``(kernel, prm, both, normalize, c, norm_eps, weight_decay)`` of a loss for :func:`run_loop`."""
    spec = loss.spec
    if spec.kernel_id is None:
        raise ValueError(f"loss {loss.name!r} has no compiled training step (engine='numpy' trains it).")
    kw = loss.core_kwargs
    return (spec.kernel_id, np.asarray(spec.kernel_params(kw), dtype=np.float64).reshape(-1),
            kw.get("negatives") == "both", bool(loss.normalize), float(loss.c), float(loss.norm_eps),
            float(loss.weight_decay))


def loop_dtype(kernel, x, W, b=None):
    """The dtype the compiled loop runs in: float32 when the data, the weights (and the bias)
    are all float32 and the loss's step has a float32 version, else float64."""
    arrays = (x, W) if b is None else (x, W, b)
    f32 = all(np.asarray(a).dtype == np.float32 for a in arrays)
    return np.float32 if f32 and has_float32_step(kernel) else np.float64


def _control(loss, controls, shape):
    """``(cv, Mbar)`` arguments: the control variate's ``bar M`` or zeros (unused)."""
    if controls is None:
        return False, np.zeros(shape)
    if not loss.spec.control_variate:
        raise ValueError(f"control: the control variate applies to the InfoNCE family, not {loss.name!r}.")
    return True, np.ascontiguousarray(controls, dtype=np.float64)


def _batch(batch, n):
    """Samples per step as the loop's int64: ``n`` for the full batch."""
    return np.int64(n if batch is None else batch)


def _is_diagonal(factor):
    return bool(np.count_nonzero(factor - np.diag(np.diag(factor))) == 0)


@contextmanager
def _quiet_compile():
    """Silence Numba's note, at compile time, that a specialised loop has nothing to run in parallel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        yield


def train_linear(loss, x, factor, W0, b0, *, steps, lr, lr_final, cosine, adam, momentum, fresh,
                 replicates, rng, record_every, control=None, batch=None):
    """Run one compiled training of a linear model on ``loss`` with Gaussian noise ``F xi``.

    ``factor`` is the noise factor ``F`` (:attr:`minissl.data.GaussianNoise.factor`), ``rng``
    a ``numpy.random.Generator`` (advanced in place, as the Python loop would), ``control``
    ``bar M`` (d0, d0) to apply the control variate of :mod:`minissl.control_variate`
    (InfoNCE family only), or None, ``batch`` the samples per step (None: all N; fewer: a
    minibatch, :mod:`minissl.train.minibatch`). The loop runs in :func:`loop_dtype` (float32 for float32
    data and weights of the InfoNCE family), and ``W, b, x1, x2`` come back in it.
    Returns ``(W, b, hist_W, hist_b, hist_loss, hist_gn, steps_done, (x1, x2))``; history
    rows are recorded at steps ``0, record_every, ...`` and after the last step; ``x1, x2``
    are the last views of all N samples drawn (the fixed views with ``fresh=False``; with
    fresh noise and a minibatch their content is unspecified: only batches are drawn).
    """
    kernel, prm, *rest = loss_args(loss)
    dt = loop_dtype(kernel, x, W0, b0)
    x = np.ascontiguousarray(x, dtype=dt)
    factor = np.ascontiguousarray(factor, dtype=np.float64)
    W = np.array(W0, dtype=dt, order="C")
    has_bias = b0 is not None
    b = np.array(b0, dtype=dt) if has_bias else np.zeros(W.shape[0], dt)
    nrec = n_records(steps, record_every)
    hist_W = np.zeros((nrec,) + W.shape)
    hist_b = np.zeros((nrec, W.shape[0]))
    hist_loss = np.full(nrec, np.nan)
    hist_gn = np.full(nrec, np.nan)
    x1 = np.empty((replicates,) + x.shape, dt)
    x2 = np.empty((replicates,) + x.shape, dt)
    cv, Mbar = _control(loss, control, (x.shape[1], x.shape[1]))
    with _quiet_compile(), watch_rows(hist_loss, record_every, steps):
        done = _call(run_loop, (0, 2), kernel_family(kernel), kernel, True, x, factor, _is_diagonal(factor), rng, x1, x2,
                     W, b, has_bias, steps, _batch(batch, x.shape[0]), lr, lr_final, cosine, adam, momentum, fresh,
                     replicates, record_every, prm, *rest, cv, Mbar, hist_W, hist_b, hist_loss, hist_gn)
    if nrec > 1:  # the row after the last step repeats the last evaluated loss
        hist_loss[-1], hist_gn[-1] = hist_loss[-2], hist_gn[-2]
    return W, (b if has_bias else None), hist_W, hist_b, hist_loss, hist_gn, int(done), (x1, x2)


def train_batch(loss, xs, factors, W0s, b0s, *, steps, lr, lr_final, cosine, adam, momentum, fresh,
                replicates, rngs, record_every, controls=None, batch=None):
    """Run ``K`` independent compiled trainings in parallel (one thread per run).

    ``xs`` (K, N, d0), ``factors`` (K, d0, d0), ``W0s`` (K, d1, d0), ``b0s`` (K, d1) or None,
    ``rngs`` K NumPy Generators, ``controls`` (K, d0, d0) ``bar M`` of each run or None,
    ``batch`` the samples per step of every run (None: all N).
    Returns the same fields as :func:`train_linear`, stacked over runs.
    """
    kernel, prm, *rest = loss_args(loss)
    dt = loop_dtype(kernel, xs, W0s, b0s)
    xs = np.ascontiguousarray(xs, dtype=dt)
    factors = np.ascontiguousarray(factors, dtype=np.float64)
    diag = all(_is_diagonal(f) for f in factors)
    Ws = np.array(W0s, dtype=dt, order="C")
    K, d1, d0 = Ws.shape
    has_bias = b0s is not None
    bs = np.array(b0s, dtype=dt) if has_bias else np.zeros((K, d1), dt)
    nrec = n_records(steps, record_every)
    hist_W = np.zeros((K, nrec) + Ws.shape[1:])
    hist_b = np.zeros((K, nrec, d1))
    hist_loss = np.full((K, nrec), np.nan)
    hist_gn = np.full((K, nrec), np.nan)
    done = np.zeros(K, dtype=np.int64)
    x1s = np.empty((K, replicates) + xs.shape[1:], dt)
    x2s = np.empty((K, replicates) + xs.shape[1:], dt)
    cv, Mbars = _control(loss, controls, (K, d0, d0))
    with _quiet_compile():
        _call(_run_batch, (0,), kernel_family(kernel), kernel, xs, factors, diag, typed.List(rngs), x1s, x2s, Ws, bs,
              has_bias, steps, _batch(batch, xs.shape[1]), lr, lr_final, cosine, adam, momentum, fresh, replicates,
              record_every, prm, *rest, cv, Mbars, hist_W, hist_b, hist_loss, hist_gn, done)
    if nrec > 1:
        hist_loss[:, -1], hist_gn[:, -1] = hist_loss[:, -2], hist_gn[:, -2]
    return Ws, (bs if has_bias else None), hist_W, hist_b, hist_loss, hist_gn, done, (x1s, x2s)


def _literal_counts(counter):
    """Cache hits or misses of the specialised (constant-argument) signatures only."""
    from numba.core import types

    return sum(v for sig, v in counter.items() if any(isinstance(t, types.Literal) for t in sig))


def warm_up(loss, d0, d1, batch=False, dtype=np.float64):
    """Compile (or load from Numba's cache) the loop for this loss variant and ``dtype``; report how.

    Returns ``(seconds, source)`` with ``source`` one of "compiled", "cache" or "loaded"
    (already in this process). Importing minissl compiles nothing; this is the first use.
    """
    disp = _run_batch if batch else run_loop
    if not hasattr(disp, "stats"):  # NUMBA_DISABLE_JIT=1: plain Python functions
        return 0.0, "python (JIT disabled)"
    before = _literal_counts(disp.stats.cache_misses), _literal_counts(disp.stats.cache_hits)
    already = len(disp.signatures) > 0
    t0 = time.perf_counter()
    x = np.zeros((2, d0), dtype)
    F = np.zeros((d0, d0))
    W = np.zeros((d1, d0), dtype)
    if batch:
        train_batch(loss, x[None], F[None], W[None], None, steps=0, lr=1.0, lr_final=0.0, cosine=False,
                    adam=True, momentum=0.0, fresh=True, replicates=1, rngs=[np.random.default_rng(0)],
                    record_every=1)
    else:
        train_linear(loss, x, F, W, None, steps=0, lr=1.0, lr_final=0.0, cosine=False, adam=True,
                     momentum=0.0, fresh=True, replicates=1, rng=np.random.default_rng(0), record_every=1)
    dt = time.perf_counter() - t0
    after = _literal_counts(disp.stats.cache_misses), _literal_counts(disp.stats.cache_hits)
    if after[0] > before[0]:
        return dt, "compiled"
    if after[1] > before[1]:
        return dt, "cache"
    return dt, "loaded" if already else "cache"
