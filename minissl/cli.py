"""The ``minissl`` command (click). Thin: parses options, calls the library, prints/writes."""

from __future__ import annotations

import time
import warnings

import click
import numpy as np

from . import __version__
from . import _validation as V
from ._cli_common import _LOSS_TITLES, _checked, _float_list, _integer, _json_path, _real, write_json
from .landscape import predict
from .losses import LOSS_NAMES, get_loss
from .metrics import numerical_rank, stable_rank
from .siamese import METHODS as SIAMESE_METHODS
from .train import ConvergenceWarning, simulate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="minissl")
def main():
    """minissl: exact simulations of self-supervised learning in linear models.

    Checks the loss-landscape theory of Ziyin et al. (ICLR 2023) by training on the
    exact loss and comparing with the effective fourth-order landscape.
    """


@main.command("simulate")
@click.option("--loss", "loss_name", type=click.Choice(LOSS_NAMES + SIAMESE_METHODS), default="beta",
              show_default=True,
              help="Exact SSL loss; simsiam/byol train the non-contrastive linear model "
                   "(encoder + predictor, minissl.siamese).")
@click.option("--alpha", callback=_real(lo=0.0), type=float, default=None,
              help="Positive-pair weight in the denominator (Eq. 7): default 0 for --loss weighted "
                   "(the paper's NT-Xent), 1 for --loss beta.")
@click.option("--beta", callback=_real(lo=0.0, lo_open=True), type=float, default=None,
              help="Entropy weight of beta-InfoNCE (Sec. 4.2); default 0.5.")
@click.option("--negatives", type=click.Choice(["view1", "both"]), default="view1", show_default=True,
              help="Negatives of the InfoNCE family / SCL: other samples' first views (Eq. 1) or both views.")
@click.option("--lam", callback=_real(lo=0.0), type=float, default=None,
              help="Barlow Twins off-diagonal weight (default 5e-3).")
@click.option("--temperature", callback=_real(lo=0.0, lo_open=True), type=float, default=None,
              help="SimCLR NT-Xent temperature (cosine similarity / temperature; default 0.5).")
@click.option("--decoupled", is_flag=True, default=False,
              help="SimCLR: drop the positive from the denominator (decoupled contrastive loss).")
@click.option("--predictor/--no-predictor", default=True, show_default=True,
              help="simsiam/byol: train a linear predictor (off: P = I, the ablation that collapses).")
@click.option("--stop-gradient/--no-stop-gradient", default=True, show_default=True,
              help="simsiam: stop the gradient through the target branch.")
@click.option("--batchnorm/--no-batchnorm", default=False, show_default=True,
              help="simsiam/byol: batch-normalise the embeddings (no affine parameters).")
@click.option("--ema", callback=_checked(lambda name, v: V.check_scalar(name, v, lo=0.0, hi=1.0, hi_open=True)),
              type=float, default=None,
              help="byol: target EMA decay in [0, 1) (default 0.99).")
@click.option("--objective", type=click.Choice(["mse", "cosine"]), default="mse", show_default=True,
              help="simsiam/byol: squared error (Tian et al. 2021, with theory) or negative cosine (Chen & He).")
@click.option("--predictor-lr", callback=_real(lo=0.0, lo_open=True), type=float, default=1.0,
              show_default=True, help="simsiam/byol: predictor learning rate relative to the encoder's.")
@click.option("--predictor-init", type=click.Choice(["small", "identity"]), default="small", show_default=True,
              help="simsiam/byol: P_0 small random or identity + small random.")
@click.option("--standardize/--raw", default=True, show_default=True,
              help="Barlow Twins: batch-standardised or raw cross-correlation.")
@click.option("--n", callback=_integer(2), type=int, default=256, show_default=True,
              help="Number of clean training samples N.")
@click.option("--dim", callback=_integer(1), type=int, default=None,
              help="Input dimension d0 (default: number of --variances, else 5).")
@click.option("--out-dim", callback=_integer(1), type=int, default=None, help="Output dimension d1 (default d0).")
@click.option("--variances", callback=_checked(_float_list), default=None,
              help="Comma-separated variances of the clean data [default: 0.5,1,2,3,4; with --dim D != 5, "
                   "D values evenly spaced from 0.5 to 4].")
