"""Compiled training loops (Numba): one run, or many independent runs in parallel.

The whole loop — Gaussian augmentation noise, the compiled step of the loss (any of the
six; :mod:`minissl.losses.kernels`, ``kernels_scl``, ``kernels_decorrelation``), Adam or SGD, the learning-rate schedule and the history —
runs inside compiled code. A single run parallelises inside each step; a batch of runs
(:func:`train_batch`) parallelises *across* runs, each run executing the serial step.

Random numbers come from each run's own ``numpy.random.Generator``, which Numba drives
with NumPy's algorithms in NumPy's order: the compiled loop draws exactly the noise the
Python loop draws for the same seed, so ``engine="numba"`` and ``engine="numpy"`` follow
the same trajectory up to floating-point round-off. A run executes on one thread from
start to end, so results do not depend on the thread count or scheduling.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, typed

from ._config import CACHE, FASTMATH, N_CHUNKS
from .control_variate import _apply, _quadratic_moment
from .losses.kernels import _infonce_linear, _infonce_linear_serial
from .losses.kernels_decorrelation import _decorrelation_linear
from .losses.kernels_scl import _scl_linear, _scl_linear_serial

__all__ = ["train_linear", "train_batch", "warm_up"]


@njit(fastmath=FASTMATH, cache=CACHE)
def _draw_views(x, factor, diag, rng, x1, x2, x1T, x2T):
    """``x1 = x + F xi1``, ``x2 = x + F xi2`` (``F`` diagonal when ``diag``), and transposes.

    ``xi`` is drawn from the NumPy Generator ``rng`` in the order of
    :meth:`minissl.data.GaussianNoise.sample` (row-major, first view then second), so the
    compiled loop sees exactly the noise of the Python loop for the same seed.
    """
    n, d0 = x.shape
    xi = np.empty(d0)
    for v in range(2):
        out = x1 if v == 0 else x2
        outT = x1T if v == 0 else x2T
        for i in range(n):
            for q in range(d0):
                xi[q] = rng.standard_normal()
            for q in range(d0):
                if diag:
                    e = factor[q, q] * xi[q]
                else:
                    e = 0.0
                    for r in range(d0):
                        e += factor[q, r] * xi[r]
                val = x[i, q] + e
                out[i, q] = val
                outT[q, i] = val


@njit(cache=CACHE)
def _lr_at(t, steps, lr, lr_final, cosine):
    if not cosine:
        return lr
    frac = t / max(steps - 1, 1)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + np.cos(np.pi * frac))


@njit(cache=CACHE)
def _update(W, b, has_bias, gW, gb, mW, vW, mb, vb, t, lr_t, adam, momentum):
    """Adam (beta1 0.9, beta2 0.999, eps 1e-8) or heavy-ball SGD; returns False on non-finite W."""
    d1, d0 = W.shape
    ok = True
    c1 = 1.0 - 0.9 ** (t + 1)
    c2 = 1.0 - 0.999 ** (t + 1)
    for p in range(d1):
        for q in range(d0):
            g = gW[p, q]
            if adam:
                mW[p, q] = 0.9 * mW[p, q] + 0.1 * g
                vW[p, q] = 0.999 * vW[p, q] + 0.001 * g * g
                W[p, q] -= lr_t * (mW[p, q] / c1) / (np.sqrt(vW[p, q] / c2) + 1e-8)
            else:
                mW[p, q] = momentum * mW[p, q] + g
                W[p, q] -= lr_t * mW[p, q]
            ok = ok and np.isfinite(W[p, q])
        if has_bias:
            g = gb[p]
            if adam:
                mb[p] = 0.9 * mb[p] + 0.1 * g
                vb[p] = 0.999 * vb[p] + 0.001 * g * g
                b[p] -= lr_t * (mb[p] / c1) / (np.sqrt(vb[p] / c2) + 1e-8)
            else:
                mb[p] = momentum * mb[p] + g
                b[p] -= lr_t * mb[p]
    return ok


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
def _workspace(n, d0, d1, reps, both):
    nchunks = min(N_CHUNKS, n)
    return (np.empty((reps, d0, n)), np.empty((reps, d0, n)), np.empty((n, d1)), np.empty((n, d1)), np.empty(n),
            np.empty(n), np.empty((d1, n)), np.empty((d1, n)), np.empty((n, d1)), np.empty(n),
            np.empty((nchunks, d1, n)), np.empty((nchunks, d1, n) if both else (nchunks, 1, 1)),
            np.empty(n), np.empty((d1, n)), np.empty((d1, n)), np.empty((d1, d0)), np.empty(d1))


@njit(cache=CACHE)
def _state(d1, d0):
    """Summed gradient and optimizer moments: ``gW, gb, mW, vW, mb, vb``."""
    return (np.zeros((d1, d0)), np.zeros(d1), np.zeros((d1, d0)), np.zeros((d1, d0)), np.zeros(d1),
            np.zeros(d1))


@njit(cache=CACHE)
def _redraw(x, factor, diag, rng, x1, x2, x1T, x2T, reps):
    for r in range(reps):
        _draw_views(x, factor, diag, rng, x1[r], x2[r], x1T[r], x2T[r])


@njit(cache=CACHE)
def _after_step(t, value, W, b, has_bias, gW, gb, mW, vW, mb, vb, steps, lr, lr_final, cosine, adam,
                momentum, record_every, rec, hist_W, hist_b, hist_loss, hist_gn):
    """Record the history and update the weights; returns the next record index, -1 if diverged."""
    gn = _sq_norm(gW, gb, has_bias)
    if not (np.isfinite(value) and np.isfinite(gn)):
        return -1
    if t % record_every == 0:
        hist_W[rec] = W
        hist_b[rec] = b
        hist_loss[rec] = value
        hist_gn[rec] = np.sqrt(gn)
        rec += 1
    if not _update(W, b, has_bias, gW, gb, mW, vW, mb, vb, t, _lr_at(t, steps, lr, lr_final, cosine), adam,
                   momentum):
        return -1
    return rec


# Four short loops share the helpers above and differ only in the step they call: the
# InfoNCE family or the other losses (so that a run compiles only its own kernels), each
# with the parallel step (one run) or the serial step (one run per thread in a batch; a
# cached non-parallel function must not call a parallel one, numba/numba#8578).
# Each returns the number of steps done (fewer if the run diverged); W, b change in place
# and x1, x2 (reps, N, d0) receive the views (with fixed noise: the views used).


@njit(parallel=True, cache=CACHE)
def _run_infonce_parallel(x, factor, diag, rng, x1, x2, W, b, has_bias, steps, lr, lr_final, cosine, adam,
                          momentum, fresh, reps, record_every, prm, both, normalize, c, norm_eps, wd,
                          cv, Mbar, hist_W, hist_b, hist_loss, hist_gn):
    n, d0 = x.shape
    d1 = W.shape[0]
    x1T, x2T, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = _workspace(
        n, d0, d1, reps, both)
    gW, gb, mW, vW, mb, vb = _state(d1, d0)
    Mw, s1, s2 = np.empty((d0, d0)), np.empty(d0), np.empty(d0)
    rec = 0
    for t in range(steps):
        if t == 0 or fresh:
            _redraw(x, factor, diag, rng, x1, x2, x1T, x2T, reps)
        gW[:] = 0.0
        gb[:] = 0.0
        value = 0.0
        for r in range(reps):
            value += _infonce_linear(W, b, has_bias, x1[r], x2[r], x1T[r], x2T[r], prm[0], prm[1], both,
                                     normalize, c, norm_eps, wd, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos,
                                     buf1, buf2, lse, g1, g2, dW, db) / reps
            if cv:
                _quadratic_moment(x1[r], x2[r], prm[0], prm[1], both, Mw, s1, s2)
                _apply(W, Mw, Mbar, dW)
            _accumulate(gW, gb, dW, db, 1.0 / reps)
        rec = _after_step(t, value, W, b, has_bias, gW, gb, mW, vW, mb, vb, steps, lr, lr_final, cosine, adam,
                          momentum, record_every, rec, hist_W, hist_b, hist_loss, hist_gn)
        if rec < 0:
            return t
    hist_W[rec] = W
    hist_b[rec] = b
    return steps


@njit(cache=CACHE)
def _run_infonce_serial(x, factor, diag, rng, x1, x2, W, b, has_bias, steps, lr, lr_final, cosine, adam,
                        momentum, fresh, reps, record_every, prm, both, normalize, c, norm_eps, wd,
                        cv, Mbar, hist_W, hist_b, hist_loss, hist_gn):
    n, d0 = x.shape
    d1 = W.shape[0]
    x1T, x2T, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = _workspace(
        n, d0, d1, reps, both)
    gW, gb, mW, vW, mb, vb = _state(d1, d0)
    Mw, s1, s2 = np.empty((d0, d0)), np.empty(d0), np.empty(d0)
    rec = 0
    for t in range(steps):
        if t == 0 or fresh:
            _redraw(x, factor, diag, rng, x1, x2, x1T, x2T, reps)
        gW[:] = 0.0
        gb[:] = 0.0
        value = 0.0
        for r in range(reps):
            value += _infonce_linear_serial(W, b, has_bias, x1[r], x2[r], x1T[r], x2T[r], prm[0], prm[1],
                                            both, normalize, c, norm_eps, wd, z1, z2, nrm1, nrm2, z1T, z2T,
                                            gA, lpos, buf1, buf2, lse, g1, g2, dW, db) / reps
            if cv:
                _quadratic_moment(x1[r], x2[r], prm[0], prm[1], both, Mw, s1, s2)
                _apply(W, Mw, Mbar, dW)
            _accumulate(gW, gb, dW, db, 1.0 / reps)
        rec = _after_step(t, value, W, b, has_bias, gW, gb, mW, vW, mb, vb, steps, lr, lr_final, cosine, adam,
                          momentum, record_every, rec, hist_W, hist_b, hist_loss, hist_gn)
        if rec < 0:
            return t
    hist_W[rec] = W
    hist_b[rec] = b
    return steps


@njit(fastmath=FASTMATH, cache=CACHE)
def _other_step_serial(kind, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps, wd, z1, z2,
                       nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db):
    """SCL (``kind == 1``), Barlow Twins (2) or VICReg (3), serial."""
    if kind == 1:
        return _scl_linear_serial(W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps, wd, z1, z2,
                                  nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db)
    return _decorrelation_linear(kind - 2, prm, W, b, has_bias, x1, x2, x1T, x2T, normalize, c, norm_eps, wd,
                                 z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, g1, g2, dW, db)


@njit(parallel=True, cache=CACHE)
def _run_other_parallel(x, factor, diag, rng, x1, x2, W, b, has_bias, steps, lr, lr_final, cosine, adam,
                        momentum, fresh, reps, record_every, kind, prm, both, normalize, c, norm_eps, wd,
                        hist_W, hist_b, hist_loss, hist_gn):
    n, d0 = x.shape
    d1 = W.shape[0]
    x1T, x2T, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = _workspace(
        n, d0, d1, reps, both)
    gW, gb, mW, vW, mb, vb = _state(d1, d0)
    rec = 0
    for t in range(steps):
        if t == 0 or fresh:
            _redraw(x, factor, diag, rng, x1, x2, x1T, x2T, reps)
        gW[:] = 0.0
        gb[:] = 0.0
        value = 0.0
        for r in range(reps):
            if kind == 1:
                v = _scl_linear(W, b, has_bias, x1[r], x2[r], x1T[r], x2T[r], both, normalize, c, norm_eps,
                                wd, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db)
            else:
                v = _decorrelation_linear(kind - 2, prm, W, b, has_bias, x1[r], x2[r], x1T[r], x2T[r],
                                          normalize, c, norm_eps, wd, z1, z2, nrm1, nrm2, z1T, z2T, gA,
                                          lpos, g1, g2, dW, db)
            value += v / reps
            _accumulate(gW, gb, dW, db, 1.0 / reps)
        rec = _after_step(t, value, W, b, has_bias, gW, gb, mW, vW, mb, vb, steps, lr, lr_final, cosine, adam,
                          momentum, record_every, rec, hist_W, hist_b, hist_loss, hist_gn)
        if rec < 0:
            return t
    hist_W[rec] = W
    hist_b[rec] = b
    return steps


@njit(cache=CACHE)
def _run_other_serial(x, factor, diag, rng, x1, x2, W, b, has_bias, steps, lr, lr_final, cosine, adam,
                      momentum, fresh, reps, record_every, kind, prm, both, normalize, c, norm_eps, wd,
                      hist_W, hist_b, hist_loss, hist_gn):
    n, d0 = x.shape
    d1 = W.shape[0]
    x1T, x2T, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = _workspace(
        n, d0, d1, reps, both)
    gW, gb, mW, vW, mb, vb = _state(d1, d0)
    rec = 0
    for t in range(steps):
        if t == 0 or fresh:
            _redraw(x, factor, diag, rng, x1, x2, x1T, x2T, reps)
        gW[:] = 0.0
        gb[:] = 0.0
        value = 0.0
        for r in range(reps):
            value += _other_step_serial(kind, prm, W, b, has_bias, x1[r], x2[r], x1T[r], x2T[r], both,
                                        normalize, c, norm_eps, wd, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos,
                                        buf1, buf2, lse, g1, g2, dW, db) / reps
            _accumulate(gW, gb, dW, db, 1.0 / reps)
        rec = _after_step(t, value, W, b, has_bias, gW, gb, mW, vW, mb, vb, steps, lr, lr_final, cosine, adam,
                          momentum, record_every, rec, hist_W, hist_b, hist_loss, hist_gn)
        if rec < 0:
            return t
    hist_W[rec] = W
    hist_b[rec] = b
    return steps


@njit(parallel=True, cache=CACHE)
def _batch_infonce(xs, factors, diag, rngs, x1s, x2s, Ws, bs, has_bias, steps, lr, lr_final, cosine, adam,
                   momentum, fresh, reps, record_every, prm, both, normalize, c, norm_eps, wd, cv, Mbars,
                   hist_W, hist_b, hist_loss, hist_gn, done):
    for k in prange(xs.shape[0]):
        done[k] = _run_infonce_serial(xs[k], factors[k], diag, rngs[np.int64(k)], x1s[k], x2s[k], Ws[k], bs[k],
                                      has_bias, steps, lr, lr_final, cosine, adam, momentum, fresh, reps,
                                      record_every, prm, both, normalize, c, norm_eps, wd, cv, Mbars[k],
                                      hist_W[k], hist_b[k], hist_loss[k], hist_gn[k])


@njit(parallel=True, cache=CACHE)
def _batch_other(xs, factors, diag, rngs, x1s, x2s, Ws, bs, has_bias, steps, lr, lr_final, cosine, adam,
                 momentum, fresh, reps, record_every, kind, prm, both, normalize, c, norm_eps, wd,
                 hist_W, hist_b, hist_loss, hist_gn, done):
    for k in prange(xs.shape[0]):
        done[k] = _run_other_serial(xs[k], factors[k], diag, rngs[np.int64(k)], x1s[k], x2s[k], Ws[k], bs[k],
                                    has_bias, steps, lr, lr_final, cosine, adam, momentum, fresh, reps,
                                    record_every, kind, prm, both, normalize, c, norm_eps, wd, hist_W[k],
                                    hist_b[k], hist_loss[k], hist_gn[k])


def _n_records(steps, record_every):
    return steps // record_every + (1 if steps % record_every else 0) + 1


def _loss_args(loss):
    """``(kind, prm, both, normalize, c, norm_eps, weight_decay)`` for the compiled loops."""
    kw = loss.core_kwargs
    kind, prm = loss.spec.kernel_id, loss.spec.kernel_params(kw)
    both = kw.get("negatives") == "both"
    return (kind, np.asarray(prm, dtype=np.float64).reshape(-1), both, bool(loss.normalize), float(loss.c),
            float(loss.norm_eps), float(loss.weight_decay))


def train_linear(loss, x, factor, W0, b0, *, steps, lr, lr_final, cosine, adam, momentum, fresh,
                  replicates, rng, record_every, control=None):
    """Run one compiled training of a linear model on ``loss`` with Gaussian noise ``F xi``.

    ``rng`` is a ``numpy.random.Generator`` (advanced in place, as the Python loop would).
    ``control``: ``bar M`` (d0, d0) to apply the control variate of
    :mod:`minissl.control_variate` (InfoNCE family only), or None.
    Returns ``(W, b, hist_W, hist_b, hist_loss, hist_gn, steps_done, (x1, x2))``; history
    rows are recorded at steps ``0, record_every, ...`` and after the last step; ``x1, x2``
    are the last views drawn (the fixed views with ``fresh=False``).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    factor = np.ascontiguousarray(factor, dtype=np.float64)
    diag = bool(np.count_nonzero(factor - np.diag(np.diag(factor))) == 0)
    W = np.array(W0, dtype=np.float64, order="C")
    has_bias = b0 is not None
    b = np.array(b0, dtype=np.float64) if has_bias else np.zeros(W.shape[0])
    nrec = _n_records(steps, record_every)
    hist_W = np.zeros((nrec,) + W.shape)
    hist_b = np.zeros((nrec, W.shape[0]))
    hist_loss = np.full(nrec, np.nan)
    hist_gn = np.full(nrec, np.nan)
    x1 = np.empty((replicates,) + x.shape)
    x2 = np.empty((replicates,) + x.shape)
    kind, prm, *rest = _loss_args(loss)
    common = (x, factor, diag, rng, x1, x2, W, b, has_bias, steps, lr, lr_final, cosine, adam, momentum, fresh,
              replicates, record_every)
    if kind == 0:
        cv = control is not None
        Mbar = np.ascontiguousarray(control if cv else np.zeros((x.shape[1], x.shape[1])), dtype=np.float64)
        done = _run_infonce_parallel(*common, prm, *rest, cv, Mbar, hist_W, hist_b, hist_loss, hist_gn)
    else:
        if control is not None:
            raise ValueError(f"control: the control variate applies to the InfoNCE family, not {loss.name!r}.")
        done = _run_other_parallel(*common, kind, prm, *rest, hist_W, hist_b, hist_loss, hist_gn)
    if nrec > 1:  # the row after the last step repeats the last evaluated loss
        hist_loss[-1], hist_gn[-1] = hist_loss[-2], hist_gn[-2]
    return W, (b if has_bias else None), hist_W, hist_b, hist_loss, hist_gn, int(done), (x1, x2)


