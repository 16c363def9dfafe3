"""Draw a sweep's results: any result column against a grid axis, one line per value of another.

Reads ``DIR/results.csv`` and the grid's axes from the store. Points with the same ``x`` and
``hue`` (differing in the other axes, e.g. the seed) are averaged, with their standard deviation
as error bars; failed or missing points are left out (and counted in the title).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .._io import save_png
from .store import STORE_NAME, Store

__all__ = ["parse_plot_spec", "plot_results", "plot_data"]

_KEYS = ("x", "y", "hue")


def parse_plot_spec(text, name="plot"):
    """``"x=sigma,y=learned_rank,hue=beta"`` -> ``{"x": ..., "y": ..., "hue": ... or None}``;
    errors name the option ``name``."""
    out = {}
    for part in str(text).split(","):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in _KEYS or not value:
            raise ValueError(f"{name} == {text!r}: each part must be x=COLUMN, y=COLUMN or hue=COLUMN "
                             "(e.g. x=sigma,y=learned_rank,hue=beta).")
        if key in out:
            raise ValueError(f"{name} == {text!r}: {key} is given twice.")
        out[key] = value
    if "x" not in out or "y" not in out:
        raise ValueError(f"{name} == {text!r}: needs x=COLUMN and y=COLUMN.")
    out.setdefault("hue", None)
    return out


def _number(text):
    if text in ("true", "false"):
        return float(text == "true")
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def plot_data(folder, x, y, hue=None):
    """``{hue_value: (xs, means, stds, counts)}`` and the number of points left out.

    Raises ``ValueError`` naming the option when a column is not there or not usable.
    """
    folder = Path(folder)
    csv_path = folder / "results.csv"
    if not csv_path.is_file() or not (folder / STORE_NAME).is_file():
        raise ValueError(f"{folder} holds no sweep results (results.csv and {STORE_NAME}); run "
                         "`minissl sweep SPEC.toml --out DIR` first.")
    with Store(folder) as store:
        grid = list((store.meta("spec") or {}).get("grid", {}))
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = list(rows[0]) if rows else []
    if x not in grid:
        raise ValueError(f"x == {x!r} is not a grid axis of this sweep; the axes are {grid}.")
    if hue is not None and (hue not in grid or hue == x):
        raise ValueError(f"hue == {hue!r} must be another grid axis; the axes are {[g for g in grid if g != x]}.")
    if y not in columns or y in ("status", "key"):
        results = [c for c in columns if c not in grid and c not in ("status", "key")]
        raise ValueError(f"y == {y!r} is not a result column; the columns are {results}.")
    ok = [r for r in rows if r["status"] == "ok" and _number(r[y]) is not None]
    if not ok:
        raise ValueError(f"y == {y!r} has no numeric value in any finished point.")
    xs_num = all(_number(r[x]) is not None for r in ok)
    groups = {}
    for r in ok:
        groups.setdefault(r[hue] if hue else None, {}).setdefault(r[x], []).append(_number(r[y]))
    order = {v: i for i, v in enumerate(dict.fromkeys(r[x] for r in rows))}  # the grid's order
    out = {}
    for h, by_x in groups.items():
        keys = sorted(by_x, key=(lambda k: _number(k)) if xs_num else order.get)
        vals = [np.asarray(by_x[k]) for k in keys]
        out[h] = ([_number(k) if xs_num else k for k in keys], [float(v.mean()) for v in vals],
                  [float(v.std(ddof=1)) if v.size > 1 else 0.0 for v in vals], [int(v.size) for v in vals])
    return out, len(rows) - len(ok)


def plot_results(folder, x, y, hue=None, path=None):
    """Draw ``y`` against ``x`` (one line per ``hue`` value) to a PNG; returns ``(path, note)``.

    ``path`` defaults to ``DIR/<y>_vs_<x>[_by_<hue>].png``; ``note`` is None, or a message when
    matplotlib (the ``plot`` extra) is not installed.
    """
    data, left_out = plot_data(folder, x, y, hue)
    if path is None:
        path = Path(folder) / (f"{y}_vs_{x}" + (f"_by_{hue}" if hue else "") + ".png")

    def draw(plt):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for h, (xs, means, stds, counts) in data.items():
            label = None if h is None else f"{hue} = {h}"
            ax.errorbar(xs, means, yerr=stds if max(counts) > 1 else None, marker="o", capsize=3, label=label)
        ax.set_xlabel(x)
        ax.set_ylabel(y + (" (mean +- sd)" if any(max(c) > 1 for *_, c in data.values()) else ""))
        title = f"{Path(folder).name}: {y} vs {x}"
        if left_out:
            title += f" ({left_out} point(s) without a value left out)"
        ax.set_title(title, fontsize=9)
        if hue:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        return fig

    note = save_png(path, draw)
    return str(path), note
