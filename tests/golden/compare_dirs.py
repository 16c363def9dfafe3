"""Compare two folders of golden records: what an intended change of the numbers changed.

    python tests/golden/compare_dirs.py OLD_DIR NEW_DIR [--top 3]

For every ``<case>.json`` in both folders it flattens the records to numeric leaves (dict
keys and list indices as a path) and prints, per case, how many leaves differ and the
largest difference measured two ways: relative to the value itself (``|a - b| / max(|a|,
|b|)``, what ``tests/test_golden.py`` bounds by its RTOL) and relative to the scale of the
value's group (the largest magnitude among the leaves with the same parent, e.g. the other
eigenvalues of the same point). A difference that is large relative to a tiny value but at
rounding level relative to its group is a rounding change, not a change of the result.
Non-numeric leaves that differ are listed as such.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path


def leaves(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def parent(path):
    """The group of a leaf: its path without the last index, and without a trailing number
    in the last key (``learned4`` belongs with ``learned0`` ... ``learned5``)."""
    p = re.sub(r"\[\d+\]$", "", path)
    if p == path:
        p = re.sub(r"\d+$", "", path)
    return p


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def compare(old, new):
    a, b = dict(leaves(old)), dict(leaves(new))
    scale = {}
    for src in (a, b):
        for p, v in src.items():
            if is_num(v) and math.isfinite(v):
                g = parent(p)
                scale[g] = max(scale.get(g, 0.0), abs(v))
    rows, other = [], []
    for p in sorted(set(a) | set(b)):
        u, v = a.get(p, "<missing>"), b.get(p, "<missing>")
        if is_num(u) and is_num(v):
            if u == v or (math.isnan(u) and math.isnan(v)):
                continue
            d = abs(u - v)
            rel = d / max(abs(u), abs(v))
            s = scale.get(parent(p), 0.0)
            rows.append((p, u, v, rel, d / s if s > 0 else math.inf))
        elif u != v:
            other.append((p, u, v))
    return rows, other


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--top", type=int, default=3, help="worst leaves shown per case")
    args = ap.parse_args()
    old_dir, new_dir = Path(args.old), Path(args.new)
    worst_group = 0.0
    for f in sorted(old_dir.glob("*.json")):
        g = new_dir / f.name
        if not g.exists():
            print(f"{f.stem}: missing in {new_dir}")
            continue
        rows, other = compare(json.loads(f.read_text()), json.loads(g.read_text()))
        if not rows and not other:
            continue
        n_bad = sum(r[3] > 1e-12 for r in rows)
        mrel = max((r[3] for r in rows), default=0.0)
        mgrp = max((r[4] for r in rows), default=0.0)
        worst_group = max(worst_group, mgrp)
        print(f"{f.stem}: {len(rows)} numbers differ ({n_bad} by > 1e-12 of themselves); "
              f"largest {mrel:.2g} of itself, {mgrp:.2g} of its group")
        for p, u, v, rel, grp in sorted(rows, key=lambda r: -r[4])[:args.top]:
            print(f"    {p}: {u!r} -> {v!r} ({rel:.2g} of itself, {grp:.2g} of its group)")
        for p, u, v in other[:args.top]:
            print(f"    {p}: {u!r} -> {v!r} (not a number)")
    print(f"largest difference relative to its group, all cases: {worst_group:.2g}")


if __name__ == "__main__":
    main()
