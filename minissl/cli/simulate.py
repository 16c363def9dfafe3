"""``minissl simulate``: train a linear model on an exact SSL loss and compare with the theory."""

from __future__ import annotations

import time

import click
import numpy as np

from .. import __version__
from ..losses.registry import LOSS_NAMES, PAPER_LOSS, REGISTRY, option_params
from ..metrics import COLLAPSE_SCALE, RANK_RTOL
from ..siamese import METHODS as SIAMESE_METHODS
from . import options as O
from .errors import library_errors
from .output import compile_notice, emit_track, write_json

_LOSS_PARAMS = option_params()


# learned eigenvalues below this fraction of the largest are printed as a bound: their digits
# are accumulated round-off of the training steps and differ between CPUs
ROUNDOFF_DISPLAY = 1e-12


def _eigenvalue_text(lv, top):
    """A learned eigenvalue as printed: 5 digits, or ``< bound`` at round-off level."""
    if 0.0 < lv < ROUNDOFF_DISPLAY * top:
        return f"< {ROUNDOFF_DISPLAY * top:.2g}"
    return f"{lv:.5g}"


def _percent(x, sign=True):
    """A relative error as a percentage: ``+4.2%``, or ``+2.84e+04%`` when it is large."""
    if abs(x) < 10:
        return f"{x:+.1%}" if sign else f"{x:.1%}"
    return f"{100 * x:+.3g}%" if sign else f"{100 * x:.3g}%"


@click.command("simulate", short_help="Train a linear model on an exact SSL loss; compare with the theory.")
@O.loss_option(LOSS_NAMES, PAPER_LOSS, extra=SIAMESE_METHODS,
               help="Exact SSL loss; simsiam/byol train the non-contrastive linear model "
                    "(encoder + predictor, minissl.siamese).")
@O.loss_param_options(LOSS_NAMES)
@click.option("--predictor/--no-predictor", default=None,
              help="simsiam/byol: train a linear predictor (off: P = I, the ablation that collapses) "
                   "[default: predictor].")
@click.option("--stop-gradient/--no-stop-gradient", default=None,
              help="simsiam: stop the gradient through the target branch [default: stop-gradient].")
@click.option("--batchnorm/--no-batchnorm", default=None,
              help="simsiam/byol: batch-normalise the embeddings (no affine parameters) [default: no-batchnorm].")
@click.option("--ema", type=float, default=None, callback=O.real(lo=0.0, hi=1.0, hi_open=True),
              help="byol: target EMA decay in [0, 1) [default: 0.99].")
@click.option("--objective", type=click.Choice(["mse", "cosine"]), default=None,
              help="simsiam/byol: squared error (Tian et al. 2021, with theory) or negative cosine (Chen & He) "
                   "[default: mse].")
@click.option("--predictor-lr", type=float, default=None, callback=O.real(lo=0.0, lo_open=True),
              help="simsiam/byol: predictor learning rate relative to the encoder's [default: 1].")
@click.option("--predictor-init", type=click.Choice(["small", "identity"]), default=None,
              help="simsiam/byol: P_0 small random or identity + small random [default: small].")
@click.option("--directpred", is_flag=True, default=None,
              help="simsiam/byol: set the predictor from the eigen-decomposition of a moving average of the "
                   "features' correlation, p_j = sqrt(lambda_j / lambda_max) + eps (DirectPred, Tian et al. "
                   "2021), instead of training it.")
@click.option("--directpred-eps", type=float, default=None, callback=O.real(lo=0.0),
              help="With --directpred: eps added to every predictor eigenvalue [default: 0.1].")
@click.option("--directpred-rho", type=float, default=None, callback=O.real(lo=0.0, hi=1.0, hi_open=True),
              help="With --directpred: the correlation's moving-average weight on the old estimate, in [0, 1) "
                   "[default: 0.3].")
@click.option("--directpred-scale", type=click.Choice(["max", "none"]), default=None,
              help="With --directpred: p_j = sqrt(lambda_j / lambda_max) + eps (max: Tian et al.'s; with the "
                   "mse objective |W| shrinks while its shape converges) or sqrt(lambda_j) + eps (none: a "
                   "non-collapsed fixed point) [default: max].")
@O.n_option(256)
@click.option("--dim", type=int, default=None, callback=O.integer(lo=1),
              help="Input dimension d0 [default: number of --variances, else 5].")
@O.out_dim_option()
@O.variances_option(help="Comma-separated variances of the clean data [default: 0.5,1,2,3,4; with --dim D != 5, "
                         "D values evenly spaced from 0.5 to 4].")