@click.option("--augmentation", type=click.Choice(["isotropic", "structured", "scale"]), default="isotropic",
              show_default=True, help="Augmentation: N(0, sigma^2 I), sigma R xi (Sec. 4.2), or x = s x (App. F.1).")
@click.option("--sigma", callback=_real(lo=0.0), type=float, default=1.8, show_default=True,
              help="Augmentation strength sigma (noise std).")
@click.option("--theta", callback=_real(lo=0.0, hi=1.0), type=float, default=0.5, show_default=True,
              help="Structured augmentation orientation theta in [0, 1].")
@click.option("--scale-b", callback=_real(lo=0.0, lo_open=True), type=float, default=1.0, show_default=True,
              help="Mean of the scale factor s ~ Exp for --augmentation scale.")
@click.option("--model", type=click.Choice(["exact", "effective"]), default="exact", show_default=True,
              help="Train on the exact loss or descend the effective landscape.")
@click.option("--steps", callback=_integer(1), type=int, default=None,
              help="Training steps [default: 3000; simsiam/byol 10000].")
@click.option("--lr", callback=_real(lo=0.0, lo_open=True), type=float, default=None,
              help="Learning rate (cosine-annealed to lr/1000 by default) [default: 3e-3; simsiam/byol 0.05]. "
                   "Lower it if a run diverges.")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine", show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default=None,
              help="[default: adam; simsiam/byol sgd] Adam is safe for every loss; SGD has the unbiased fixed "
                   "point (needs a suitable --lr).")
@click.option("--noise", type=click.Choice(["fresh", "fixed"]), default="fresh", show_default=True,
              help="New noise every step (noise-averaged loss) or one fixed augmented set.")
@click.option("--replicates", callback=_integer(1), type=int, default=1, show_default=True,
              help="Pairs of views per step (gradient averaged).")
@click.option("--seed", callback=_integer(0), type=int, default=0, show_default=True)
@click.option("--normalize/--no-normalize", default=False, show_default=True,
              help="Normalize outputs f -> sqrt(c) f/|f|.")
@click.option("--c", "c_norm", callback=_real(lo=0.0, lo_open=True), type=float, default=1.0, show_default=True,
              help="Squared output norm under --normalize.")
@click.option("--kappa", callback=_real(lo=0.0, lo_open=True), type=float, default=None,
              help="Normalization penalty of the effective landscape (Eq. 10), with --normalize only; "
                   "default 100.")
@click.option("--bias/--no-bias", default=False, show_default=True, help="Train a bias b.")
@click.option("--weight-decay", callback=_real(lo=0.0), type=float, default=None,
              help="[default: 0; simsiam/byol 0.05, which pins the fixed point the theory predicts]")
@click.option("--engine", type=click.Choice(["numba", "numpy"]), default="numba", show_default=True,
              help="numba: compiled kernels and loop; numpy: the readable reference.")
@click.option("--rank-tol", callback=_real(lo=0.0), type=float, default=1e-3, show_default=True,
              help="Relative tolerance of the numerical rank (eigenvalues > tol * largest).")
@click.option("--track", is_flag=True, default=False,
              help="Record collapse diagnostics during training (spectrum of the embedding covariance, "
                   "rank, stable/entropy rank, log eigenvalue ratio, explained variance, alignment, "
                   "uniformity) and print them.")
@click.option("--track-csv", callback=_json_path, default=None,
              help="With --track: write every recorded step as CSV to this path.")
@click.option("--track-plot", callback=_json_path, default=None,
              help="With --track: plot the trajectories to this PNG (needs the plot extra).")
@click.option("--uniformity-t", callback=_real(lo=0.0, lo_open=True), type=float, default=2.0,
              show_default=True, help="With --track: uniformity kernel scale t (Wang & Isola).")
@click.option("--json", "json_path", callback=_json_path, default=None,
              help="Also write the result as JSON to this path (atomically; the folder must exist).")
