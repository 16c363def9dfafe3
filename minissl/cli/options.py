"""Options shared by the ``minissl`` commands: one definition, one bound, one help text each.

In the style of rasterio's ``rio/options.py``: every option that more than one command
takes is defined here once, with its bound, its help text and one way of showing its
default (click's ``[default: ...]``). The callbacks turn the library's validation errors
into ``click.BadParameter`` (exit code 2) whose message names the option as the user
typed it, e.g. ``--sigma == -1.0, must be >= 0.``.

Vocabulary, the same in every command:

* ``--out-dim`` is the output dimension d1 (``--d1`` is a hidden alias);
* ``--json FILE`` writes one result as JSON; ``--out DIR`` is a folder for several files;
* ``--seed`` is a seed value; ``--n-seeds`` a number of independent seeds (``--seeds`` is a
  hidden alias);
* ``--engine`` picks where the numbers are computed: ``numba`` (compiled, CPU), ``numpy``
  (the readable reference) or, for the MLP, ``cuda`` (``--device gpu`` is a hidden alias).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile

import click
import numpy as np

from .. import _validation as V
from ..losses.registry import REGISTRY

# the largest augmentation strength and clean-data variance the commands accept: their
# squares and fourth powers (the landscape is quartic in W Sigma W^T) stay finite in float64
SIGMA_MAX = 1e6
VARIANCE_MAX = 1e12
ENGINES = ("numba", "numpy")


def opt_name(param):
    """The option as the user types it (``--out-dim``), or the argument's name."""
    return param.opts[0] if getattr(param, "opts", None) else param.name


def checked(fn):
    """A click callback from a check ``fn(name, value)``; errors name the option."""

    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            return fn(opt_name(param), value)
        except (ValueError, TypeError) as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def real(lo=None, lo_open=False, hi=None, hi_open=False, allow_inf=False):
    """Callback: a finite real in the given interval."""
    return checked(lambda name, v: V.check_scalar(name, v, lo=lo, lo_open=lo_open, hi=hi, hi_open=hi_open,
                                                  allow_inf=allow_inf))


def integer(lo=None, hi=None):
    """Callback: an integer in the given interval."""
    return checked(lambda name, v: V.check_int(name, v, lo=lo, hi=hi))


def float_list(name, text, lo=0.0, hi=VARIANCE_MAX, what="variance"):
    """Comma-separated numbers in ``[lo, hi]``; an empty entry (``1,,2``) is an error."""
    parts = [t.strip() for t in str(text).split(",")]
    if not any(parts):
        raise ValueError(f"{name} == {text!r}, must list at least one {what}, e.g. 0.5,1,2.")
    if not all(parts):
        raise ValueError(f"{name} == {text!r} has an empty entry, must be comma-separated numbers, e.g. 0.5,1,2.")
    try:
        vals = [float(t) for t in parts]
    except ValueError:
        raise ValueError(f"{name} == {text!r}, must be comma-separated numbers, e.g. 0.5,1,2.") from None
    for t, v in zip(parts, vals):
        if not math.isfinite(v):
            raise ValueError(f"{name} contains {t!r}, every {what} must be a finite number.")
        if v < lo:
            raise ValueError(f"{name} contains {v!r}, every {what} must be >= {lo:g}.")
        if v > hi:
            raise ValueError(f"{name} contains {v!r}, every {what} must be <= {hi:g}.")
    return np.asarray(vals, dtype=np.float64)


def int_list(name, text, count=None, lo=None):
    """Comma-separated integers (exactly ``count`` of them when given), each ``>= lo``."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        vals = tuple(int(t) for t in parts)
    except ValueError:
        vals = None
    if vals is None or (count is not None and len(vals) != count) or (lo is not None and min(vals) < lo):
        n = f"{count} " if count is not None else ""
        bound = f" >= {lo}" if lo is not None else ""
        raise ValueError(f"{name} == {text!r}, must be {n}comma-separated integers{bound}, e.g. 16,16.")
    return vals


def _probe_folder(name, folder):
    """Raise ValueError naming the option unless a file can be created in ``folder``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".minissl-probe-")
    except OSError as exc:
        raise ValueError(f"{name}: cannot write in folder {folder!r} ({exc.strerror or exc}).") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(name, path):
    """An output file path whose folder exists and is writable (checked before any work)."""
    path = str(path)
    if os.path.isdir(path):
        raise ValueError(f"{name} == {path!r} is a folder, must be a file path.")
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise ValueError(f"{name} == {path!r}: folder {folder!r} does not exist.")
    _probe_folder(name, folder)
    return path