@click.option("--augmentation", type=click.Choice(["isotropic", "structured", "scale"]), default="isotropic",
              show_default=True, help="Augmentation: N(0, sigma^2 I), sigma R xi (Sec. 4.2), or x = s x (App. F.1).")
@O.sigma_option(1.8)
@click.option("--theta", type=float, default=0.5, show_default=True, callback=O.real(lo=0.0, hi=1.0),
              help="Structured augmentation orientation theta in [0, 1].")
@click.option("--scale-b", type=float, default=1.0, show_default=True, callback=O.real(lo=0.0, lo_open=True),
              help="Mean of the scale factor s ~ Exp for --augmentation scale.")
@click.option("--model", type=click.Choice(["exact", "effective"]), default="exact", show_default=True,
              help="Train on the exact loss or descend the effective landscape.")
@O.steps_option(None, show="3000; simsiam/byol 10000")
@click.option("--batch-size", type=int, default=None, callback=O.integer(lo=2), show_default="N (full batch)",
              help="Samples per step: a fresh random minibatch of B of the N samples every step, negatives "
                   "within the batch.")
@O.lr_option(None, show="3e-3; simsiam/byol 0.05",
             help="Learning rate (cosine-annealed to lr/1000 by default); lower it if a run diverges.")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="cosine", show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default=None, show_default="adam; simsiam/byol sgd",
              help="Adam is safe for every loss; SGD has the unbiased fixed point (needs a suitable --lr).")
@click.option("--noise", type=click.Choice(["fresh", "fixed"]), default="fresh", show_default=True,
              help="New noise every step (noise-averaged loss) or one fixed augmented set.")
@click.option("--replicates", type=int, default=1, show_default=True, callback=O.integer(lo=1),
              help="Pairs of views per step (gradient averaged).")
@O.seed_option()
@click.option("--normalize/--no-normalize", default=False, show_default=True,
              help="Normalize outputs f -> sqrt(c) f/|f|.")
@click.option("--c", "c", type=float, default=1.0, show_default=True, callback=O.real(lo=0.0, lo_open=True),
              help="Squared output norm under --normalize.")
@click.option("--kappa", type=float, default=None, callback=O.real(lo=0.0, lo_open=True),
              help="Normalization penalty of the effective landscape (Eq. 10), with --normalize only "
                   "[default: 100].")
@click.option("--bias/--no-bias", default=False, show_default=True, help="Train a bias b.")
@click.option("--weight-decay", type=float, default=None, callback=O.real(lo=0.0),
              show_default="0; simsiam/byol 0.05, which pins the fixed point the theory predicts")
@O.engine_option()
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True,
              help="Precision of data, weights and kernels. float32 runs the InfoNCE family in the compiled "
                   "loop with float32 products and float64 softmax, sums and optimizer moments; SCL, Barlow "
                   "Twins and VICReg keep float64 steps (Python loop).")
@click.option("--rank-tol", type=float, default=RANK_RTOL, show_default=True, callback=O.real(lo=0.0),
              help="Relative tolerance of the numerical rank: eigenvalues > tol * max(predicted top, 1e-6), or "
                   "tol * largest where there is no prediction.")
@click.option("--track", is_flag=True, default=False,
              help="Record collapse diagnostics during training (spectrum of the embedding covariance, "
                   "rank, stable/entropy rank, log eigenvalue ratio, explained variance, alignment, "
                   "uniformity) and print them.")
@click.option("--track-csv", default=None, metavar="FILE", callback=O.checked(O.check_output_file),
              help="With --track: write every recorded step as CSV to this file.")
@O.plot_option("--track-plot", "With --track: plot the trajectories to this PNG")
@click.option("--uniformity-t", type=float, default=2.0, show_default=True, callback=O.real(lo=0.0, lo_open=True),
              help="With --track: uniformity kernel scale t (Wang & Isola).")
@O.json_option()

def simulate_cmd(**kw):
    """Train a linear model on an SSL loss and compare with the theory's prediction.

    Prints the learned eigenvalues of W^T W next to the effective landscape's prediction
    for the same empirical A0 and augmentation C, the rank and stable rank, the
    expansion parameter u = 2 Tr[W Sigma W^T] (the theory is a small-u expansion) and
    the convergence diagnostics.
    """
    from ..sweep.progress import steps_bar

    kw = prepare(click.get_current_context(), kw)
    with compile_notice(), steps_bar(desc="simulate"):
        [(report, res)] = compute([kw])
    if kw["loss"] in SIAMESE_METHODS:
        from .siamese_format import format_siamese

        click.echo(format_siamese(report))
        title = f"linear {kw['loss']}, sigma={kw['sigma']:g}, seed={kw['seed']}"
    else:
        click.echo(format_report(report))
        title = f"{REGISTRY[kw['loss']].title}, sigma={kw['sigma']:g}, seed={kw['seed']}"
    if kw["track"]:
        emit_track(res.track, res.history["loss"], report, kw["track_csv"], kw["track_plot"], title)
    if kw["json_path"]:
        write_json(kw["json_path"], report)


