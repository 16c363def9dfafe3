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
