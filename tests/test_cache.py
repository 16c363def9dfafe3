"""minissl._cache: a cached kernel is reused only with the very sources it was compiled from.

Numba stamps a cached function with its own file only, but a kernel inlines its callees
from other files. These tests check the fingerprint, that the locators take only this
package's files and keep Numba's folders, and end to end, on a copy of the package, that
editing a *callee's* file makes the caller recompile (Numba alone would load it).
"""

import json
import os
import shutil
import subprocess
import sys

from minissl import _cache


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_fingerprint_covers_every_python_file_and_nothing_else(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg / "a.py", "x = 1\n")
    _write(pkg / "sub" / "b.py", "y = 2\n")
    _write(pkg / "notes.txt", "n\n")
    f0 = _cache.fingerprint(str(pkg))
    _write(pkg / "notes.txt", "changed\n")
    _write(pkg / "__pycache__" / "a.f-1.py311.nbi", "x")
    assert _cache.fingerprint(str(pkg)) == f0
    _write(pkg / "sub" / "b.py", "y = 3\n")  # no numba in it: still part of the fingerprint
    f1 = _cache.fingerprint(str(pkg))
    assert f1 != f0
    (pkg / "sub" / "b.py").rename(pkg / "sub" / "c.py")  # same content, other name
    assert _cache.fingerprint(str(pkg)) not in (f0, f1)


def test_locators_take_only_this_package_and_keep_numbas_folders(tmp_path):
    from numba.core import caching

    from minissl.losses import lanesum

    ours = _cache.install()
    assert caching.CacheImpl._locator_classes[:3] == ours
    inside = lanesum.total.py_func
    outside = tmp_path / "other.py"
    _write(outside, "def f():\n    return 1\n")
    ns = {}
    exec(compile(outside.read_text(), str(outside), "exec"), ns)
    mine = next(loc for cls in ours if (loc := cls.from_function(inside, lanesum.__file__)) is not None)
    theirs = next(loc for cls in caching.CacheImpl._locator_classes[3:]
                  if (loc := cls.from_function(inside, lanesum.__file__)) is not None)
    assert mine.get_cache_path() == theirs.get_cache_path()
    assert mine.get_source_stamp() == (theirs.get_source_stamp(), _cache.FINGERPRINT)
    assert all(cls.from_function(ns["f"], str(outside)) is None for cls in ours)


_PROBE = r'''
import json, numpy as np
from minissl.losses import kernels
rng = np.random.default_rng(0)
zT = rng.normal(size=(3, 40)); lse = rng.normal(size=40); W = rng.normal(size=(3, 3))
v = kernels._value(zT, zT + 0.5, lse, 0.7, W, 0.1)
st = kernels._value.stats
print("RESULT" + json.dumps({"value": float(v), "hits": sum(st.cache_hits.values()),
                             "misses": sum(st.cache_misses.values()), "file": kernels.__file__}))
'''


def _probe(root):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "MINISSL_NUMBA_CACHE")}
    env["PYTHONPATH"] = str(root)
    res = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=str(root), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])


def test_editing_a_callee_file_recompiles_the_caller(tmp_path):
    """``kernels._value`` inlines ``lanesum.sqdist``/``total``/``dot``: after an edit of
    lanesum.py alone (kernels.py unchanged) its cached entry must not be loaded."""
    src = os.path.dirname(_cache.PACKAGE)
    shutil.copytree(_cache.PACKAGE, tmp_path / "minissl", ignore=shutil.ignore_patterns("__pycache__"))
    first = _probe(tmp_path)
    assert first["file"].startswith(str(tmp_path)) and not first["file"].startswith(src)
    assert first["misses"] == 1 and first["hits"] == 0
    again = _probe(tmp_path)
    assert again["hits"] == 1 and again["misses"] == 0 and again["value"] == first["value"]
    with open(tmp_path / "minissl" / "losses" / "lanesum.py", "a") as fh:
        fh.write("\n# an edit of the callee's file\n")
    edited = _probe(tmp_path)
    assert edited["misses"] == 1 and edited["hits"] == 0 and edited["value"] == first["value"]
