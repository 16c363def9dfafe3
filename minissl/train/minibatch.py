"""Minibatches: which ``B`` of the ``N`` training samples one step sees (Python and compiled twins).

Minibatch training (``batch_size=B < N``) draws, every step, ``B`` distinct samples uniformly at
random from the ``N`` clean samples; the step's loss and its negatives see those ``B`` samples
only, as in the minibatch SGD of practice (the paper's conclusion names a large learning rate
with a small batch as a dynamical cause of collapse, after Ziyin et al. 2022b). ``B = N`` is
full-batch training and draws nothing.

The draw is a partial Fisher-Yates shuffle of ``0..N-1`` restarted from the identity every
step: for ``i = 0..B-1``, ``j = i + floor(u_i (N - i))`` with ``u_i = rng.random()``, swap
positions ``i`` and ``j``; the batch is the first ``B`` positions, in that order. It consumes
exactly ``B`` uniforms from the run's noise stream, before the step's augmentation noise, and
:func:`choose_batch` (NumPy) and :func:`choose_batch_compiled` (Numba, inside the compiled
loop) return the same indices for the same generator state, so the Python and the compiled
loop train on the same batches.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._config import CACHE

__all__ = ["choose_batch", "choose_batch_compiled"]


def choose_batch(rng, n, b):
    """Indices (int64, shape ``(b,)``) of one minibatch of ``b`` distinct samples out of ``n``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Advanced by exactly ``b`` uniforms.
    n, b : int
        ``1 <= b <= n`` (checked by the caller, :class:`minissl.train.RunConfig`).
    """
    perm = np.arange(n, dtype=np.int64)
    u = rng.random(b)
    for i in range(b):
        j = i + min(int(u[i] * (n - i)), n - i - 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm[:b].copy()


@njit(cache=CACHE)
def choose_batch_compiled(rng, perm, idx):
    """The compiled twin of :func:`choose_batch`: fills ``idx`` (``b``) using ``perm`` (``n``) as scratch."""
    n = perm.shape[0]
    for i in range(n):
        perm[i] = i
    for i in range(idx.shape[0]):
        j = i + min(np.int64(rng.random() * (n - i)), n - i - 1)
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp
        idx[i] = perm[i]
