"""``minissl nonlinear``: train the small MLP of Appendix B and probe its last-layer landscape."""

from __future__ import annotations

import os

import click
import numpy as np

from ._cli_common import _checked, _float_list, _integer, _real, write_json


@click.command("nonlinear")
@click.option("--activation", type=click.Choice(["tanh", "relu"]), default="tanh", show_default=True)
@click.option("--sigma", callback=_real(lo=0.0), type=float, default=1.0, show_default=True,
              help="Isotropic augmentation strength.")
@click.option("--loss", "loss_name", type=click.Choice(["infonce", "weighted", "beta"]), default="beta",
              show_default=True)
@click.option("--beta", callback=_real(lo=0.0, lo_open=True), type=float, default=0.5, show_default=True,
              help="beta of beta-InfoNCE (with --loss beta).")
@click.option("--variances", callback=_checked(_float_list), default="1,2", show_default=True)
@click.option("--n", callback=_integer(2), type=int, default=128, show_default=True)
@click.option("--widths", default="16,16", show_default=True, help="The two hidden widths.")
@click.option("--steps", callback=_integer(1), type=int, default=3000, show_default=True)
@click.option("--lr", callback=_real(lo=0.0, lo_open=True), type=float, default=0.02, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@click.option("--seed", callback=_integer(0), type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--engine", type=click.Choice(["numba", "numpy"]), default="numba", show_default=True)
@click.option("--out", "out", default=None, help="Folder for data.csv, report.json and figure.png.")
def nonlinear_cmd(activation, sigma, loss_name, beta, variances, n, widths, steps, lr, optimizer, seed,
                  device, engine, out):
    """Train a 3-layer MLP (output dimension 2) on an exact loss; probe its last layer (Fig. 7).

    Prints the regime read from the grid minima of the 2-D probe next to the linear theory's
    regime for the same data and augmentation.
    """
    from .data import gaussian_data
    from .experiments._common import save_figure, write_csv
    from .experiments.fig7 import run_nonlinear
    from .losses import get_loss

    if device == "gpu":
        from .nonlinear.cuda import available, require

        if not available():
            try:
                require()
            except RuntimeError as exc:
                raise click.UsageError(f"--device gpu: {exc}") from None
        if ctx_given("engine"):
            raise click.BadParameter("--engine applies to --device cpu.", param_hint="'--engine'")
        engine = "cuda"
    try:
        w = tuple(int(t) for t in widths.split(","))
        if len(w) != 2 or min(w) < 2:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{widths!r}, must be two integers >= 2 (the last layer needs two singular "
                                 "values), e.g. 16,16.",
                                 param_hint="'--widths'") from None
    if ctx_given("beta") and loss_name != "beta":
        raise click.BadParameter("--beta applies to --loss beta.", param_hint="'--beta'")
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise click.BadParameter(f"{out!r} exists and is not a folder.", param_hint="'--out'")
    params = {"beta": beta} if loss_name == "beta" else {}
    loss = get_loss(loss_name, **params)
    data = gaussian_data(n, variances, seed=seed)
    a = np.linspace(0.0, 2.0, 41)
    r = np.linspace(-1.6, 1.6, 33)
    try:
        summ, curve, grid = run_nonlinear(loss, data, sigma, activation, w, steps, lr, optimizer, seed, engine, a, r,
                                          16)
    except FloatingPointError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"minissl nonlinear: {activation} MLP {data.x.shape[1]}-{w[0]}-{w[1]}-2, {loss!r}, sigma={sigma:g}")
    click.echo(f"trained: {steps} steps {optimizer} lr={lr:g}, final loss {summ['final_loss']:.5g}; singular values "
               "of W3: " + ", ".join(f"{v:.3g}" for v in summ["singular_values_W3"]))
    click.echo(f"1-D probe L(a W3): minimum at a = {summ['a_at_min']:.2f}")
    click.echo(f"2-D probe: {len(summ['grid_minima'])} grid minima -> {summ['mlp_regime']}")
    click.echo(f"linear theory (f = Wx, same data and augmentation): {summ['linear_regime']}  "
               f"[{'agree' if summ['agree'] else 'DISAGREE'}]")
    if out:
        os.makedirs(out, exist_ok=True)
        write_csv(os.path.join(out, "data.csv"),
                  [{"kind": "scale", "a": float(ai), "r1": "", "r2": "", "loss": float(li)} for ai, li in zip(a, curve)]
                  + [{"kind": "plane", "a": "", "r1": float(r1), "r2": float(r2), "loss": float(grid[i, j])}
                     for i, r1 in enumerate(r) for j, r2 in enumerate(r)])
        write_json(os.path.join(out, "report.json"), summ)

        def draw(plt):
            f, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
            ax1.plot(a, curve)
            ax1.set_xlabel("a (W3 -> a W3)")
            ax1.set_ylabel("loss")
            ax2.contourf(r, r, grid.T, levels=30, cmap="coolwarm")
            for x_, y_ in summ["grid_minima"]:
                ax2.plot(x_, y_, "k*", ms=8)
            ax2.set_title(summ["mlp_regime"], fontsize=8)
            return f

        msg = save_figure(os.path.join(out, "figure.png"), draw)
        click.echo(msg or f"wrote {os.path.join(out, 'figure.png')}")


def ctx_given(name):
    src = click.get_current_context().get_parameter_source(name)
    return src is not None and src.name == "COMMANDLINE"
