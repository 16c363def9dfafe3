"""Shared machinery of the figure reproductions: settings, resumable point runs, outputs.

A figure is a list of *points* (one training run each). Each finished point is written
atomically to ``OUT/points/<protocol>[-quick]/<key>.json`` together with a hash of its
settings, so an interrupted run resumes where it stopped and a changed setting is
recomputed, never silently reused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, jsonable, save_png

__all__ = ["load_settings", "settings_path", "PointRunner", "write_csv", "write_report", "save_figure",
           "PROTOCOLS"]

PROTOCOLS = ("converged", "paper")
_RUN_KEYS = {"loss", "n", "steps", "lr", "optimizer", "lr_schedule", "noise", "replicates", "init_scale", "init",
             "alpha", "beta", "normalize", "control_variate", "dim", "variances", "sigma", "max_steps",
             "max_replicates", "widths"}
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


def _key_hash(params):
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PointRunner:
    """Run training points (``simulate`` keyword dicts) with caching, progress and retries.

    Parameters
    ----------
    folder : Path
        Where finished points are stored.
    evaluate : callable
        ``evaluate(result, spec) -> dict`` turning a :class:`~minissl.SimulationResult`
        into the JSON record of the point (learned and predicted spectra, ...).
    max_steps, max_replicates : int, optional
        ``converged`` protocol: a point whose convergence diagnostics fail is re-run with
        twice the steps (up to ``max_steps``) and twice the noise replicates per step (up
        to ``max_replicates``; the gradient's variance halves, its expectation is
        unchanged) until it passes or neither can grow; the record says whether it
        converged in the end. Gradient noise is what keeps weakly driven directions from
        their stationary value (it acts like an extra pull towards 0); slow directions
        need more steps.
    progress : bool
        Print one line per finished point to stderr.
    """

    def __init__(self, folder, evaluate, max_steps=None, max_replicates=None, progress=True, batch=2,
                 context=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.evaluate = evaluate
        self.max_steps = max_steps
        self.max_replicates = max_replicates
        self.progress = progress
        self.batch = batch
        # everything besides the simulate() arguments that changes a point's record
        self.context = {"max_steps": max_steps, "max_replicates": max_replicates, **(context or {})}

    def _path(self, key):
        return self.folder / f"{key}.json"

    def _cached(self, key, params):
        p = self._path(key)
        if not p.is_file():
            return None
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        return rec if rec.get("settings_hash") == self._hash(params) else None

    def _hash(self, params):
        return _key_hash({"params": params, "context": self.context})

    def run(self, specs):
        """``specs``: list of ``(key, simulate_kwargs)``; returns the records in order."""
        from ..train import simulate_batch

        records = {}
        todo = []
        for key, params in specs:
            rec = self._cached(key, params)
            if rec is not None:
                records[key] = rec
            else:
                todo.append((key, params))
        n_total, n_done = len(specs), len(records)
        if self.progress and n_done:
            print(f"  {n_done}/{n_total} points already done (resumed from {self.folder})", file=sys.stderr)
        t_start = time.perf_counter()
        attempt = {key: dict(params) for key, params in todo}
        while todo:
            chunk, todo = todo[: self.batch], todo[self.batch:]
            t0 = time.perf_counter()
            results = simulate_batch([attempt[k] for k, _ in chunk], warn=False)
            seconds = (time.perf_counter() - t0) / len(chunk)
            for (key, params), res in zip(chunk, results):
                steps, reps = attempt[key].get("steps", 3000), attempt[key].get("replicates", 1)
                grow_s = bool(self.max_steps) and steps * 2 <= self.max_steps
                grow_r = bool(self.max_replicates) and reps * 2 <= self.max_replicates
                if not res.converged and (grow_s or grow_r):
                    attempt[key] = {**attempt[key], "steps": steps * 2 if grow_s else steps,
                                    "replicates": reps * 2 if grow_r else reps}
                    todo.append((key, params))
                    continue
                rec = self.evaluate(res, attempt[key])
                rec.update({"key": key, "settings_hash": self._hash(params), "converged": bool(res.converged),
                            "steps": int(res.settings["steps"]), "replicates": int(res.settings["replicates"]),
                            "seconds": seconds})
                atomic_write_text(self._path(key), json.dumps(jsonable(rec), allow_nan=False) + "\n")
                records[key] = rec
                n_done += 1
                if self.progress:
                    el = time.perf_counter() - t_start
                    print(f"  [{n_done}/{n_total}] {key}: {'converged' if rec['converged'] else 'NOT converged'}"
                          f" ({rec['steps']} steps x {rec['replicates']} replicates, {el:.0f} s)", file=sys.stderr)
        return [records[key] for key, _ in specs]


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
