"""Vectorisable ``exp`` of a row of logits, in float64 or float32, for the softmax of the pair kernels.

The llvmlite wheels from PyPI do not link a vector math library, so ``math.exp`` in a Numba
loop stays scalar. These loops are written so that LLVM vectorises them:
``exp(v) = 2^k exp(r)``, ``k = round(v / ln 2)``, ``r = v - k ln 2`` (Cody-Waite split of
``ln 2``, in float64), ``exp(r)`` by its Taylor polynomial on ``|r| <= ln2 / 2``, and ``2^k``
as the float whose exponent bits are ``k`` (a bitcast of an integer register, so the whole
``exp`` is one loop that LLVM vectorises; the earlier two-pass form, which stored the integers
to memory and read them back as floats, was ~10% slower).

* :func:`exp_row64` — polynomial of degree 12 in float64: truncation below 2e-16 relative,
  ~1 ulp in all (``tests/test_kernels.py``). Arguments below -700 count as -700
  (``exp(-700) ~ 1e-304``, a normal number).
* :func:`exp_row32` — for the float32 kernels: the argument and its reduction in float64,
  then a polynomial of degree 7 in float32 (truncation ``(ln2/2)^8 / 8! = 5e-9`` relative,
  below float32's resolution of 6e-8; measured error below 1 float32 epsilon,
  ``tests/test_kernels.py``). Arguments below -87 count as -87 (``exp(-87) ~ 1.6e-38``, the smallest normal float32 is 1.2e-38). The
  logits of a float32 step carry float32 rounding already, so a float32 ``exp`` adds an
  error of the same size, not a new one; every sum of its results is still taken in float64.

Arguments above 709 (float64) or 88 (float32) are clamped there too, so that the exponent
bits cannot overflow into the sign; callers shift by a bound of the row, so arguments are
at most rounding above 0, and :func:`sum_floor`'s callers fall back to the true maximum
when a total is implausibly large.

:func:`exp_into` picks one by the output's dtype while Numba types the caller (one kernel per
dtype, no runtime branch). :func:`sum_floor` gives the smallest row total that each form
represents without losing the terms clamped at its lower limit; callers shift the row by its
true maximum when the total falls below it.
"""

from __future__ import annotations

import numpy as np
from numba import config, njit, types
from numba.core import errors
from numba.extending import intrinsic, overload

from .._config import CACHE, FASTMATH

__all__ = ["exp_row", "exp_into", "exp_row64", "exp_row32", "sum_floor", "LOWER", "EXCLUDED"]

EXCLUDED = -1.0e300  # logit of a pair that is not in a softmax's denominator (its exp counts as 0)

_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Lower clamp of the argument and the smallest safe row total, per dtype: N terms clamped at
# exp(LOWER) add at most N exp(LOWER) / floor to a total >= floor (relative, for N < 1e4:
# < 1e-200 in float64, < 2e-14 in float32).
LOWER = {np.dtype(np.float64): -700.0, np.dtype(np.float32): -87.0}
_SUM_FLOOR = {np.dtype(np.float64): 1e-250, np.dtype(np.float32): 1e-20}
_F32 = np.float32
_C32 = tuple(_F32(1.0 / f) for f in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0))


if config.DISABLE_JIT:  # pure Python (debugging, coverage)
    def _bits_as_float(k):
        """The float whose bits are the integer ``k`` (int64 -> float64, int32 -> float32)."""
        k = np.asarray(k)
        return k.view(np.float64 if k.dtype == np.int64 else np.float32)[()]
else:
    @intrinsic
    def _bits_as_float(typingctx, k):
        """The float whose bits are the integer ``k`` (int64 -> float64, int32 -> float32): the
        ``2^k`` of the range reduction, in a register (vectorises with the polynomial)."""
        if k not in (types.int64, types.int32):
            raise errors.TypingError(f"_bits_as_float: int64 or int32, got {k}")
        ft = types.float64 if k == types.int64 else types.float32
        sig = ft(k)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(ft))

        return sig, codegen


