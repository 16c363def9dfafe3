"""Writing results from the commands: strict JSON, the tracked diagnostics, PNG notes."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import click

from .._io import atomic_write_text, jsonable
from .._progress import in_background


def write_json(path, payload):
    """Write ``payload`` as strict JSON (non-finite -> null) atomically; click error on failure."""
    try:
        atomic_write_text(path, json.dumps(jsonable(payload), indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise click.ClickException(f"could not write {path!r}: {exc}") from None
    click.echo(f"wrote {path}")


def emit_track(tr, loss, report, csv_path, plot_path, title):
    """Print the tracked diagnostics, write CSV / PNG, and add them to the JSON report."""
    if tr is None:
        return
    from ..track_io import format_track, plot_track, track_rows, write_track_csv

    click.echo("")
    click.echo(format_track(tr, loss))
    report["track"] = track_rows(tr, loss)
    try:
        if csv_path:
            write_track_csv(csv_path, tr, loss)
            click.echo(f"wrote {csv_path}")
        if plot_path:
            msg = plot_track(plot_path, tr, title)
            click.echo(msg if msg else f"wrote {plot_path}")
    except OSError as exc:
        raise click.ClickException(f"could not write the tracked diagnostics: {exc}") from None


def _numba_compiling():
    """Whether another thread holds Numba's compiler lock (it is compiling) right now."""
    try:
        from numba.core.compiler_lock import global_compiler_lock
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    lock = getattr(global_compiler_lock, "_lock", None)
    if lock is None or not lock.acquire(blocking=False):
        return lock is not None
    lock.release()
    return False


@contextmanager
def compile_notice(after=2.0, every=10.0):
    """Say on stderr when the block is busy compiling with Numba for more than ``after`` seconds.

    The first run of a loss family on a machine compiles its training loop (about half a
    minute, then cached on disk); instead of going quiet the command prints a line when it
    notices the compiler working, and a progress line every ``every`` seconds after that.
    """
    t0 = time.perf_counter()

    def watch(done):
        said = False
        wait = after
        while not done.wait(wait):
            if _numba_compiling():
                elapsed = time.perf_counter() - t0
                if not said:
                    click.echo("minissl: compiling Numba kernels (first use on this machine: about 35 s on 2 cores, "
                               "once; later runs load them from the cache) ...", err=True)
                    said = True
                else:
                    click.echo(f"minissl: ... still compiling ({elapsed:.0f} s)", err=True)
                wait = every
            else:
                wait = 0.5

    with in_background(watch):
        yield
