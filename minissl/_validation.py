"""Argument checks shared by every public entry point.

Every message names the parameter, the value received and what is allowed, e.g.
``"sigma == -1.0, must be >= 0."``. The library raises :class:`ValueError` or
:class:`TypeError`; the CLI turns these into ``click.BadParameter`` (exit code 2).
Arrays given by the user are never modified: checks return converted copies.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_scalar",
    "check_int",
    "check_choice",
    "check_bool",
    "check_array",
    "check_matrix_pair",
    "check_covariance",
    "check_dtype",
    "check_rng",
]

_FLOAT_DTYPES = (np.float32, np.float64)


def _fmt(value):
    if isinstance(value, float):
        return repr(value)
    return repr(value)


def check_scalar(name, value, *, lo=None, hi=None, lo_open=False, hi_open=False,
                 allow_none=False, allow_inf=False):
    """Check a finite real scalar lies in an interval; return it as ``float``.

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : object
        The value to check.
    lo, hi : float or None
        Bounds; ``None`` means unbounded on that side.
    lo_open, hi_open : bool
        Whether the bound itself is excluded.
    allow_none : bool
        Return ``None`` unchanged when ``value is None``.
    allow_inf : bool
        Accept ``+inf`` (never NaN or ``-inf``).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} == {_fmt(value)}, must be a real number.")
    v = float(value)
    if not np.isfinite(v) and not (allow_inf and v == np.inf):
        raise ValueError(f"{name} == {v!r}, must be {'finite or +inf' if allow_inf else 'finite'}.")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} == {v!r}, must be {'>' if lo_open else '>='} {lo!r}.")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ValueError(f"{name} == {v!r}, must be {'<' if hi_open else '<='} {hi!r}.")
    return v


def check_int(name, value, *, lo=None, hi=None, allow_none=False):
    """Check an integer lies in ``[lo, hi]``; return it as ``int``."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} == {_fmt(value)}, must be an integer.")
    v = int(value)
    if lo is not None and v < lo:
        raise ValueError(f"{name} == {v!r}, must be >= {lo!r}.")
    if hi is not None and v > hi:
        raise ValueError(f"{name} == {v!r}, must be <= {hi!r}.")
    return v


def check_choice(name, value, choices):
    """Check ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} == {_fmt(value)}, must be one of {allowed}.")
    return value


def check_bool(name, value):
    """Check ``value`` is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} == {_fmt(value)}, must be True or False.")
    return bool(value)


def check_dtype(name, dtype):
    """Return a float dtype (float64 or float32); anything else is a TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} == {dtype!r}, must be float64 or float32.") from None
    if dt.type not in _FLOAT_DTYPES:
        raise TypeError(f"{name} == {dt.name!r}, must be float64 or float32.")
    return dt


def check_array(name, value, *, ndim=None, shape=None, dtype=None, min_rows=None):
    """Convert to a finite float array and check its shape.

    Parameters
    ----------
    name : str
        Parameter name used in messages.
    value : array_like
        Input; integer and boolean arrays are converted to ``dtype``.
    ndim : int, optional
        Required number of dimensions.
    shape : tuple, optional
        Required shape; ``None`` entries are free.
    dtype : dtype, optional
        Result dtype. Default: keep float32/float64, convert anything else to float64.
    min_rows : int, optional
        Minimum size of the first axis.

    Returns
    -------
    ndarray
        A new array (never the caller's object), C-contiguous.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} == {_fmt(value)}, must be an array of real numbers.")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {arr.dtype}, must hold real numbers.")
    if dtype is None:
        dtype = arr.dtype if arr.dtype.type in _FLOAT_DTYPES else np.float64
    arr = np.array(arr, dtype=dtype, order="C", copy=True)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} has shape {arr.shape}, must be {ndim}-dimensional.")
    if shape is not None:
        ok = len(shape) == arr.ndim and all(s is None or s == t for s, t in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} has shape {arr.shape}, must have shape {want}.")
    if min_rows is not None and arr.shape[0] < min_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows, must have at least {min_rows}.")
    if arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); all entries must be finite.")
    return arr


def check_matrix_pair(W, x1, x2, b=None):
    """Check ``W`` (d1, d0), views ``x1``, ``x2`` (N, d0) and bias ``b`` (d1,).

    All arrays are converted to the dtype of ``W`` (float64 unless ``W`` is float32).
    Returns the converted ``(W, x1, x2, b)``.
    """
    W = check_array("W", W, ndim=2)
    dt = W.dtype
    d1, d0 = W.shape
    if d0 < 1 or d1 < 1:
        raise ValueError(f"W has shape {W.shape}, both dimensions must be >= 1.")
    x1 = check_array("x1", x1, ndim=2, dtype=dt)
    x2 = check_array("x2", x2, ndim=2, dtype=dt)
    if x1.shape[1] != d0:
        raise ValueError(f"x1 has shape {x1.shape} but W expects d0 == {d0} features.")
    if x2.shape != x1.shape:
        raise ValueError(f"x2 has shape {x2.shape}, must match x1's shape {x1.shape}.")
    if x1.shape[0] < 2:
        raise ValueError(f"x1 has {x1.shape[0]} rows, must have at least 2 samples.")
    if b is not None:
        b = check_array("b", b, ndim=1, dtype=dt)
        if b.shape[0] != d1:
            raise ValueError(f"b has shape {b.shape} but W has d1 == {d1} outputs.")
    return W, x1, x2, b


def check_covariance(name, value, *, dim=None, psd_tol=1e-10):
    """Check a symmetric positive semi-definite matrix; return a float64 copy.

    Symmetry is tested with a relative tolerance of 1e-10 and positive
    semi-definiteness as ``min eig >= -psd_tol * max(1, max |eig|)``.
    """
    arr = check_array(name, value, ndim=2, dtype=np.float64)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} has shape {arr.shape}, must be square.")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} has shape {arr.shape}, must be ({dim}, {dim}).")
    scale = max(1.0, float(np.max(np.abs(arr)))) if arr.size else 1.0
    asym = float(np.max(np.abs(arr - arr.T))) if arr.size else 0.0
    if asym > 1e-10 * scale:
        raise ValueError(f"{name} is not symmetric (max |{name} - {name}.T| == {asym:.3g}).")
    arr = 0.5 * (arr + arr.T)
    evals = np.linalg.eigvalsh(arr)
    if evals.size and evals[0] < -psd_tol * max(1.0, float(np.max(np.abs(evals)))):
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue == {evals[0]:.3g}, must be >= 0)."
        )
    return arr


def check_rng(seed):
    """Return a ``numpy.random.Generator`` from a seed, a Generator, or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    seed = check_int("seed", seed, lo=0)
    return np.random.default_rng(seed)
