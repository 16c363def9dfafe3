"""Shared machinery of the figure reproductions: settings, the points' run cache, outputs.

A figure is a list of *points* (one training run each), run through a
:class:`~minissl.experiments.runs.RunCache` (:func:`point_cache`): each finished point is
written atomically to ``OUT/points/<protocol>[-quick]/<key>.json`` together with a digest of
its settings, so an interrupted run resumes where it stopped and a changed setting is
recomputed, never silently reused.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from dataclasses import dataclass, field

import numpy as np

from .. import _validation as V
from .._io import atomic_write_text, jsonable, save_png
from ..losses import get_loss
from ..losses.registry import LOSS_NAMES, PAPER_LOSS, option_params, spec
from ..nonlinear.mlp import ACTIVATIONS
from ..regimes import REGIMES
from .runs import RunCache
from .spectra import spectrum_record

__all__ = ["load_settings", "settings_path", "settings_error", "simulate_kwargs", "settings_loss", "settings_params",
           "point_cache", "write_csv", "write_report", "save_figure", "PROTOCOLS", "FIGURE_NEEDS"]

PROTOCOLS = ("converged", "paper")
# the [run] keys that are simulate() arguments: the loss's own parameters are those simulate()
# takes by name (minissl.losses.registry.option_params)
_SIMULATE_KEYS = (("loss", "n", "steps", "lr", "optimizer", "lr_schedule", "noise", "replicates", "init_scale", "init")
                  + option_params() + ("normalize", "control_variate"))
_PAPER_PROTOCOL = {"optimizer": "adam", "lr": 6e-4, "lr_schedule": "constant", "steps": 5000,
                   "noise": "fresh", "replicates": 1, "control_variate": False}


def settings_path(figure):
    """``data/experiments/<figure>.toml`` of the source tree (editable install) or of ``$MINISSL_DATA``."""
    root = Path(os.environ.get("MINISSL_DATA", Path(__file__).resolve().parents[2] / "data"))
    return root / "experiments" / f"{figure}.toml"


def _toml_load(path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _real(lo=None, lo_open=False, hi=None):
    return lambda name, v: V.check_scalar(name, v, lo=lo, lo_open=lo_open, hi=hi)


def _int(lo=None):
    return lambda name, v: V.check_int(name, v, lo=lo)


def _choice(choices):
    return lambda name, v: V.check_choice(name, v, choices)


def _bool(name, v):
    V.check_bool(name, v)


def _list(item, count=None):
    """Check: a non-empty list (of exactly ``count`` entries when given), each entry checked by ``item``."""
    def check(name, v):
        if not isinstance(v, list):
            raise TypeError(f"{name} == {v!r}, must be a list, e.g. [0.5, 1.0].")
        if not v or (count is not None and len(v) != count):
            raise ValueError(f"{name} == {v!r}, must list " + (f"{count} values." if count else "at least one value."))
        for i, x in enumerate(v):
            item(f"{name}[{i}]", x)

    return check


def _grid(lo=None, hi=None):
    """Check: ``[LO, HI, NUM]`` of a ``numpy.linspace`` grid, ``lo <= LO < HI <= hi``, ``NUM >= 2``."""
    def check(name, v):
        if not isinstance(v, list) or len(v) != 3:
            raise ValueError(f"{name} == {v!r}, must be [LO, HI, NUM], e.g. [0.0, 1.0, 21].")
        a, b = (V.check_scalar(f"{name}[{i}]", v[i], lo=lo, hi=hi) for i in (0, 1))
        V.check_int(f"{name}[2]", v[2], lo=2)
        if not a < b:
            raise ValueError(f"{name} == {v!r}, must have LO < HI.")

    return check


def _variances(name, v):
    """One variance (with ``dim``) or a non-empty list of them, each >= 0."""
    if isinstance(v, list):
        _list(_real(lo=0.0))(name, v)
    else:
        V.check_scalar(name, v, lo=0.0)


# what every settings key may hold; the loss's own parameters (e.g. beta) are checked by its
# registry entry (minissl.losses.registry), once the loss is known
_RUN_CHECKS = {
    "loss": _choice(LOSS_NAMES), "n": _int(lo=2), "steps": _int(lo=1), "lr": _real(lo=0.0, lo_open=True),
    "optimizer": _choice(("adam", "sgd")), "lr_schedule": _choice(("constant", "cosine")),
    "noise": _choice(("fresh", "fixed")), "replicates": _int(lo=1), "init_scale": _real(lo=0.0, lo_open=True),
    "init": _choice(("gaussian", "orthogonal")), "normalize": _bool, "control_variate": _bool, "dim": _int(lo=1),
    "variances": _variances, "sigma": _real(lo=0.0), "max_steps": _int(lo=1), "max_replicates": _int(lo=1),
    "widths": _list(_int(lo=2), count=2),
}
_RUN_KEYS = set(_RUN_CHECKS) | set(option_params())
_FIGURE_CHECKS = {
    "seeds": _int(lo=1), "sigmas": _list(_real(lo=0.0)), "ns": _list(_int(lo=2)), "fit_from": _real(lo=0.0),
    "grid": _int(lo=3), "draws": _int(lo=1), "phase_sigmas": _grid(lo=0.0), "phase_thetas": _grid(lo=0.0, hi=1.0),
    "check_sigmas": _list(_real(lo=0.0)), "check_thetas": _list(_real(lo=0.0, hi=1.0)),
    "ridge_sigmas": _list(_real(lo=0.0)), "ridge": _real(lo=0.0, lo_open=True),
    "activations": _list(_choice(("linear",) + ACTIVATIONS)), "a_range": _grid(lo=0.0),
    "r_max": _real(lo=0.0, lo_open=True), "lrs": _list(_real(lo=0.0, lo_open=True)),
    "batch_sizes": _list(_int(lo=2)), "follow_variance": _real(lo=0.0, lo_open=True), "record_every": _int(lo=1),
}
_THREE_SIGMAS = _list(_real(lo=0.0), count=len(REGIMES))  # weak, intermediate, strong augmentation


@dataclass(frozen=True)
class _Needs:
    """What a figure reads: required and optional ``[figure]`` keys, required ``[run]`` keys, and
    checks stricter than the shared ones."""

    figure: tuple
    run: tuple
    optional: tuple = ()
    checks: dict = field(default_factory=dict)


FIGURE_NEEDS = {
    "fig5-infonce": _Needs(("sigmas",), ("variances",), optional=("fit_from",)),
    "fig5-weighted": _Needs(("ns",), ("variances", "sigma")),
    "fig5-beta": _Needs(("sigmas",), ("variances",)),
    "fig6-normalized": _Needs(("sigmas",), ("variances",)),
    "fig1": _Needs(("sigmas", "grid", "draws"), ("variances", "n"),
                   checks={"sigmas": _THREE_SIGMAS, "variances": _list(_real(lo=0.0), count=2)}),
    "fig3": _Needs(("phase_sigmas", "phase_thetas", "check_sigmas", "check_thetas", "ridge_sigmas"), ("variances",),
                   optional=("ridge",), checks={"variances": _list(_real(lo=0.0), count=2)}),
    "slowing": _Needs(("sigmas", "follow_variance", "record_every"), ("variances", "n", "steps", "lr", "init_scale")),
    "saddles": _Needs(("lrs", "batch_sizes"), ("variances", "sigma", "n", "steps")),
    "fig7": _Needs(("activations", "sigmas", "a_range", "r_max", "grid", "draws"),
                   ("variances", "n", "widths", "steps", "lr"),
                   checks={"sigmas": _THREE_SIGMAS, "variances": _list(_real(lo=0.0))}),
}


def settings_error(cfg, where, exc):
    """``exc`` (a ValueError or TypeError naming a key) as the same error naming the settings file
    and the section the key came from: ``settings file '...': [quick] steps == 'x', must be an integer.``

    ``where`` is ``(part, key)`` with ``part`` ``"figure"`` or ``"run"`` (:func:`load_settings`'s
    parts), or a section name such as ``"run"``.
    """
    section = cfg["origin"].get(where, where[0]) if isinstance(where, tuple) else where
    return type(exc)(f"settings file {cfg['path']!r}: [{section}] {exc}")


def _section(path, name, value):
    if not isinstance(value, dict):
        raise TypeError(f"settings file {str(path)!r}: {name} == {value!r}, must be a table [{name}].")
    return value


def load_settings(figure, quick=False, protocol="converged"):
    """Settings of one figure, checked: ``[figure]`` (the sweep), ``[run]`` (simulate arguments),
    then ``[protocol.<name>]`` and, with ``quick``, ``[quick]`` overriding both.

    The paper protocol's optimizer settings (Adam, lr 6e-4, constant, 5000 full-batch
    steps, fresh noise) are fixed here and cannot be overridden except by ``[quick]``.

    Returns
    -------
    dict
        ``figure`` and ``run`` (the merged settings, values as the file gives them), ``path``
        (of the file) and ``origin`` (``{(part, key): section}``: where each value came from, for
        :func:`settings_error`).

    Raises
    ------
    ValueError, TypeError
        Naming the file, the section and the key: an unknown section or key, a value of the wrong
        type or out of range (e.g. ``sigmas = []``), a required key missing, a loss parameter the
        loss does not take. For a figure of :data:`FIGURE_NEEDS` the ``[figure]`` keys too (other
        figures check their own, e.g. :func:`minissl.experiments.imbalance.load_settings`).
    FileNotFoundError
        No settings file.
    """
    path = settings_path(figure)
    if not path.is_file():
        raise FileNotFoundError(f"settings file {str(path)!r} not found: minissl reproduce reads "
                                "data/experiments/*.toml from the source tree (pip install -e .) or "
                                "from $MINISSL_DATA/experiments.")
    try:
        raw = _toml_load(path)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise ValueError(f"settings file {str(path)!r}: {exc}") from None
    cfg = {"path": str(path), "origin": {}}
    extra = sorted(set(raw) - {"figure", "run", "protocol", "quick"})
    if extra:
        raise ValueError(f"settings file {str(path)!r}: unknown section or key(s) {extra} outside the sections; "
                         "allowed: [figure], [run], [protocol.<name>], [quick].")
    needs = FIGURE_NEEDS.get(figure)
    raw_fig = _section(path, "figure", raw.get("figure", {}))
    fig_keys = set(raw_fig) if needs is None else {"seeds", *needs.figure, *needs.optional}
    sections = [("figure", raw_fig), ("run", _section(path, "run", raw.get("run", {})))]
    for name, proto in _section(path, "protocol", raw.get("protocol", {})).items():
        if name not in PROTOCOLS:
            raise ValueError(f"settings file {str(path)!r}: [protocol.{name}] is not a protocol; allowed: "
                             f"{', '.join(f'[protocol.{p}]' for p in PROTOCOLS)}.")
        sections.append((f"protocol.{name}", _section(path, f"protocol.{name}", proto)))
    sections.append(("quick", _section(path, "quick", raw.get("quick", {}))))
    checks = {**_RUN_CHECKS, **_FIGURE_CHECKS, **(needs.checks if needs else {})}
    for name, values in sections:
        unknown = []
        for key, value in values.items():
            if name == "figure" or (name == "quick" and key in fig_keys):
                if needs is None:
                    continue  # a figure not in FIGURE_NEEDS checks its own [figure] keys
                known = key in fig_keys
            else:
                known = key in _RUN_KEYS
            if not known:
                unknown.append(key)
            elif key in checks:  # the loss's own parameters: in _check_merged
                try:
                    checks[key](key, value)
                except (ValueError, TypeError) as exc:
                    raise settings_error(cfg, name, exc) from None
        if unknown:
            allowed = (fig_keys if name in ("figure", "quick") else set()) | (_RUN_KEYS if name != "figure" else set())
            raise ValueError(f"settings file {str(path)!r}: [{name}] has unknown key(s) {sorted(unknown)}; allowed: "
                             f"{', '.join(sorted(allowed))}.")

    def merge(part, into, values, section):
        into.update(values)
        cfg["origin"].update({(part, k): section for k in values})

    fig, run = {}, {}
    merge("figure", fig, raw_fig, "figure")
    merge("run", run, sections[1][1], "run")
    merge("run", run, raw.get("protocol", {}).get(protocol, {}), f"protocol.{protocol}")
    if protocol == "paper":
        merge("run", run, _PAPER_PROTOCOL, "protocol.paper")
    if quick:
        q = raw.get("quick", {})
        merge("figure", fig, {k: v for k, v in q.items() if k in fig_keys}, "quick")
        merge("run", run, {k: v for k, v in q.items() if k not in fig_keys}, "quick")
    cfg.update(figure=fig, run=run)
    _check_merged(cfg, needs)
    return cfg


def _check_merged(cfg, needs):
    """The checks that need the merged settings: required keys, the loss's parameters, variances vs dim."""
    fig, run, path = cfg["figure"], cfg["run"], cfg["path"]
    for part, values, required in (("figure", fig, needs.figure if needs else ()),
                                   ("run", run, needs.run if needs else ())):
        missing = [k for k in required if k not in values]
        if missing:
            raise ValueError(f"settings file {path!r}: [{part}] lacks {missing}.")
    name = run.get("loss", PAPER_LOSS)
    own = spec(name).param_names
    for key in option_params():
        if key not in run:
            continue
        if key not in own:
            raise settings_error(cfg, ("run", key), ValueError(
                f"{key} == {run[key]!r} is not a parameter of loss {name!r} (its parameters: "
                f"{', '.join(own) or 'none'})."))
        try:
            spec(name).param(key).check(run[key])
        except (ValueError, TypeError) as exc:
            raise settings_error(cfg, ("run", key), exc) from None
    v, dim = run.get("variances"), run.get("dim")
    if v is not None and not isinstance(v, list) and dim is None:
        raise settings_error(cfg, ("run", "variances"), ValueError(
            f"variances == {v!r} is one number for every direction: give dim (their number) too."))
    if isinstance(v, list) and dim is not None and len(v) != dim:
        raise settings_error(cfg, ("run", "dim"), ValueError(
            f"dim == {dim!r} but variances lists {len(v)} values; give as many variances as dim, or leave dim out."))


