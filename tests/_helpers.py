"""Shared numerical helpers and tolerances for the minissl test-suite.

Imported as ``from _helpers import ...``: ``tests/`` has no ``__init__.py``, so with
pytest's default ``prepend`` import mode the folder is put on ``sys.path`` (by
``tests/conftest.py`` and by every test module in it).

Gradient tolerances (float64, central differences with ``h = 1e-6``)
--------------------------------------------------------------------
The error of a central difference is ``O(h^2 f''') + O(eps_mach |f| / h)``, i.e. about
1e-10 relative for the O(1) losses used here, so:

* ``GRAD_RTOL``: max |analytic - numeric| / max(1, max |numeric|);
* ``GRAD_MEAN_RTOL``: mean |analytic - numeric| / max(1, max |numeric|).
"""

from __future__ import annotations

import numpy as np

__all__ = ["central_diff", "grad_errors", "assert_grad_close", "GRAD_RTOL", "GRAD_MEAN_RTOL"]

GRAD_RTOL = 1e-6
GRAD_MEAN_RTOL = 1e-7


def central_diff(f, x, h=1e-6):
    """Numerical gradient of the scalar function ``f`` at the float64 array ``x``.

    ``x`` may have any shape; ``f`` is called with arrays of that shape (fresh copies,
    ``x`` itself is never modified). Returns an array shaped like ``x``.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.empty_like(x)
    flat = grad.reshape(-1)
    for i in range(x.size):
        xp = x.copy()
        xm = x.copy()
        xp.reshape(-1)[i] += h
        xm.reshape(-1)[i] -= h
        flat[i] = (float(f(xp)) - float(f(xm))) / (2.0 * h)
    return grad


def grad_errors(analytic, numeric):
    """``(max error, mean error)`` of ``analytic`` against ``numeric``, relative to
    ``max(1, max |numeric|)``."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    assert analytic.shape == numeric.shape, (analytic.shape, numeric.shape)
    scale = max(1.0, float(np.max(np.abs(numeric)))) if numeric.size else 1.0
    err = np.abs(analytic - numeric)
    if err.size == 0:
        return 0.0, 0.0
    return float(err.max()) / scale, float(err.mean()) / scale


def assert_grad_close(analytic, numeric, what="gradient"):
    """Assert ``analytic`` matches the finite-difference ``numeric`` within GRAD_RTOL / GRAD_MEAN_RTOL."""
    mx, mean = grad_errors(analytic, numeric)
    assert np.all(np.isfinite(analytic)), f"{what}: non-finite analytic gradient {analytic}"
    assert mx <= GRAD_RTOL, (
        f"{what}: max relative error {mx:.3g} > {GRAD_RTOL:g}\nanalytic=\n{analytic}\nnumeric=\n{numeric}"
    )
    assert mean <= GRAD_MEAN_RTOL, f"{what}: mean relative error {mean:.3g} > {GRAD_MEAN_RTOL:g}"

# Numba kernels vs the NumPy reference: one tolerance per dtype (relative to max(1, |ref|)).
# float64: the kernels reorder sums (fixed chunks, fused loops) -> ~1e-15 observed, 1e-12 allowed
# (normalization divides by |z|, amplifying round-off for small outputs).
# float32: inputs are float32, the kernels compute in float64 and round the result, the
# reference computes in float32 -> ~1e-6 observed, 1e-4 allowed.
PARITY_RTOL = {"float64": 1e-12, "float32": 1e-4}


def assert_parity(actual, desired, dtype):
    import numpy as _np

    tol = PARITY_RTOL[_np.dtype(dtype).name]
    actual = _np.asarray(actual, dtype=_np.float64)
    desired = _np.asarray(desired, dtype=_np.float64)
    scale = max(1.0, float(_np.max(_np.abs(desired)))) if desired.size else 1.0
    err = float(_np.max(_np.abs(actual - desired))) if desired.size else 0.0
    assert err <= tol * scale, f"max |numba - numpy| = {err:.3g} > {tol:g} * {scale:.3g}"
