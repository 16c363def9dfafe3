"""Golden tests of the ``minissl`` command line: today's numbers, pinned.

Every case of ``tests/golden/cases.py`` is rerun (``minissl.cli:main`` on this checkout in a
``tests/golden/runner.py`` process shared by the cases of one test process, outputs in
``tmp_path``) and compared with ``tests/golden/<case_id>.json``, which
``python tests/golden/regenerate.py`` records (one fresh subprocess per case). Comparison (``compare``):

* dicts: the same keys; strings, bools, ints and ``None`` exactly;
* floats: ``|a - b| <= RTOL * max(|a|, |b|)`` (or both 0; NaN matches NaN, inf matches inf);
* numeric arrays (lists, nested lists, CSV columns): elementwise within
  ``RTOL * max |reference array|`` (over its finite entries), with NaN / inf at exactly the
  same positions; non-numeric entries of a mixed list (CSV '' cells, names) exactly;
* quantities whose natural scale is not their own size get an absolute floor (``ATOL``, by
  the last key of the path): angles in radians that are zero up to round-off.

``RTOL = 1e-8``, measured, not guessed: the same commit on two CPU models (the goldens of
issue 13 recorded on one, CI on another, both x86-64 with different SIMD widths) differed
by up to 1.2e-12 of a value's group after hundreds of training steps (BLAS and LLVM choose
different summation orders per CPU), by 1e-6 in the normalized landscape's predictions
(L-BFGS stopping at ``sqrt(ftol)``; now polished by Newton steps to round-off, whose
residual ``|g| / h_min`` is ~1e-9 on the worst-conditioned case) and by 100% in angles of
1e-14 rad. 1e-8 passes the first two with a margin and still catches every change of a
result that anybody would call a change (an intended one is never below 1e-6).

Fields that depend on the clock or the machine are dropped before storing and before
comparing, by ``cases.normalize`` (the one list of what is not compared). The runner (and
the recording subprocesses) run single-threaded unless ``MINISSL_GOLDEN_THREADS`` is set (see ``cases.subprocess_env``).

Why a tolerance and not bit equality: the goldens pin results, not one compiler's choices.
(Until issue 13 the Numba kernels also differed in the last bits between a process that
compiled them and one that loaded them from the cache, because LLVM was allowed to
reassociate sums; that is gone — ``tests/test_determinism.py`` — and a cold and a warm
regeneration now write identical files.) An intended change of the numbers is recorded with
``tests/golden/regenerate.py`` and described with ``tests/golden/compare_dirs.py OLD NEW``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from golden.cases import CASES, Runner, golden_path, load_record, run_case

RTOL = 1e-8
# absolute floors by the last key of a path (its list indices dropped): key suffix -> tolerance
ATOL = {"angle": 1e-10}
MAX_REPORTED = 20


def _atol(path):
    """The absolute floor of the leaf at ``path`` (0 unless its key is listed in ATOL)."""
    key = re.sub(r"\[\d+\]", "", path).rsplit(".", 1)[-1]
    return max((tol for suffix, tol in ATOL.items() if key.endswith(suffix)), default=0.0)


def _is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numeric_leaves(x):
    """The numbers of a (nested) list if every leaf is an int/float, else None."""
    out = []
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif _is_num(v):
            out.append(v)
        else:
            return None
    return out


def _as_array(x):
    """A rectangular numeric (nested) list as a float64 array, else None."""
    if not isinstance(x, list) or not x or _numeric_leaves(x) is None:
        return None
    try:
        arr = np.array(x, dtype=np.float64)
    except ValueError:  # ragged
        return None
    return arr if arr.dtype == np.float64 and arr.ndim >= 1 else None


def _show(v, limit=200):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "..."


def _int_positions(x, prefix=()):
    """Index tuples of the int leaves of a nested list (their type is compared exactly)."""
    if isinstance(x, list):
        for i, v in enumerate(x):
            yield from _int_positions(v, prefix + (i,))
    elif isinstance(x, int) and not isinstance(x, bool):
        yield prefix


def _compare_array(exp, got, ea, path, errors):
    ga = _as_array(got)
    if ga is None or ga.shape != ea.shape:
        errors.append(f"{path}: expected a numeric array of shape {ea.shape}, got {_show(got)}")
        return
    if set(_int_positions(exp)) != set(_int_positions(got)):
        errors.append(f"{path}: int/float types differ: expected {_show(exp)}, got {_show(got)}")
    enan, gnan = np.isnan(ea), np.isnan(ga)
    einf, ginf = np.isinf(ea), np.isinf(ga)
    bad = (enan != gnan) | (einf != ginf) | (einf & ginf & (np.sign(ea) != np.sign(ga)))
    fin = np.isfinite(ea)
    scale = float(np.max(np.abs(ea[fin]))) if fin.any() else 0.0
    both = fin & np.isfinite(ga)
    diff = np.subtract(ea, ga, out=np.zeros_like(ea), where=both)  # no inf - inf
    tol = max(RTOL * scale, _atol(path))
    bad |= np.abs(diff) > tol
    if bad.any():
        idx = [tuple(int(i) for i in t) for t in np.argwhere(bad)]
        where = ", ".join(f"{path}[{']['.join(map(str, t))}]: expected {float(ea[t])!r}, got {float(ga[t])!r}"
                          for t in idx[:5])
        errors.append(f"{path}: {len(idx)} of {ea.size} entries differ beyond max({RTOL:g} x max|reference|, "
                      f"{_atol(path):g}) = {tol:.3g}: {where}" + (" ..." if len(idx) > 5 else ""))


def _compare_list(exp, got, path, errors):
    if not isinstance(got, list) or len(got) != len(exp):
        errors.append(f"{path}: expected a list of length {len(exp)}, got {_show(got)}")
        return
    ea = _as_array(exp)
    if ea is not None:
        _compare_array(exp, got, ea, path, errors)
        return
    # mixed list (e.g. a CSV column with '' cells): the numbers as one array, the rest exactly
    num = [i for i, v in enumerate(exp) if _is_num(v)]
    finite = [abs(exp[i]) for i in num if math.isfinite(exp[i])]
    scale = max(finite) if finite else 0.0
    for i, (e, g) in enumerate(zip(exp, got)):
        if i in num and _is_num(g):
            if type(e) is not type(g):
                errors.append(f"{path}[{i}]: expected {type(e).__name__} {e!r}, got {type(g).__name__} {g!r}")
            elif not _close(e, g, max(RTOL * scale, _atol(path))):
                errors.append(f"{path}[{i}]: expected {e!r}, got {g!r} "
                              f"(tolerance {max(RTOL * scale, _atol(path)):.3g})")
        else:
            _compare(e, g, f"{path}[{i}]", errors)


def _close(a, b, tol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol


def _compare(exp, got, path, errors):
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            errors.append(f"{path or '<root>'}: expected a dict, got {_show(got)}")
            return
        missing, extra = sorted(set(exp) - set(got)), sorted(set(got) - set(exp))
        if missing:
            errors.append(f"{path or '<root>'}: keys missing: {missing}")
        if extra:
            errors.append(f"{path or '<root>'}: unexpected keys: {extra}")
        for k in exp:
            if k in got:
                _compare(exp[k], got[k], f"{path}.{k}" if path else str(k), errors)
    elif isinstance(exp, list):
        _compare_list(exp, got, path, errors)
    elif isinstance(exp, float):
        if not isinstance(got, float):
            errors.append(f"{path}: expected float {exp!r}, got {type(got).__name__} {_show(got)}")
        elif not (exp == got == 0.0 or _close(exp, got, max(RTOL * max(abs(exp), abs(got)), _atol(path)))):
            errors.append(f"{path}: expected {exp!r}, got {got!r} (relative difference "
                          f"{abs(exp - got) / max(abs(exp), abs(got)):.3g})")
    else:  # str, bool, int, None: exactly, type included
        if type(exp) is not type(got) or exp != got:
            errors.append(f"{path}: expected {_show(exp)}, got {_show(got)}")


def compare(expected, got, path=""):
    """Assert that ``got`` matches ``expected`` (rules in the module docstring).

    Raises ``AssertionError`` listing every mismatch (the first ``MAX_REPORTED``) with its key
    path (``a.b[3]``) and both values.
    """
    errors = []
    _compare(expected, got, path, errors)
    if errors:
        more = f"\n... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise AssertionError(f"{len(errors)} mismatch(es):\n" + "\n".join(errors[:MAX_REPORTED]) + more)


@pytest.fixture(scope="module")
def runner():
    with Runner() as r:
        yield r


# the figure reproductions are compared with their records in tests/test_reproduce.py, whose
# fixture runs every figure once (running them here too would train every figure twice)
HERE = [c for c in CASES if c[2] != "reproduce"]


@pytest.mark.parametrize("case", HERE, ids=[c[0] for c in HERE])
def test_golden(case, tmp_path, runner):
    case_id, argv, kind = case
    path = golden_path(case_id)
    if not path.exists():
        pytest.fail(f"no golden file {path}; record it with `python tests/golden/regenerate.py --only {case_id}`")
    ref = load_record(path)
    assert ref["argv"] == list(argv) and ref["kind"] == kind, (
        f"{case_id}: the case changed since it was recorded ({ref['argv']} -> {list(argv)}); regenerate it")
    got = run_case(case, tmp_path, runner=runner)
    compare(ref["outputs"], got["outputs"])


# a few cases in a fresh interpreter each, as regenerate.py records them: a state carried from one
# case to the next inside the runner, or an import-order effect, would show up here
FRESH = [c for c in CASES if c[0] in ("simulate-beta-plain-numba", "theory-table1")]


@pytest.mark.parametrize("case", FRESH, ids=[c[0] for c in FRESH])
def test_golden_in_a_fresh_subprocess(case, tmp_path):
    ref = load_record(golden_path(case[0]))
    compare(ref["outputs"], run_case(case, tmp_path)["outputs"])


def test_runner_reports_a_failed_case_and_goes_on(tmp_path):
    with Runner() as r:
        bad = r.run(["simulate", "--steps", "0"])
        assert bad.returncode == 2 and "--steps" in bad.stderr, bad
        good = r.run(["theory", "table1", "--json", str(tmp_path / "t.json")])
        assert good.returncode == 0 and (tmp_path / "t.json").stat().st_size > 0, good
        r.proc.kill()  # a dead runner is restarted for the next case
        r.proc.wait()
        again = r.run(["theory", "table1"])
        assert again.returncode == 0 and "Table 1" in again.stdout, again


# ----------------------------------------------------------------------------- the comparer itself

def test_compare_accepts_equal_and_tiny_differences():
    ref = {"a": 1.0, "b": [1.0, 2.0, float("nan"), float("inf")], "c": "x", "d": True, "e": 3, "f": None,
           "g": [[1.0, 0.0], [0.0, 2.0]], "h": [1.0, "", 3.0], "z": 0.0}
    got = {"a": 1.0 + 1e-9, "b": [1.0, 2.0 + 1e-8, float("nan"), float("inf")], "c": "x", "d": True, "e": 3,
           "f": None, "g": [[1.0, 1e-9], [0.0, 2.0]], "h": [1.0, "", 3.0 - 2e-8], "z": 0.0}
    compare(ref, got)


def test_compare_gives_angles_an_absolute_floor_only():
    compare({"table": [{"angle": 2e-16}]}, {"table": [{"angle": 4e-14}]})
    compare({"angle": [2e-16, 1e-15]}, {"angle": [4e-14, 3e-14]})
    with pytest.raises(AssertionError, match="angle"):
        compare({"angle": 0.5}, {"angle": 0.5 + 1e-7})
    with pytest.raises(AssertionError, match="angle_se"):  # the floor is for angles, not their SEs
        compare({"angle_se": 2e-16}, {"angle_se": 4e-14})


@pytest.mark.parametrize("got, fragment", [
    ({"a": 1.0 + 1e-7, "b": [1.0, 2.0], "s": "x"}, "a: expected 1.0"),
    ({"a": 1.0, "b": [1.0, 2.0 + 1e-7], "s": "x"}, "b[1]: expected 2.0"),
    ({"a": 1.0, "b": [1.0, float("nan")], "s": "x"}, "b[1]"),
    ({"a": 1.0, "b": [1.0, 2.0], "s": "y"}, "s: expected 'x', got 'y'"),
    ({"a": 1.0, "b": [1.0, 2.0]}, "keys missing: ['s']"),
    ({"a": 1.0, "b": [1.0, 2.0], "s": "x", "t": 0}, "unexpected keys: ['t']"),
    ({"a": 1, "b": [1.0, 2.0], "s": "x"}, "a: expected float"),
    ({"a": 1.0, "b": [1.0], "s": "x"}, "b: expected a list of length 2"),
])
def test_compare_reports_mismatches(got, fragment):
    with pytest.raises(AssertionError, match=None) as info:
        compare({"a": 1.0, "b": [1.0, 2.0], "s": "x"}, got)
    assert fragment in str(info.value), str(info.value)