def simulate_cmd(loss_name, alpha, beta, negatives, lam, temperature, decoupled, predictor, stop_gradient,
                 batchnorm, ema, objective, predictor_lr, predictor_init, standardize, n, dim, out_dim, variances,
                 augmentation, sigma, theta, scale_b, model, steps, lr, lr_schedule, optimizer, noise,
                 replicates, seed, normalize, c_norm, kappa, bias, weight_decay, engine, rank_tol, track,
                 track_csv, track_plot, uniformity_t, json_path):
    """Train a linear model on an SSL loss and compare with the theory's prediction.

    Prints the learned eigenvalues of W^T W next to the effective landscape's prediction
    for the same empirical A0 and augmentation C, the rank and stable rank, the
    expansion parameter u = 2 Tr[W Sigma W^T] (the theory is a small-u expansion) and
    the convergence diagnostics.
    """
    if variances is None:
        variances = (np.array([0.5, 1.0, 2.0, 3.0, 4.0]) if dim in (None, 5)
                     else np.linspace(0.5, 4.0, dim))
    elif dim is not None and dim != variances.size:
        raise click.BadParameter(f"dim == {dim} but --variances lists {variances.size} values; they must agree.",
                                 param_hint="'--dim'")
    ctx = click.get_current_context()
    _check_applicable(ctx, loss_name, augmentation, normalize, model, track)
    siamese = loss_name in SIAMESE_METHODS
    lr = (0.05 if siamese else 3e-3) if lr is None else lr
    steps = (10000 if siamese else 3000) if steps is None else steps
    optimizer = ("sgd" if siamese else "adam") if optimizer is None else optimizer
    weight_decay = (0.05 if siamese else 0.0) if weight_decay is None else weight_decay
    if siamese:
        _run_siamese(loss_name, n=n, variances=variances, augmentation=augmentation, sigma=sigma, theta=theta,
                     d1=out_dim, predictor=predictor, stop_gradient=stop_gradient, batchnorm=batchnorm,
                     objective=objective, ema=ema, weight_decay=weight_decay,
                     steps=steps, lr=lr, predictor_lr=predictor_lr, predictor_init=predictor_init,
                     optimizer=optimizer, lr_schedule=lr_schedule, seed=seed, uniformity_t=uniformity_t,
                     rank_tol=rank_tol, track=track, track_csv=track_csv, track_plot=track_plot,
                     json_path=json_path)
        return
    params = {"normalize": normalize, "c": c_norm, "weight_decay": weight_decay, "engine": engine}
    if loss_name == "simclr":
        params["temperature"] = 0.5 if temperature is None else temperature
        params["decoupled"] = decoupled
    for opt, value, owners in (("alpha", alpha, ("weighted", "beta")), ("beta", beta, ("beta",)),
                               ("lam", lam, ("barlow",))):
        if value is not None:
            if loss_name not in owners:
                raise click.BadParameter(f"--{opt} applies to --loss {'/'.join(owners)}, not {loss_name!r}.",
                                         param_hint=f"'--{opt}'")
            params[opt] = value
    if loss_name in ("infonce", "weighted", "beta", "scl"):
        params["negatives"] = negatives
    if loss_name == "barlow":
        params["standardize"] = standardize
    try:
        loss = get_loss(loss_name, **params)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            res = simulate(loss, n=n, variances=variances, augmentation=augmentation, sigma=sigma,
                           theta=theta, scale_b=scale_b, d1=out_dim, model=model, steps=steps, lr=lr,
                           optimizer=optimizer, lr_schedule=lr_schedule, noise=noise,
                           replicates=replicates, bias=bias, seed=seed, kappa=kappa, track=track,
                           uniformity_t=uniformity_t)
        elapsed = time.perf_counter() - t0
    except Exception as exc:
        _library_error(exc, f"N={n}, replicates={replicates}; lower --n or --replicates")
    report = _report(res, loss, kappa, rank_tol, elapsed, [str(w.message) for w in caught])
    click.echo(_format(report))
    _emit_track(res.track, res.history["loss"], report, track_csv, track_plot,
                f"{_LOSS_TITLES[loss.name]}, sigma={sigma:g}, seed={seed}")
    if json_path:
        write_json(json_path, report)


