"""Record the golden outputs of the ``minissl`` command line.

What it records
    For every case of ``tests/golden/cases.py`` (``CASES``: ``simulate`` for each loss x
    variant x engine, ``theory``, ``reproduce FIG --quick`` for each figure, ``imbalance
    --quick`` and ``nonlinear``) it runs the command through ``minissl.cli:main`` in a
    subprocess (working directory and ``PYTHONPATH`` = this repository root, so the checkout
    the script sits in is tested, not an installed copy), reads back the files the command
    writes (the ``--json`` file; ``report.json`` and the CSV files, parsed into columns, of an
    ``--out`` folder), drops wall-clock / machine-dependent fields with
    ``cases.normalize`` and stores the result as ``tests/golden/<case_id>.json``.
    ``tests/test_golden.py`` reruns the same cases and compares with these files.

How to run it (from the repository root)
    python tests/golden/regenerate.py                     # every case
    python tests/golden/regenerate.py --only 'simulate-*' # case ids matching a glob
    python tests/golden/regenerate.py --only fig7         # ... or containing a substring
    python tests/golden/regenerate.py --list              # print the case ids and exit

Only regenerate when a change of the numbers is intended: the files pin today's behaviour.
Keep a copy of the old folder and describe the change with
``python tests/golden/compare_dirs.py OLD_COPY tests/golden`` (per case: how many numbers
moved, by how much of themselves and of their group). Record with the default single thread
(``MINISSL_GOLDEN_THREADS``, see ``cases.subprocess_env``); a cold or warm Numba cache gives
the same files.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, so that `golden` imports

from golden.cases import CASES, GOLDEN_DIR, dump_record, golden_path, run_case  # noqa: E402


def selected(pattern):
    if pattern is None:
        return list(CASES)
    if any(ch in pattern for ch in "*?["):
        return [c for c in CASES if fnmatch.fnmatchcase(c[0], pattern)]
    return [c for c in CASES if pattern in c[0]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="PATTERN",
                    help="only the case ids matching this glob (with * ? [) or containing this substring")
    ap.add_argument("--list", action="store_true", help="print the selected case ids and exit")
    args = ap.parse_args(argv)
    cases = selected(args.only)
    if not cases:
        ap.error(f"--only {args.only!r} matches no case id")
    if args.list:
        print("\n".join(c[0] for c in cases))
        return 0
    t_all = time.perf_counter()
    for i, case in enumerate(cases, 1):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="minissl-golden-") as tmp:
            record = run_case(case, tmp)
        dump_record(record, golden_path(case[0]))
        print(f"[{i}/{len(cases)}] {case[0]}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    known = {golden_path(c[0]).name for c in CASES}
    stale = sorted(p.name for p in GOLDEN_DIR.glob("*.json") if p.name not in known)
    if stale:
        print("golden files without a case (delete them if the case was removed): " + ", ".join(stale))
    print(f"recorded {len(cases)} case(s) in {GOLDEN_DIR} ({time.perf_counter() - t_all:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
