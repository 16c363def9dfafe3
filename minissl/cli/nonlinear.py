"""``minissl nonlinear``: train the small MLP of Appendix B and probe its last-layer landscape."""

from __future__ import annotations

import os

import click
import numpy as np

from ..losses.registry import PAPER_LOSS, names
from . import options as O
from .errors import library_errors
from .output import compile_notice, write_json

_MLP_LOSSES = names(lambda s: s.mlp)


@click.command("nonlinear", short_help="Train the small MLP of Appendix B and probe its last layer (Fig. 7).")
@click.option("--activation", type=click.Choice(["tanh", "relu"]), default="tanh", show_default=True)
@O.sigma_option(1.0, help="Isotropic augmentation strength sigma.")
@O.loss_option(_MLP_LOSSES, PAPER_LOSS, help="Exact loss on the MLP's 2-D output (the InfoNCE family).")
@O.loss_param_options(_MLP_LOSSES)
@O.variances_option("1,2")
@O.n_option(128)
@click.option("--widths", default="16,16", show_default=True,
              callback=O.checked(lambda name, v: O.int_list(name, v, count=2, lo=2)),
              help="The two hidden widths (>= 2: the last layer needs two singular values).")
@O.steps_option(3000)
@O.lr_option(0.02)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@O.seed_option()
@O.engine_option(("numba", "numpy", "cuda"),
                 help="numba: compiled CPU kernels; numpy: the readable reference; cuda: the GPU kernels "
                      "(needs the gpu extra and a GPU, or NUMBA_ENABLE_CUDASIM=1).")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default=None, hidden=True)
@O.out_dir_option(None, "Folder for data.csv, report.json and figure.png.")
def nonlinear_cmd(activation, sigma, loss, variances, n, widths, steps, lr, optimizer, seed, engine, device, out,
                  **given):
    """Train a 3-layer MLP (output dimension 2) on an exact loss; probe its last layer (Fig. 7).

    Prints the regime read from the grid minima of the 2-D probe next to the linear theory's
    regime for the same data and augmentation.
    """
    ctx = click.get_current_context()
    if device is not None:  # the old spelling: --device gpu is --engine cuda
        if O.given(ctx, "engine"):
            raise click.BadParameter("--device is an alias of --engine cuda/numba; give only --engine.",
                                     param_hint="'--device'")
        engine = "cuda" if device == "gpu" else "numba"
    if engine == "cuda":
        from ..nonlinear.cuda import available, require

        if not available():
            try:
                require()
            except RuntimeError as exc:
                raise click.BadParameter(str(exc), param_hint="'--engine'") from None
    if variances is None:
        variances = np.array([1.0, 2.0])
    params = O.loss_params(loss, given)
    from ..data import gaussian_data
    from ..experiments.fig7 import nonlinear_outputs, run_nonlinear
    from ..losses import get_loss

    a = np.linspace(0.0, 2.0, 41)
    r = np.linspace(-1.6, 1.6, 33)
    from ..sweep.progress import steps_bar

    with library_errors(aliases={"name": "loss"}), compile_notice(), steps_bar(desc="train MLP"):
        loss_obj = get_loss(loss, **params)
        data = gaussian_data(n, variances, seed=seed)
        summ, curve, grid = run_nonlinear(loss_obj, data, sigma, activation, widths, steps, lr, optimizer, seed,
                                          engine, a, r, 16)
    click.echo(f"minissl nonlinear: {activation} MLP {data.x.shape[1]}-{widths[0]}-{widths[1]}-2, {loss_obj!r}, "
               f"sigma={sigma:g}")
    click.echo(f"trained: {steps} steps {optimizer} lr={lr:g}, final loss {summ['final_loss']:.5g}; singular values "
               "of W3: " + ", ".join(f"{v:.3g}" for v in summ["singular_values_W3"]))
    click.echo(f"1-D probe L(a W3): minimum at a = {summ['a_at_min']:.2f}")
    click.echo(f"2-D probe: {len(summ['grid_minima'])} grid minima -> {summ['mlp_regime']}")
    click.echo(f"linear theory (f = Wx, same data and augmentation): {summ['linear_regime']}  "
               f"[{'agree' if summ['agree'] else 'DISAGREE'}]")
    if out:
        with library_errors():
            msg = nonlinear_outputs(out, summ, a, curve, r, grid)
        write_json(os.path.join(out, "report.json"), summ)
        click.echo(msg or f"wrote {os.path.join(out, 'figure.png')}")