def _library_error(exc, memory_hint):
    """Turn a library error into the CLI's: bad input -> usage error (exit 2), divergence or
    memory -> a plain error; anything else propagates unchanged."""
    if isinstance(exc, (ValueError, TypeError)):
        raise click.UsageError(str(exc)) from None
    if isinstance(exc, FloatingPointError):
        raise click.ClickException(str(exc)) from None
    if isinstance(exc, MemoryError):
        raise click.ClickException(f"not enough memory for {memory_hint}.") from None
    raise exc


def _run_siamese(method, *, rank_tol, track, track_csv, track_plot, json_path, **kw):
    from .cli_siamese import format_siamese, siamese_report
    from .siamese import train_siamese

    variances = kw.pop("variances")
    try:
        t0 = time.perf_counter()
        res = train_siamese(method, variances=variances, **kw)
        elapsed = time.perf_counter() - t0
    except Exception as exc:
        _library_error(exc, f"N={kw['n']}; lower --n")
    report = siamese_report(res, rank_tol, elapsed)
    click.echo(format_siamese(report))
    if track:
        _emit_track(res.track, res.history["loss"], report, track_csv, track_plot,
                    f"linear {method}, sigma={kw['sigma']:g}, seed={kw['seed']}")
    if json_path:
        write_json(json_path, report)


def _emit_track(tr, loss, report, csv_path, plot_path, title):
    """Print the tracked diagnostics, write CSV / PNG, and add them to the JSON report."""
    if tr is None:
        return
    from .track_io import format_track, plot_track, track_rows, write_track_csv

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


_SIAMESE_ONLY = ("predictor", "stop_gradient", "batchnorm", "ema", "objective", "predictor_lr", "predictor_init")
_CONTRASTIVE_ONLY = ("alpha", "beta", "negatives", "lam", "standardize", "temperature", "decoupled", "model",
                     "noise", "replicates", "normalize", "c_norm", "kappa", "bias", "engine", "scale_b")


def _check_applicable(ctx, loss_name, augmentation, normalize, model, track):
    """Options given explicitly that the chosen loss / augmentation / model would ignore."""
    siamese = loss_name in SIAMESE_METHODS
    rules = {key: (siamese, "--loss simsiam/byol") for key in _SIAMESE_ONLY}
    rules["stop_gradient"] = (loss_name == "simsiam", "--loss simsiam (BYOL's EMA target has no gradient)")
    rules["ema"] = (loss_name == "byol", "--loss byol")
    rules.update({key: (not siamese, "the contrastive losses, not --loss simsiam/byol") for key in _CONTRASTIVE_ONLY})
    rules.update({
        "track_csv": (track, "--track"),
        "track_plot": (track, "--track"),
        "uniformity_t": (track, "--track"),
        "temperature": (loss_name == "simclr", "--loss simclr"),
        "decoupled": (loss_name == "simclr", "--loss simclr"),
    })
    if siamese and augmentation == "scale":
        raise click.BadParameter("--augmentation scale is not available for simsiam/byol (additive noise only).",
                                 param_hint="'--augmentation'")
    rules.update({
        "sigma": (augmentation != "scale", "--augmentation isotropic or structured"),
        "theta": (augmentation == "structured", "--augmentation structured"),
    })
    if siamese:
        _reject(ctx, rules)
        return
    rules.update({
        "scale_b": (augmentation == "scale", "--augmentation scale"),
        "negatives": (loss_name in ("infonce", "weighted", "beta", "scl"), "--loss infonce/weighted/beta/scl"),
        "standardize": (loss_name == "barlow", "--loss barlow"),
        "c_norm": (normalize, "--normalize"),
        "kappa": (normalize, "--normalize"),
        "noise": (model == "exact", "--model exact"),
        "replicates": (model == "exact", "--model exact"),
        "normalize": (loss_name != "simclr", "the Gaussian-kernel losses (simclr normalises its outputs itself)"),
    })
    if loss_name == "simclr" and model == "effective":
        raise click.BadParameter("--model effective is not available for --loss simclr (the paper has no "
                                 "fourth-order landscape for the cosine form; use --loss infonce --normalize "
                                 "--c 1/temperature --negatives both, see docs/conventions.md).",
                                 param_hint="'--model'")
    _reject(ctx, rules)


