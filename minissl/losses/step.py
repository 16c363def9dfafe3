"""The compiled step of every loss on the linear model, chosen by its registry entry.

The training loop (:mod:`minissl.train.loop`) is written once and calls :func:`linear_step`
with the loss's ``kernel_id`` (:class:`~minissl.losses.registry.LossSpec`), its kernel
family (:func:`kernel_family`) and whether the step may use threads. The family arrives as
a compile-time constant (``numba.literally``), so each family compiles (once, then from
Numba's cache) to its own loop without the other families' kernels.

Adding a loss with a new kernel: give it a ``kernel_id`` in the registry, a step with the
signature of the others (``W, b, has_bias, x1, x2, x1T, x2T``, the loss's numbers, the
normalization settings, the workspace; returns the value, leaves ``dW, db`` in the
workspace), its threaded and single-thread functions here like :func:`_scl_threads`, and
its entries in ``_STEP`` and ``_FAMILY``.
"""

from __future__ import annotations

import numpy as np
from numba import config, njit, types
from numba.core import errors
from numba.extending import overload

from .._config import CACHE, N_CHUNKS
from .kernels import infonce_step, infonce_step_serial
from .kernels_decorrelation import decorrelation_step
from .kernels_scl import scl_step, scl_step_serial
from .registry import KERNEL_BARLOW, KERNEL_INFONCE, KERNEL_SCL, KERNEL_VICREG

__all__ = ["linear_step", "step_workspace", "kernel_family", "has_float32_step", "FLOAT32_FAMILIES"]


# kernel_id -> the family branch of linear_step (Barlow Twins and VICReg share the decorrelation step)
_FAMILY = {KERNEL_INFONCE: KERNEL_INFONCE, KERNEL_SCL: KERNEL_SCL, KERNEL_BARLOW: KERNEL_BARLOW,
           KERNEL_VICREG: KERNEL_BARLOW}


# families whose step runs in float32 (float32 products and gradients, float64 softmax and sums);
# the others compute in float64 whatever the inputs
FLOAT32_FAMILIES = frozenset({KERNEL_INFONCE})


def has_float32_step(kernel_id):
    """Whether the compiled step of ``kernel_id`` runs in float32 on float32 weights and views."""
    return kernel_id is not None and kernel_family(kernel_id) in FLOAT32_FAMILIES


def kernel_family(kernel_id):
    """The branch of :func:`linear_step` that runs ``kernel_id`` (a new kernel needs an entry here)."""
    try:
        return _FAMILY[int(kernel_id)]
    except KeyError:
        raise ValueError(f"kernel_id == {kernel_id!r} has no branch in minissl.losses.step.linear_step "
                         f"(known: {sorted(_FAMILY)}).") from None


@njit(cache=CACHE)
def step_workspace(n, d0, d1, both, W):
    """Buffers of one :func:`linear_step` for ``n`` samples, ``d0`` inputs and ``d1`` outputs.

    Returns ``(z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db)``:
    representations, their norms and transposes, per-chunk accumulators, the gradients with
    respect to the outputs and the weight gradients ``dW`` (d1, d0) and ``db`` (d1,). The
    products and gradients take the dtype of the weights ``W`` (float32 or float64); norms,
    positive logits and log-sum-exps are float64.
    """
    dt = W.dtype
    nchunks = min(N_CHUNKS, n)
    return (np.empty((n, d1), dt), np.empty((n, d1), dt), np.empty(n), np.empty(n), np.empty((d1, n), dt),
            np.empty((d1, n), dt), np.empty((n, d1), dt), np.empty(n), np.empty((nchunks, d1, n), dt),
            np.empty((nchunks, d1, n) if both else (nchunks, 1, 1), dt), np.empty(n), np.empty((d1, n), dt),
            np.empty((d1, n), dt), np.empty((d1, d0), dt), np.empty(d1, dt))


def _decorrelation(family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps,
                   wd, ws):
    z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = ws
    return decorrelation_step(kernel - KERNEL_BARLOW, prm, W, b, has_bias, x1, x2, x1T, x2T, normalize, c,
                              norm_eps, wd, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, g1, g2, dW, db)


