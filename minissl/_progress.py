"""Step progress of a training run, for whoever shows it (the CLI's progress bars).

Training code calls :func:`report` as it goes (a Python loop: every step) or wraps a compiled
loop in :func:`watch_rows` (a thread counts the history rows the loop has written; the loop
releases the GIL). Nothing happens unless a caller listens with :func:`reporting`; the numbers
of a run never depend on it.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

__all__ = ["reporting", "report", "watch_rows", "in_background"]

_listener = None


@contextlib.contextmanager
def reporting(callback):
    """Within the block, training runs call ``callback(steps_done, steps_total)``."""
    global _listener
    before, _listener = _listener, callback
    try:
        yield
    finally:
        _listener = before


def report(done, total):
    """Tell the listener (if any) that ``done`` of ``total`` steps are done (``total`` > 0)."""
    if _listener is not None and total > 0:
        _listener(done, total)


@contextlib.contextmanager
def watch_rows(hist, record_every, steps, every=0.25):
    """While a compiled loop fills ``hist`` (NaN until written, one row per ``record_every``
    steps), report the steps its written rows stand for, every ``every`` seconds."""
    if _listener is None:
        yield
        return
    def poll(stop):
        while not stop.wait(every):
            rows = int(np.count_nonzero(~np.isnan(hist)))
            report(min(steps, rows * record_every), steps)

    with in_background(poll):
        yield
    report(steps, steps)


@contextlib.contextmanager
def in_background(fn):
    """Run ``fn(stop)`` in a daemon thread while the block runs; on exit set the
    ``threading.Event`` ``stop`` and wait for ``fn`` to return (the progress watcher here, the
    CLI's compile notice)."""
    stop = threading.Event()
    th = threading.Thread(target=fn, args=(stop,), daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