def simulate_kwargs(run, engine):
    """The ``simulate()`` keyword arguments shared by every point of a figure, from its ``[run]`` settings.

    Parameters
    ----------
    run : dict
        The ``run`` settings of :func:`load_settings`.
    engine : {"numba", "numpy"}

    Returns
    -------
    dict
        The simulate arguments among ``run``'s keys, ``engine``, and ``variances`` as a list of
        ``dim`` floats (a scalar ``variances`` is repeated ``dim`` times).
    """
    kw = {k: run[k] for k in _SIMULATE_KEYS if k in run}
    kw["engine"] = engine
    dim = int(run.get("dim", 0))
    if "variances" in run:
        v = run["variances"]
        kw["variances"] = [float(v)] * dim if np.isscalar(v) else [float(x) for x in v]
    return kw


def settings_loss(run, **common):
    """The loss a figure's ``[run]`` settings describe.

    Parameters
    ----------
    run : dict
        The ``run`` settings of :func:`load_settings`: ``loss`` (default
        :data:`~minissl.losses.registry.PAPER_LOSS`, the paper's beta-InfoNCE) and any of that
        loss's own parameters (e.g. ``beta``); other keys are not the loss's.
    **common
        Further :func:`minissl.get_loss` arguments, e.g. ``engine``.

    Returns
    -------
    minissl.losses.Loss
    """
    name = run.get("loss", PAPER_LOSS)
    return get_loss(name, **{k: run[k] for k in spec(name).param_names if k in run}, **common)


