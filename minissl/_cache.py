"""Keep Numba's on-disk cache of minissl's kernels consistent with their sources.

Numba stamps each cached function with its *own* source file only. A kernel inlines the
kernels it calls from other files, so after one of those files changes (an edit, or
``git pull`` in an editable install, the README's set-up) the caller's cache still holds
the old code: old numbers, or a crash when the old code meets new data layouts. A fresh
install rewrites every file, which invalidates every entry; an edited checkout does not.

:func:`refresh` fingerprints every source file of the package that holds compiled code
(its text mentions ``numba``) and keeps the fingerprint beside each cache root minissl
uses: the in-tree ``__pycache__`` folders, and ``NUMBA_CACHE_DIR`` when it is set (same
layout as :meth:`numba.core.caching._CacheLocator.get_suitable_cache_subpath`). When the
fingerprint differs from the stored one (or none is stored), minissl's cache entries
(``*.nbi``, ``*.nbc``) under that root are deleted before anything is compiled or loaded,
and the new fingerprint is written. Nothing else is touched (``*.pyc`` stay). It runs when
:mod:`minissl._config` is first imported (every kernel module imports it), reads the
sources (~2 ms) and does not import Numba.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["fingerprint", "cache_dirs", "refresh", "STAMP"]

STAMP = "minissl-numba-sources.sha256"
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _sources(package):
    """Every ``.py`` file under ``package`` whose text mentions numba, sorted (relative paths)."""
    out = []
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, "rb") as fh:
                    data = fh.read()
                if b"numba" in data:
                    out.append((os.path.relpath(path, package), data))
    return out


def fingerprint(package=_PACKAGE):
    """SHA-256 over the paths and contents of the package's compiled-code sources."""
    h = hashlib.sha256()
    for rel, data in _sources(package):
        h.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def cache_dirs(package=_PACKAGE, cache_dir=None):
    """``(stamp_folder, [cache folders])`` of the sources under ``package``.

    In-tree (``cache_dir`` empty): each source folder's ``__pycache__``, the stamp in the
    package's. With ``cache_dir`` (``NUMBA_CACHE_DIR``): Numba's folder for each source
    folder, ``<cache_dir>/<folder name>_<sha1 of its absolute path>``, the stamp in
    ``cache_dir`` under a name tied to the package's path.
    """
    folders = sorted({os.path.dirname(os.path.join(package, rel)) for rel, _ in _sources(package)})
    if not cache_dir:
        return os.path.join(package, "__pycache__"), [os.path.join(f, "__pycache__") for f in folders]
    sub = [os.path.join(cache_dir, f"{os.path.basename(f)}_{hashlib.sha1(os.path.abspath(f).encode()).hexdigest()}")
           for f in folders]
    tag = hashlib.sha1(os.path.abspath(package).encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f"minissl-{tag}"), sub


def _module_stems(package):
    return {os.path.splitext(os.path.basename(rel))[0] for rel, _ in _sources(package)}


def refresh(package=_PACKAGE, cache_dir=None):
    """Delete minissl's cached kernels under a cache root whose stored fingerprint is stale.

    Returns the number of files deleted. Errors of the file system (a read-only install,
    a folder another process removes) are ignored: Numba then behaves as it would without
    this check.
    """
    if cache_dir is None:
        cache_dir = os.environ.get("NUMBA_CACHE_DIR", "")
    try:
        new = fingerprint(package)
        stamp_dir, dirs = cache_dirs(package, cache_dir)
        stamp = os.path.join(stamp_dir, STAMP)
        try:
            with open(stamp, encoding="ascii") as fh:
                if fh.read().strip() == new:
                    return 0
        except OSError:
            pass
        stems = _module_stems(package)
        removed = 0
        for d in dirs:
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                if name.endswith((".nbi", ".nbc")) and name.split(".", 1)[0] in stems:
                    try:
                        os.remove(os.path.join(d, name))
                        removed += 1
                    except FileNotFoundError:
                        pass
        os.makedirs(stamp_dir, exist_ok=True)
        tmp = f"{stamp}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(new + "\n")
        os.replace(tmp, stamp)
        return removed
    except OSError:
        return 0