def train_batch(loss, xs, factors, W0s, b0s, *, steps, lr, lr_final, cosine, adam, momentum, fresh,
                replicates, rngs, record_every, controls=None):
    """Run ``K`` independent compiled trainings in parallel (one thread per run).

    ``xs`` (K, N, d0), ``factors`` (K, d0, d0), ``W0s`` (K, d1, d0), ``b0s`` (K, d1) or None,
    ``rngs`` K NumPy Generators, ``controls`` (K, d0, d0) ``bar M`` of each run or None.
    Returns the same fields as :func:`train_linear`, stacked over runs.
    """
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    factors = np.ascontiguousarray(factors, dtype=np.float64)
    diag = bool(all(np.count_nonzero(f - np.diag(np.diag(f))) == 0 for f in factors))
    Ws = np.array(W0s, dtype=np.float64, order="C")
    K, d1, _ = Ws.shape
    has_bias = b0s is not None
    bs = np.array(b0s, dtype=np.float64) if has_bias else np.zeros((K, d1))
    nrec = _n_records(steps, record_every)
    hist_W = np.zeros((K, nrec) + Ws.shape[1:])
    hist_b = np.zeros((K, nrec, d1))
    hist_loss = np.full((K, nrec), np.nan)
    hist_gn = np.full((K, nrec), np.nan)
    done = np.zeros(K, dtype=np.int64)
    x1s = np.empty((K, replicates) + xs.shape[1:])
    x2s = np.empty((K, replicates) + xs.shape[1:])
    kind, prm, *rest = _loss_args(loss)
    common = (xs, factors, diag, typed.List(rngs), x1s, x2s, Ws, bs, has_bias, steps, lr, lr_final, cosine, adam,
              momentum, fresh, replicates, record_every)
    if kind == 0:
        cv = controls is not None
        d0 = xs.shape[2]
        Mbars = np.ascontiguousarray(controls if cv else np.zeros((K, d0, d0)), dtype=np.float64)
        _batch_infonce(*common, prm, *rest, cv, Mbars, hist_W, hist_b, hist_loss, hist_gn, done)
    else:
        if controls is not None:
            raise ValueError(f"controls: the control variate applies to the InfoNCE family, not {loss.name!r}.")
        _batch_other(*common, kind, prm, *rest, hist_W, hist_b, hist_loss, hist_gn, done)
    if nrec > 1:
        hist_loss[:, -1], hist_gn[:, -1] = hist_loss[:, -2], hist_gn[:, -2]
    return Ws, (bs if has_bias else None), hist_W, hist_b, hist_loss, hist_gn, done, (x1s, x2s)


