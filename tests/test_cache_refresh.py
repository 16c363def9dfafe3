"""minissl._cache: cached kernels built from other versions of the sources are deleted first.

Numba checks only a cached function's own source file, but a kernel inlines its callees
from other files; an edited checkout (or ``git pull`` in an editable install) would load
stale code. These tests use a small fake package for the file logic, Numba's own locator
for the ``NUMBA_CACHE_DIR`` layout, and a real kernel in a subprocess end to end.
"""

import os
import subprocess
import sys

from minissl import _cache


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _fake_package(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg / "a.py", "from numba import njit\n")
    _write(pkg / "sub" / "b.py", "import numba\n")
    _write(pkg / "c.py", "x = 1\n")  # no compiled code: not part of the fingerprint
    return pkg


def _cache_files(pkg):
    files = [pkg / "__pycache__" / "a.f-1.py311.nbi", pkg / "__pycache__" / "a.f-1.py311.1.nbc",
             pkg / "sub" / "__pycache__" / "b.g-3.py311.nbi"]
    keep = [pkg / "__pycache__" / "a.cpython-311.pyc", pkg / "__pycache__" / "zzz.h-1.py311.nbi"]
    for f in files + keep:
        _write(f, "x")
    return files, keep


def test_stale_or_unstamped_caches_are_deleted_and_others_kept(tmp_path):
    pkg = _fake_package(tmp_path)
    files, keep = _cache_files(pkg)
    assert _cache.refresh(str(pkg), "") == 3  # no stamp yet: provenance unknown
    assert not any(f.exists() for f in files) and all(f.exists() for f in keep)
    files, keep = _cache_files(pkg)
    assert _cache.refresh(str(pkg), "") == 0  # same sources: the cache stays
    assert all(f.exists() for f in files)
    _write(pkg / "c.py", "x = 2\n")
    assert _cache.refresh(str(pkg), "") == 0  # a file without compiled code changed
    _write(pkg / "sub" / "b.py", "import numba  # edited\n")
    assert _cache.refresh(str(pkg), "") == 3  # a callee changed: every kernel cache goes
    assert not any(f.exists() for f in files) and all(f.exists() for f in keep)


def test_numba_cache_dir_layout_is_numbas(tmp_path):
    from numba.core.caching import _CacheLocator

    pkg = _fake_package(tmp_path)
    stamp_dir, dirs = _cache.cache_dirs(str(pkg), str(tmp_path / "nbcache"))
    expect = sorted(os.path.join(str(tmp_path / "nbcache"), _CacheLocator.get_suitable_cache_subpath(str(p)))
                    for p in (pkg / "a.py", pkg / "sub" / "b.py"))
    assert sorted(dirs) == expect
    assert stamp_dir.startswith(str(tmp_path / "nbcache"))
    _write(pkg / "zz" / "x", "")  # unrelated files are never touched
    for d in dirs:
        _write(tmp_path / "nbcache" / os.path.basename(d) / "a.f-1.py311.nbi", "x")
    assert _cache.refresh(str(pkg), str(tmp_path / "nbcache")) == 2
    assert (tmp_path / "pkg" / "zz" / "x").exists()
    assert _cache.refresh(str(pkg), str(tmp_path / "nbcache")) == 0


def test_a_changed_fingerprint_empties_a_real_cache_before_loading(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = ("import numpy as np, minissl; L = minissl.get_loss('infonce'); "
            "W = np.eye(3)[:2] * .1; x = np.ones((6, 3)); print(L.value_and_grad(W, x, x + 1)[0])")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    cached = [p for p in tmp_path.rglob("*.nbi")]
    stamps = list(tmp_path.rglob(_cache.STAMP))
    assert cached and len(stamps) == 1
    stamps[0].write_text("0" * 64 + "\n")  # as if the sources had changed since
    again = subprocess.run([sys.executable, "-c", "import minissl"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not any(p.exists() for p in cached)
    assert stamps[0].read_text().strip() == _cache.fingerprint()
    third = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and third.stdout == first.stdout
