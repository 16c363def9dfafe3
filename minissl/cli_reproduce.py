"""``minissl reproduce``: one command per figure of the paper (see :mod:`minissl.experiments`)."""

from __future__ import annotations

import os
import time

import click

from ._cli_common import _integer


@click.command("reproduce")
@click.argument("figure", type=click.Choice(["fig5-infonce", "fig5-weighted", "fig5-beta", "fig6-normalized",
                                             "fig1", "fig3", "fig7", "all"]))
@click.option("--out", "out", default="minissl-figures", show_default=True,
              help="Output folder; each figure writes OUT/<figure>/{data.csv, figure.png, report.json, report.md}.")
@click.option("--quick", is_flag=True, help="Small settings (seconds per figure; what the tests run).")
@click.option("--seeds", callback=_integer(1), type=int, default=None,
              help="Independent runs per point, averaged [default: the settings file's, 1].")
@click.option("--engine", type=click.Choice(["numba", "numpy"]), default="numba", show_default=True)
@click.option("--protocol", type=click.Choice(["converged", "paper"]), default="converged", show_default=True,
              help="paper: Adam lr 6e-4, constant, full batch, 5000 steps, fresh noise. converged: more noise "
                   "replicates per step until the convergence diagnostics pass (see the settings files).")
@click.option("--quiet", is_flag=True, help="No per-point progress lines.")
def reproduce_cmd(figure, out, quick, seeds, engine, protocol, quiet):
    """Reproduce a figure of Ziyin et al. (2023): data, PNG and an agreement report.

    Settings (what the paper states, and every choice where it is silent) are read from
    data/experiments/<figure>.toml. Finished points are saved as they complete: an
    interrupted run resumes when the same command is given again.
    """
    from .experiments import reproduce

    if os.path.exists(out) and not os.path.isdir(out):
        raise click.BadParameter(f"{out!r} exists and is not a folder.", param_hint="'--out'")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(f"cannot create {out!r}: {exc}", param_hint="'--out'") from None
    from .experiments import FIGURES

    todo = list(FIGURES) if figure == "all" else [figure]
    t_all = time.perf_counter()
    for fig in todo:
        click.echo(f"== {fig} ({'quick' if quick else 'full'}, protocol {protocol}) ==")
        try:
            rep = reproduce(fig, out=out, quick=quick, seeds=seeds, engine=engine, protocol=protocol,
                            progress=not quiet)
        except KeyboardInterrupt:
            where = os.path.join(out, fig, "points")
            click.echo("\ninterrupted: " + (f"finished points are saved under {where}; run the same command again "
                                              "to resume." if fig not in ("fig1", "fig7") else
                                              f"{fig} has no saved points."),
                       err=True)
            raise SystemExit(130) from None
        except (FileNotFoundError, ValueError, TypeError) as exc:
            raise click.ClickException(str(exc)) from None
        except FloatingPointError as exc:
            raise click.ClickException(f"{fig}: a training run diverged ({exc}); lower lr in the settings file.") \
                from None
        folder = os.path.join(out, fig)
        with open(os.path.join(folder, "report.md"), encoding="utf-8") as fh:
            click.echo(fh.read().rstrip())
        click.echo(f"-> {folder}/ (data.csv, report.json, report.md"
                   + (", figure.png)" if rep.get("figure_png") else ")") + f"  [{rep['wall_seconds']:.1f} s]\n")
    if len(todo) > 1:
        click.echo(f"all figures: {time.perf_counter() - t_all:.1f} s")