def settings_params(loss, run):
    """``{name: value}`` of the parameters of ``loss`` that the ``[run]`` settings set, as the loss
    holds them (validated floats): what a figure's report records, e.g. beta-InfoNCE's ``beta``."""
    return {k: v for k, v in loss.params.items() if k in run}


def point_cache(folder, run, progress, protocol, evaluate=spectrum_record, context=None, executor=None):
    """The :class:`~minissl.experiments.runs.RunCache` of a figure's points.

    Parameters
    ----------
    folder : path
        Where the points are stored.
    run : dict
        The ``run`` settings: ``max_steps`` and ``max_replicates`` cap the retries of the
        ``converged`` protocol (the ``paper`` protocol never retries).
    progress : bool
    protocol : {"converged", "paper"}
    evaluate : callable
        ``evaluate(result, kwargs) -> dict``; default :func:`~minissl.experiments.spectra.spectrum_record`.
        Its module and name are part of every point's digest.
    context : dict, optional
        Further settings that change a point's record (part of its digest).
    executor : minissl.sweep.Embedded or minissl.sweep.DaskExecutor, optional
        Where the points are trained [default: this process].
    """
    conv = protocol == "converged"
    ctx = {"evaluator": f"{evaluate.__module__}.{evaluate.__name__}/2", **(context or {})}
    return RunCache(folder, evaluate, max_steps=run.get("max_steps") if conv else None,
                    max_replicates=run.get("max_replicates") if conv else None, progress=progress, context=ctx,
                    executor=executor)


def write_csv(path, rows):
    """Rows (list of flat dicts with the same keys) as CSV, atomically."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def write_report(folder, report, markdown):
    """``report.json`` and ``report.md`` in ``folder``, atomically."""
    atomic_write_text(Path(folder) / "report.json", json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n")
    atomic_write_text(Path(folder) / "report.md", markdown.rstrip() + "\n")


def save_figure(path, draw):
    """Draw with matplotlib (``draw(plt) -> fig``) and save a PNG atomically.

    Returns None on success, or a message when matplotlib is not installed.
    """
    skipped = save_png(path, draw)
    if skipped is not None:
        return "matplotlib is not installed: data and reports written, figure skipped (pip install 'minissl[plot]')."
    return None