_OPTIMIZER_DEFAULTS = {"lr": 3e-3, "steps": 3000, "optimizer": "adam", "weight_decay": 0.0}
_SIAMESE_DEFAULTS = {"lr": 0.05, "steps": 10000, "optimizer": "sgd", "weight_decay": 0.05}


def prepare(ctx, kw):
    """The checked settings of one run from the parsed options (no work is done).

    Folds the ``--d1`` alias, fills the defaults that depend on other options (variances from
    ``--dim``, the optimizer's defaults per method) and refuses options the chosen loss,
    augmentation or model would ignore. Used by the command and, per point, by ``minissl sweep``.
    """
    kw = O.merge_alias(dict(kw), "d1", "d1_alias", "--d1", "--out-dim")
    loss, dim, variances = kw["loss"], kw.pop("dim"), kw["variances"]
    if variances is None:
        kw["variances"] = (np.array([0.5, 1.0, 2.0, 3.0, 4.0]) if dim in (None, 5)
                           else np.linspace(0.5, 4.0, dim))
    elif dim is not None and dim != variances.size:
        raise click.BadParameter(f"--dim == {dim} but --variances lists {variances.size} values; they must agree.",
                                 param_hint="'--dim'")
    _check_applicable(ctx, loss, kw["augmentation"], kw["normalize"], kw["model"], kw["track"], kw["directpred"])
    if kw.get("directpred") and kw.get("predictor") is False:
        raise click.BadParameter("--directpred sets the predictor; it cannot be combined with --no-predictor.",
                                 param_hint="'--directpred'")
    if kw.get("batch_size") is not None and kw["batch_size"] > kw["n"]:
        raise click.BadParameter(f"--batch-size == {kw['batch_size']} exceeds --n == {kw['n']} (the training "
                                 f"samples); it must be between 2 and {kw['n']}.", param_hint="'--batch-size'")
    siamese = loss in SIAMESE_METHODS
    for key, value in (_SIAMESE_DEFAULTS if siamese else _OPTIMIZER_DEFAULTS).items():
        if kw[key] is None:
            kw[key] = value
    if not siamese:  # the library's own checks of the loss and the run's settings (cheap, no data yet)
        from ..train import RunConfig

        with library_errors(aliases={"name": "loss"}):
            loss_obj, args = _contrastive_run(**kw)
            RunConfig.from_kwargs(loss_obj, **args)
    return kw


def compute(kws):
    """Train the runs of prepared settings ``kws``; ``[(report, result), ...]`` in order.

    ``report`` is what ``--json`` writes. Several contrastive runs are trained together by
    :func:`minissl.train.run_batch` (compiled runs in parallel across runs), which gives the same
    numbers as one run at a time; a single run uses :func:`minissl.simulate` (parallel across
    samples). ``report["seconds"]`` of a batched run is its share of the batch's wall time.
    """
    siamese = [kw for kw in kws if kw["loss"] in SIAMESE_METHODS]
    if siamese and len(siamese) < len(kws):
        raise ValueError("compute() takes either contrastive or simsiam/byol runs, not both.")
    if siamese:
        return [_siamese_report(**kw) for kw in kws]
    return _contrastive_reports(kws)


def _contrastive_run(*, loss, n, d1, variances, augmentation, sigma, theta, scale_b, model, steps, batch_size, lr,
                     lr_schedule, optimizer, noise, replicates, seed, normalize, c, kappa, bias, weight_decay,
                     engine, dtype, track, uniformity_t, **rest):
    """(loss object, keyword arguments of :func:`minissl.simulate`) of one prepared run."""
    from ..losses import get_loss

    params = O.loss_params(loss, {k: rest[k] for k in _LOSS_PARAMS})
    loss_obj = get_loss(loss, normalize=normalize, c=c, weight_decay=weight_decay, engine=engine, **params)
    return loss_obj, dict(n=n, variances=variances, augmentation=augmentation, sigma=sigma, theta=theta,
                          scale_b=scale_b, d1=d1, model=model, steps=steps, batch_size=batch_size, lr=lr,
                          optimizer=optimizer,
                          lr_schedule=lr_schedule, noise=noise, replicates=replicates, bias=bias, seed=seed,
                          kappa=kappa, track=track, uniformity_t=uniformity_t, dtype=np.dtype(dtype).type,
                          warn=False)