def warm_up(loss, d0, d1, batch=False):
    """Compile (or load from Numba's cache) the loop for this loss variant; report how.

    Returns ``(seconds, source)`` with ``source`` one of "compiled", "cache" or "loaded"
    (already in this process). Importing minissl compiles nothing; this is the first use.
    """
    import time

    infonce = _loss_args(loss)[0] == 0
    disp = ((_batch_infonce if infonce else _batch_other) if batch
            else (_run_infonce_parallel if infonce else _run_other_parallel))
    if not hasattr(disp, "stats"):  # NUMBA_DISABLE_JIT=1: plain Python functions
        return 0.0, "python (JIT disabled)"
    before = sum(disp.stats.cache_misses.values()), sum(disp.stats.cache_hits.values())
    already = len(disp.signatures) > 0
    t0 = time.perf_counter()
    x = np.zeros((2, d0))
    F = np.zeros((d0, d0))
    W = np.zeros((d1, d0))
    if batch:
        train_batch(loss, x[None], F[None], W[None], None, steps=0, lr=1.0, lr_final=0.0, cosine=False,
                    adam=True, momentum=0.0, fresh=True, replicates=1, rngs=[np.random.default_rng(0)],
                    record_every=1)
    else:
        train_linear(loss, x, F, W, None, steps=0, lr=1.0, lr_final=0.0, cosine=False, adam=True,
                      momentum=0.0, fresh=True, replicates=1, rng=np.random.default_rng(0), record_every=1)
    dt = time.perf_counter() - t0
    after = sum(disp.stats.cache_misses.values()), sum(disp.stats.cache_hits.values())
    if after[0] > before[0]:
        return dt, "compiled"
    if after[1] > before[1]:
        return dt, "cache"
    return dt, "loaded" if already else "cache"
