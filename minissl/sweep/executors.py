"""Where a sweep's points are computed: in this process (the default) or on a Dask cluster.

An executor calls ``fn(*args)`` for each job and hands every return value to ``on_done`` *in the
process that drives the sweep*, as soon as it is there; only that process writes the store.
Both executors run the same ``fn`` on the same arguments, so the same seeds give the same numbers
on either (``fn`` builds everything it needs from its arguments; nothing else is shared).

* :class:`Embedded` (no extra packages): the jobs one after another in this process. A job
  holding several ``simulate`` points trains them together, compiled runs in parallel across
  Numba threads (``workers`` of them).
* :class:`DaskExecutor` (the ``dist`` extra, ``dask[distributed]``): every job a Dask task, on a
  running scheduler (``tcp://HOST:PORT``) or on a ``LocalCluster`` of worker *processes* started
  here (``"local"``). A worker that dies has its tasks re-run on the others by the scheduler;
  what finished before is already stored.
"""

from __future__ import annotations

import os

__all__ = ["Embedded", "DaskExecutor", "make_executor"]


class Embedded:
    """Compute the jobs in this process, one after another.

    Parameters
    ----------
    workers : int, optional
        Numba threads while the sweep runs [default: Numba's, i.e. the machine's cores].
    chunk : int, optional
        Points per job [default: twice the threads: every thread busy, stored often].
    """

    name = "embedded"

    def __init__(self, workers=None, chunk=None):
        self.workers = workers
        self._chunk = chunk

    def chunk(self, n_points):
        """Points per job."""
        import numba

        if self._chunk:
            return self._chunk
        return max(1, 2 * (self._threads() if self.workers else numba.get_num_threads()))

    def _threads(self):
        import numba

        return min(self.workers, numba.config.NUMBA_NUM_THREADS)  # more than Numba has: all it has

    def map(self, fn, jobs, on_done):
        """``on_done(tag, fn(*args))`` for each ``(tag, args)`` of ``jobs``, in order; a job that
        raises gives its exception as the value (KeyboardInterrupt propagates)."""
        import numba

        before = numba.get_num_threads()
        if self.workers:
            numba.set_num_threads(self._threads())
        try:
            for tag, args in jobs:
                try:
                    value = fn(*args)
                except Exception as exc:  # noqa: BLE001 - as on Dask: the runner decides (fail the points or raise)
                    value = exc
                on_done(tag, value)
        finally:
            numba.set_num_threads(before)

    def close(self):
        pass


class DaskExecutor:
    """Compute the jobs as tasks of a Dask distributed cluster.

    Parameters
    ----------
    address : str
        ``"local"`` starts a ``LocalCluster`` of ``workers`` processes (one thread each, the
        cores shared out as Numba threads); otherwise the scheduler's address,
        ``tcp://HOST:PORT``, whose workers must have minissl installed (the same version).
    workers : int, optional
        Worker processes of a local cluster [default: 2, at most the cores].
    client : distributed.Client, optional
        An existing client to use instead (tests, notebooks); it is not closed.
    """

    name = "dask"

    def __init__(self, address="local", workers=None, client=None):
        # fn(*args, threads=k) sets k Numba threads in the worker (cores shared by local workers)
        try:
            import distributed
        except ImportError:
            raise ImportError("a Dask scheduler needs the 'dist' extra: pip install 'minissl[dist]'.") from None
        self._own = client is None
        self._cluster = None
        self.threads = None
        if client is not None:
            self.client = client
        elif address == "local":
            cores = os.cpu_count() or 1
            n = workers or min(2, cores)
            self._cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                     dashboard_address=None, silence_logs=40)
            self.client = distributed.Client(self._cluster)
            self.threads = max(1, cores // n)
        else:
            try:
                self.client = distributed.Client(address, timeout=30)
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"scheduler == {address!r}: cannot connect ({exc}); start one with "
                                 "`dask scheduler` and give its tcp://HOST:PORT.") from None

    def n_workers(self):
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def chunk(self, n_points):
        """Points per task: one, or a few when there are many more points than workers."""
        return max(1, min(8, n_points // (4 * self.n_workers())))

    def map(self, fn, jobs, on_done):
        """Submit every job; ``on_done(tag, value)`` as each finishes, where a task that failed for
        good (e.g. its workers kept dying) gives its exception as the value."""
        from distributed import as_completed

        futures = {}
        for tag, args in jobs:
            kw = {} if self.threads is None else {"threads": self.threads}
            futures[self.client.submit(fn, *args, pure=False, **kw)] = tag
        try:
            for fut in as_completed(list(futures)):
                try:
                    value = fut.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker and the like: reported per point
                    value = exc
                on_done(futures[fut], value)
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)

    def close(self):
        if self._own:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()


def make_executor(scheduler=None, workers=None):
    """The embedded executor (``scheduler=None``) or a Dask one (``"local"`` or ``tcp://HOST:PORT``)."""
    if scheduler is None:
        return Embedded(workers)
    if scheduler != "local" and "://" not in scheduler:
        raise ValueError(f"scheduler == {scheduler!r}, must be 'local' or a Dask scheduler address such as "
                         "tcp://10.0.0.5:8786.")
    if scheduler != "local" and workers is not None:
        raise ValueError("workers applies to the embedded executor and to --scheduler local; a running cluster "
                         "has its own workers.")
    return DaskExecutor(scheduler, workers)