def _contrastive_reports(kws):
    from ..comparison import compare
    from ..track_io import track_rows
    from ..train import simulate, simulate_batch
    from ..train.diagnostics import not_converged_message

    hint = ", ".join(sorted({f"N={kw['n']}, replicates={kw['replicates']}" for kw in kws}))
    with library_errors(f"{hint}; lower --n or --replicates", aliases={"name": "loss"}):
        runs = [_contrastive_run(**kw) for kw in kws]
        t0 = time.perf_counter()
        if len(runs) == 1:
            results = [simulate(runs[0][0], **runs[0][1])]
        else:
            results = simulate_batch([{"loss": lo, **args} for lo, args in runs])
        elapsed = (time.perf_counter() - t0) / len(runs)
        out = []
        for kw, (loss_obj, _), res in zip(kws, runs, results):
            comparison = compare(res, rank_tol=kw["rank_tol"], kappa=kw["kappa"])
            s = res.settings
            warn = [] if res.converged else [not_converged_message(res.diagnostics, s["steps"], s["grad_alpha"])]
            report = {"minissl_version": __version__, "settings": s, "loss": repr(loss_obj), **comparison,
                      "diagnostics": res.diagnostics, "converged": res.converged, "warnings": warn,
                      "seconds": elapsed}
            if res.track is not None:
                report["track"] = track_rows(res.track, res.history["loss"])
            out.append((report, res))
    return out


def _siamese_report(*, loss, rank_tol, n, variances, augmentation, sigma, theta, d1, predictor, stop_gradient,
                    batchnorm, objective, ema, weight_decay, steps, lr, predictor_lr, predictor_init, optimizer,
                    lr_schedule, seed, uniformity_t, track, directpred, directpred_eps, directpred_rho,
                    directpred_scale, **_):
    from ..comparison import compare_siamese
    from ..siamese import train_siamese
    from ..track_io import track_rows

    kw = dict(n=n, variances=variances, augmentation=augmentation, sigma=sigma, theta=theta, d1=d1,
              predictor=True if predictor is None else predictor,
              stop_gradient=True if stop_gradient is None else stop_gradient,
              batchnorm=bool(batchnorm), objective=objective or "mse", ema=ema, weight_decay=weight_decay,
              steps=steps, lr=lr, predictor_lr=1.0 if predictor_lr is None else predictor_lr,
              predictor_init=predictor_init or "small", optimizer=optimizer, lr_schedule=lr_schedule, seed=seed,
              uniformity_t=uniformity_t, directpred=bool(directpred), directpred_eps=directpred_eps,
              directpred_rho=directpred_rho, directpred_scale=directpred_scale)
    with library_errors(f"N={n}; lower --n"):
        t0 = time.perf_counter()
        res = train_siamese(loss, **kw)
        elapsed = time.perf_counter() - t0
        comparison = compare_siamese(res, rank_tol)
    report = {"minissl_version": __version__, "settings": res.settings, **comparison, "seconds": elapsed}
    if track:
        report["track"] = track_rows(res.track, res.history["loss"])
    return report, res


_SIAMESE_ONLY = ("predictor", "stop_gradient", "batchnorm", "ema", "objective", "predictor_lr", "predictor_init",
                 "directpred", "directpred_eps", "directpred_rho", "directpred_scale")
_CONTRASTIVE_ONLY = _LOSS_PARAMS + ("model", "batch_size", "noise", "replicates", "normalize", "c", "kappa", "bias",
                                    "engine", "scale_b", "dtype")


