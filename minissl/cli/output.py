"""Writing results from the commands: strict JSON, the tracked diagnostics, PNG notes."""

from __future__ import annotations

import json

import click

from .._io import atomic_write_text, jsonable


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
