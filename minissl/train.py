"""Full-batch training of a linear SSL model on an exact loss or on its effective landscape.

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

``replicates=R`` averages the gradient over R independent pairs of views per step
(fresh: new each step; fixed: R pairs drawn once), which leaves the expectation
unchanged and divides the gradient-noise variance by R.

Convergence diagnostics (reported with every result)
----------------------------------------------------
* ``grad_norm``: norm of the full gradient at the final weights. With fresh noise this
  is the norm of the mean of ``check_draws`` independent stochastic gradients; ``grad_se``
  is its standard error and ``grad_pvalue`` the p-value of a chi-square test of "the
  expected gradient is zero" (``sum_i gbar_i^2 / se_i^2 ~ chi2(p)``, coordinates treated
  as independent). The gradient counts as zero when ``grad_norm <= grad_tol`` or
  ``grad_pvalue > grad_alpha`` (default 1e-3).
* ``spectral_change``: drift of the eigenvalues of ``W^T W``: the mean spectrum over the
  last ``window / 2`` steps minus the mean over the ``window / 2`` steps before, largest
  absolute entry divided by ``lambda_1`` (floored at 1e-8 of the largest ``lambda_1`` of
  the run, so that a spectrum collapsed towards 0 counts as settled; window means, so that the step-to-step jitter
  of fresh noise is not mistaken for drift; default window: 10% of the run), and
  ``spectral_noise``, the standard error of that difference estimated from the scatter of
  the snapshots (same normalisation). The spectrum counts as settled when
  ``spectral_change <= spectral_tol``, or when every eigenvalue's drift is within 3
  standard errors and ``spectral_noise <= spectral_tol`` (the jitter is itself small
  enough that a drift of the size of the tolerance would have been seen).
* ``converged`` requires both; otherwise a :class:`ConvergenceWarning` is issued.

With fresh noise the gradient test certifies stationarity only up to its noise level
(``3 * grad_se``, reported; raise ``check_draws`` to sharpen it), and a very small
learning rate can make any spectrum look stationary over the window: read the
diagnostics together with the history, not as a proof.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from scipy import stats

from . import _validation as V
from .data import Augmentation, Dataset, GaussianNoise, gaussian_data, make_augmentation
from .landscape import effective_landscape
from .losses import ENGINES, LOSS_NAMES, Loss, get_loss
from .metrics import spectrum

__all__ = ["simulate", "simulate_batch", "SimulationResult", "ConvergenceWarning", "Adam", "SGD"]


class ConvergenceWarning(UserWarning):
    """A training run ended before its convergence diagnostics were met."""


class Adam:
    """Adam (Kingma & Ba 2015) on a list of arrays; ``beta1=0.9, beta2=0.999, eps=1e-8``."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads, lr):
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * g * g
            p -= (lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.dtype, copy=False)


class SGD:
    """Gradient descent with optional heavy-ball momentum."""

    def __init__(self, params, lr, momentum=0.0):
        self.momentum = momentum
        self.buf = [np.zeros_like(p) for p in params]

    def step(self, params, grads, lr):
        for p, g, buf in zip(params, grads, self.buf):
            if self.momentum:
                buf *= self.momentum
                buf += g
                g = buf
            p -= (lr * g).astype(p.dtype, copy=False)


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
    def Sigma(self):
        """``A0 + C`` with the clean second moment the loss sees (centred if translation invariant)."""
        A = self.A0_model
        if self.loss.translation_invariant:
            A = A - np.outer(self.mean_model, self.mean_model)
        return A + self.C


def _lr_at(step, steps, lr, schedule, lr_final):
    if schedule == "constant":
        return lr
    frac = step / max(steps - 1, 1)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * frac))