def check_output_dir(name, path):
    """An output folder: created if missing (with its parents) and probed for writing."""
    path = str(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name} == {path!r} exists and is not a folder.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{name} == {path!r}: cannot create the folder ({exc.strerror or exc}).") from None
    _probe_folder(name, path)
    return path


def needs_matplotlib(name):
    """Fail before any work when an option that draws a PNG is given without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError(f"{name} needs matplotlib: pip install 'minissl[plot]'.") from None


def _plot_file(name, path):
    path = check_output_file(name, path)
    needs_matplotlib(name)
    return path


# ----------------------------------------------------------------------------- the shared options

def loss_option(names, default, help, extra=()):
    """``--loss``: a name from the loss registry (``names``), plus ``extra`` choices."""
    return click.option("--loss", "loss", type=click.Choice(tuple(names) + tuple(extra)), default=default,
                        show_default=True, help=help)


def loss_param_options(names):
    """One option per parameter (``Param.cli``) of the losses ``names``, from the registry.

    Each option's default is None (the loss's own default applies); its help text names
    the losses it applies to and their defaults. Boolean parameters become ``--x/--no-x``
    flags (``--standardize/--raw`` for Barlow Twins).
    """
    params = {}
    for n in names:
        for p in REGISTRY[n].params:
            if p.cli:
                params.setdefault(p.name, (p, []))[1].append(n)

    def decorate(f):
        for pname, (p, owners) in reversed(list(params.items())):
            defaults = {o: REGISTRY[o].param(pname).default for o in owners}
            shown = (_show(p.default) if len({repr(v) for v in defaults.values()}) == 1
                     else ", ".join(f"{o} {_show(v)}" for o, v in defaults.items()))
            help_ = f"{p.help} Applies to --loss {'/'.join(owners)} [default: {shown}]."
            flag = "--" + pname.replace("_", "-")
            if isinstance(p.default, bool):
                decl = f"{flag}/--raw" if pname == "standardize" else (flag if not p.default else f"{flag}/--no-{pname}")
                if decl == flag:
                    f = click.option(flag, pname, is_flag=True, default=None, help=help_)(f)
                else:
                    f = click.option(decl, pname, default=None, help=help_)(f)
            elif isinstance(p.default, str):
                choices = ("view1", "both") if pname == "negatives" else None
                f = click.option(flag, pname, type=click.Choice(choices) if choices else str, default=None,
                                 help=help_)(f)
            else:
                f = click.option(flag, pname, type=float, default=None,
                                 callback=checked(lambda name, v, p=p: _param_check(p, name, v)), help=help_)(f)
        return f

    return decorate


def _show(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _param_check(p, name, value):
    try:
        return p.check(value)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        raise type(exc)(name + msg[len(p.name):] if msg.startswith(p.name) else msg) from None


def loss_params(loss, given):
    """The loss parameters given on the command line that apply to ``loss``.

    Raises ``click.BadParameter`` naming the option when one applies to other losses only.
    """
    spec = REGISTRY[loss]
    params = {p.name: p for p in click.get_current_context().command.params}
    out = {}
    for pname, value in given.items():
        if value is None:
            continue
        if pname not in spec.param_names:
            owners = [n for n, s in REGISTRY.items() if pname in s.param_names]
            flag = display(params[pname])
            raise click.BadParameter(f"{flag} has no effect with --loss {loss}; it applies to --loss "
                                     f"{'/'.join(owners)}.", param_hint=f"'{flag}'")
        out[pname] = value
    return out


def display(param):
    """The option as shown in messages: ``--standardize/--raw`` for a two-sided flag."""
    sec = getattr(param, "secondary_opts", None)
    return f"{param.opts[0]}/{sec[0]}" if sec else opt_name(param)


def sigma_option(default, help="Augmentation strength sigma (noise standard deviation)."):
    return click.option("--sigma", type=float, default=default, show_default=default is not None,
                        callback=real(lo=0.0, hi=SIGMA_MAX), help=f"{help} Between 0 and {SIGMA_MAX:g}.")


def variances_option(default=None, help="Comma-separated variances of the clean data.", show=None):
    return click.option("--variances", default=default, show_default=show if show else default is not None,
                        callback=checked(float_list), help=f"{help} Each between 0 and {VARIANCE_MAX:g}.")


def n_option(default, help="Number of clean training samples N."):
    return click.option("--n", type=int, default=default, show_default=default is not None,
                        callback=integer(lo=2), help=f"{help} At least 2.")


def out_dim_option(help="Output dimension d1 [default: d0]."):
    def decorate(f):
        f = click.option("--d1", "d1_alias", type=int, default=None, hidden=True, callback=integer(lo=1))(f)
        return click.option("--out-dim", "d1", type=int, default=None, callback=integer(lo=1), help=help)(f)

    return decorate


def seed_option():
    return click.option("--seed", type=int, default=0, show_default=True, callback=integer(lo=0),
                        help="Seed of the data, initialisation and noise (same seed, same numbers).")


def n_seeds_option(help):
    def decorate(f):
        f = click.option("--seeds", "n_seeds_alias", type=int, default=None, hidden=True, callback=integer(lo=1))(f)
        return click.option("--n-seeds", "n_seeds", type=int, default=None, callback=integer(lo=1), help=help)(f)

    return decorate


def engine_option(choices=ENGINES, help="numba: compiled kernels and loop; numpy: the readable reference."):
    return click.option("--engine", type=click.Choice(choices), default="numba", show_default=True, help=help)


def steps_option(default, show=None):
    return click.option("--steps", type=int, default=default, show_default=show if show else default is not None,
                        callback=integer(lo=1), help="Training steps.")


def lr_option(default, show=None, help="Learning rate."):
    return click.option("--lr", type=float, default=default, show_default=show if show else default is not None,
                        callback=real(lo=0.0, lo_open=True), help=help)


def json_option(help="Also write the result as JSON to this file (atomically; its folder must exist)."):
    return click.option("--json", "json_path", default=None, metavar="FILE",
                        callback=checked(check_output_file), help=help)


def out_dir_option(default, help):
    return click.option("--out", "out", default=default, show_default=default is not None, metavar="DIR",
                        callback=checked(check_output_dir), help=help)


def plot_option(flag, help):
    dest = flag.lstrip("-").replace("-", "_")
    return click.option(flag, dest, default=None, metavar="PNG", callback=checked(_plot_file),
                        help=f"{help} (needs matplotlib: pip install 'minissl[plot]').")


def quiet_option(help="No progress lines."):
    return click.option("--quiet", is_flag=True, help=help)


def merge_alias(kwargs, name, alias, alias_flag, flag):
    """Fold a hidden alias option into its canonical one (error if both are given)."""
    value = kwargs.pop(alias)
    if value is not None:
        if kwargs[name] is not None:
            raise click.BadParameter(f"{alias_flag} is an alias of {flag}; give only {flag}.",
                                     param_hint=f"'{alias_flag}'")
        kwargs[name] = value
    return kwargs


def given(ctx, name):
    """Whether option ``name`` was typed on the command line."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name == "COMMANDLINE"


