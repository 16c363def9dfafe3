"""Full-batch training of the MLP on fresh augmentation noise (Appendix B: SGD until convergence), on
the engine of one's choice: :func:`value_and_grad` sends each step to the CPU (:mod:`.mlp`) or the
GPU (:mod:`.cuda`)."""

from __future__ import annotations

import numpy as np

from .._progress import report
from .. import _validation as V
from .cuda import require, value_and_grad_gpu
from ..train.optim import OPTIMIZERS, make_optimizer
from .mlp import check_loss, init_mlp, value_and_grad_cpu

__all__ = ["train_mlp", "value_and_grad", "ENGINES"]

ENGINES = ("numpy", "numba", "cuda")


def value_and_grad(mlp, loss, x1, x2, engine="numpy", weight_decay=0.0):
    """Loss of one batch of paired views and its gradient with respect to every parameter, on any engine.

    Arguments and result as :func:`~minissl.nonlinear.mlp.value_and_grad_cpu`, with one more engine.

    Parameters
    ----------
    engine : {"numpy", "numba", "cuda"}
        ``numpy``/``numba``: :func:`~minissl.nonlinear.mlp.value_and_grad_cpu`; ``cuda``: the
        network on the GPU (:func:`~minissl.nonlinear.cuda.value_and_grad_gpu`; the loss core on
        the host).
    """
    check_loss(loss)
    V.check_choice("engine", engine, ENGINES)
    if engine == "cuda":
        return value_and_grad_gpu(mlp, loss, x1, x2, weight_decay=weight_decay)
    return value_and_grad_cpu(mlp, loss, x1, x2, engine=engine, weight_decay=weight_decay)


def train_mlp(loss, data, augmentation, widths=(32, 32), d_out=2, activation="tanh", steps=2000, lr=0.05,
              optimizer="sgd", momentum=0.9, weight_decay=0.0, seed=0, engine="numba", record_every=None):
    """Train the MLP of :mod:`minissl.nonlinear.mlp` on one exact loss.

    Parameters
    ----------
    loss : Loss
        InfoNCE family, optionally normalized.
    data : minissl.data.Dataset
    augmentation : minissl.data.Augmentation
        Fresh views every step (the noise-averaged loss, as in the linear simulator).
    widths, d_out, activation :
        Architecture (two hidden layers).
    steps, lr, optimizer, momentum, weight_decay :
        Full-batch SGD (heavy-ball ``momentum``) or Adam (:mod:`minissl.train.optim`; Adam
        ignores ``momentum``).
    seed : int
        Drives the initialisation and the noise (independent streams).
    engine : {"numba", "numpy", "cuda"}

    Returns
    -------
    mlp : MLP
    history : dict
        ``step`` and ``loss`` every ``record_every`` steps (default ``steps // 100``).
    """
    check_loss(loss)
    steps = V.check_int("steps", steps, lo=1)
    lr = V.check_scalar("lr", lr, lo=0.0, lo_open=True)
    V.check_choice("optimizer", optimizer, OPTIMIZERS)
    momentum = V.check_scalar("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    weight_decay = V.check_scalar("weight_decay", weight_decay, lo=0.0)
    V.check_choice("engine", engine, ("numba", "numpy", "cuda"))
    if engine == "cuda":
        require()
    seed = V.check_int("seed", seed, lo=0)
    record_every = V.check_int("record_every", max(steps // 100, 1) if record_every is None else record_every, lo=1)
    ss_init, ss_noise = np.random.SeedSequence(seed).spawn(2)
    mlp = init_mlp(data.x.shape[1], widths, d_out, activation, seed=np.random.default_rng(ss_init))
    rng = np.random.default_rng(ss_noise)
    params = mlp.params()
    opt = make_optimizer(optimizer, params, momentum if optimizer == "sgd" else 0.0)
    hist = {"step": [], "loss": []}
    x = np.asarray(data.x, dtype=np.float64)
    for t in range(1, steps + 1):
        x1, x2 = augmentation.views(x, rng)
        value, grads = value_and_grad(mlp, loss, x1[0], x2[0], engine=engine, weight_decay=weight_decay)
        if not np.isfinite(value) or not all(np.all(np.isfinite(g)) for g in grads):
            raise FloatingPointError(f"MLP training diverged at step {t}; lower lr (== {lr!r}).")
        opt.step(params, grads, lr)
        report(t, steps)
        if t % record_every == 0 or t == steps:
            hist["step"].append(t)
            hist["loss"].append(value)
    return mlp, hist
