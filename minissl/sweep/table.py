"""A sweep's results as one table: a row per point, the grid's columns, then the scalar results.

The result columns come from each point's JSON report: top-level numbers, strings and booleans
as they are; a list of numbers as ``name_1 ... name_k`` (``learned_eigenvalues_1`` is the
largest learned eigenvalue); a nested table's scalars as ``table.name``
(``diagnostics.grad_pvalue``). ``settings`` and ``loss`` (the options again), ``track`` and
``minissl_version`` stay in the store only. A report field with the name of a grid axis is
``result.<name>`` (the axis keeps its column). Columns appear in the order first met; a point
without a value has an empty cell. The last columns are ``status`` (``ok``, ``failed``,
``not run``) and ``key`` (the point's key in the store).
"""

from __future__ import annotations

import csv
import io
import json
import math

from .._io import atomic_write_text

__all__ = ["flatten", "results_table", "write_csv"]

_SKIP = {"minissl_version", "settings", "track", "loss"}


def _scalar(v):
    return v is None or isinstance(v, (bool, int, float, str))


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def flatten(report):
    """The scalar columns of one JSON report (see the module docstring), in order."""
    cols = {}
    for k, v in report.items():
        if k in _SKIP:
            continue
        if _scalar(v):
            cols[k] = v
        elif isinstance(v, list) and v and all(_number(x) or x is None for x in v):
            for i, x in enumerate(v, 1):
                cols[f"{k}_{i}"] = x
        elif isinstance(v, dict):
            for k2, v2 in v.items():
                if _scalar(v2):
                    cols[f"{k}.{k2}"] = v2
    return cols


def results_table(grid, rows):
    """``(header, records)`` of a sweep.

    Parameters
    ----------
    grid : list of str
        The grid's axes (the first columns).
    rows : list of tuple
        ``(grid_values, key, report, status)`` per point in the sweep's order; ``report`` is the
        stored JSON report or None, ``status`` ``"ok"``, ``"failed: message"`` or ``"not run"``.
    """
    # a report field named like a grid axis (theory's ``kappa``, ``n``) keeps the grid's value
    # in its column; the report's own value goes to ``result.<name>``
    taken = set(grid) | {"status", "key"}
    flat = [{(f"result.{c}" if c in taken else c): v for c, v in flatten(r).items()} if r is not None else {}
            for _, _, r, _ in rows]
    columns = []
    seen = set(grid) | {"status", "key"}
    for f in flat:
        for c in f:
            if c not in seen:
                seen.add(c)
                columns.append(c)
    header = list(grid) + columns + ["status", "key"]
    records = []
    for (values, key, _, status), f in zip(rows, flat):
        records.append({**{g: values[g] for g in grid}, **f, "status": status, "key": key})
    return header, records


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def write_csv(path, header, records):
    """Write the table as CSV atomically (booleans ``true``/``false``, missing values empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for rec in records:
        w.writerow([_cell(rec.get(c)) for c in header])
    atomic_write_text(path, buf.getvalue())
