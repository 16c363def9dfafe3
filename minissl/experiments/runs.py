"""One resumable store of training runs, shared by the figure reproductions and the imbalance experiment.

A *run* is one call of :func:`minissl.simulate` under a key. Each finished run is turned into
a JSON record by an ``evaluate`` function and stored in ``FOLDER/sweep.sqlite``
(:class:`minissl.sweep.Store`) under its key and a digest of everything that defines it, so an
interrupted experiment resumes where it stopped and a changed setting is recomputed, never
silently reused. Runs go through the same machinery as ``minissl sweep``
(:func:`minissl.sweep.run_sweep`): on the embedded executor a few at a time with
:func:`minissl.simulate_batch` (compiled runs in parallel), or as tasks of a Dask cluster.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

from .._io import jsonable

__all__ = ["RunCache", "settings_digest", "train_records"]


def settings_digest(obj):
    """16 hex digits of the SHA-256 of ``obj`` as canonical JSON.

    Keys sorted; arrays and NumPy scalars as Python values, non-finite floats as ``null``
    (:func:`minissl._io.jsonable`); any other object by its ``str``.
    """
    text = json.dumps(jsonable(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunCache:
    """Train runs with caching, a progress bar and the ``converged`` protocol's retries.

    Parameters
    ----------
    folder : path
        Where finished runs are stored (created).
    evaluate : callable
        ``evaluate(result, kwargs) -> dict``: the JSON record of a finished run from its
        :class:`~minissl.SimulationResult` and the ``simulate`` arguments of its last attempt.
        The cache adds ``key``, ``settings_hash``, ``converged``, ``steps``, ``replicates``
        and ``seconds`` (training wall time per run of its batch).
    max_steps, max_replicates : int, optional
        A run whose convergence diagnostics fail is re-run with twice the steps (up to
        ``max_steps``) and twice the noise replicates per step (up to ``max_replicates``; the
        gradient's variance halves, its expectation is unchanged) until it passes or neither
        can grow; the record says whether it converged in the end. Gradient noise is what
        keeps weakly driven directions from their stationary value: the fluctuation of W it
        causes (under Adam about ``lr`` per step per coordinate, whatever the gradient's size)
        acts through the quartic term like an extra pull towards 0. More replicates shrink the
        noise, more steps let slow directions relax; neither replaces a small enough ``lr``
        (Fig. 5 middle needs 1e-4, data/experiments/fig5-weighted.toml). None: no retries of
        that kind.
    progress : bool
        A progress bar on stderr (when it is a terminal).
    batch : int
        Runs trained together by one :func:`minissl.simulate_batch` call (embedded executor).
    context : dict, optional
        Everything besides the ``simulate`` arguments that changes a run's record (the
        evaluator, figure settings); part of the digest of runs given without a ``spec``.
    noun : str
        What the progress bar calls the runs (``"points"``, ``"runs"``).
    executor : minissl.sweep.Embedded or minissl.sweep.DaskExecutor, optional
        Where the runs are trained [default: this process, ``batch`` at a time].
    """

    def __init__(self, folder, evaluate, max_steps=None, max_replicates=None, progress=True, batch=2,
                 context=None, noun="points", executor=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.evaluate = evaluate
        self.max_steps = max_steps
        self.max_replicates = max_replicates
        self.progress = progress
        self.batch = batch
        self.noun = noun
        self.executor = executor
        self.context = {"max_steps": max_steps, "max_replicates": max_replicates, **(context or {})}

    def digest(self, kwargs, spec=None):
        """The digest stored with a run: of ``spec`` when given (it must then hold everything that
        defines the run, the retry policy included), else of ``kwargs`` and the cache's context."""
        return settings_digest(spec if spec is not None else {"params": kwargs, "context": self.context})

    def run(self, runs):
        """Records of ``runs``, in order: stored ones reused, the others trained and stored.

        Parameters
        ----------
        runs : sequence of tuple
            ``(key, simulate_kwargs)`` or ``(key, simulate_kwargs, spec)``; ``spec`` (JSON-able)
            identifies the run when its keyword arguments do not (e.g. they hold a dataset).

        Raises ``KeyboardInterrupt`` after an interrupt (the finished runs are stored) and the
        error of a run that failed (e.g. ``FloatingPointError`` of a diverged run).
        """
        from ..sweep import Embedded, Store, run_sweep

        items = []
        for key, kwargs, *spec in runs:
            digest = self.digest(kwargs, *spec)
            items.append((f"{key}@{digest}", {"key": key, "digest": digest, "kwargs": kwargs}))
        executor = self.executor or Embedded(chunk=self.batch)
        fn = functools.partial(train_records, evaluate=self.evaluate, max_steps=self.max_steps,
                               max_replicates=self.max_replicates)
        with Store(self.folder) as store:
            pending = items
            while pending:  # a round per retry level: every run is stored as soon as it is final
                out = run_sweep("simulate-runs", pending, store, executor, fn,
                                progress=None if self.progress else False, desc=self.noun, raise_errors=True)
                if out.interrupted:
                    raise KeyboardInterrupt
                pending = list(out.again.items())
            return [store.get(k)["result"] for k, _ in items]


def train_records(command, payloads, evaluate, max_steps=None, max_replicates=None, threads=None):
    """Train runs once; ``[("ok", record) | ("again", payload), ...]`` in order.

    The job function of :meth:`RunCache.run` (module level: a Dask worker runs it too). The runs
    are trained together by :func:`minissl.simulate_batch`; a run whose convergence diagnostics
    fail comes back as ``("again", payload)`` with twice the steps / replicates (within
    ``max_steps`` / ``max_replicates``), which :meth:`RunCache.run` trains in its next round,
    until it passes or neither can grow. ``record`` is
    ``evaluate(result, kwargs)`` plus ``key``, ``settings_hash``, ``converged``, ``steps``,
    ``replicates`` and ``seconds`` (training wall time per run of its batch).
    """
    from ..train import simulate_batch

    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    t0 = time.perf_counter()
    results = simulate_batch([p["kwargs"] for p in payloads], warn=False)
    seconds = (time.perf_counter() - t0) / len(payloads)
    out = []
    for p, res in zip(payloads, results):
        kw = p["kwargs"]
        steps, reps = kw.get("steps", 3000), kw.get("replicates", 1)
        grow_s = bool(max_steps) and steps * 2 <= max_steps
        grow_r = bool(max_replicates) and reps * 2 <= max_replicates
        if not res.converged and (grow_s or grow_r):
            out.append(("again", {**p, "kwargs": {**kw, "steps": steps * 2 if grow_s else steps,
                                                  "replicates": reps * 2 if grow_r else reps}}))
            continue
        rec = evaluate(res, kw)
        rec.update({"key": p["key"], "settings_hash": p["digest"], "converged": bool(res.converged),
                    "steps": int(res.settings["steps"]), "replicates": int(res.settings["replicates"]),
                    "seconds": seconds})
        out.append(("ok", jsonable(rec)))
    return out