def _scheduler(name, value):
    if value != "local" and "://" not in value:
        raise ValueError(f"{name} == {value!r}, must be 'local' (a LocalCluster started here) or a Dask "
                         "scheduler address such as tcp://10.0.0.5:8786.")
    return value


def scheduler_options(f):
    """``--scheduler ADDRESS`` and ``--workers K``: where the points of a sweep are computed."""
    f = click.option("--workers", type=int, default=None, callback=integer(lo=1, hi=1024),
                     help="Numba threads (in this process) or worker processes (--scheduler local) "
                          "[default: the cores; local: 2].")(f)
    return click.option("--scheduler", default=None, metavar="ADDRESS", callback=checked(_scheduler),
                        help="Run the points on Dask: 'local' starts a LocalCluster of worker processes here; "
                             "tcp://HOST:PORT uses a running scheduler (pip install 'minissl[dist]') "
                             "[default: in this process].")(f)


@contextlib.contextmanager
def executor_from(scheduler, workers):
    """The sweep executor of ``--scheduler`` / ``--workers`` (closed on exit); errors name the option."""
    from ..sweep import make_executor

    if workers is not None and scheduler not in (None, "local"):
        raise click.BadParameter("--workers applies to this process and to --scheduler local; a running "
                                 "cluster has its own workers.", param_hint="'--workers'")
    try:
        executor = make_executor(scheduler, workers)
    except (ValueError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="'--scheduler'") from None
    try:
        yield executor
    finally:
        executor.close()