def simulate(loss="infonce", *, data=None, n=None, variances=None,
             cov=None, augmentation="isotropic", sigma=1.0, theta=0.5, content_dims=None,
             scale_b=1.0, d1=None, model="exact", steps=3000, lr=3e-3, optimizer="adam",
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
        Number of full-batch steps.
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
        For a loss given by name. With ``"numba"``, the exact model, Gaussian noise and
        float64, the whole loop runs compiled (:mod:`minissl.loops`, any of the six losses),
        drawing the same noise as the Python loop; otherwise the loop is Python and each
        step calls the loss's engine. A :class:`Loss` object brings its own engine.
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
    P = _plan(loss, data=data, n=n, variances=variances, cov=cov, augmentation=augmentation,
              sigma=sigma, theta=theta, content_dims=content_dims, scale_b=scale_b, d1=d1,
              model=model, steps=steps, lr=lr, optimizer=optimizer, momentum=momentum,
              lr_schedule=lr_schedule, lr_final=lr_final, noise=noise, replicates=replicates,
              control_variate=control_variate, bias=bias, init_scale=init_scale, init=init, seed=seed,
              record_every=record_every,
              window=window, spectral_tol=spectral_tol, grad_tol=grad_tol, grad_alpha=grad_alpha,
              check_draws=check_draws, dtype=dtype, kappa=kappa, warn=warn, engine=engine,
              track=track, uniformity_t=uniformity_t, alignment_alpha=alignment_alpha, **loss_params)
    return _finish(P, *_train_one(P))


def _plan(loss="infonce", *, data=None, n=None, variances=None,
             cov=None, augmentation="isotropic", sigma=1.0, theta=0.5, content_dims=None,
             scale_b=1.0, d1=None, model="exact", steps=3000, lr=3e-3, optimizer="adam",
             momentum=0.0, lr_schedule="cosine", lr_final=None, noise="fresh",
             replicates=1, control_variate=False, bias=False, init_scale=0.1, init="gaussian", seed=0,
             record_every=None,
             window=None, spectral_tol=1e-2, grad_tol=1e-4, grad_alpha=1e-3, check_draws=64,
             dtype=np.float64, kappa=None, warn=True, engine="numba", track=False, uniformity_t=2.0,
             alignment_alpha=2.0, **loss_params):
    """Validate the arguments of :func:`simulate` and set up one run (data, init, noise)."""
    if not isinstance(loss, Loss):
        if not isinstance(loss, str):
            raise TypeError(f"loss == {loss!r}, must be a loss name or a Loss object.")
        V.check_choice("loss", loss, LOSS_NAMES)
        loss = get_loss(loss, engine=V.check_choice("engine", engine, ENGINES), **loss_params)
    elif loss_params:
        raise TypeError(f"loss parameters {sorted(loss_params)} given with a Loss object; set them in get_loss().")
    V.check_choice("model", model, ("exact", "effective"))
    V.check_choice("optimizer", optimizer, ("adam", "sgd"))
    V.check_choice("noise", noise, ("fresh", "fixed"))
    V.check_choice("lr_schedule", lr_schedule, ("constant", "cosine"))
    steps = V.check_int("steps", steps, lo=1)
    lr = V.check_scalar("lr", lr, lo=0.0, lo_open=True)
    lr_final = V.check_scalar("lr_final", lr / 1000 if lr_final is None else lr_final, lo=0.0)
    momentum = V.check_scalar("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    replicates = V.check_int("replicates", replicates, lo=1)
    control_variate = V.check_bool("control_variate", control_variate)
    bias = V.check_bool("bias", bias)
    init_scale = V.check_scalar("init_scale", init_scale, lo=0.0, lo_open=True)
    V.check_choice("init", init, ("gaussian", "orthogonal"))
    seed = V.check_int("seed", seed, lo=0)
    spectral_tol = V.check_scalar("spectral_tol", spectral_tol, lo=0.0, lo_open=True)
    grad_tol = V.check_scalar("grad_tol", grad_tol, lo=0.0)
    grad_alpha = V.check_scalar("grad_alpha", grad_alpha, lo=0.0, hi=1.0)
    check_draws = V.check_int("check_draws", check_draws, lo=2)
    dtype = V.check_dtype("dtype", dtype)
    window = V.check_int("window", min(steps, max(steps // 10, 50)) if window is None else window,
                         lo=1, hi=steps)
    half = max(window // 2, 1)
    if record_every is None:
        record_every = max(1, min(steps // 200, half // 2))
    record_every = V.check_int("record_every", record_every, lo=1)
    if record_every > half:
        raise ValueError(f"record_every == {record_every}, must be <= {half} (half the convergence window "
                         f"of {window} steps) so that the spectral-drift diagnostic sees the last window.")
    warn = V.check_bool("warn", warn)
    track = V.check_bool("track", track)
    uniformity_t = V.check_scalar("uniformity_t", uniformity_t, lo=0.0, lo_open=True)
    alignment_alpha = V.check_scalar("alignment_alpha", alignment_alpha, lo=0.0, lo_open=True)
    if kappa is not None and not loss.normalize:
        raise ValueError(f"kappa == {kappa!r} models output normalization; it needs a loss with normalize=True.")
    V.check_choice("engine", engine, ENGINES)
    if optimizer == "adam" and momentum != 0.0:
        raise ValueError(f"momentum == {momentum!r} applies to optimizer='sgd', not 'adam'.")

    # a fourth stream for the tracking views: spawn(4)[:3] == spawn(3), so the data, the
    # initialisation and the training noise do not depend on whether a run is tracked
    data_ss, init_ss, noise_ss, track_ss = np.random.SeedSequence(seed).spawn(4)
    if data is not None and not isinstance(data, Dataset):
        raise TypeError(f"data == {type(data).__name__}, must be a minissl.data.Dataset.")
    if data is not None and (n is not None or variances is not None or cov is not None):
        raise ValueError("give either data= or the data's n=/variances=/cov=, not both.")
    if variances is not None and cov is not None:
        raise ValueError("give exactly one of variances= and cov=.")
    n = 256 if n is None else n
    if variances is None and cov is None:
        variances = (0.5, 1.0, 2.0, 3.0, 4.0)
    if data is None:
        if cov is not None:
            data = gaussian_data(n, cov=cov, seed=np.random.default_rng(data_ss), dtype=dtype)
        else:
            data = gaussian_data(n, variances=variances, seed=np.random.default_rng(data_ss), dtype=dtype)
    elif not isinstance(data, Dataset):
        raise TypeError(f"data == {type(data).__name__}, must be a minissl.data.Dataset.")
    x = np.ascontiguousarray(data.x, dtype=dtype)
    d0 = x.shape[1]
    d1 = V.check_int("d1", d0 if d1 is None else d1, lo=1)
    if isinstance(augmentation, str):
        augmentation = make_augmentation(augmentation, d0, sigma=sigma, theta=theta,
                                         content_dims=content_dims, b=scale_b)
    elif not isinstance(augmentation, Augmentation):
        raise TypeError(f"augmentation == {augmentation!r}, must be a name or an Augmentation.")
    C = augmentation.covariance(data.A0)
    if C.shape != (d0, d0):
        raise ValueError(f"augmentation has dimension {C.shape[0]} but the data have d0 == {d0} features.")

    rng_init = np.random.default_rng(init_ss)
    rng_noise = np.random.default_rng(noise_ss)
    G0 = rng_init.standard_normal((d1, d0))
    if init == "orthogonal":
        U_, _, Vt_ = np.linalg.svd(G0, full_matrices=False)
        W = (init_scale * (U_ @ Vt_)).astype(dtype)
    else:
        W = (init_scale / math.sqrt(d0) * G0).astype(dtype)
    b = np.zeros(d1, dtype=dtype) if bias else None
    A0_model = augmentation.clean_moment(data.A0)
    mean_model = np.asarray(data.x, dtype=np.float64).mean(0) * (
        augmentation.b if augmentation.name == "scale" else 1.0)
    Mbar, cv_family = None, None
    if control_variate:
        from . import control_variate as cvm

        if (model != "exact" or noise != "fresh" or not cvm.supports(loss)
                or not isinstance(augmentation, GaussianNoise)):
            raise ValueError(
                f"control_variate=True applies to the exact InfoNCE family (infonce, weighted, beta) without "
                f"normalization, with fresh Gaussian augmentation; not loss {loss.name!r} (normalize="
                f"{loss.normalize}), model {model!r}, noise {noise!r}, augmentation {augmentation.name!r}.")
        cv_family = cvm._family(loss)
        Mbar = cvm.quadratic_moment_mean(np.asarray(data.x, dtype=np.float64), C, *cv_family)
    if model == "effective":
        land = effective_landscape(loss, A0_model, C, n=data.n, mean=mean_model, kappa=kappa, d1=d1)

        def grad_fn(W, b, fresh):
            v, gW, gb = land._value_and_grad(W.astype(np.float64), None if b is None else b.astype(np.float64))
            return v, gW.astype(dtype), None if gb is None else gb.astype(dtype)
    else:
        fixed = {}  # fixed noise: drawn at the first step (the compiled loop stores its own here)

        def grad_fn(W, b, fresh):
            if noise == "fresh":
                x1s, x2s = augmentation.views(x, rng_noise, replicates)
            else:
                if "views" not in fixed:
                    fixed["views"] = augmentation.views(x, rng_noise, replicates)
                x1s, x2s = fixed["views"]
            tot_v, tot_gW, tot_gb = 0.0, np.zeros_like(W), None if b is None else np.zeros_like(b)
            for r in range(x1s.shape[0]):
                v, gW, gb = loss._value_and_grad(W, x1s[r], x2s[r], b)
                if Mbar is not None:
                    gW = gW - (W @ (cvm.quadratic_moment(x1s[r], x2s[r], *cv_family) - Mbar)).astype(gW.dtype)
                tot_v += v
                tot_gW += gW
                if gb is not None:
                    tot_gb += gb
            k = x1s.shape[0]
            return tot_v / k, tot_gW / k, None if tot_gb is None else tot_gb / k

    compiled = (loss.accelerated and model == "exact" and isinstance(augmentation, GaussianNoise)
                and dtype == np.float64)
    return SimpleNamespace(**locals())


def _train_one(P):
    """Run the training loop of one planned run; returns (W, b, hist, snapshots, timing)."""
    W, b = P.W, P.b
    hist = {"step": [], "loss": [], "grad_norm": [], "spectrum": [], "W": [], "b": []}
    snapshots = {}
    timing = {"compile_seconds": 0.0, "compile_source": None}
    if P.compiled:
        from . import loops

        timing["compile_seconds"], timing["compile_source"] = loops.warm_up(P.loss, P.d0, P.d1)
        t0 = time.perf_counter()
        W, b, hW, hb, hl, hg, done, views = loops.train_linear(
            P.loss, P.x, P.augmentation.factor, W, b, steps=P.steps, lr=P.lr, lr_final=P.lr_final,
            cosine=P.lr_schedule == "cosine", adam=P.optimizer == "adam", momentum=P.momentum,
            fresh=P.noise == "fresh", replicates=P.replicates, rng=P.rng_noise,
            record_every=P.record_every, control=P.Mbar)
        timing["train_seconds"] = time.perf_counter() - t0
        _check_done(done, P)
        if P.noise == "fixed":
            P.fixed["views"] = views
        return W, b, _compiled_history(P, hW, hb, hl, hg), snapshots, timing
    t0 = time.perf_counter()
    params = [W] if b is None else [W, b]
    opt = Adam(params, P.lr) if P.optimizer == "adam" else SGD(params, P.lr, P.momentum)
    for t in range(P.steps + 1):
        if t == P.steps:
            hist["step"].append(t)
            hist["loss"].append(hist["loss"][-1] if hist["loss"] else float("nan"))
            hist["grad_norm"].append(hist["grad_norm"][-1] if hist["grad_norm"] else float("nan"))
            hist["spectrum"].append(spectrum(W))
            hist["W"].append(W.copy())
            hist["b"].append(None if b is None else b.copy())
            break
        with np.errstate(over="ignore", invalid="ignore"):
            v, gW, gb = P.grad_fn(W, b, True)
        if not np.isfinite(v) or not np.all(np.isfinite(gW)) or not np.all(np.isfinite(W)):
            raise FloatingPointError(
                f"training diverged at step {t} (loss == {v!r}); lower lr (== {P.lr!r}) or init_scale, "
                "or check for extreme parameter values."
            )
        if t == P.steps - P.window:
            snapshots["start"] = spectrum(W)
        if t % P.record_every == 0:
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
            opt.step(params, grads, _lr_at(t, P.steps, P.lr, P.lr_schedule, P.lr_final))
    timing["train_seconds"] = time.perf_counter() - t0
    return W, b, hist, snapshots, timing


def _check_done(done, P):
    if done < P.steps:
        raise FloatingPointError(f"training diverged at step {done}; lower lr (== {P.lr!r}) or init_scale, "
                                 "or check for extreme parameter values.")


def _compiled_history(P, hW, hb, hl, hg):
    rec_steps = list(range(0, P.steps, P.record_every)) + [P.steps]
    return {"step": rec_steps, "loss": list(hl), "grad_norm": list(hg), "spectrum": [spectrum(w) for w in hW],
            "W": [np.array(w) for w in hW], "b": [None if P.b is None else np.array(v) for v in hb]}


def _finish(P, W, b, hist, snapshots, timing):
    """Convergence diagnostics and the result object of one run."""
    steps, window, spectral_tol, grad_tol = P.steps, P.window, P.spectral_tol, P.grad_tol
    ev = spectrum(W)
    # drift of the spectrum: mean over the last half-window vs the half-window before
    # (means, so that step-to-step noise of fresh augmentation does not count as drift)
    steps_arr = np.asarray(hist["step"])
    spec_arr = np.asarray(hist["spectrum"])
    half = max(window // 2, 1)
    late = spec_arr[steps_arr > steps - half]
    early = spec_arr[(steps_arr >= steps - window) & (steps_arr <= steps - half)]
    if len(late) == 0:
        late = ev[None, :]
    if len(early) == 0:
        early = snapshots.get("start", ev)[None, :]
    drift = np.abs(late.mean(0) - early.mean(0))
    # normalise by the top eigenvalue, floored at 1e-8 of the largest seen in the run: a
    # spectrum that has collapsed towards 0 by many orders of magnitude has settled, even
    # though its own top eigenvalue still shrinks by a large *relative* amount
    top_seen = float(np.max(spec_arr[:, 0])) if spec_arr.size else float(ev[0])
    ref = max(float(ev[0]), 1e-8 * max(top_seen, float(ev[0])))
    spectral_change = float(np.max(drift) / ref) if ref > 0 else 0.0
    # standard error of that difference from the scatter of the snapshots (jitter of fresh noise)
    se = np.zeros_like(drift)
    if len(late) > 1 and len(early) > 1:
        se = np.sqrt(late.var(0, ddof=1) / len(late) + early.var(0, ddof=1) / len(early))
    spectral_noise = float(np.max(se) / ref) if ref > 0 else 0.0
    spectrum_ok = spectral_change <= spectral_tol or (
        bool(np.all(drift <= 3.0 * se)) and spectral_noise <= spectral_tol)
    # full gradient at the final point
    stochastic = P.model == "exact" and P.noise == "fresh"
    draws = P.check_draws if stochastic else 1
    gs = []
    for _ in range(draws):
        _, gW, gb = P.grad_fn(W, b, True)
        gs.append(np.concatenate([gW.ravel(), gb.ravel()]) if gb is not None else gW.ravel())
    gs = np.asarray(gs, dtype=np.float64)
    gmean = gs.mean(0)
    grad_norm = float(np.linalg.norm(gmean))
    grad_pvalue = None
    grad_se = 0.0
    grad_ok = grad_norm <= grad_tol
    if draws > 1:
        var = gs.var(0, ddof=1) / draws  # squared standard error of each coordinate
        grad_se = float(np.sqrt(np.sum(var)))
        # chi-square test of "mean gradient == 0": sum_i gbar_i^2 / se_i^2 ~ chi2(p);
        # coordinates without noise (se == 0) must have gbar == 0 exactly to pass.
        noisy = var > 1e-30 * max(float(np.max(var)), 1e-300)
        stat = float(np.sum(gmean[noisy] ** 2 / var[noisy]))
        grad_pvalue = float(stats.chi2.sf(stat, int(np.count_nonzero(noisy)))) if np.any(noisy) else None
        quiet_ok = bool(np.all(np.abs(gmean[~noisy]) <= grad_tol))
        grad_ok = grad_ok or (quiet_ok and (grad_pvalue is None or grad_pvalue > P.grad_alpha))
    converged = bool(grad_ok and spectrum_ok)
    diagnostics = {
        "grad_norm": grad_norm,
        "grad_se": grad_se,
        "grad_pvalue": grad_pvalue,
        "spectral_change": spectral_change,
        "spectral_noise": spectral_noise,
        "window": window,
        "converged": converged,
        "grad_tol": grad_tol,
        "spectral_tol": spectral_tol,
        "check_draws": draws,
    }
    if P.warn and not converged:
        warnings.warn(
            f"run not converged after {steps} steps: spectral change {spectral_change:.3g} "
            f"(tol {spectral_tol:g}, jitter SE {spectral_noise:.2g}) over the last {window} steps, "
            f"mean gradient norm {grad_norm:.3g} (tol {grad_tol:g}"
            + (f"; p-value of 'zero mean gradient' {grad_pvalue:.2g}, needs > {P.grad_alpha:g}"
               if grad_pvalue is not None else "") + "); "
            "increase steps, lower lr, use lr_schedule='cosine' or more replicates.",
            ConvergenceWarning,
            stacklevel=3,
        )
    loss, augmentation = P.loss, P.augmentation
    settings = {
        "loss": loss.name, "loss_params": loss.params, "normalize": loss.normalize, "c": loss.c,
        "weight_decay": loss.weight_decay, "n": P.data.n, "d0": P.d0, "d1": P.d1,
        "augmentation": augmentation.name, "sigma": getattr(augmentation, "sigma", None),
        "theta": getattr(augmentation, "theta", None), "model": P.model, "steps": steps,
        "lr": P.lr, "lr_schedule": P.lr_schedule, "optimizer": P.optimizer, "noise": P.noise,
        "replicates": P.replicates, "bias": P.bias, "init_scale": P.init_scale, "init": P.init, "seed": P.seed,
        "control_variate": P.Mbar is not None,
        "lr_final": P.lr_final, "momentum": P.momentum, "record_every": P.record_every, "window": window,
        "content_dims": getattr(augmentation, "content_dims", None), "scale_b": getattr(augmentation, "b", None),
        "kappa": P.kappa, "grad_alpha": P.grad_alpha, "check_draws": P.check_draws,
        "dtype": np.dtype(P.dtype).name, "engine": loss.engine, "compiled_loop": bool(P.compiled),
        "train_seconds": timing["train_seconds"], "compile_seconds": timing["compile_seconds"],
        "compile_source": timing["compile_source"],
    }
    settings.update(track=P.track, uniformity_t=P.uniformity_t, alignment_alpha=P.alignment_alpha)
    hb = hist.pop("b")
    history = {k: np.asarray(v) for k, v in hist.items()}
    if P.b is not None:
        history["b"] = np.asarray(hb)
    track = _track(P, history) if P.track else None
    return SimulationResult(W=W, b=b, eigenvalues=ev, history=history, diagnostics=diagnostics,
                            converged=converged, dataset=P.data, C=P.C, loss=loss, A0_model=P.A0_model,
                            mean_model=P.mean_model, settings=settings, track=track)


def _track(P, history):
    """Collapse diagnostics along the history (:func:`minissl.metrics.trajectory`)."""
    from .metrics import trajectory

    x = np.asarray(P.data.x, dtype=np.float64)
    x1, x2 = P.augmentation.views(x, np.random.default_rng(P.track_ss), 1)
    tr = trajectory(np.asarray(history["W"], dtype=np.float64), x, x1[0], x2[0],
                    bs=history.get("b"), t=P.uniformity_t, alpha=P.alignment_alpha)
    tr["step"] = np.asarray(history["step"])
    return tr


def _group_key(P):
    L = P.loss
    return (L.name, tuple(sorted(L.core_kwargs.items())), L.normalize, L.c, L.norm_eps, L.weight_decay,
            P.x.shape, P.d1, P.steps, P.lr, P.lr_final, P.lr_schedule, P.optimizer, P.momentum, P.noise,
            P.replicates, P.record_every, P.b is not None, P.Mbar is not None)


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
    :func:`minissl.loops.train_batch`, one thread per run, each with the serial step; the
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
    plans = [_plan(**{**common, **cfg}) for cfg in configs]
    results = [None] * len(plans)
    groups = {}
    for k, P in enumerate(plans):
        if P.compiled:
            groups.setdefault(_group_key(P), []).append(k)
        else:
            results[k] = _finish(P, *_train_one(P))
    if groups:
        from . import loops

    for idx in groups.values():
        P0 = plans[idx[0]]
        comp_s, comp_src = loops.warm_up(P0.loss, P0.d0, P0.d1, batch=True)
        t0 = time.perf_counter()
        Ws, bs, hW, hb, hl, hg, done, (x1s, x2s) = loops.train_batch(
            P0.loss, np.stack([plans[k].x for k in idx]),
            np.stack([plans[k].augmentation.factor for k in idx]),
            np.stack([plans[k].W for k in idx]),
            None if P0.b is None else np.stack([plans[k].b for k in idx]),
            steps=P0.steps, lr=P0.lr, lr_final=P0.lr_final, cosine=P0.lr_schedule == "cosine",
            adam=P0.optimizer == "adam", momentum=P0.momentum, fresh=P0.noise == "fresh",
            replicates=P0.replicates, rngs=[plans[k].rng_noise for k in idx],
            record_every=P0.record_every,
            controls=None if P0.Mbar is None else np.stack([plans[k].Mbar for k in idx]))
        timing = {"compile_seconds": comp_s, "compile_source": comp_src,
                  "train_seconds": time.perf_counter() - t0}
        for j, k in enumerate(idx):
            P = plans[k]
            _check_done(int(done[j]), P)
            if P.noise == "fixed":
                P.fixed["views"] = (x1s[j], x2s[j])
            results[k] = _finish(P, Ws[j], None if bs is None else bs[j],
                                 _compiled_history(P, hW[j], None if hb is None else hb[j], hl[j], hg[j]),
                                 {}, timing)
    return results
