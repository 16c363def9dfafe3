"""``minissl theory``: the closed-form predictions of :mod:`minissl.theory` from the command line."""

from __future__ import annotations

import click
import numpy as np

from . import _validation as V
from ._cli_common import _LOSS_TITLES, _checked, _float_list, _json_path, write_json
from .data import StructuredNoise
from .losses import get_loss
from .theory import analyze, format_phase_map, format_table1, phase_diagram, table1

_TRACE_LOSSES = ("infonce", "weighted", "beta", "scl")


_cb = _checked


def _range(lo_min, hi_max):
    def parse(name, text):
        parts = str(text).split(":")
        try:
            lo, hi, num = float(parts[0]), float(parts[1]), int(parts[2])
        except (ValueError, IndexError):
            raise ValueError(f"{name} == {text!r}, must be LO:HI:NUM, e.g. 0:4:41.") from None
        if len(parts) != 3 or not (lo_min <= lo < hi <= hi_max) or not 2 <= num <= 400:
            raise ValueError(f"{name} == {text!r}, must be LO:HI:NUM with {lo_min} <= LO < HI <= {hi_max} "
                             "and 2 <= NUM <= 400.")
        return np.linspace(lo, hi, num)

    return parse


def _kappa(name, value):
    return V.check_scalar(name, value, lo=0.0, lo_open=True, allow_inf=True)


def _title(loss):
    params = ", ".join(f"{k}={v}" for k, v in loss.params.items() if k != "negatives" or v != "view1")
    extra = [v for v, on in (("normalized", loss.normalize), (f"weight decay {loss.weight_decay:g}",
                                                               loss.weight_decay)) if on]
    return _LOSS_TITLES[loss.name] + (f" [{params}]" if params else "") + (f" + {', '.join(extra)}" if extra else "")


def _fmt_list(vals, spec=".4g"):
    return "  ".join(format(v, spec) for v in vals)


@click.command("theory")
@click.argument("what", type=click.Choice(["point", "table1", "phase"]), default="point", required=False)
@click.option("--loss", "loss_name", type=click.Choice(_TRACE_LOSSES), default="beta", show_default=True,
              help="Loss (those with a trace-form fourth-order landscape).")
@click.option("--alpha", callback=_cb(lambda n, v: V.check_scalar(n, v, lo=0.0)), type=float, default=None,
              help="Weighted InfoNCE alpha (default 0).")
@click.option("--beta", callback=_cb(lambda n, v: V.check_scalar(n, v, lo=0.0, lo_open=True)), type=float,
              default=None, help="beta-InfoNCE beta (default 0.5).")
@click.option("--negatives", type=click.Choice(["view1", "both"]), default="view1", show_default=True)
@click.option("--variances", callback=_cb(_float_list), default=None,
              help="Clean-data variances [default 0.5,1,2,3,4; for 'phase' 1,1 (content, style)].")
@click.option("--out-dim", callback=_cb(lambda n, v: V.check_int(n, v, lo=1)), type=int, default=None,
              help="Output dimension d1 (default d0).")
@click.option("--augmentation", type=click.Choice(["isotropic", "structured"]), default="isotropic",
              show_default=True)
@click.option("--sigma", callback=_cb(lambda n, v: V.check_scalar(n, v, lo=0.0)), type=float, default=1.8,
              show_default=True, help="Augmentation strength.")
@click.option("--theta", callback=_cb(lambda n, v: V.check_scalar(n, v, lo=0.0, hi=1.0)), type=float,
              default=0.5, show_default=True, help="Structured augmentation orientation.")
@click.option("--content-dims", callback=_cb(lambda n, v: V.check_int(n, v, lo=0)), type=int, default=None,
              help="Content coordinates of the structured augmentation (default d0 // 2).")
@click.option("--n", callback=_cb(lambda n, v: V.check_int(n, v, lo=2)), type=int, default=None,
              help="Dataset size for N-dependent constants (default: the N -> infinity limit).")
@click.option("--normalize/--no-normalize", default=False, show_default=True,
              help="Normalized outputs, modelled by the penalty of Eq. (10) (default kappa -> inf, Theorem 2).")
@click.option("--kappa", callback=_cb(_kappa), type=float, default=None,
              help="Finite normalization penalty (Props. 3-4) instead of the limit; 'inf' is the limit.")
