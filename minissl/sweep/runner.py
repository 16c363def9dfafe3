"""Run the points of a sweep that are not stored yet, on an executor, storing each as it finishes."""

from __future__ import annotations

from dataclasses import dataclass, field

from .progress import progress_bar

__all__ = ["run_sweep", "SweepOutcome"]


@dataclass
class SweepOutcome:
    """What one call of :func:`run_sweep` did."""

    total: int
    reused: int
    computed: int = 0
    failed: dict = field(default_factory=dict)  # key -> error message
    again: dict = field(default_factory=dict)  # key -> new options: to be computed again (not stored)
    interrupted: bool = False

    @property
    def missing(self):
        """Points neither stored before nor computed now (failed, to run again, or not reached)."""
        return self.total - self.reused - self.computed


def _jobs(todo, chunk, group):
    """Consecutive points of the same ``group`` value, at most ``chunk`` per job, in order of groups."""
    order = {}
    for key, opts in todo:
        order.setdefault(group(opts) if group else None, []).append((key, opts))
    jobs = []
    for members in order.values():
        for i in range(0, len(members), chunk):
            jobs.append(members[i:i + chunk])
    return jobs


def run_sweep(command, points, store, executor, fn, group=None, progress=None, desc=None, raise_errors=False):
    """Compute and store every point of ``points`` that ``store`` does not hold.

    Parameters
    ----------
    command : str
        Stored with each point and passed to ``fn``.
    points : list of (key, options)
        In the sweep's order; a key that repeats is computed once.
    store : minissl.sweep.Store
    executor : Embedded or DaskExecutor
    fn : callable
        ``fn(command, options_list) -> [("ok", json_report) | ("error", message) |
        ("again", new_options), ...]``, a module-level function or a ``functools.partial`` of
        one (Dask pickles it). ``"again"`` is not stored: the caller computes it again
        (:class:`minissl.experiments.runs.RunCache`'s retries).
    group : callable, optional
        ``group(options) -> hashable``: points with equal values may share a job (trained
        together); others never do.
    progress : bool, optional
        Progress bar on stderr (None: when stderr is a terminal).
    desc : str, optional
        The progress bar's label.
    raise_errors : bool
        A job that raises stops the sweep with its exception (finished points stay stored);
        otherwise its points are counted as failed with the message and the sweep goes on.

    Returns
    -------
    SweepOutcome
        An interrupt (Ctrl-C) ends the run early with ``interrupted=True``; every point
        finished before it is stored.
    """
    unique = dict(points)
    stored = store.stored(unique)
    todo = [(k, o) for k, o in unique.items() if k not in stored]
    out = SweepOutcome(total=len(unique), reused=len(stored))
    if not todo:
        return out
    jobs = _jobs(todo, executor.chunk(len(todo)), group)
    bar = progress_bar(len(unique), initial=len(stored), desc=desc, enabled=progress)

    def on_done(j, value):
        members = jobs[j]
        if isinstance(value, BaseException):
            if raise_errors:
                raise value
            value = [("error", f"{type(value).__name__}: {value}")] * len(members)
        for (key, opts), (status, payload) in zip(members, value):
            if status == "ok":
                store.put(key, command, opts, payload, payload.get("seconds"))
                out.computed += 1
            elif status == "again":  # e.g. a run to retry with more steps: the caller resubmits it
                out.again[key] = payload
            else:
                out.failed[key] = payload
        bar.update(len(members))

    try:
        executor.map(fn, [(j, (command, [o for _, o in members])) for j, members in enumerate(jobs)], on_done)
    except KeyboardInterrupt:
        out.interrupted = True
    finally:
        bar.close()
    return out