def _infonce_threads(family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps,
                     wd, ws):
    z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = ws
    return infonce_step(W, b, has_bias, x1, x2, x1T, x2T, prm[0], prm[1], both, normalize, c, norm_eps,
                        wd, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db)


def _infonce_one_thread(family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c,
                        norm_eps, wd, ws):
    z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = ws
    return infonce_step_serial(W, b, has_bias, x1, x2, x1T, x2T, prm[0], prm[1], both, normalize, c,
                               norm_eps, wd, z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1,
                               g2, dW, db)


def _scl_threads(family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps,
                 wd, ws):
    z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = ws
    return scl_step(W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps, wd, z1, z2, nrm1,
                    nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db)


def _scl_one_thread(family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps,
                    wd, ws):
    z1, z2, nrm1, nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db = ws
    return scl_step_serial(W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps, wd, z1, z2, nrm1,
                           nrm2, z1T, z2T, gA, lpos, buf1, buf2, lse, g1, g2, dW, db)


# (family, parallel) -> its step: a loop compiles only its family's threaded or single-thread
# kernels (Barlow Twins and VICReg share the decorrelation step, which has no threads)
_STEP = {(KERNEL_INFONCE, True): _infonce_threads, (KERNEL_INFONCE, False): _infonce_one_thread,
               (KERNEL_SCL, True): _scl_threads, (KERNEL_SCL, False): _scl_one_thread,
               (KERNEL_BARLOW, True): _decorrelation, (KERNEL_BARLOW, False): _decorrelation}


def linear_step(family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c, norm_eps, wd, ws):
    """Value of the loss at ``W, b`` on one pair of views; its gradient goes to ``ws``'s ``dW, db``.

    In compiled code ``family`` and ``parallel`` must be compile-time constants
    (``numba.literally`` in the caller): the overload below picks the step while typing, so
    a loop compiles only its own family's threaded or single-thread kernels (a value test
    ``if family == ...`` would type, and on a cold cache compile, every branch). Called from
    Python (or with ``NUMBA_DISABLE_JIT=1``) it dispatches on the values.

    Parameters
    ----------
    family : int (compile-time constant)
        :func:`kernel_family` of ``kernel``.
    kernel : int
        The loss's ``kernel_id``: InfoNCE family (``prm = (alpha, beta)``), SCL (``prm``
        unused), Barlow Twins (``prm = (lam, standardize, eps)``) or VICReg
        (``prm = (inv, var, cov, gamma, eps)``).
    parallel : bool (compile-time constant)
        Threads inside the step (one large run) or none (one run per thread in a batch).
        Both give bit-identical results (fixed chunks, fixed order of every sum).
    prm : ndarray (float64)
        The loss's numbers, ``LossSpec.kernel_params``.
    W, b, has_bias : the linear model ``f(x) = W x + b``.
    x1, x2, x1T, x2T : the two views (N, d0) and their transposes (d0, N).
    both, normalize, c, norm_eps, wd :
        Negatives from both views, output normalization to squared norm ``c``, its
        regulariser, weight decay.
    ws : tuple
        :func:`step_workspace`.
    """
    return _STEP[(family, bool(parallel))](family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c,
                         norm_eps, wd, ws)


if not config.DISABLE_JIT:
    @overload(linear_step, jit_options={"cache": CACHE})
    def _linear_step_typed(family, kernel, parallel, prm, W, b, has_bias, x1, x2, x1T, x2T, both, normalize, c,
                           norm_eps, wd, ws):
        if not isinstance(family, types.IntegerLiteral):
            raise errors.TypingError("linear_step: family must be a compile-time constant "
                                     f"(numba.literally in the caller), got {family}")
        if (family.literal_value, True) not in _STEP:
            raise errors.TypingError(f"linear_step: no step for family {family.literal_value} "
                                     f"(known: {sorted({f for f, _ in _STEP})})")
        if not isinstance(parallel, types.BooleanLiteral):
            raise errors.TypingError("linear_step: parallel must be a compile-time constant "
                                     f"(numba.literally in the caller), got {parallel}")
        return _STEP[(family.literal_value, parallel.literal_value)]