@click.option("--c", "c_norm", callback=_cb(lambda n, v: V.check_scalar(n, v, lo=0.0, lo_open=True)),
              type=float, default=1.0, show_default=True, help="Target squared norm under --normalize.")
@click.option("--bias/--no-bias", default=False, show_default=True, help="With a bias (Theorem 3).")
@click.option("--weight-decay", callback=_cb(lambda n, v: V.check_scalar(n, v, lo=0.0)), type=float,
              default=0.0, show_default=True)
@click.option("--sigmas", callback=_cb(_range(0.0, 1e3)), default=None,
              help="'phase': sigma grid LO:HI:NUM [default 0.05:4:40].")
@click.option("--thetas", callback=_cb(_range(0.0, 1.0)), default=None,
              help="'phase': theta grid LO:HI:NUM [default 0:1:21].")
@click.option("--plot", "plot_path", default=None, help="'phase': also draw the map to this PNG (needs matplotlib).")
@click.option("--json", "json_path", default=None, help="Also write the result as JSON (atomically).")
def theory_cmd(what, loss_name, alpha, beta, negatives, variances, out_dim, augmentation, sigma, theta,
               content_dims, n, normalize, kappa, c_norm, bias, weight_decay, sigmas, thetas, plot_path,
               json_path):
    """Closed-form predictions of the theory (Theorems 1-3, Props. 2-4), no training.

    \b
    minissl theory [point]  stationary points, global minimum, collapsed directions and
                            collapse thresholds for one setting (derived and paper constants)
    minissl theory table1   Table 1 of the paper with the derived Hessians
    minissl theory phase    Fig. 3 (top): phase diagram over (sigma, theta)
    """
    ctx = click.get_current_context()
    allowed = {
        "table1": {"json_path"},
        "phase": {"loss_name", "alpha", "beta", "negatives", "variances", "out_dim", "content_dims", "n",
                  "normalize", "kappa", "c_norm", "weight_decay", "sigmas", "thetas", "plot_path", "json_path"},
        "point": {"loss_name", "alpha", "beta", "negatives", "variances", "out_dim", "augmentation", "sigma",
                  "theta", "content_dims", "n", "normalize", "kappa", "c_norm", "bias", "weight_decay",
                  "json_path"},
    }[what]
    for p in ctx.command.params:
        src = ctx.get_parameter_source(p.name)
        if p.name != "what" and p.name not in allowed and src is not None and src.name == "COMMANDLINE":
            opt = p.opts[0]
            raise click.BadParameter(f"{opt} has no effect on 'minissl theory {what}'.", param_hint=f"'{opt}'")
    if json_path is not None:
        _json_path(ctx, None, json_path)
    if what == "point" and augmentation == "isotropic" and ctx.get_parameter_source("theta").name == "COMMANDLINE":
        raise click.BadParameter("--theta has no effect with --augmentation isotropic.", param_hint="'--theta'")
    for name_, opt in (("kappa", "--kappa"), ("c_norm", "--c")):
        if not normalize and ctx.get_parameter_source(name_).name == "COMMANDLINE":
            raise click.BadParameter(f"{opt} applies with --normalize.", param_hint=f"'{opt}'")
    if what == "point" and augmentation == "isotropic" and content_dims is not None:
        raise click.BadParameter("--content-dims has no effect with --augmentation isotropic.",
                                 param_hint="'--content-dims'")
    if bias and not normalize:
        raise click.BadParameter("--bias changes nothing without --normalize (translation invariance); "
                                 "add --normalize.", param_hint="'--bias'")

    if what == "table1":
        payload = {"table1": table1()}
        click.echo(format_table1())
    else:
        params = {"weight_decay": weight_decay, "normalize": normalize, "c": c_norm}
        for opt, value, owners in (("alpha", alpha, ("weighted", "beta")), ("beta", beta, ("beta",))):
            if value is not None:
                if loss_name not in owners:
                    raise click.BadParameter(f"--{opt} applies to --loss {'/'.join(owners)}, not {loss_name!r}.",
                                             param_hint=f"'--{opt}'")
                params[opt] = value
        if loss_name != "scl" or ctx.get_parameter_source("negatives").name == "COMMANDLINE":
            params["negatives"] = negatives
        try:
            loss = get_loss(loss_name, **params)
            with np.errstate(over="raise", invalid="raise"):
                payload, text = _dispatch(what, loss, variances, out_dim, augmentation, sigma, theta, content_dims,
                                          n, kappa, bias, sigmas, thetas)
        except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
            raise click.UsageError(str(exc)) from None
        except ArithmeticError as exc:  # overflow of sigma^2, c, variances
            raise click.UsageError(f"the values given overflow float64 ({exc}); use smaller --sigma, --c or "
                                   "--variances.") from None
        click.echo(text)
        if what == "phase" and plot_path:
            _plot_phase(payload, plot_path)
    if json_path:
        write_json(json_path, payload)


