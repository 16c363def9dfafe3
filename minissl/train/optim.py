"""The optimizers of every training loop in minissl: Adam, SGD and the learning-rate schedule.

One module, two forms side by side with the same order of operations (Adam's moment weights
differ in the last bit, see below), so that a Python loop and a compiled loop given the same
gradients take the same steps up to round-off:

* Python (NumPy arrays, any list of parameters): :class:`Adam`, :class:`SGD`,
  :func:`make_optimizer` and :func:`lr_at`; used by the linear model's Python loop
  (:mod:`minissl.train.simulate`), the siamese networks (:mod:`minissl.siamese`) and the MLP
  (:mod:`minissl.nonlinear.train`).
* compiled (Numba, the linear model's ``W`` and ``b``): :func:`lr_at_compiled` and
  :func:`update_compiled`, used by the compiled training loop (:mod:`minissl.train.loop`).

Adam (Kingma & Ba 2015) uses ``beta1 = 0.9``, ``beta2 = 0.999``, ``eps = 1e-8`` and the
bias-corrected moments; SGD is heavy-ball ``buf = momentum * buf + g``. The cosine schedule
decays from ``lr`` at step 0 to ``lr_final`` at the last step:
``lr_final + (lr - lr_final) (1 + cos(pi t / (T - 1))) / 2``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import _validation as V
from .._config import CACHE

__all__ = ["Adam", "SGD", "OPTIMIZERS", "SCHEDULES", "make_optimizer", "lr_at", "lr_at_compiled",
           "update_compiled"]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")

# Adam's constants. The moment weights differ in the last bit between the two forms: the
# Python form computes 1 - beta (0.09999999999999998), the compiled form uses 0.1 and 0.001,
# as the linear model's two loops did before they shared this module (its golden outputs stay
# bit-identical). siamese.py and the MLP used 0.1 before: their Adam runs moved by ~1e-15
# relative when they switched to this module.
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
_W1, _W2 = 0.1, 0.001
_PY_W1, _PY_W2 = 1.0 - BETA1, 1.0 - BETA2


class Adam:
    """Adam on a list of arrays, updated in place.

    Parameters
    ----------
    params : list of ndarray
        The parameters (their shapes size the moment buffers).
    """

    def __init__(self, params):
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads, lr, scales=None):
        """One update of every parameter with learning rate ``lr`` (times ``scales[k]`` if given)."""
        self.t += 1
        c1 = 1.0 - BETA1**self.t
        c2 = 1.0 - BETA2**self.t
        for k, (p, g, m, v) in enumerate(zip(params, grads, self.m, self.v)):
            m *= BETA1
            m += _PY_W1 * g
            v *= BETA2
            v += _PY_W2 * g * g
            rate = lr if scales is None else lr * scales[k]
            p -= (rate * (m / c1) / (np.sqrt(v / c2) + EPS)).astype(p.dtype, copy=False)


class SGD:
    """Gradient descent with optional heavy-ball momentum, on a list of arrays updated in place."""

    def __init__(self, params, *, momentum=0.0):
        self.momentum = momentum
        self.buf = [np.zeros_like(p) for p in params]

    def step(self, params, grads, lr, scales=None):
        """One update of every parameter with learning rate ``lr`` (times ``scales[k]`` if given)."""
        for k, (p, g, buf) in enumerate(zip(params, grads, self.buf)):
            if self.momentum:
                buf *= self.momentum
                buf += g
                g = buf
            rate = lr if scales is None else lr * scales[k]
            p -= (rate * g).astype(p.dtype, copy=False)


def make_optimizer(name, params, momentum=0.0):
    """``Adam(params)`` or ``SGD(params, momentum)``; momentum applies to SGD only.

    Raises
    ------
    ValueError
        Unknown ``name``, or ``momentum`` outside ``[0, 1)`` or given with Adam.
    """
    V.check_choice("optimizer", name, OPTIMIZERS)
    momentum = V.check_scalar("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    if name == "adam":
        if momentum:
            raise ValueError(f"momentum == {momentum!r} applies to optimizer='sgd', not 'adam'.")
        return Adam(params)
    return SGD(params, momentum=momentum)


def lr_at(step, steps, lr, schedule, lr_final):
    """Learning rate at ``step`` (0-based) of ``steps``: ``lr``, or the cosine decay to ``lr_final``."""
    if schedule == "constant":
        return lr
    frac = step / max(steps - 1, 1)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * frac))


@njit(cache=CACHE)
def lr_at_compiled(t, steps, lr, lr_final, cosine):
    """:func:`lr_at` in compiled code (``cosine`` a flag)."""
    if not cosine:
        return lr
    frac = t / max(steps - 1, 1)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + np.cos(np.pi * frac))


@njit(cache=CACHE)
def update_compiled(W, b, has_bias, gW, gb, mW, vW, mb, vb, t, lr_t, adam, momentum):
    """One Adam (``adam``) or SGD step of ``W`` and ``b`` in place at step ``t`` (0-based).

    ``mW, vW, mb, vb``: the moment buffers (SGD uses ``mW, mb``). Returns False when ``W``
    became non-finite.
    """
    d1, d0 = W.shape
    ok = True
    c1 = 1.0 - BETA1 ** (t + 1)
    c2 = 1.0 - BETA2 ** (t + 1)
    for p in range(d1):
        for q in range(d0):
            g = gW[p, q]
            if adam:
                mW[p, q] = BETA1 * mW[p, q] + _W1 * g
                vW[p, q] = BETA2 * vW[p, q] + _W2 * g * g
                W[p, q] -= lr_t * (mW[p, q] / c1) / (np.sqrt(vW[p, q] / c2) + EPS)
            else:
                mW[p, q] = momentum * mW[p, q] + g
                W[p, q] -= lr_t * mW[p, q]
            ok = ok and np.isfinite(W[p, q])
        if has_bias:
            g = gb[p]
            if adam:
                mb[p] = BETA1 * mb[p] + _W1 * g
                vb[p] = BETA2 * vb[p] + _W2 * g * g
                b[p] -= lr_t * (mb[p] / c1) / (np.sqrt(vb[p] / c2) + EPS)
            else:
                mb[p] = momentum * mb[p] + g
                b[p] -= lr_t * mb[p]
    return ok