def _check_applicable(ctx, loss, augmentation, normalize, model, track, directpred=False):
    """Options given explicitly that the chosen loss / augmentation / model would ignore."""
    siamese = loss in SIAMESE_METHODS
    rules = {key: (siamese, "--loss simsiam/byol") for key in _SIAMESE_ONLY}
    if siamese:
        rules.update({key: (bool(directpred), "--directpred")
                      for key in ("directpred_eps", "directpred_rho", "directpred_scale")})
        rules.update({key: (not directpred, "a learned predictor (not --directpred)")
                      for key in ("predictor_lr", "predictor_init")})
    rules["stop_gradient"] = (loss == "simsiam", "--loss simsiam (BYOL's EMA target has no gradient)")
    rules["ema"] = (loss == "byol", "--loss byol")
    rules.update({key: (not siamese, "the contrastive losses, not --loss simsiam/byol") for key in _CONTRASTIVE_ONLY})
    rules.update({
        "track_csv": (track, "--track"),
        "track_plot": (track, "--track"),
        "uniformity_t": (track, "--track"),
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
    spec = REGISTRY[loss]
    rules.update({
        "scale_b": (augmentation == "scale", "--augmentation scale"),
        "c": (normalize, "--normalize"),
        "kappa": (normalize, "--normalize"),
        "noise": (model == "exact", "--model exact"),
        "replicates": (model == "exact", "--model exact"),
        "batch_size": (model == "exact", "--model exact"),
        "normalize": (spec.normalize_allowed, "the Gaussian-kernel losses (a self-normalising loss such as "
                                              f"{loss} normalises its outputs itself)"),
    })
    if spec.quartic is None and spec.effective_B is None and model == "effective":
        raise click.BadParameter(f"--model effective is not available for --loss {loss} (the paper has no "
                                 "fourth-order landscape for the cosine form; use --loss infonce --normalize "
                                 "--c 1/temperature --negatives both, see docs/conventions.md).",
                                 param_hint="'--model'")
    _reject(ctx, rules)


def _reject(ctx, rules):
    params = {p.name: p for p in ctx.command.params}
    for key, (ok, needs) in rules.items():
        if not ok and O.given(ctx, key):
            opt = O.display(params[key])
            raise click.BadParameter(f"{opt} has no effect here; it applies with {needs}.", param_hint=f"'{opt}'")


def format_report(r):
    """The text ``minissl simulate`` prints for a contrastive run (from its JSON report)."""
    s = r["settings"]
    lines = []
    title = REGISTRY[s["loss"]].title
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
                 f"{s['steps']} steps"
                 + (f", minibatch {s['batch_size']} of {s['n']}" if s.get("batch_size", s["n"]) < s["n"] else "")
                 + f", noise={s['noise']}, replicates={s['replicates']}, seed={s['seed']}"
                 f"  [{s['train_seconds']:.1f} s]")
    how = {"compiled": "compiled in", "cache": "loaded from cache in", "loaded": "already loaded,",
           "python (JIT disabled)": "NUMBA_DISABLE_JIT=1: running as Python,"}
    if s.get("compile_source"):
        lines.append(f"engine: {s['engine']}, whole loop compiled ({how[s['compile_source']]} "
                     f"{s['compile_seconds']:.1f} s)")
    else:
        why = ("the effective model is descended in Python" if s["model"] == "effective" else
               f"{s['loss']} has no Numba kernel; its NumPy core runs" if not REGISTRY[s["loss"]].accelerated else
               "no compiled loop for this augmentation/dtype (scale augmentation, or float32 outside the "
               "InfoNCE family)")
        lines.append(f"engine: {s['engine']}" + ("" if s["engine"] == "numpy" else f" (Python loop: {why})"))
    lines.append("")
    pred = r["predicted_eigenvalues"]
    lines.append("  i   learned eig(W^T W)   predicted     error")
    top = max(r["learned_eigenvalues"], default=0.0)
    for i, lv in enumerate(r["learned_eigenvalues"]):
        shown = _eigenvalue_text(lv, top)
        if pred is None:
            lines.append(f"  {i + 1:<3} {shown:<20} {'n/a':<13}")
            continue
        pv = pred[i]
        err = np.copysign(r["eigenvalue_errors"][i], lv - pv)
        lines.append(f"  {i + 1:<3} {shown:<20} {pv:<13.5g} {_percent(err)}")
    if pred is not None:
        lines.append(f"(error: (learned - predicted) / max(predicted, {r['agreement_floor']:.3g}), the floor being "
                     f"{r['rank_tol']:g} x max(predicted top eigenvalue, {COLLAPSE_SCALE:g}); largest "
                     f"{_percent(r['max_eig_error'], sign=False)})")
    lines.append("")
    self_normalising = not REGISTRY[s["loss"]].normalize_allowed
    if r["learned_scale_factor"] is not None:
        lines.append(f"({'cosine' if self_normalising else 'normalized'} loss: W's scale is free; "
                     f"learned values rescaled by "
                     f"{r['learned_scale_factor']:.4g} so that E|Wx+b|^2 = c)")
    pr = "n/a" if r["predicted_rank"] is None else r["predicted_rank"]
    psr = "n/a" if r["predicted_stable_rank"] is None else f"{r['predicted_stable_rank']:.3f}"
    scale_text = "largest" if r["predicted_rank"] is None else f"max(predicted top, {COLLAPSE_SCALE:g})"
    lines.append(f"rank (eigenvalues > {r['rank_tol']:g} x {scale_text}): learned {r['learned_rank']}, predicted {pr}")
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
    if trust is None and self_normalising:
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