def _dispatch(what, loss, variances, out_dim, augmentation, sigma, theta, content_dims, n, kappa, bias, sigmas,
              thetas):
    if what == "phase":
        return _phase(loss, variances, out_dim, content_dims, n, kappa, sigmas, thetas)
    return _point(loss, variances, out_dim, augmentation, sigma, theta, content_dims, n, kappa, bias)


def _point(loss, variances, d1, augmentation, sigma, theta, content_dims, n, kappa, bias):
    a = np.array([0.5, 1.0, 2.0, 3.0, 4.0]) if variances is None else variances
    d0 = a.size
    A0 = np.diag(a)
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
    if r["normalized_limit"] or r["kappa"]:
        how = "kappa -> inf (Theorem 2)" if r["normalized_limit"] else f"kappa = {r['kappa']:g} (Props. 3-4)"
        lines.append(f"normalization: penalty of Eq. (10), {how}, c = {loss.c:g}" + (", with bias (Theorem 3)" if bias else ""))
    else:
        lines.append(f"m = {r['m']} positive directions, d* = {r['d_star']}: every local minimum has rank "
                     f"min(m, d*) = {min(r['m'], r['d_star'])} (Prop. 2)")
    sp = r["stationary_points"]
    if sp is None:
        lines.append(f"stationary points: not enumerated (2^{d0} masks); global minimum in closed form")
    else:
        lines.append(f"stationary points: {r['n_stationary_points']} ({sp['minimum']} minima, {sp['saddle']} saddles, "
                     f"{sp['maximum']} maxima, from the Hessian)")
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
            f"{t['sigma']:.4g} (rank {t['rank_below']}->{t['rank_above']}, axis {int(np.argmax(np.abs(t['direction']))) + 1})"
            for t in thr))
    if "critical_n" in r:
        def say(cn, op):
            return "never" if cn["collapse_when"] == "never" else f"N {op} {cn['n_crit']:.4g}"

        lines.append("critical dataset size (smallest-variance direction): derived none (no C term, erratum E2); "
                     f"paper main text collapse for {say(r['critical_n']['main'][0], '<=')}; "
                     f"Appendix A Eq. (17) {say(r['critical_n']['appendix'][0], '>')}")
    return r, "\n".join(lines)


def _phase(loss, variances, d1, content_dims, n, kappa, sigmas, thetas):
    a = np.array([1.0, 1.0]) if variances is None else variances
    sig = np.linspace(0.05, 4.0, 40) if sigmas is None else sigmas
    th = np.linspace(0.0, 1.0, 21) if thetas is None else thetas
    pd = phase_diagram(sig, th, loss=loss, variances=a, content_dims=content_dims, d1=d1, n=n, kappa=kappa)
    head = (f"minissl theory phase: {_title(loss)}, variances {_fmt_list(a, 'g')}, content dims "
            f"{pd.settings['content_dims']}" + (", normalized (kappa -> inf)" if pd.settings["normalized_limit"] else ""))
    return pd.as_dict(), head + "\n" + format_phase_map(pd)


def _plot_phase(payload, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise click.ClickException("--plot needs matplotlib: pip install 'minissl[plot]'.") from None
    from io import BytesIO

    from ._io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5, 4))
    sig, th = np.array(payload["sigmas"]), np.array(payload["thetas"])
    im = ax.pcolormesh(sig, th, np.array(payload["phase"]), shading="nearest", cmap="viridis", vmin=0, vmax=4)
    cb = fig.colorbar(im, ax=ax, ticks=range(5))
    cb.ax.set_yticklabels(payload["labels"], fontsize=7)
    ax.set_xlabel("sigma")
    ax.set_ylabel("theta")
    ax.set_title("phase of the global minimum (effective landscape)", fontsize=9)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        raise click.ClickException(f"could not write {path!r}: {exc}") from None
    click.echo(f"wrote {path}")
