"""``minissl imbalance``: the linear analogue of Fig. 4 (robustness to class imbalance, Sec. 4.3).

See :mod:`minissl.experiments.imbalance` for the experiment and docs/imbalance.md for results.
"""

from __future__ import annotations

import math
import os

import click

from .. import _validation as V
from . import options as O
from .errors import library_errors
from .output import compile_notice


def _levels(name, text):
    """Comma-separated imbalance levels; ``inf`` allowed (the Dirichlet scheme's balanced level)."""
    out = []
    for tok in str(text).split(","):
        tok = tok.strip()
        if not tok:
            raise ValueError(f"{name} == {text!r} has an empty entry, must be comma-separated numbers, "
                             "e.g. 1,3,10,100.")
        try:
            v = float(tok)
        except ValueError:
            raise ValueError(f"{name} == {text!r}, must be comma-separated numbers, e.g. 1,3,10,100.") from None
        if math.isnan(v) or v == -math.inf:
            raise ValueError(f"{name} contains {tok!r}, must be a number > 0 (or inf).")
        out.append(v)
    return out


def _losses(name, text):
    from ..experiments.imbalance import LOSSES

    vals = [t.strip() for t in str(text).split(",")]
    if not any(vals):
        raise ValueError(f"{name} == {text!r}, must list at least one of {', '.join(LOSSES)}.")
    for v in vals:
        V.check_choice(name, v, LOSSES)
    return list(dict.fromkeys(vals))


@click.command("imbalance", short_help="Robustness of InfoNCE and SCL to class imbalance (Sec. 4.3).")
@O.out_dir_option("minissl-figures", "Output folder; writes OUT/imbalance/{data.csv, theory_ensemble.csv, "
                                     "report.json, report.md, figure.png}.")
@click.option("--quick", is_flag=True, help="Small settings (seconds; what the tests run).")
@O.n_seeds_option("Trained seeds (new class means, sample, init, noise each) [default: settings file, 4].")
@click.option("--theory-seeds", type=int, default=None, callback=O.integer(lo=1),
              help="Class-mean geometries the theory is averaged over (no training) [default: settings, 200].")
@click.option("--levels", default=None, callback=O.checked(_levels),
              help="Comma-separated imbalance levels: ratios n_max/n_min >= 1 (geometric) or Dirichlet alphas > 0 "
                   "(inf = balanced); the balanced level is always added [default: 1,3,10,30,100].")
@click.option("--scheme", type=click.Choice(["geometric", "dirichlet"]), default=None,
              help="How a level sets the class weights [default: geometric]; with dirichlet give --levels too.")
@click.option("--losses", default=None, callback=O.checked(_losses),
              help="Comma-separated losses from infonce, weighted (alpha = 0, the paper's NT-Xent), scl "
                   "[default: infonce,scl].")
@O.sigma_option(None, help="Isotropic augmentation strength sigma, within 1e-3 to 1e3 times the data scale "
                           "sqrt(radius^2 + within^2) [default: 2.5].")
@O.out_dim_option(help="Output dimension d1 (<= d0 = 8; d1 = d0 leaves every linear probe unchanged) "
                       "[default: 3].")
@O.n_option(None, help="Training-set size [default: 256].")
@O.steps_option(None)
@O.engine_option()
@O.scheduler_options
@O.quiet_option("No progress bar (there is none anyway when stderr is not a terminal).")
def imbalance_cmd(**kw):
    """Robustness of InfoNCE and SCL to class imbalance (Sec. 4.3, Fig. 4), in a linear model.

    Trains both losses on Gaussian-mixture data at increasing class imbalance, compares the
    learned W^T W with the derived theory (SCL: B = 2 A0) and with the paper's constants
    (SCL: B = 2C), and says whether SCL is the more robust one. Settings:
    data/experiments/imbalance.toml. Finished runs are saved as they complete: an
    interrupted run resumes when the same command is given again.
    """
    from ..experiments.imbalance import (agreement_line, format_level_table, load_settings, run_imbalance,
                                         summary_lines)

    kw = O.merge_alias(kw, "d1", "d1_alias", "--d1", "--out-dim")
    kw = O.merge_alias(kw, "n_seeds", "n_seeds_alias", "--seeds", "--n-seeds")
    out, quick = kw["out"], kw["quick"]
    overrides = {"seeds": kw["n_seeds"], "theory_seeds": kw["theory_seeds"], "levels": kw["levels"],
                 "losses": kw["losses"], "scheme": kw["scheme"], "sigma": kw["sigma"], "d1": kw["d1"], "n": kw["n"],
                 "steps": kw["steps"]}
    with library_errors(aliases={"seeds": "n_seeds"}):
        s = load_settings(quick, overrides)  # cross-checks (d1 <= d0, levels of the scheme, n >= classes)
    click.echo(f"minissl imbalance ({'quick' if quick else 'full'}): {', '.join(s['losses'])}; K = {s['classes']} "
               f"classes in d0 = {s['dim']} -> d1 = {s['d1']}, N = {s['n']}, isotropic sigma = {s['sigma']:g}, "
               f"{s['seeds']} trained seed(s), theory over {s['theory_seeds']} geometries")
    try:
        with O.executor_from(kw["scheduler"], kw["workers"]) as executor, \
                library_errors(diverged="a training run diverged ({exc}); lower lr in the settings file."), \
                compile_notice():
            rep = run_imbalance(out=out, quick=quick, engine=kw["engine"], progress=not kw["quiet"],
                                executor=executor if kw["scheduler"] or kw["workers"] else None, **overrides)
    except KeyboardInterrupt:
        where = os.path.join(out, "imbalance", "points")
        click.echo(f"\ninterrupted: finished runs are saved under {where}; run the same command again to resume.",
                   err=True)
        raise SystemExit(130) from None
    for st in rep["level_stats"]:
        empty = (f", empty classes {' '.join(map(str, st['empty_classes']))}" if st["empty_classes"] else "")
        click.echo(f"\n{st['label']}: class fractions {' '.join(f'{f:.3f}' for f in st['class_fractions'])} "
                   f"(seed 0; minority class {st['minority_class']}{empty}); A0 eigenvalues "
                   f"{' '.join(f'{v:.3g}' for v in st['A0_eigenvalues'])}")
        if st["geometries_with_empty_classes"]:
            click.echo(f"  {st['geometries_with_empty_classes']} of {rep['settings']['theory_seeds']} geometries have "
                       f"an empty class ({st['mean_empty_classes']:.2f} on average); the minority class is the rarest "
                       "non-empty one")
        click.echo(format_level_table(rep, st["level"]))
    click.echo("\ncolumns: dspec = change of the normalised spectrum, angle = top-subspace angle (deg), both vs the "
               "balanced run; probe / minor. = linear-probe balanced / minority-class accuracy; sep = minority "
               "separation (within-class std); mean = share of |data mean|^2 kept; mean over trained seeds")
    if rep["verdicts"]:
        click.echo(f"\nverdict at {rep['level_labels'][-1]} (paper, Sec. 4.3: SCL more robust):")
        for line in summary_lines(rep):
            click.echo(f"  {line}")
    click.echo(agreement_line(rep))
    click.echo(f"converged training runs: {rep['converged']}")
    files = "data.csv, theory_ensemble.csv, report.json, report.md" + (", figure.png" if rep["figure_png"] else "")
    click.echo(f"-> {os.path.join(out, 'imbalance')}/ ({files})  [{rep['wall_seconds']:.1f} s]")
    if rep["figure_note"]:
        click.echo(rep["figure_note"])
