"""``minissl theory point|table1|phase``: the closed forms of :mod:`minissl.theory`, no training.

``minissl theory`` with no subcommand (or options only) runs ``point``.
"""

from __future__ import annotations

import click
import numpy as np

from .. import _validation as V
from ..losses.registry import PAPER_LOSS, names, option_params
from . import options as O
from .errors import library_errors
from .output import write_json

_TRACE_LOSSES = names(lambda s: s.trace_theory)


class _DefaultPoint(click.Group):
    """A group whose default subcommand is ``point`` (``minissl theory --loss scl`` works)."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["point", *args]
        return super().parse_args(ctx, args)


@click.group("theory", cls=_DefaultPoint, short_help="Closed-form predictions: Theorems 1-3, Props. 2-4 (no training).")
def theory_cmd():
    """Closed-form predictions of the theory (Theorems 1-3, Props. 2-4), no training.

    \b
    minissl theory [point]  one setting: stationary points, global minimum, collapsed
                            directions, collapse thresholds (derived and paper constants)
    minissl theory table1   Table 1 of the paper with the derived Hessians
    minissl theory phase    Fig. 3 (top): phase diagram over (sigma, theta)
    minissl theory dynamics early SGD rates and learning times per direction
    """


def _range(lo_min, hi_max):
    def parse(name, text):
        parts = str(text).split(":")
        try:
            lo, hi, num = float(parts[0]), float(parts[1]), int(parts[2])
        except (ValueError, IndexError):
            raise ValueError(f"{name} == {text!r}, must be LO:HI:NUM, e.g. 0:4:41.") from None
        if len(parts) != 3 or not (lo_min <= lo < hi <= hi_max) or not 2 <= num <= 400:
            raise ValueError(f"{name} == {text!r}, must be LO:HI:NUM with {lo_min:g} <= LO < HI <= {hi_max:g} "
                             "and 2 <= NUM <= 400.")
        return np.linspace(lo, hi, num)

    return parse


def _loss_options(f):
    """Options that build the loss (shared by ``point`` and ``phase``)."""
    for deco in reversed((
        O.loss_option(_TRACE_LOSSES, PAPER_LOSS, help="Loss (those with a trace-form fourth-order landscape)."),
        O.loss_param_options(_TRACE_LOSSES),
        click.option("--normalize/--no-normalize", default=False, show_default=True,
                     help="Normalized outputs, modelled by the penalty of Eq. (10) (default kappa -> inf, "
                          "Theorem 2)."),
        click.option("--kappa", type=float, default=None, callback=O.real(lo=0.0, lo_open=True, allow_inf=True),
                     help="Finite normalization penalty (Props. 3-4) instead of the limit; 'inf' is the limit."),
        click.option("--c", "c", type=float, default=1.0, show_default=True, callback=O.real(lo=0.0, lo_open=True),
                     help="Target squared norm under --normalize."),
        click.option("--weight-decay", type=float, default=0.0, show_default=True, callback=O.real(lo=0.0)),
        O.out_dim_option(),
        click.option("--content-dims", type=int, default=None, callback=O.integer(lo=0),
                     help="Content coordinates of the structured augmentation [default: d0 // 2]."),
        click.option("--n", type=int, default=None, callback=O.integer(lo=2),
                     help="Dataset size for N-dependent constants [default: the N -> infinity limit]."),
        O.json_option(),
    )):
        f = deco(f)
    return f


def _build_loss(ctx, kw):
    """The loss of ``point`` / ``phase`` from the options; checks options that need --normalize."""
    O.merge_alias(kw, "d1", "d1_alias", "--d1", "--out-dim")
    for key, opt in (("kappa", "--kappa"), ("c", "--c")):
        if not kw["normalize"] and O.given(ctx, key):
            raise click.BadParameter(f"{opt} applies with --normalize.", param_hint=f"'{opt}'")
    loss = kw.pop("loss")
    params = O.loss_params(loss, {p: kw.pop(p) for p in list(kw) if p in _PARAM_NAMES})
    from ..losses import get_loss

    with library_errors(aliases={"name": "loss"}):
        return get_loss(loss, weight_decay=kw.pop("weight_decay"), normalize=kw.pop("normalize"), c=kw.pop("c"),
                        **params)


_PARAM_NAMES = option_params(_TRACE_LOSSES)


def _title(loss):
    params = ", ".join(f"{k}={v}" for k, v in loss.params.items() if k != "negatives" or v != "view1")
    extra = [v for v, on in (("normalized", loss.normalize), (f"weight decay {loss.weight_decay:g}",
                                                               loss.weight_decay)) if on]
    return loss.title + (f" [{params}]" if params else "") + (f" + {', '.join(extra)}" if extra else "")


def _fmt_list(vals, spec=".4g"):
    return "  ".join(format(v, spec) for v in vals)


def _evaluate(fn):
    with library_errors():
        try:
            with np.errstate(over="raise", invalid="raise"):
                return fn()
        except FloatingPointError as exc:  # NumPy's overflow under errstate: the input, not a diverged run
            raise OverflowError(str(exc)) from None


@theory_cmd.command("point", short_help="One setting: global minimum, collapsed directions, thresholds.")
@_loss_options
@O.variances_option(help="Clean-data variances [default: 0.5,1,2,3,4].")
@click.option("--augmentation", type=click.Choice(["isotropic", "structured", "scale"]), default="isotropic",
              show_default=True, help="scale: x = s x_hat, s ~ Exp(mean --scale-b) (App. F.1).")
@O.sigma_option(1.8)
@click.option("--theta", type=float, default=0.5, show_default=True, callback=O.real(lo=0.0, hi=1.0),
              help="Structured augmentation orientation in [0, 1].")
@click.option("--scale-b", type=float, default=1.0, show_default=True, callback=O.real(lo=0.0, lo_open=True),
              help="Mean of the scale factor s for --augmentation scale.")
@click.option("--bias/--no-bias", default=False, show_default=True, help="With a bias (Theorem 3; needs --normalize).")
def point_cmd(**kw):
    """One setting: stationary points, global minimum, collapsed directions, thresholds."""
    kw = prepare_point(click.get_current_context(), kw)
    payload, text = compute_point(kw)
    click.echo(text)
    if kw["json_path"]:
        write_json(kw["json_path"], payload)


def prepare_point(ctx, kw):
    """The checked settings of ``theory point`` (the loss built, options that do nothing refused);
    no work is done. Used by the command and, per point, by ``minissl sweep``."""
    kw = dict(kw)
    unused = {"isotropic": ("theta", "content_dims", "scale_b"), "structured": ("scale_b",),
              "scale": ("sigma", "theta", "content_dims", "normalize", "kappa", "bias")}[kw["augmentation"]]
    for key in unused:
        if O.given(ctx, key):
            opt = "--" + key.replace("_", "-")
            why = (" (the scale augmentation's landscape is derived without normalization)"
                   if key in ("normalize", "kappa", "bias") else "")
            raise click.BadParameter(f"{opt} has no effect with --augmentation {kw['augmentation']}{why}.",
                                     param_hint=f"'{opt}'")
    if kw["bias"] and not kw["normalize"]:
        raise click.BadParameter("--bias changes nothing without --normalize (translation invariance); "
                                 "add --normalize.", param_hint="'--bias'")
    kw["loss"] = _build_loss(ctx, kw)
    if kw["augmentation"] == "structured":  # content_dims against d0: the library's check, before any work
        from ..data import StructuredNoise

        d0 = 5 if kw["variances"] is None else len(kw["variances"])
        with library_errors():
            StructuredNoise(1.0, kw["theta"], d0, kw["content_dims"])
    return kw


def compute_point(kw):
    """``(payload, text)`` of prepared settings: what ``--json`` writes and what is printed."""
    return _evaluate(lambda: _point(**{k: v for k, v in kw.items() if k != "json_path"}))


@theory_cmd.command("dynamics", short_help="Early SGD rates and learning times per direction (linearised at W=0).")
@_loss_options
@O.variances_option(help="Clean-data variances [default: 0.5,1,2,3,4].")
@click.option("--augmentation", type=click.Choice(["isotropic", "structured"]), default="isotropic",
              show_default=True)
@O.sigma_option(1.8)
@click.option("--theta", type=float, default=0.5, show_default=True, callback=O.real(lo=0.0, hi=1.0),
              help="Structured augmentation orientation in [0, 1].")
@O.lr_option(0.05, help="SGD learning rate.")
@click.option("--momentum", type=float, default=0.0, show_default=True,
              callback=O.real(lo=0.0, hi=1.0, hi_open=True), help="Heavy-ball momentum of SGD.")
@click.option("--init-scale", type=float, default=0.01, show_default=True, callback=O.real(lo=0.0, lo_open=True),
              help="Orthogonal initialisation scale: every direction starts at u0 = init_scale^2.")
@click.option("--eps", type=float, default=0.1, show_default=True,
              callback=O.real(lo=0.0, hi=1.0, lo_open=True, hi_open=True),
              help="Learning time: within eps of the stationary value, or down to eps of the start.")
def dynamics_cmd(**kw):
    """Early SGD rates and learning times of every direction (linearisation at W = 0 + logistic saturation).

    Directions are the eigenvectors of B. A growing direction (b > 0) reaches its stationary
    eigenvalue u* = b / (2 k s^2) of Theorem 1 after the printed number of steps; a decaying one
    (b < 0) falls to eps of its start. Both times diverge like 1/|b| at a collapse threshold
    (critical slowing down). SGD only: Adam has no linear rate.
    """
    ctx = click.get_current_context()
    if kw["normalize"]:
        raise click.BadParameter("the dynamics are predicted for the unnormalized landscape only.",
                                 param_hint="'--normalize'")
    for key in ("theta", "content_dims"):
        if kw["augmentation"] == "isotropic" and O.given(ctx, key):
            opt = "--" + key.replace("_", "-")
            raise click.BadParameter(f"{opt} has no effect with --augmentation isotropic.", param_hint=f"'{opt}'")
    kw["loss"] = _build_loss(ctx, kw)
    payload, text = _evaluate(lambda: _dynamics(**{k: v for k, v in kw.items() if k not in ("json_path", "kappa")}))
    click.echo(text)
    if kw["json_path"]:
        write_json(kw["json_path"], payload)


def _dynamics(loss, variances, d1, augmentation, sigma, theta, content_dims, n, lr, momentum, init_scale, eps):
    from ..data import StructuredNoise
    from ..theory import dynamics, landscape_for

    a = np.array([0.5, 1.0, 2.0, 3.0, 4.0]) if variances is None else variances
    d0 = a.size
    C_unit = np.eye(d0) if augmentation == "isotropic" else StructuredNoise(1.0, theta, d0, content_dims).C
    land = landscape_for(loss, np.diag(a), sigma**2 * C_unit, n=n, d1=d1)
    with library_errors():
        r = dynamics(land, lr, momentum=momentum, u0=init_scale**2, eps=eps)
    aug = f"isotropic sigma={sigma:g}" if augmentation == "isotropic" else f"structured sigma={sigma:g} theta={theta:g}"
    lines = [f"minissl theory dynamics: {_title(loss)}, {aug}",
             f"SGD lr={lr:g}" + (f", momentum {momentum:g}" if momentum else "") + f"; start u0 = {init_scale**2:.3g} "
             f"per direction (orthogonal init scale {init_scale:g}); learning time: to within {eps:g} of u*, "
             f"or down to {eps:g} u0",
             "  i   axis  variance   b          rate/step (u)  u* = b/(2k s^2)  steps"]
    for i, (e, b, rate, us, st) in enumerate(zip(r["directions"], r["b"], r["rate"], r["u_star"], r["steps"])):
        axis = int(np.argmax(np.abs(e)))
        lines.append(f"  {i + 1:<3} {axis + 1:<5} {a[axis]:<10.4g} {b:<+10.4g} {rate:<+14.4g} {us:<16.4g} "
                     + ("inf" if st is None else f"{st:.4g}"))
    lines.append(f"(k = {r['k']:g}; decoupled directions need B and S to commute: |[B, S]| / (|B| |S|) = "
                 f"{r['commutator']:.2g}; near a threshold the time diverges as |sigma - sigma_c|^-1)")
    return r, "\n".join(lines)


@theory_cmd.command("table1", short_help="Table 1 of the paper with the derived Hessians.")
@O.json_option()
def table1_cmd(json_path):
    """Table 1 of the paper with the derived Hessians and collapse marks (errata flagged)."""
    from ..theory import format_table1, table1

    click.echo(format_table1())
    if json_path:
        write_json(json_path, {"table1": table1()})


@theory_cmd.command("phase", short_help="Fig. 3 (top): phase diagram over (sigma, theta).")
@_loss_options
@O.variances_option(help="Clean-data variances (content, style) [default: 1,1].")
@click.option("--sigmas", default=None, callback=O.checked(_range(0.0, 1e3)),
              help="Sigma grid LO:HI:NUM [default: 0.05:4:40].")
@click.option("--thetas", default=None, callback=O.checked(_range(0.0, 1.0)),
              help="Theta grid LO:HI:NUM [default: 0:1:21].")
@O.plot_option("--plot", "Also draw the map to this PNG")
def phase_cmd(**kw):
    """Fig. 3 (top): phase of the global minimum over (sigma, theta)."""
    ctx = click.get_current_context()
    loss = _build_loss(ctx, kw)
    plot, json_path = kw.pop("plot"), kw.pop("json_path")
    payload, text = _evaluate(lambda: _phase(loss, **kw))
    click.echo(text)
    if plot:
        _plot_phase(payload, plot)
    if json_path:
        write_json(json_path, payload)


def _point(loss, variances, d1, augmentation, sigma, theta, content_dims, n, kappa, bias, scale_b):
    from ..data import ScaleAugmentation, StructuredNoise
    from ..theory import analyze

    a = np.array([0.5, 1.0, 2.0, 3.0, 4.0]) if variances is None else variances
    d0 = a.size
    A0 = np.diag(a)
    if augmentation == "scale":
        aug_ = ScaleAugmentation(scale_b)
        r = analyze(loss, aug_.clean_moment(A0), aug_.covariance(A0), n=n, d1=d1, scale=True)
        aug = f"scale s ~ Exp(mean b={scale_b:g}) (App. F.1; model: A0 = C = b^2 A_hat)"
    else:
        if augmentation == "isotropic":
            C_unit = np.eye(d0)
            aug = f"isotropic sigma={sigma:g}"
        else:
            C_unit = StructuredNoise(1.0, theta, d0, content_dims).C
            aug = f"structured sigma={sigma:g} theta={theta:g}"
        r = analyze(loss, A0, sigma**2 * C_unit, C_unit=C_unit, n=n, d1=d1, kappa=kappa, bias=bias)
    lines = [f"minissl theory: {_title(loss)}, {aug}"]
    lines.append(f"data: d0={d0} -> d1={r['d1']}, variances {_fmt_list(a, 'g')} "
                 + (f"(N={n})" if n else "(N -> infinity)"))
    pb = r["paper_B_eigenvalues"]
    lines.append("B (derived; Hessian at W=0 is -2B): " + _fmt_list(r["B_eigenvalues"])
                 + ("" if pb is None else "   [paper: " + _fmt_list(pb) + "]"))
    lines.append(f"quartic coefficient k = {r['k']:g} (paper: 1)")
    if r["scale_augmentation"] and r["kappa"]:
        lines.append(f"scale augmentation: quartic k Tr[(W S W^T)^2] + {r['kappa']:g} Tr[W S W^T]^2, S = 2 b^2 A_hat: "
                     "Eq. (10) with c = 0 (derived, docs/errata.md E10; Props. 3-4 give the minima; paper Eq. 61: "
                     "24 b^2 Tr[W A0 W^T]^2 + 56 b^4 Tr[(W A0 W^T)^2])")
    elif r["normalized_limit"] or r["kappa"]:
        how = "kappa -> inf (Theorem 2)" if r["normalized_limit"] else f"kappa = {r['kappa']:g} (Props. 3-4)"
        lines.append(f"normalization: penalty of Eq. (10), {how}, c = {loss.c:g}"
                     + (", with bias (Theorem 3)" if bias else ""))
    else:
        lines.append(f"m = {r['m']} positive directions, d* = {r['d_star']}: every local minimum has rank "
                     f"min(m, d*) = {min(r['m'], r['d_star'])} (Prop. 2)")
    sp = r["stationary_points"]
    if sp is None:
        lines.append(f"stationary points: not enumerated (2^{d0} masks); global minimum in closed form")
    else:
        lines.append(f"stationary points: {r['n_stationary_points']} ({sp['minimum']} minima, {sp['saddle']} "
                     f"saddles, {sp['maximum']} maxima, from the Hessian)")
    lines.append("global minimum, eigenvalues of W^T W: " + _fmt_list(r["eigenvalues"]) + f"   (rank {r['rank']})")
    if r["paper_eigenvalues"] is not None:
        lines.append("   with the paper's constants:       " + _fmt_list(r["paper_eigenvalues"]))
    if r["collapsed"]:
        lines.append("collapsed directions: " + ", ".join(
            f"axis {c['axis'] + 1} (variance {c['data_variance']:.3g})" for c in r["collapsed"]))
    else:
        lines.append("collapsed directions: none")
    for which in ("derived", "paper"):
        thr = r["thresholds"][which]
        if thr is None:
            continue
        label = "thresholds" if which == "derived" else "paper's thresholds"
        if not thr:
            lines.append(f"{label} along sigma: none (the rank does not change with sigma)")
            continue
        lines.append(f"{label} along sigma: " + "; ".join(
            f"{t['sigma']:.4g} (rank {t['rank_below']}->{t['rank_above']}, "
            f"axis {int(np.argmax(np.abs(t['direction']))) + 1})" for t in thr))
    if "critical_n" in r:
        def say(cn, op):
            return "never" if cn["collapse_when"] == "never" else f"N {op} {cn['n_crit']:.4g}"

        lines.append("critical dataset size (smallest-variance direction): derived none (no C term, erratum E2); "
                     f"paper main text collapse for {say(r['critical_n']['main'][0], '<=')}; "
                     f"Appendix A Eq. (17) {say(r['critical_n']['appendix'][0], '>')}")
    return r, "\n".join(lines)


def _phase(loss, variances, d1, content_dims, n, kappa, sigmas, thetas):
    from ..theory import format_phase_map, phase_diagram

    a = np.array([1.0, 1.0]) if variances is None else variances
    sig = np.linspace(0.05, 4.0, 40) if sigmas is None else sigmas
    th = np.linspace(0.0, 1.0, 21) if thetas is None else thetas
    pd = phase_diagram(sig, th, loss=loss, variances=a, content_dims=content_dims, d1=d1, n=n, kappa=kappa)
    head = (f"minissl theory phase: {_title(loss)}, variances {_fmt_list(a, 'g')}, content dims "
            f"{pd.settings['content_dims']}" + (", normalized (kappa -> inf)" if pd.settings["normalized_limit"]
                                                else ""))
    return pd.as_dict(), head + "\n" + format_phase_map(pd)


def _plot_phase(payload, path):
    from .._io import save_png

    def draw(plt):
        fig, ax = plt.subplots(figsize=(5, 4))
        sig, th = np.array(payload["sigmas"]), np.array(payload["thetas"])
        im = ax.pcolormesh(sig, th, np.array(payload["phase"]), shading="nearest", cmap="viridis", vmin=0, vmax=4)
        cb = fig.colorbar(im, ax=ax, ticks=range(5))
        cb.ax.set_yticklabels(payload["labels"], fontsize=7)
        ax.set_xlabel("sigma")
        ax.set_ylabel("theta")
        ax.set_title("phase of the global minimum (effective landscape)", fontsize=9)
        return fig

    with library_errors():
        save_png(path, draw, dpi=120)
    click.echo(f"wrote {path}")
