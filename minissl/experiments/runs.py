"""One resumable cache of training runs, shared by the figure reproductions and the imbalance experiment.

A *run* is one call of :func:`minissl.simulate` under a key. Each finished run is turned into
a JSON record by an ``evaluate`` function and written atomically to ``FOLDER/<key>.json``
together with a digest of everything that defines it, so an interrupted experiment resumes
where it stopped and a changed setting is recomputed, never silently reused. Runs are trained
a few at a time with :func:`minissl.simulate_batch` (compiled runs in parallel).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from .._io import atomic_write_text, jsonable

__all__ = ["RunCache", "settings_digest"]


def settings_digest(obj):
    """16 hex digits of the SHA-256 of ``obj`` as canonical JSON.

    Keys sorted; arrays and NumPy scalars as Python values, non-finite floats as ``null``
    (:func:`minissl._io.jsonable`); any other object by its ``str``.
    """
    text = json.dumps(jsonable(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunCache:
    """Train runs with caching, progress lines and the ``converged`` protocol's retries.

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
        Print one line per finished run to stderr.
    batch : int
        Runs trained together by one :func:`minissl.simulate_batch` call.
    context : dict, optional
        Everything besides the ``simulate`` arguments that changes a run's record (the
        evaluator, figure settings); part of the digest of runs given without a ``spec``.
    noun : str
        What the progress lines call the runs (``"points"``, ``"runs"``).
    """

    def __init__(self, folder, evaluate, max_steps=None, max_replicates=None, progress=True, batch=2,
                 context=None, noun="points"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.evaluate = evaluate
        self.max_steps = max_steps
        self.max_replicates = max_replicates
        self.progress = progress
        self.batch = batch
        self.noun = noun
        self.context = {"max_steps": max_steps, "max_replicates": max_replicates, **(context or {})}

    def digest(self, kwargs, spec=None):
        """The digest stored with a run: of ``spec`` when given (it must then hold everything that
        defines the run, the retry policy included), else of ``kwargs`` and the cache's context."""
        return settings_digest(spec if spec is not None else {"params": kwargs, "context": self.context})

    def load(self, key, digest):
        """The stored record of ``key`` if its digest is ``digest``, else None."""
        try:
            rec = json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and rec.get("settings_hash") == digest else None

    def run(self, runs):
        """Records of ``runs``, in order: stored ones reused, the others trained and stored.

        Parameters
        ----------
        runs : sequence of tuple
            ``(key, simulate_kwargs)`` or ``(key, simulate_kwargs, spec)``; ``spec`` (JSON-able)
            identifies the run when its keyword arguments do not (e.g. they hold a dataset).
        """
        from ..train import simulate_batch

        records, todo = {}, []
        for key, kwargs, *spec in runs:
            digest = self.digest(kwargs, *spec)
            rec = self.load(key, digest)
            if rec is not None:
                records[key] = rec
            else:
                todo.append((key, digest))
        attempt = {key: dict(kwargs) for key, kwargs, *_ in runs}
        n_total, n_done = len(runs), len(records)
        if self.progress and n_done:
            print(f"  {n_done}/{n_total} {self.noun} already done (resumed from {self.folder})", file=sys.stderr)
        t_start = time.perf_counter()
        while todo:
            chunk, todo = todo[: self.batch], todo[self.batch:]
            t0 = time.perf_counter()
            results = simulate_batch([attempt[key] for key, _ in chunk], warn=False)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for (key, digest), res in zip(chunk, results):
                steps, reps = attempt[key].get("steps", 3000), attempt[key].get("replicates", 1)
                grow_s = bool(self.max_steps) and steps * 2 <= self.max_steps
                grow_r = bool(self.max_replicates) and reps * 2 <= self.max_replicates
                if not res.converged and (grow_s or grow_r):
                    attempt[key] = {**attempt[key], "steps": steps * 2 if grow_s else steps,
                                    "replicates": reps * 2 if grow_r else reps}
                    todo.append((key, digest))
                    continue
                rec = self.evaluate(res, attempt[key])
                rec.update({"key": key, "settings_hash": digest, "converged": bool(res.converged),
                            "steps": int(res.settings["steps"]), "replicates": int(res.settings["replicates"]),
                            "seconds": seconds})
                atomic_write_text(self.folder / f"{key}.json", json.dumps(jsonable(rec), allow_nan=False) + "\n")
                records[key] = rec
                n_done += 1
                if self.progress:
                    el = time.perf_counter() - t_start
                    print(f"  [{n_done}/{n_total}] {key}: {'converged' if rec['converged'] else 'NOT converged'}"
                          f" ({rec['steps']} steps x {rec['replicates']} replicates, {el:.0f} s)", file=sys.stderr)
        return [records[key] for key, *_ in runs]
