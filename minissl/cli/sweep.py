"""``minissl sweep``: a grid of a command's options, resumable, here or on a Dask cluster (issue 15)."""

from __future__ import annotations

import contextlib
import os

import click

from . import options as O


def _plot_spec(name, text):
    from ..sweep.plot import parse_plot_spec

    spec = parse_plot_spec(text, name)
    O.needs_matplotlib(name)
    return spec


@click.command("sweep", short_help="Run a grid of a command's options; resumable; here or on a Dask cluster.")
@click.argument("spec_path", metavar="SPEC.toml|DIR", type=click.Path())
@O.out_dir_option(None, "Output folder: sweep.sqlite (every point's JSON report) and results.csv.")
@O.scheduler_options
@click.option("--plot", "plot", default=None, metavar="x=COL,y=COL[,hue=COL]", callback=O.checked(_plot_spec),
              help="Draw a result column (y) against a grid axis (x), one line per value of another axis (hue), "
                   "averaged over the rest, to OUT/<y>_vs_<x>[_by_<hue>].png; given a sweep's folder instead of "
                   "SPEC.toml, only draws (needs matplotlib: pip install 'minissl[plot]').")
@O.quiet_option("No progress bar (there is none anyway when stderr is not a terminal).")
def sweep_cmd(spec_path, out, scheduler, workers, plot, quiet):
    """Run every point of the grid in SPEC.toml and tabulate the results in OUT/results.csv.

    \b
    SPEC.toml names a command and its options (long option names, _ for -):
      command = "simulate"        # or "theory" (minissl theory point)
      [fixed]
      loss = "beta"
      steps = 400
      [grid]                      # Cartesian product, the last axis fastest
      sigma = [0.5, 1.5, 2.5]
      beta = [0.5, 1.0]
      seed = [0, 1]

    Every point is checked before any work. Finished points are stored in OUT/sweep.sqlite
    as they complete: the same command again computes only what is missing (after Ctrl-C, a
    crash, or a changed setting). The same seeds give the same numbers on every executor.

    
    minissl sweep DIR --plot x=sigma,y=learned_rank,hue=beta   draws from a finished sweep.
    """
    from ..sweep import Embedded, Store, results_table, run_sweep, write_csv
    from .points import batch_group, run_points
    from .sweep_spec import load_spec

    if os.path.isdir(spec_path):
        if plot is None:
            raise click.BadParameter(f"{spec_path!r} is a folder: give a sweep file, or a sweep's folder with "
                                     "--plot.", param_hint="'SPEC.toml'")
        for name, value in (("--out", out), ("--scheduler", scheduler), ("--workers", workers)):
            if value is not None:
                raise click.BadParameter("drawing from a sweep's folder takes only --plot.", param_hint=f"'{name}'")
        _draw(spec_path, plot)
        return
    try:
        spec = load_spec(spec_path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'SPEC.toml'") from None
    if out is None:
        raise click.BadParameter("an output folder is required.", param_hint="'--out'")
    if plot is not None:  # the axes are known now; the result column only after the sweep
        for role in ("x", "hue"):
            if plot[role] is not None and (plot[role] not in spec.grid or (role == "hue" and plot["hue"] == plot["x"])):
                raise click.BadParameter(f"{role} == {plot[role]!r} must be {'a' if role == 'x' else 'another'} grid "
                                         f"axis of {spec.source}: {list(spec.grid)}.", param_hint="'--plot'")
    pts = [(spec.key(opts), values, opts) for values, opts in spec.points()]
    try:
        store = Store(out)
    except ValueError as exc:  # a store of another schema, not a database
        raise click.BadParameter(str(exc), param_hint="'--out'") from None
    with store:
        todo = len(pts) - len(store.stored(k for k, _, _ in pts))
        # no executor (no LocalCluster, no connection) when everything is stored
        with (O.executor_from(scheduler, workers) if todo else contextlib.nullcontext(Embedded())) as executor:
            outcome = run_sweep(spec.command, [(k, o) for k, _, o in pts], store, executor, run_points,
                                group=batch_group, progress=False if quiet else None, desc="sweep")
        rows = table_rows(store, pts, outcome)
        csv_path = os.path.join(out, "results.csv")
        write_csv(csv_path, *results_table(list(spec.grid), rows))
        store.set_meta("spec", {"source": spec.source, "command": spec.command, "fixed": spec.fixed,
                                "grid": spec.grid})  # the grid of results.csv (what --plot reads)
    click.echo(f"{outcome.total} points: {outcome.reused} stored before, {outcome.computed} computed, "
               f"{len(outcome.failed)} failed" + (", interrupted" if outcome.interrupted else "")
               + f"; wrote {csv_path}")
    if outcome.interrupted:
        click.echo(f"interrupted: the finished points are stored in {store.path}; run the same command again "
                   "to compute the rest.", err=True)
        raise SystemExit(130)
    for key, msg in list(outcome.failed.items())[:5]:
        values = next(v for k, v, _ in pts if k == key)
        click.echo(f"failed {values}: {msg}", err=True)
    if plot is not None and outcome.computed + outcome.reused:
        _draw(out, plot)
    if outcome.failed:
        raise click.ClickException(f"{len(outcome.failed)} point(s) failed (status column of {csv_path}); "
                                   "the others are stored.")


def table_rows(store, pts, outcome):
    """``(grid_values, key, report or None, status)`` per point, in the sweep's order."""
    rows = []
    for key, values, _ in pts:
        rec = store.get(key)
        status = ("ok" if rec is not None else
                  f"failed: {outcome.failed[key]}" if key in outcome.failed else "not run")
        rows.append((values, key, None if rec is None else rec["result"], status))
    return rows


def _draw(folder, plot):
    from ..sweep.plot import plot_results

    try:
        path, note = plot_results(folder, **plot)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--plot'") from None
    click.echo(note if note else f"wrote {path}")
