"""One point of a sweep: a command's options checked and computed without printing (issue 15).

A *point* is a command (``simulate`` or ``theory``, i.e. ``minissl theory point``) and a dict
of its options, named as the long options with ``_`` for ``-``. :func:`check` runs exactly what
the command runs before any work: click's parser with its types, ranges and callbacks, then the
command's own cross-option checks (``prepare``). :func:`run_points` computes a list of points and
returns, per point, the JSON report the command's ``--json`` would write, or the error message the
command would print. It is a module-level function of plain arguments, so a Dask worker can run
it: the worker builds everything from the options, and nothing but JSON comes back.
"""

from __future__ import annotations

import click

from .._io import jsonable

__all__ = ["COMMANDS", "check", "settings", "run_points", "batch_group", "option_map", "argv"]

COMMANDS = ("simulate", "theory")


def _command(command):
    """(name as typed, click command, prepare, compute) of a sweep command."""
    if command == "simulate":
        from . import simulate as m

        return "simulate", m.simulate_cmd, m.prepare, m.compute
    if command == "theory":
        from . import theory as m

        return "theory point", m.point_cmd, m.prepare_point, lambda kws: [m.compute_point(kw) for kw in kws]
    raise ValueError(f"command == {command!r}, must be one of {list(COMMANDS)}.")


def option_map(command):
    """Spec key -> click Option of ``command`` (``--scale-b`` -> ``scale_b``)."""
    out = {}
    for p in _command(command)[1].params:
        if isinstance(p, click.Option):
            for flag in p.opts:
                if flag.startswith("--"):
                    out[flag[2:].replace("-", "_")] = p
    return out


def argv(command, options):
    """The command line of one point (without the program and command names)."""
    omap = option_map(command)
    args = []
    for key, value in options.items():
        p = omap[key]
        flag = "--" + key.replace("_", "-")
        if p.is_flag:
            if value is True:
                args.append(flag)
            elif p.secondary_opts:
                args.append(p.secondary_opts[0])
            # a one-sided flag (--track) set to false: nothing to pass
        elif isinstance(value, list):
            args += [flag, ",".join(repr(float(v)) if isinstance(v, float) else str(v) for v in value)]
        else:
            args += [flag, repr(value) if isinstance(value, float) else str(value)]
    return args


def _prepared(command, options, prepare=True):
    """(context, prepared settings) of one point; click errors as the command raises them."""
    name, cmd, prepare_fn, _ = _command(command)
    ctx = cmd.make_context(name, argv(command, options), resilient_parsing=False)
    with ctx:
        return ctx, (prepare_fn(ctx, dict(ctx.params)) if prepare else ctx.params)


def settings(command, options):
    """Every option of ``command`` for this point as its parser reads it (defaults included,
    values converted), JSON-ready: what a point's key is made of."""
    _, params = _prepared(command, options, prepare=False)
    return jsonable(dict(params))


def check(command, options, whole=True):
    """Check options as the command would before any work; ``ValueError`` with its message.

    ``whole=False`` runs the option parser only (types, ranges, choices): for one option on its
    own, whose cross-option rules depend on the others.
    """
    try:
        _prepared(command, options, prepare=whole)
    except click.exceptions.Exit:  # e.g. --help: not an option a sweep may set
        raise ValueError("not an option a sweep can set.") from None
    except click.ClickException as exc:
        raise ValueError(exc.format_message()) from None


def run_points(command, options_list, threads=None):
    """Compute points; one ``("ok", report)`` or ``("error", message)`` per point, in order.

    Parameters
    ----------
    command : str
        ``"simulate"`` or ``"theory"``.
    options_list : list of dict
        The points' options. Several ``simulate`` points are trained together
        (:func:`minissl.cli.simulate.compute`, the same numbers as one at a time); when that
        fails, each point is computed alone so that one bad point does not sink the others.
    threads : int, optional
        Numba threads for this process (a Dask worker sharing a machine with others).

    Returns
    -------
    list of tuple
        The report is JSON-able (what ``--json`` writes; non-finite floats as None).
    """
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    if len(options_list) > 1:
        _, _, _, compute = _command(command)
        try:
            prepared = [_prepared(command, o) for o in options_list]
            with prepared[0][0]:
                return [("ok", jsonable(r[0])) for r in compute([kw for _, kw in prepared])]
        except Exception:  # noqa: BLE001 - computed one at a time below, where the failing point is named
            pass
    return [_one(command, o) for o in options_list]


def _one(command, options):
    _, _, _, compute = _command(command)
    try:
        ctx, kw = _prepared(command, options)
        with ctx:
            return "ok", jsonable(compute([kw])[0][0])
    except click.ClickException as exc:
        return "error", exc.format_message()
    except Exception as exc:  # a bug or an unexpected failure of one point: the sweep goes on
        return "error", f"{type(exc).__name__}: {exc}"



# options whose values differ between runs that can still be trained in one compiled batch
_BATCH_FREE = {"seed", "sigma", "theta", "scale_b", "variances"}


def batch_group(options):
    """Points with equal values may share a job (``simulate`` trains them together; the exact
    grouping by problem size and optimizer settings is :func:`minissl.train.run_batch`'s)."""
    import json

    return json.dumps({k: v for k, v in options.items() if k not in _BATCH_FREE}, sort_keys=True)
