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

import numpy as np

from .._io import atomic_write_text, jsonable, save_png
from ..losses import get_loss
from ..losses.registry import PAPER_LOSS, option_params, spec
from .runs import RunCache
from .spectra import spectrum_record

__all__ = ["load_settings", "settings_path", "simulate_kwargs", "settings_loss", "settings_params", "point_cache",
           "write_csv", "write_report", "save_figure", "PROTOCOLS"]

PROTOCOLS = ("converged", "paper")
# the [run] keys that are simulate() arguments: the loss's own parameters are those simulate()
# takes by name (minissl.losses.registry.option_params)
_SIMULATE_KEYS = (("loss", "n", "steps", "lr", "optimizer", "lr_schedule", "noise", "replicates", "init_scale", "init")
                  + option_params() + ("normalize", "control_variate"))
_RUN_KEYS = set(_SIMULATE_KEYS) | {"dim", "variances", "sigma", "max_steps", "max_replicates", "widths"}
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


def load_settings(figure, quick=False, protocol="converged"):
    """Settings of one figure: ``[figure]`` (the sweep), ``[run]`` (simulate arguments),
    then ``[protocol.<name>]`` and, with ``quick``, ``[quick]`` overriding both.

    The paper protocol's optimizer settings (Adam, lr 6e-4, constant, 5000 full-batch
    steps, fresh noise) are fixed here and cannot be overridden except by ``[quick]``.
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
    unknown = set(raw.get("run", {})) - _RUN_KEYS
    for sect in ("quick",):
        unknown |= {k for k in raw.get(sect, {}) if k not in _RUN_KEYS and k not in raw.get("figure", {})}
    for proto in raw.get("protocol", {}).values():
        unknown |= set(proto) - _RUN_KEYS
    if unknown:
        raise ValueError(f"settings file {str(path)!r}: unknown key(s) {sorted(unknown)}; allowed in [run], "
                         f"[protocol.*] and [quick]: {sorted(_RUN_KEYS)} (and the [figure] keys in [quick]).")
    fig = dict(raw.get("figure", {}))
    run = dict(raw.get("run", {}))
    proto = dict(raw.get("protocol", {}).get(protocol, {}))
    if protocol == "paper":
        proto = {**proto, **_PAPER_PROTOCOL}
    run.update(proto)
    if quick:
        q = dict(raw.get("quick", {}))
        for k in list(q):
            if k in fig:
                fig[k] = q.pop(k)
        run.update(q)
    return {"figure": fig, "run": run, "path": str(path)}


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


def point_cache(folder, run, progress, protocol, evaluate=spectrum_record, context=None):
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
    """
    conv = protocol == "converged"
    ctx = {"evaluator": f"{evaluate.__module__}.{evaluate.__name__}/2", **(context or {})}
    return RunCache(folder, evaluate, max_steps=run.get("max_steps") if conv else None,
                    max_replicates=run.get("max_replicates") if conv else None, progress=progress, context=ctx)


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
