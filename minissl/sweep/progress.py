"""Progress bars (tqdm) on stderr: shown on a terminal, silent in a pipe, a log or with ``--quiet``."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["progress_bar", "steps_bar"]


def progress_bar(total, initial=0, desc=None, unit="pt", enabled=None):
    """A tqdm bar on stderr counting ``unit`` s done of ``total`` (rate and ETA included).

    ``enabled=None`` shows it only when stderr is a terminal; stdout is never written.
    """
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1, leave=True)


@contextlib.contextmanager
def steps_bar(enabled=None, desc="train", delay=2.0):
    """A bar of training steps for the runs inside the block, shown once a run takes longer than
    ``delay`` seconds (tqdm's ``delay``): short runs print nothing."""
    from .. import _progress

    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    from tqdm import tqdm

    bar = None

    def update(done, total):
        nonlocal bar
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, delay=delay, dynamic_ncols=True,
                       leave=False)
        bar.update(done - bar.n)

    try:
        with _progress.reporting(update):
            yield
    finally:
        if bar is not None:
            bar.close()