def _reject(ctx, rules):
    names = {"c_norm": "--c", "scale_b": "--scale-b", "standardize": "--standardize/--raw",
             "predictor": "--predictor/--no-predictor", "stop_gradient": "--stop-gradient/--no-stop-gradient",
             "batchnorm": "--batchnorm/--no-batchnorm", "normalize": "--normalize/--no-normalize",
             "bias": "--bias/--no-bias"}
    for key, (ok, needs) in rules.items():
        src = ctx.get_parameter_source(key)
        if not ok and src is not None and src.name == "COMMANDLINE":
            opt = names.get(key, "--" + key.replace("_", "-"))
            raise click.BadParameter(f"{opt} has no effect here; it applies with {needs}.", param_hint=f"'{opt}'")


def _comparable(res):
    """Learned eigenvalues; for normalized losses rescaled so that E|f|^2 = c (scale is free).

    SimCLR's cosine similarity is scale free too; its values are rescaled to E|f|^2 = 1.
    """
    ev = res.eigenvalues.copy()
    if not (res.loss.normalize or res.loss.name == "simclr"):
        return ev, None
    rho = float(np.sum((res.W @ res.Sigma) * res.W)) + (0.0 if res.b is None else float(res.b @ res.b))
    scale = res.loss.c / rho if rho > 0 else 1.0
    return ev * scale, scale


def _report(res, loss, kappa, rank_tol, elapsed, warns):
    ds = res.dataset
    learned, scale = _comparable(res)
    pred, pred_note = None, None
    try:
        p = predict(loss, res.A0_model, res.C, n=ds.n, mean=res.mean_model,
                    d1=res.W.shape[0], bias=res.b is not None, kappa=kappa, seed=0)
        pred = p["eigenvalues"]
        pred_note = p["method"]
    except ValueError as exc:
        pred_note = f"not available: {str(exc).rstrip('.')}"
    Wsig = float(np.sum((res.W @ res.Sigma) * res.W)) * (1.0 if scale is None else scale)
    out = {
        "minissl_version": __version__,
        "settings": res.settings,
        "loss": repr(loss),
        "learned_eigenvalues": learned,
        "learned_scale_factor": scale,
        "predicted_eigenvalues": pred,
        "prediction_method": pred_note,
        "prediction_models": "noise-averaged loss (noise='fresh')",
        "rank_tol": rank_tol,
        "learned_rank": numerical_rank(learned, rank_tol),
        "predicted_rank": None if pred is None else numerical_rank(pred, rank_tol),
        "learned_stable_rank": stable_rank(learned),
        "predicted_stable_rank": None if pred is None else stable_rank(pred),
        "expansion_u": 2.0 * Wsig,
        "diagnostics": res.diagnostics,
        "converged": res.converged,
        "warnings": warns,
        "seconds": elapsed,
        "A0_eigenvalues": np.linalg.eigvalsh(ds.A0)[::-1],
        "C_eigenvalues": np.linalg.eigvalsh(res.C)[::-1],
    }
    if pred is not None:
        top = max(float(pred[0]), float(learned[0]), 1e-300)
        out["max_abs_diff_rel_to_top"] = float(np.max(np.abs(learned - pred)) / top)
    return out