@njit(fastmath=FASTMATH, cache=CACHE)
def exp_row64(x, shift, out):
    """``out[j] = exp(x[j] - shift)`` (float64) for ``x[j] <= shift``."""
    n = x.shape[0]
    for j in range(n):
        v = x[j] - shift
        v = v if v > -700.0 else -700.0
        v = v if v < 709.0 else 709.0  # the exponent bits must not overflow (callers keep v <= ~0)
        kf = np.floor(v * _INV_LN2 + 0.5)
        r = (v - kf * _LN2_HI) - kf * _LN2_LO
        p = 2.08767569878680989792e-09
        p = p * r + 2.50521083854417187751e-08
        p = p * r + 2.75573192239858906526e-07
        p = p * r + 2.75573192239858906526e-06
        p = p * r + 2.48015873015873015873e-05
        p = p * r + 1.98412698412698412698e-04
        p = p * r + 1.38888888888888888889e-03
        p = p * r + 8.33333333333333333333e-03
        p = p * r + 4.16666666666666666667e-02
        p = p * r + 1.66666666666666666667e-01
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[j] = p * _bits_as_float((np.int64(kf) + 1023) << 52)


@njit(fastmath=FASTMATH, cache=CACHE)
def exp_row32(x, shift, out):
    """``out[j] = exp(x[j] - shift)`` (float32) for float64 ``x[j] <= shift``."""
    n = x.shape[0]
    c0, c1, c2, c3, c4, c5, c6, c7 = _C32
    for j in range(n):
        v = x[j] - shift
        v = v if v > -87.0 else -87.0
        v = v if v < 88.0 else 88.0  # the exponent bits must not overflow (callers keep v <= ~0)
        kf = np.floor(v * _INV_LN2 + 0.5)
        r = np.float32((v - kf * _LN2_HI) - kf * _LN2_LO)
        p = c0 * r + c1
        p = p * r + c2
        p = p * r + c3
        p = p * r + c4
        p = p * r + c5
        p = p * r + c6
        p = p * r + c7
        out[j] = p * _bits_as_float(np.int32((np.int64(kf) + 127) << 23))  # Numba widens int32 sums


def exp_into(x, shift, out):
    """``out[j] = exp(x[j] - shift)`` in ``out``'s dtype (:func:`exp_row64` or :func:`exp_row32`)."""
    if out.dtype == np.float32:
        exp_row32(x, shift, out)
    else:
        exp_row64(x, shift, out)


if config.DISABLE_JIT:  # pure Python (debugging, coverage)
    def sum_floor(out):
        """Smallest safe row total of ``exp`` values in ``out``'s dtype (see the module doc)."""
        return _SUM_FLOOR[np.dtype(out.dtype)]
else:
    @overload(exp_into, jit_options={"cache": CACHE})
    def _exp_into_typed(x, shift, out):
        if out.dtype == types.float32:
            return lambda x, shift, out: exp_row32(x, shift, out)
        if out.dtype == types.float64:
            return lambda x, shift, out: exp_row64(x, shift, out)
        raise errors.TypingError(f"exp_into: out must be float32 or float64, got {out.dtype}")

    @intrinsic
    def sum_floor(typingctx, out):
        """Smallest safe row total of ``exp`` values in ``out``'s dtype (a float64 compile-time
        constant: 1e-250 for float64, 1e-20 for float32; see the module doc)."""
        value = _SUM_FLOOR[np.dtype(str(out.dtype))]
        sig = types.float64(out)

        def codegen(context, builder, signature, args):
            return context.get_constant(types.float64, value)

        return sig, codegen


def exp_row(x, dtype=np.float64):
    """``exp`` of a 1-D array of non-positive values, computed by the kernels' ``exp`` of ``dtype``
    (tested against ``np.exp``)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape[0], dtype=dtype)
    exp_into(x, 0.0, out)
    return out
