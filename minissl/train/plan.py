"""Planning one run of the linear model: data, initial weights, noise streams and the gradient.

:func:`plan` turns a checked :class:`~minissl.train.config.RunConfig` into a :class:`Plan`:
the clean data, the augmentation and its covariance, the initial ``W`` (and ``b``), the
random streams, the control variate's ``bar M`` and ``grad_fn``, the full-batch gradient the
Python loop descends (the compiled loop computes the same inside
:mod:`minissl.train.loop`).

Seeds: one seed drives everything through ``SeedSequence(seed).spawn(4)``: data,
initialisation, training noise and the tracking views (``spawn(4)[:3] == spawn(3)``, so
tracking never changes the other three streams).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import _validation as V
from .. import control_variate as cvm
from ..data import GaussianNoise, gaussian_data, make_augmentation
from ..landscape import effective_landscape
from ..losses.registry import names as loss_names
from .config import RunConfig
from .minibatch import choose_batch

__all__ = ["Plan", "plan"]


@dataclass(eq=False)
class Plan:
    """One planned run: the configuration and everything drawn or derived from it.

    Attributes
    ----------
    config : RunConfig
    data : Dataset
        The clean training set.
    x : ndarray (N, d0)
        Its samples in the run's dtype.
    d0, d1 : int
    augmentation : Augmentation
    C : ndarray (d0, d0)
        Augmentation covariance.
    A0_model, mean_model : ndarray
        Second moment and mean of the noise-averaged view (what the effective landscape uses).
    W, b : ndarray
        Initial weights (``b`` None without bias).
    rng_noise : numpy.random.Generator
        The training noise stream.
    track_seed : SeedSequence
        The tracking views' stream.
    Mbar : ndarray (d0, d0) or None
        The control variate's ``E[hat M]`` when it is used.
    batch : int
        Samples per step: ``batch_size``, or N for full-batch training.
    grad_fn : callable
        ``grad_fn(W, b) -> (value, gW, gb)``: the training objective and its gradient (one
        stochastic estimate: fresh noise, and a fresh minibatch when ``batch < N``).
    compiled : bool
        Whether the run takes the compiled loop.
    fixed_views : tuple or None
        With ``noise="fixed"``: the views drawn once (set at the first step).
    """

    config: RunConfig
    data: Any
    x: np.ndarray
    d0: int
    d1: int
    augmentation: Any
    C: np.ndarray
    A0_model: np.ndarray
    mean_model: np.ndarray
    W: np.ndarray
    b: np.ndarray | None
    rng_noise: np.random.Generator
    track_seed: np.random.SeedSequence
    Mbar: np.ndarray | None
    batch: int = 0
    grad_fn: Callable = None
    compiled: bool = False
    fixed_views: Any = field(default=None)


def plan(config):
    """Draw the data and the initial weights of one run and set up its gradient.

    Parameters
    ----------
    config : RunConfig

    Returns
    -------
    Plan

    Raises
    ------
    ValueError, TypeError
        Settings that need the data to be checked: ``d1``, the augmentation's dimension,
        the control variate's conditions.
    """
    cfg = config
    data_ss, init_ss, noise_ss, track_ss = np.random.SeedSequence(cfg.seed).spawn(4)
    data = cfg.data
    if data is None:
        spread = {"cov": cfg.cov} if cfg.cov is not None else {"variances": cfg.variances}
        data = gaussian_data(cfg.n, seed=np.random.default_rng(data_ss), dtype=cfg.dtype, **spread)
    x = np.ascontiguousarray(data.x, dtype=cfg.dtype)
    d0 = x.shape[1]
    d1 = V.check_int("d1", d0 if cfg.d1 is None else cfg.d1, lo=1)
    augmentation = cfg.augmentation
    if isinstance(augmentation, str):
        augmentation = make_augmentation(augmentation, d0, sigma=cfg.sigma, theta=cfg.theta,
                                         content_dims=cfg.content_dims, b=cfg.scale_b)
    if cfg.batch_size is not None and cfg.batch_size > data.n:
        raise ValueError(f"batch_size == {cfg.batch_size} exceeds the {data.n} training samples (n); it must be "
                         f"between 2 and {data.n}.")
    C = augmentation.covariance(data.A0)
    if C.shape != (d0, d0):
        raise ValueError(f"augmentation has dimension {C.shape[0]} but the data have d0 == {d0} features.")
    W, b = _initial_weights(cfg, np.random.default_rng(init_ss), d0, d1)
    A0_model = augmentation.clean_moment(data.A0)
    mean_model = np.asarray(data.x, dtype=np.float64).mean(0) * (
        augmentation.b if augmentation.name == "scale" else 1.0)
    gaussian = isinstance(augmentation, GaussianNoise)
    P = Plan(config=cfg, data=data, x=x, d0=d0, d1=d1, augmentation=augmentation, C=C, A0_model=A0_model,
             mean_model=mean_model, W=W, b=b, rng_noise=np.random.default_rng(noise_ss), track_seed=track_ss,
             Mbar=_control_mean(cfg, data, C, augmentation), compiled=cfg.compiled_capable and gaussian,
             batch=data.n if cfg.batch_size is None else cfg.batch_size)
    P.grad_fn = _effective_gradient(P) if cfg.model == "effective" else _sampled_gradient(P)
    return P


def _initial_weights(cfg, rng, d0, d1):
    """``W_0 = init_scale G / sqrt(d0)`` or ``init_scale`` times an orthogonal ``W_0``; ``b_0 = 0``."""
    G0 = rng.standard_normal((d1, d0))
    if cfg.init == "orthogonal":
        U_, _, Vt_ = np.linalg.svd(G0, full_matrices=False)
        W = (cfg.init_scale * (U_ @ Vt_)).astype(cfg.dtype)
    else:
        W = (cfg.init_scale / math.sqrt(d0) * G0).astype(cfg.dtype)
    return W, (np.zeros(d1, dtype=cfg.dtype) if cfg.bias else None)


def _control_mean(cfg, data, C, augmentation):
    """``E[hat M]`` of the control variate (:mod:`minissl.control_variate`), or None without it."""
    if not cfg.control_variate:
        return None
    loss = cfg.loss
    if (cfg.model != "exact" or cfg.noise != "fresh" or not cvm.supports(loss)
            or not isinstance(augmentation, GaussianNoise)):
        family = ", ".join(loss_names(lambda s: s.control_variate))
        raise ValueError(
            f"control_variate=True applies to the exact InfoNCE family ({family}) without normalization, with "
            f"fresh Gaussian augmentation; not loss {loss.name!r} (normalize={loss.normalize}), model "
            f"{cfg.model!r}, noise {cfg.noise!r}, augmentation {augmentation.name!r}.")
    return cvm.quadratic_moment_mean(np.asarray(data.x, dtype=np.float64), C, *loss.infonce_numbers())


def _effective_gradient(P):
    cfg = P.config
    land = effective_landscape(cfg.loss, P.A0_model, P.C, n=P.data.n, mean=P.mean_model, kappa=cfg.kappa,
                               d1=P.d1, scale=P.augmentation.name == "scale")
    dtype = cfg.dtype

    def grad_fn(W, b):
        v, gW, gb = land.value_and_grad_unchecked(W.astype(np.float64), None if b is None else b.astype(np.float64))
        return v, gW.astype(dtype), None if gb is None else gb.astype(dtype)

    return grad_fn


def _sampled_gradient(P):
    cfg = P.config
    loss, augmentation, x, Mbar = cfg.loss, P.augmentation, P.x, P.Mbar
    numbers = loss.infonce_numbers() if Mbar is not None else None

    minibatch = P.batch < x.shape[0]

    def grad_fn(W, b):
        if cfg.noise == "fixed" and P.fixed_views is None:
            P.fixed_views = augmentation.views(x, P.rng_noise, cfg.replicates)
        rows = choose_batch(P.rng_noise, x.shape[0], P.batch) if minibatch else None
        if cfg.noise == "fresh":
            x1s, x2s = augmentation.views(x if rows is None else x[rows], P.rng_noise, cfg.replicates)
        else:
            x1s, x2s = P.fixed_views
            if rows is not None:
                x1s, x2s = x1s[:, rows], x2s[:, rows]
        tot_v, tot_gW, tot_gb = 0.0, np.zeros_like(W), None if b is None else np.zeros_like(b)
        for r in range(x1s.shape[0]):
            v, gW, gb = loss.value_and_grad_unchecked(W, x1s[r], x2s[r], b)
            if Mbar is not None:
                gW = gW - (W @ (cvm.quadratic_moment(x1s[r], x2s[r], *numbers) - Mbar)).astype(gW.dtype)
            tot_v += v
            tot_gW += gW
            if gb is not None:
                tot_gb += gb
        k = x1s.shape[0]
        return tot_v / k, tot_gW / k, None if tot_gb is None else tot_gb / k

    return grad_fn