def _format(r):
    s = r["settings"]
    lines = []
    title = _LOSS_TITLES[s["loss"]]
    params = ", ".join(f"{k}={v}" for k, v in s["loss_params"].items())
    variant = [v for v, on in (("normalized", s["normalize"]), ("bias", s["bias"]),
                               (f"weight decay {s['weight_decay']:g}", s["weight_decay"])) if on]
    lines.append(f"minissl simulate: {title}" + (f" [{params}]" if params else "")
                 + (f" + {', '.join(variant)}" if variant else ""))
    aug = s["augmentation"] + (f" sigma={s['sigma']:g}" if s["sigma"] is not None else "") + (
        f" theta={s['theta']:g}" if s["augmentation"] == "structured" else "")
    lines.append(f"data: N={s['n']}, d0={s['d0']} -> d1={s['d1']}, clean eigenvalues "
                 + ", ".join(f"{v:.3g}" for v in r["A0_eigenvalues"]) + f"; augmentation {aug}")
    lines.append(f"train: {s['model']} model, {s['optimizer']} lr={s['lr']:g} ({s['lr_schedule']}), "
                 f"{s['steps']} steps, noise={s['noise']}, replicates={s['replicates']}, seed={s['seed']}"
                 f"  [{s['train_seconds']:.1f} s]")
    how = {"compiled": "compiled in", "cache": "loaded from cache in", "loaded": "already loaded,",
           "python (JIT disabled)": "NUMBA_DISABLE_JIT=1: running as Python,"}
    if s.get("compile_source"):
        lines.append(f"engine: {s['engine']}, whole loop compiled ({how[s['compile_source']]} "
                     f"{s['compile_seconds']:.1f} s)")
    else:
        why = ("the effective model is descended in Python" if s["model"] == "effective" else
               "simclr has no Numba kernel; its NumPy core runs" if s["loss"] == "simclr" else
               "no compiled loop for this augmentation/dtype (scale augmentation or float32)")
        lines.append(f"engine: {s['engine']}" + ("" if s["engine"] == "numpy" else f" (Python loop: {why})"))
    lines.append("")
    pred = r["predicted_eigenvalues"]
    hdr = "  i   learned eig(W^T W)   predicted     difference"
    lines.append(hdr)
    for i, lv in enumerate(r["learned_eigenvalues"]):
        if pred is None:
            lines.append(f"  {i + 1:<3} {lv:<20.5g} {'n/a':<13}")
            continue
        pv = pred[i]
        top = max(pred[0], r["learned_eigenvalues"][0], 1e-300)
        lines.append(f"  {i + 1:<3} {lv:<20.5g} {pv:<13.5g} {(lv - pv) / top:+.3f} x top")
    lines.append("")
    if r["learned_scale_factor"] is not None:
        lines.append(f"({'cosine' if s['loss'] == 'simclr' else 'normalized'} loss: W's scale is free; "
                     f"learned values rescaled by "
                     f"{r['learned_scale_factor']:.4g} so that E|Wx+b|^2 = c)")
    pr = "n/a" if r["predicted_rank"] is None else r["predicted_rank"]
    psr = "n/a" if r["predicted_stable_rank"] is None else f"{r['predicted_stable_rank']:.3f}"
    lines.append(f"rank (eigenvalues > {r['rank_tol']:g} x largest): learned {r['learned_rank']}, predicted {pr}")
    lines.append(f"stable rank: learned {r['learned_stable_rank']:.3f}, predicted {psr}")
    u = r["expansion_u"]
    if r["learned_scale_factor"] is not None:
        trust = None
    elif u < 0.1:
        trust = "small: the fourth-order theory should be accurate"
    elif u < 0.5:
        trust = "moderate: expect corrections of relative size ~u"
    else:
        trust = "NOT small: expect the fourth-order theory to be off"
    if trust is None and s["loss"] == "simclr":
        lines.append("expansion parameter: not meaningful for the cosine loss (scale free)")
    elif trust is None:
        lines.append("expansion parameter: not meaningful for normalized outputs (the scale is fixed by c); "
                     "the prediction is the paper's penalty model, Eq. (10)")
    else:
        lines.append(f"expansion parameter u = 2 Tr[W Sigma W^T] = {u:.3g} ({trust})")
    lines.append(f"prediction: {r['prediction_method']}; models the {r['prediction_models']}")
    d = r["diagnostics"]
    lines.append(f"converged: {'yes' if r['converged'] else 'NO'} (spectral change {d['spectral_change']:.2g}"
                 f" +- {d['spectral_noise']:.2g}, tol {d['spectral_tol']:g}; mean gradient norm {d['grad_norm']:.2g}"
                 + (f" +- {d['grad_se']:.2g} (SE), zero-mean p-value {d['grad_pvalue']:.2g}"
                    if d.get("grad_pvalue") is not None else f", tol {d['grad_tol']:g}") + ")")
    for w in r["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _register():
    from .cli_imbalance import imbalance_cmd
    from .cli_nonlinear import nonlinear_cmd
    from .cli_reproduce import reproduce_cmd
    from .cli_theory import theory_cmd

    main.add_command(theory_cmd)
    main.add_command(reproduce_cmd)
    main.add_command(nonlinear_cmd)
    main.add_command(imbalance_cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
