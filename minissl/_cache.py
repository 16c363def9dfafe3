"""Numba's on-disk cache of minissl's kernels, made to follow every source file of the package.

Numba stamps each cached function with the contents of its *own* source file only. A kernel
inlines the kernels it calls from other files, and its compiled code also bakes in
constants imported from elsewhere (the fast-math flags and chunk count of
:mod:`minissl._config`). So after a change to one of those files -- an edit, ``git pull``
in the editable install of the README, a branch switch, or ``pip install -U`` over a
version whose caller file happens to be identical -- Numba would load the caller's old
code: old numbers, or a crash when old code meets new data layouts.

:func:`install` puts locators in front of Numba's own (``numba.core.caching.CacheImpl``)
for files inside this package only. They keep Numba's cache folders (``NUMBA_CACHE_DIR``,
the in-tree ``__pycache__``, the user-wide cache for read-only installs) and extend the
source stamp with :data:`FINGERPRINT`, a SHA-256 over the paths and contents of every
``.py`` file of the package, taken once per process. A cache entry written by any other
version of the package -- or by a process that imported the package before a file
changed -- no longer matches and is recompiled and overwritten, wherever it lives and
whoever wrote it. Other packages' functions go to Numba's locators unchanged. A locator
list set by the user (``NUMBA_CACHE_LOCATOR_CLASSES``) takes precedence over this.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["fingerprint", "install", "FINGERPRINT", "PACKAGE"]

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def fingerprint(package=PACKAGE):
    """SHA-256 (hex) over the relative paths and contents of every ``.py`` file under ``package``."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).digest()
                h.update(os.path.relpath(path, package).encode() + b"\0" + digest)
    return h.hexdigest()


FINGERPRINT = fingerprint()


def _inside(path, package=PACKAGE):
    try:
        return os.path.commonpath([os.path.abspath(path), package]) == package
    except ValueError:  # different drives
        return False


class _Fingerprinted:
    """Mixin for a Numba locator: only this package's files, the package fingerprint in the stamp."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _inside(py_file):
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return (super().get_source_stamp(), FINGERPRINT)


_INSTALLED = []


def install():
    """Put the fingerprinting locators in front of Numba's (once per process); returns them."""
    if _INSTALLED:
        return list(_INSTALLED)
    from numba.core import caching

    impl = caching.CacheImpl
    ours = [type(f"Minissl{base.__name__}", (_Fingerprinted, base), {"__module__": __name__})
            for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                         caching.UserWideCacheLocator)]
    impl._locator_classes = ours + [c for c in impl._locator_classes if c not in ours]
    _INSTALLED.extend(ours)
    return list(ours)
