"""Training of a linear SSL model on an exact loss (full batch or minibatches) or on its effective landscape.

Noise modes
-----------
``noise="fresh"`` (default)
    New augmentation noise every step: stochastic gradient descent on the
    noise-averaged loss (the paper's Eq. 1, an expectation over the noise). Its
    stationary points are the ones the effective landscape (:mod:`minissl.landscape`)
    models.
``noise="fixed"``
    One finite augmented dataset drawn once: deterministic descent on the empirical
    loss, the reading of Eq. (2) "for a fixed set of noises". Its Hessian at the origin
    differs from the noise-averaged one by ``O(C / sqrt(N))``, so stationary points and
    collapse thresholds differ at finite N.

``batch_size=B`` (< N) trains on a fresh minibatch of B of the N samples every step
(:mod:`minissl.train.minibatch`); negatives come from the same batch.

``replicates=R`` averages the gradient over R independent pairs of views per step
(fresh: new each step; fixed: R pairs drawn once), which leaves the expectation
unchanged and divides the gradient-noise variance by R.

Convergence diagnostics (reported with every result): :mod:`minissl.train.diagnostics`.

Layers: :mod:`~minissl.train.config` checks the settings once (:class:`RunConfig`),
:mod:`~minissl.train.plan` draws the data and the initial weights, the Python loop below or
the compiled loop (:mod:`~minissl.train.loop`) trains with :mod:`~minissl.train.optim`, and
:mod:`~minissl.train.diagnostics` judges convergence.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._progress import report
from ..data import Dataset
from ..losses import Loss
from ..losses.registry import DEFAULT_LOSS
from ..metrics import spectrum
from . import diagnostics
from .config import RunConfig
from .optim import lr_at, make_optimizer
from .plan import plan

__all__ = ["simulate", "simulate_batch", "run", "run_batch", "SimulationResult", "ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """A training run ended before its convergence diagnostics were met."""


@dataclass
class SimulationResult:
    """Outcome of :func:`simulate`.

    Attributes
    ----------
    W : ndarray (d1, d0)
    b : ndarray (d1,) or None
    eigenvalues : ndarray (d0,)
        Eigenvalues of ``W^T W``, descending.
    history : dict of ndarray
        ``step``, ``loss`` (the training objective at that step, a stochastic estimate
        with fresh noise), ``grad_norm`` (norm of that step's gradient),
        ``spectrum`` (rows: eigenvalues of ``W^T W``) and the snapshots ``W`` (and ``b``
        with a bias), every ``record_every`` steps.
    diagnostics : dict
        ``grad_norm``, ``grad_se``, ``spectral_change``, ``window``, ``converged`` and
        the tolerances used.
    converged : bool
    dataset : Dataset
        The clean training set (``A0``, ``A0_centered``).
    C : ndarray (d0, d0)
        Augmentation covariance.
    loss : Loss
    A0_model, mean_model : ndarray
        Second moment and mean of the noise-averaged view ``E[x | x_hat]`` over the
        training set: ``A0`` and the data mean for additive noise, ``b^2 A0`` and
        ``b * mean`` for the scale augmentation. The effective landscape uses these.
    settings : dict
        Every setting of the run (JSON-friendly).
    track : dict of ndarray or None
        With ``track=True``: the collapse diagnostics of
        :func:`minissl.metrics.trajectory` at every history step (key ``step``).
    """

    W: np.ndarray
    b: np.ndarray | None
    eigenvalues: np.ndarray
    history: dict
    diagnostics: dict
    converged: bool
    dataset: Dataset
    C: np.ndarray
    loss: Loss
    A0_model: np.ndarray
    mean_model: np.ndarray
    settings: dict = field(default_factory=dict)
    track: dict | None = None

    @property
    def scale_augmentation(self):
        """Whether the views were ``s x_hat`` (App. F.1): the landscape then has its own form."""
        return self.settings.get("augmentation") == "scale"

    @property
    def Sigma(self):
        """``A0 + C`` with the clean second moment the loss sees (centred if translation invariant)."""
        A = self.A0_model
        if self.loss.translation_invariant:
            A = A - np.outer(self.mean_model, self.mean_model)
        return A + self.C


def simulate(loss=DEFAULT_LOSS, *, data=None, n=None, variances=None,
             cov=None, augmentation="isotropic", sigma=1.0, theta=0.5, content_dims=None,
             scale_b=1.0, d1=None, model="exact", steps=3000, batch_size=None, lr=3e-3, optimizer="adam",
             momentum=0.0, lr_schedule="cosine", lr_final=None, noise="fresh",
             replicates=1, control_variate=False, bias=False, init_scale=0.1, init="gaussian", seed=0,
             record_every=None,
             window=None, spectral_tol=1e-2, grad_tol=1e-4, grad_alpha=1e-3, check_draws=64,
             dtype=np.float64, kappa=None, warn=True, engine="numba", track=False, uniformity_t=2.0,
             alignment_alpha=2.0, **loss_params):
    """Train a linear model ``f(x) = W x (+ b)`` on an SSL loss and report what it learned.

    Parameters
    ----------
    loss : str or Loss
        A loss name for :func:`minissl.get_loss` (its parameters go in ``**loss_params``,
        e.g. ``beta=0.5``) or a :class:`~minissl.losses.Loss`.
    data : Dataset, optional
        Clean training set; default ``gaussian_data(n, variances or cov, seed)``.
    n : int
        Number of clean samples when ``data`` is not given (default 256).
    variances, cov :
        Spectrum (diagonal covariance, default ``0.5, 1, 2, 3, 4``) or full covariance of the
        clean data; at most one of them, and neither together with ``data``.
    augmentation : {"isotropic", "structured", "scale"} or Augmentation
        ``isotropic``: ``N(0, sigma^2 I)``; ``structured``: ``sigma R xi`` with ``theta``
        and ``content_dims`` (Sec. 4.2); ``scale``: ``x = s x_hat``, ``s ~ Exp(mean scale_b)``.
    d1 : int, optional
        Output dimension; default ``d0``.
    model : {"exact", "effective"}
        Train on the exact sample-based loss or descend its effective landscape
        (deterministic; ``noise`` is then irrelevant).
    steps : int
        Number of training steps.
    batch_size : int, optional
        Samples per step: None (default) trains on the full batch of N samples; ``2 <= B <= N``
        draws a fresh minibatch of B distinct samples every step (uniformly, without
        replacement; :mod:`minissl.train.minibatch`), and the loss's negatives are the other
        samples *of that batch*. Exact model only; not with ``control_variate``. With fixed
        noise the batch is drawn from the N fixed pairs of views. ``settings["batch_size"]``
        records B (N for the full batch).
    lr : float
        Learning rate; ``lr_schedule="cosine"`` decays it to ``lr_final`` (default lr/1000).
    optimizer : {"adam", "sgd"}
        Adam (default) is scale free and safe for every loss and noise level. For precise
        comparisons prefer SGD: with fresh noise its fixed point has zero mean gradient
        (the noise-averaged loss's stationary point), while Adam's normalisation biases it
        slightly and the gradient test may flag that. SGD's stable ``lr`` depends on the
        loss and shrinks as the noise grows (InfoNCE's energy term has curvature
        ``~2 sigma^2``; VICReg's Hessian at 0 is ~1e3); a divergence is reported.
    momentum : float
        Heavy-ball momentum for SGD.
    noise : {"fresh", "fixed"}
        See the module docstring.
    replicates : int
        Pairs of views per step (gradient averaged).
    control_variate : bool
        InfoNCE family without normalization: subtract from each stochastic gradient the
        noise of the loss's quadratic part, ``W (hat M - E hat M)``
        (:mod:`minissl.control_variate`). The expectation is unchanged; the variance drops
        by orders of magnitude when the augmentation is strong and W small (it can grow
        when ``u = 2 Tr[W Sigma W^T] >> 1``).
    bias : bool
        Train a bias ``b`` (initialised at 0).
    init_scale : float
        ``W_0 = init_scale * G / sqrt(d0)`` with ``G`` standard normal.
    init : {"gaussian", "orthogonal"}
        ``"orthogonal"``: ``W_0`` has orthonormal rows (or columns) times ``init_scale``,
        a Haar-random rotation: no direction starts near zero (a square Gaussian ``W_0``
        has a smallest singular value ~ ``init_scale / d0``, from which weakly driven
        directions grow slowly).
    seed : int
        One seed drives data, initialisation and noise (independent streams): the same
        seed gives the same numbers.
    record_every, window : int, optional
        History interval (default ``steps // 200``) and the window of the spectral-change
        diagnostic (default ``steps // 10``, at least 50 steps or the whole run).
    spectral_tol, grad_tol, grad_alpha, check_draws :
        Convergence criteria, see the module docstring.
    dtype : {float64, float32}
    kappa : float, optional
        Normalization penalty of the effective landscape (Eq. 10), used with
        ``model="effective"`` and a normalized loss only (default 100 then).
    warn : bool
        Issue a :class:`ConvergenceWarning` when the run has not converged.
    engine : {"numba", "numpy"}
        For a loss given by name. With ``"numba"``, the exact model and Gaussian noise, the
        whole loop runs compiled (:mod:`minissl.train.loop`): in float64 for any of the six
        losses, in float32 for the InfoNCE family (float32 products, float64 softmax, sums
        and optimizer moments), drawing the same noise as the Python loop; otherwise the loop
        is Python and each step calls the loss's engine (float32 SCL, Barlow Twins and VICReg
        compute their steps in float64). A :class:`Loss` object brings its own engine.
    track : bool
        Record the companion note's collapse diagnostics every ``record_every`` steps in
        ``result.track`` (:func:`minissl.metrics.trajectory`): the spectrum of the
        embedding covariance of the clean data, its rank, stable rank, entropy rank, log
        eigenvalue ratio and cumulative explained variance, the stable rank of ``W^T W``,
        and alignment / uniformity on the unit sphere. Alignment uses one fixed draw of
        view pairs from its own random stream, so tracking never changes the training
        numbers.
    uniformity_t, alignment_alpha : float
        Uniformity kernel scale ``t`` and alignment exponent (Wang & Isola's defaults 2, 2).

    Returns
    -------
    SimulationResult
    """
    return run(RunConfig.from_kwargs(loss, data=data, n=n, variances=variances, cov=cov, augmentation=augmentation,
                                     sigma=sigma, theta=theta, content_dims=content_dims, scale_b=scale_b, d1=d1,
                                     model=model, steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum,
                                     lr_schedule=lr_schedule, lr_final=lr_final, noise=noise, replicates=replicates,
                                     control_variate=control_variate, bias=bias, init_scale=init_scale, init=init,
                                     seed=seed, record_every=record_every, window=window, spectral_tol=spectral_tol,
                                     grad_tol=grad_tol, grad_alpha=grad_alpha, check_draws=check_draws, dtype=dtype,
                                     kappa=kappa, warn=warn, engine=engine, track=track, uniformity_t=uniformity_t,
                                     alignment_alpha=alignment_alpha, **loss_params))


def run(config):
    """Train one checked :class:`RunConfig` (what :func:`simulate` does after building it)."""
    P = plan(config)
    return _finish(P, *_train(P))


def _train(P):
    """Run the training loop of one planned run; returns (W, b, hist, snapshots, timing)."""
    cfg = P.config
    if P.compiled:
        from . import loop

        timing = dict(zip(("compile_seconds", "compile_source"), loop.warm_up(cfg.loss, P.d0, P.d1, dtype=P.x.dtype)))
        t0 = time.perf_counter()
        W, b, hW, hb, hl, hg, done, views = loop.train_linear(
            cfg.loss, P.x, P.augmentation.factor, P.W, P.b, steps=cfg.steps, lr=cfg.lr, lr_final=cfg.lr_final,
            cosine=cfg.lr_schedule == "cosine", adam=cfg.optimizer == "adam", momentum=cfg.momentum,
            fresh=cfg.noise == "fresh", replicates=cfg.replicates, rng=P.rng_noise,
            record_every=cfg.record_every, control=P.Mbar, batch=P.batch)
        timing["train_seconds"] = time.perf_counter() - t0
        _check_done(done, P)
        if cfg.noise == "fixed":
            P.fixed_views = views
        return W, b, _compiled_history(P, hW, hb, hl, hg), {}, timing
    timing = {"compile_seconds": 0.0, "compile_source": None}
    t0 = time.perf_counter()
    W, b = P.W, P.b
    hist = {"step": [], "loss": [], "grad_norm": [], "spectrum": [], "W": [], "b": []}
    snapshots = {}
    params = [W] if b is None else [W, b]
    opt = make_optimizer(cfg.optimizer, params, cfg.momentum)
    for t in range(cfg.steps + 1):
        if t == cfg.steps:
            hist["step"].append(t)
            hist["loss"].append(hist["loss"][-1] if hist["loss"] else float("nan"))
            hist["grad_norm"].append(hist["grad_norm"][-1] if hist["grad_norm"] else float("nan"))
            hist["spectrum"].append(spectrum(W))
            hist["W"].append(W.copy())
            hist["b"].append(None if b is None else b.copy())
            break
        with np.errstate(over="ignore", invalid="ignore"):
            v, gW, gb = P.grad_fn(W, b)
        if not np.isfinite(v) or not np.all(np.isfinite(gW)) or not np.all(np.isfinite(W)):
            raise FloatingPointError(
                f"training diverged at step {t} (loss == {v!r}); lower lr (== {cfg.lr!r}) or init_scale, "
                "or check for extreme parameter values."
            )
        if t == cfg.steps - cfg.window:
            snapshots["start"] = spectrum(W)
        if t % cfg.record_every == 0:
            hist["step"].append(t)
            hist["loss"].append(float(v))
            gn2 = float(np.sum(gW.astype(np.float64) ** 2)) + (
                0.0 if gb is None else float(np.sum(gb.astype(np.float64) ** 2)))
            hist["grad_norm"].append(math.sqrt(gn2))
            hist["spectrum"].append(spectrum(W))
            hist["W"].append(W.copy())
            hist["b"].append(None if b is None else b.copy())
        grads = [gW] if b is None else [gW, gb]
        with np.errstate(over="ignore", invalid="ignore"):
            opt.step(params, grads, lr_at(t, cfg.steps, cfg.lr, cfg.lr_schedule, cfg.lr_final))
        report(t + 1, cfg.steps)
    timing["train_seconds"] = time.perf_counter() - t0
    return W, b, hist, snapshots, timing


def _check_done(done, P):
    if done < P.config.steps:
        raise FloatingPointError(f"training diverged at step {done}; lower lr (== {P.config.lr!r}) or init_scale, "
                                 "or check for extreme parameter values.")


def _compiled_history(P, hW, hb, hl, hg):
    cfg = P.config
    rec_steps = list(range(0, cfg.steps, cfg.record_every)) + [cfg.steps]
    return {"step": rec_steps, "loss": list(hl), "grad_norm": list(hg), "spectrum": [spectrum(w) for w in hW],
            "W": [np.array(w) for w in hW], "b": [None if P.b is None else np.array(v) for v in hb]}


def _finish(P, W, b, hist, snapshots, timing):
    """Convergence diagnostics and the result object of one run."""
    cfg = P.config
    ev = spectrum(W)
    # the training gradient at the final point: check_draws stochastic estimates (fresh noise,
    # fresh minibatches), one where it is deterministic (the effective model, fixed noise, full batch)
    stochastic = cfg.model == "exact" and (cfg.noise == "fresh" or P.batch < P.data.n)
    draws = cfg.check_draws if stochastic else 1
    gs = []
    for _ in range(draws):
        _, gW, gb = P.grad_fn(W, b)
        gs.append(np.concatenate([gW.ravel(), gb.ravel()]) if gb is not None else gW.ravel())
    diag = diagnostics.convergence(hist, ev, gs, steps=cfg.steps, window=cfg.window,
                                   spectral_tol=cfg.spectral_tol, grad_tol=cfg.grad_tol, grad_alpha=cfg.grad_alpha,
                                   start=snapshots.get("start"))
    if cfg.warn and not diag["converged"]:
        warnings.warn(diagnostics.not_converged_message(diag, cfg.steps, cfg.grad_alpha), ConvergenceWarning,
                      stacklevel=_caller_level())
    hb = hist.pop("b")
    history = {k: np.asarray(v) for k, v in hist.items()}
    if P.b is not None:
        history["b"] = np.asarray(hb)
    track = _track(P, history) if cfg.track else None
    return SimulationResult(W=W, b=b, eigenvalues=ev, history=history, diagnostics=diag,
                            converged=diag["converged"], dataset=P.data, C=P.C, loss=cfg.loss,
                            A0_model=P.A0_model, mean_model=P.mean_model, settings=_settings(P, timing),
                            track=track)


def _caller_level():
    """``stacklevel`` that points a warning at the first frame outside ``minissl/train/``."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame, level = frame.f_back, level + 1
    return level


def _settings(P, timing):
    """Every setting of the run, JSON-friendly (``SimulationResult.settings``)."""
    cfg, loss, augmentation = P.config, P.config.loss, P.augmentation
    return {
        "loss": loss.name, "loss_params": loss.params, "normalize": loss.normalize, "c": loss.c,
        "weight_decay": loss.weight_decay, "n": P.data.n, "d0": P.d0, "d1": P.d1,
        "augmentation": augmentation.name, "sigma": getattr(augmentation, "sigma", None),
        "theta": getattr(augmentation, "theta", None), "model": cfg.model, "steps": cfg.steps,
        "lr": cfg.lr, "lr_schedule": cfg.lr_schedule, "optimizer": cfg.optimizer, "noise": cfg.noise,
        "replicates": cfg.replicates, "batch_size": P.batch, "bias": cfg.bias, "init_scale": cfg.init_scale, "init": cfg.init,
        "seed": cfg.seed, "control_variate": P.Mbar is not None,
        "lr_final": cfg.lr_final, "momentum": cfg.momentum, "record_every": cfg.record_every, "window": cfg.window,
        "content_dims": getattr(augmentation, "content_dims", None), "scale_b": getattr(augmentation, "b", None),
        "kappa": cfg.kappa, "grad_alpha": cfg.grad_alpha, "check_draws": cfg.check_draws,
        "dtype": np.dtype(cfg.dtype).name, "engine": loss.engine, "compiled_loop": bool(P.compiled),
        "train_seconds": timing["train_seconds"], "compile_seconds": timing["compile_seconds"],
        "compile_source": timing["compile_source"],
        "track": cfg.track, "uniformity_t": cfg.uniformity_t, "alignment_alpha": cfg.alignment_alpha,
    }


def _track(P, history):
    """Collapse diagnostics along the history (:func:`minissl.metrics.trajectory`)."""
    from ..metrics import trajectory

    cfg = P.config
    x = np.asarray(P.data.x, dtype=np.float64)
    x1, x2 = P.augmentation.views(x, np.random.default_rng(P.track_seed), 1)
    tr = trajectory(np.asarray(history["W"], dtype=np.float64), x, x1[0], x2[0],
                    bs=history.get("b"), t=cfg.uniformity_t, alpha=cfg.alignment_alpha)
    tr["step"] = np.asarray(history["step"])
    return tr


def _group_key(P):
    """Runs with equal keys share one compiled batch (same sizes, loss and optimizer settings)."""
    cfg, L = P.config, P.config.loss
    return (L.name, tuple(sorted(L.core_kwargs.items())), L.normalize, L.c, L.norm_eps, L.weight_decay,
            P.x.shape, P.x.dtype, P.d1, cfg.steps, cfg.lr, cfg.lr_final, cfg.lr_schedule, cfg.optimizer, cfg.momentum,
            cfg.noise, cfg.replicates, cfg.record_every, P.b is not None, P.Mbar is not None, P.batch)


def simulate_batch(configs, **common):
    """Run many independent simulations; compiled runs execute in parallel *across* runs.

    Parameters
    ----------
    configs : sequence of dict
        Keyword arguments of :func:`simulate` for each run, overriding ``common``, e.g.
        ``[{"sigma": s, "seed": k} for s in sigmas for k in range(4)]`` (a sweep over
        sigma and seeds), or over ``n``, ``theta``, ``variances``.
    **common
        Keyword arguments shared by every run (``loss``, its parameters, ``steps``, ...).

    Returns
    -------
    list of SimulationResult
        In the order of ``configs``.

    Notes
    -----
    Runs that can use the compiled loop (see :func:`simulate`) and share the problem size,
    the loss and the optimizer settings are executed together by
    :func:`minissl.train.loop.train_batch`, one thread per run, each with the serial step; the
    others run one after another. Every run gives *the same numbers* as
    ``simulate(**common, **config)`` (same seeds, bit-identical kernels), whatever the
    grouping or the number of threads. ``settings["train_seconds"]`` of a batched run is
    the wall time of its whole group.
    """
    if isinstance(configs, dict) or not hasattr(configs, "__iter__"):
        raise TypeError("configs must be a sequence of dicts of simulate() arguments.")
    configs = list(configs)
    for k, cfg in enumerate(configs):
        if not isinstance(cfg, dict):
            raise TypeError(f"configs[{k}] == {cfg!r}, must be a dict of simulate() arguments.")
    return run_batch([RunConfig.from_kwargs(**{**common, **cfg}) for cfg in configs])


def run_batch(configs):
    """Train many checked :class:`RunConfig` s; compiled runs sharing a :func:`_group_key` run together.

    Returns the results in the order of ``configs`` (see :func:`simulate_batch`).
    """
    plans = [plan(c) for c in configs]
    results = [None] * len(plans)
    groups = {}
    for k, P in enumerate(plans):
        if P.compiled:
            groups.setdefault(_group_key(P), []).append(k)
        else:
            results[k] = _finish(P, *_train(P))
    if groups:
        from . import loop

    for idx in groups.values():
        P0 = plans[idx[0]]
        c0 = P0.config
        comp_s, comp_src = loop.warm_up(c0.loss, P0.d0, P0.d1, batch=True, dtype=P0.x.dtype)
        t0 = time.perf_counter()
        Ws, bs, hW, hb, hl, hg, done, (x1s, x2s) = loop.train_batch(
            c0.loss, np.stack([plans[k].x for k in idx]),
            np.stack([plans[k].augmentation.factor for k in idx]),
            np.stack([plans[k].W for k in idx]),
            None if P0.b is None else np.stack([plans[k].b for k in idx]),
            steps=c0.steps, lr=c0.lr, lr_final=c0.lr_final, cosine=c0.lr_schedule == "cosine",
            adam=c0.optimizer == "adam", momentum=c0.momentum, fresh=c0.noise == "fresh",
            replicates=c0.replicates, rngs=[plans[k].rng_noise for k in idx],
            record_every=c0.record_every, batch=P0.batch,
            controls=None if P0.Mbar is None else np.stack([plans[k].Mbar for k in idx]))
        timing = {"compile_seconds": comp_s, "compile_source": comp_src,
                  "train_seconds": time.perf_counter() - t0}
        for j, k in enumerate(idx):
            P = plans[k]
            _check_done(int(done[j]), P)
            if P.config.noise == "fixed":
                P.fixed_views = (x1s[j], x2s[j])
            results[k] = _finish(P, Ws[j], None if bs is None else bs[j],
                                 _compiled_history(P, hW[j], None if hb is None else hb[j], hl[j], hg[j]),
                                 {}, timing)
    return results
