"""``minissl reproduce``: one command per figure of the paper (see :mod:`minissl.experiments`)."""

from __future__ import annotations

import os
import time

import click

from ..experiments import FIGURES
from . import options as O
from .errors import library_errors
from .output import compile_notice


@click.command("reproduce", short_help="Reproduce a figure of the paper: data, PNG and an agreement report.")
@click.argument("figure", type=click.Choice(tuple(FIGURES) + ("all",)))
@O.out_dir_option("minissl-figures", "Output folder; each figure writes OUT/<figure>/{data.csv, figure.png, "
                                     "report.json, report.md}.")
@click.option("--quick", is_flag=True, help="Small settings (seconds per figure; what the tests run).")
@O.n_seeds_option("Independent runs per point, averaged [default: the settings file's, 1].")
@O.engine_option()
@click.option("--protocol", type=click.Choice(["converged", "paper"]), default="converged", show_default=True,
              help="paper: Adam lr 6e-4, constant, full batch, 5000 steps, fresh noise. converged: more noise "
                   "replicates per step until the convergence diagnostics pass (see the settings files).")
@O.scheduler_options
@O.quiet_option("No progress bar (there is none anyway when stderr is not a terminal).")
def reproduce_cmd(**kw):
    """Reproduce a figure of Ziyin et al. (2023): data, PNG and an agreement report.

    Settings (what the paper states, and every choice where it is silent) are read from
    data/experiments/<figure>.toml. Finished points are saved as they complete: an
    interrupted run resumes when the same command is given again. With --scheduler the
    training runs go to a Dask cluster (as in minissl sweep).
    """
    kw = O.merge_alias(kw, "n_seeds", "n_seeds_alias", "--seeds", "--n-seeds")
    todo = list(FIGURES) if kw["figure"] == "all" else [kw["figure"]]
    with O.executor_from(kw["scheduler"], kw["workers"]) as executor:
        _reproduce(todo, kw, executor if kw["scheduler"] or kw["workers"] else None)


def _reproduce(todo, kw, executor):
    from ..experiments import reproduce

    out, quick, protocol = kw["out"], kw["quick"], kw["protocol"]
    t_all = time.perf_counter()
    for fig in todo:
        click.echo(f"== {fig} ({'quick' if quick else 'full'}, protocol {protocol}) ==")
        try:
            with library_errors(diverged=fig + ": a training run diverged ({exc}); lower lr in the settings file."), \
                    compile_notice():
                rep = reproduce(fig, out=out, quick=quick, seeds=kw["n_seeds"], engine=kw["engine"],
                                protocol=protocol, progress=not kw["quiet"], executor=executor)
        except KeyboardInterrupt:
            where = os.path.join(out, fig, "points")
            click.echo("\ninterrupted: " + (f"finished points are saved under {where}; run the same command again "
                                              "to resume." if fig != "fig1" else
                                              f"{fig} has no saved points."),
                       err=True)
            raise SystemExit(130) from None
        folder = os.path.join(out, fig)
        with open(os.path.join(folder, "report.md"), encoding="utf-8") as fh:
            click.echo(fh.read().rstrip())
        click.echo(f"-> {folder}/ (data.csv, report.json, report.md"
                   + (", figure.png)" if rep.get("figure_png") else ")") + f"  [{rep['wall_seconds']:.1f} s]\n")
    if len(todo) > 1:
        click.echo(f"all figures: {time.perf_counter() - t_all:.1f} s")
