"""pytest configuration for the minissl tests.

Numerical helpers and the gradient tolerances live in ``tests/_helpers.py`` (one place
for every tolerance); import them with ``from _helpers import central_diff, GRAD_RTOL``.
This conftest puts ``tests/`` on ``sys.path`` (pytest's default ``prepend`` import mode
does so for a rootdir-less test folder; the explicit insert below also covers
``--import-mode=importlib``).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture
def rng():
    """A fresh, seeded generator for every test (same numbers on every run)."""
    return np.random.default_rng(0)


@pytest.fixture
def broken_settings(tmp_path, monkeypatch):
    """``broken_settings(figure, old, new) -> path``: a copy of ``data/`` under ``tmp_path`` (used
    through ``$MINISSL_DATA``) whose ``experiments/<figure>.toml`` has the text ``old`` replaced by
    ``new`` (``old`` must occur exactly once)."""
    import shutil
    from pathlib import Path

    root = tmp_path / "data"
    shutil.copytree(Path(_HERE).parent / "data", root)
    monkeypatch.setenv("MINISSL_DATA", str(root))

    def edit(figure, old, new):
        path = root / "experiments" / f"{figure}.toml"
        text = path.read_text()
        assert text.count(old) == 1, (figure, old)
        path.write_text(text.replace(old, new))
        return path

    return edit
