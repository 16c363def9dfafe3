"""The settings of one training run of the linear model, validated once: :class:`RunConfig`.

:func:`minissl.simulate` (``simulate(loss, **kwargs)``) builds a :class:`RunConfig` from its
keyword arguments and hands it to the planner (:mod:`minissl.train.plan`); every later stage
reads the checked, resolved values from it and checks nothing again. The settings that
describe the data and the augmentation (``n``, ``variances``/``cov``, ``sigma``, ``theta``,
``content_dims``, ``scale_b``, ``d1``) are checked once, by the constructors that use them
(:func:`minissl.data.gaussian_data`, :func:`minissl.data.make_augmentation`), which
:func:`~minissl.train.plan.plan` calls before any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _validation as V
from ..data import Augmentation, Dataset
from ..losses import ENGINES, LOSS_NAMES, Loss, get_loss
from ..losses.registry import DEFAULT_LOSS
from .optim import OPTIMIZERS, SCHEDULES

__all__ = ["RunConfig", "MODELS", "NOISE_MODES", "INITS", "DEFAULT_VARIANCES", "DEFAULT_N"]

MODELS = ("exact", "effective")
NOISE_MODES = ("fresh", "fixed")
INITS = ("gaussian", "orthogonal")
DEFAULT_VARIANCES = (0.5, 1.0, 2.0, 3.0, 4.0)
DEFAULT_N = 256


@dataclass(frozen=True, eq=False)
class RunConfig:
    """Every setting of one run of :func:`minissl.simulate`, checked and resolved on creation
    (the data's and augmentation's by :func:`~minissl.train.plan.plan`, see the module docstring).

    The fields are :func:`minissl.simulate`'s keyword arguments (see there for their meaning);
    ``loss`` may be a name with its parameters in ``loss_params`` or a
    :class:`~minissl.losses.Loss`. After creation ``loss`` is a ``Loss``, ``loss_params`` is
    empty, and defaults that follow from other settings are filled in: ``lr_final``
    (``lr / 1000``), ``window`` (``steps // 10``, at least 50 steps or the whole run),
    ``record_every`` (``steps // 200``, at most a quarter of the window) and the data
    (``n = 256``, ``variances = 0.5, 1, 2, 3, 4`` when neither ``data`` nor ``cov`` is given).

    Raises
    ------
    TypeError, ValueError
        A setting of the wrong type or outside its range, or settings that contradict each
        other; the message names the setting and its value.
    """

    loss: Any = DEFAULT_LOSS
    loss_params: dict = field(default_factory=dict)
    data: Dataset | None = None
    n: int | None = None
    variances: Any = None
    cov: Any = None
    augmentation: Any = "isotropic"
    sigma: float = 1.0
    theta: float = 0.5
    content_dims: Any = None
    scale_b: float = 1.0
    d1: int | None = None
    model: str = "exact"
    steps: int = 3000
    batch_size: int | None = None
    lr: float = 3e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    lr_schedule: str = "cosine"
    lr_final: float | None = None
    noise: str = "fresh"
    replicates: int = 1
    control_variate: bool = False
    bias: bool = False
    init_scale: float = 0.1
    init: str = "gaussian"
    seed: int = 0
    record_every: int | None = None
    window: int | None = None
    spectral_tol: float = 1e-2
    grad_tol: float = 1e-4
    grad_alpha: float = 1e-3
    check_draws: int = 64
    dtype: Any = np.float64
    kappa: float | None = None
    warn: bool = True
    engine: str = "numba"
    track: bool = False
    uniformity_t: float = 2.0
    alignment_alpha: float = 2.0

    @classmethod
    def from_kwargs(cls, loss=DEFAULT_LOSS, **kwargs):
        """``RunConfig`` from :func:`minissl.simulate`'s arguments (loss parameters among them)."""
        names = cls.__dataclass_fields__
        settings = {k: v for k, v in kwargs.items() if k in names and k != "loss_params"}
        loss_params = {k: v for k, v in kwargs.items() if k not in names or k == "loss_params"}
        if "loss_params" in loss_params:
            raise TypeError("loss_params: pass the loss's parameters as keyword arguments (e.g. beta=0.5).")
        return cls(loss=loss, loss_params=loss_params, **settings)

    def __post_init__(self):
        put = object.__setattr__.__get__(self)  # frozen: resolved values are set once, here
        put("loss", self._resolve_loss())
        put("loss_params", {})
        for name, choices in (("model", MODELS), ("optimizer", OPTIMIZERS), ("noise", NOISE_MODES),
                              ("lr_schedule", SCHEDULES)):
            V.check_choice(name, getattr(self, name), choices)
        steps = V.check_int("steps", self.steps, lo=1)
        lr = V.check_scalar("lr", self.lr, lo=0.0, lo_open=True)
        put("steps", steps)
        put("lr", lr)
        put("lr_final", V.check_scalar("lr_final", lr / 1000 if self.lr_final is None else self.lr_final, lo=0.0))
        put("momentum", V.check_scalar("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True))
        put("replicates", V.check_int("replicates", self.replicates, lo=1))
        self._check_batch_size(put)
        put("control_variate", V.check_bool("control_variate", self.control_variate))
        put("bias", V.check_bool("bias", self.bias))
        put("init_scale", V.check_scalar("init_scale", self.init_scale, lo=0.0, lo_open=True))
        V.check_choice("init", self.init, INITS)
        put("seed", V.check_int("seed", self.seed, lo=0))
        put("spectral_tol", V.check_scalar("spectral_tol", self.spectral_tol, lo=0.0, lo_open=True))
        put("grad_tol", V.check_scalar("grad_tol", self.grad_tol, lo=0.0))
        put("grad_alpha", V.check_scalar("grad_alpha", self.grad_alpha, lo=0.0, hi=1.0))
        put("check_draws", V.check_int("check_draws", self.check_draws, lo=2))
        put("dtype", V.check_dtype("dtype", self.dtype))
        window = V.check_int("window", min(steps, max(steps // 10, 50)) if self.window is None else self.window,
                             lo=1, hi=steps)
        put("window", window)
        half = max(window // 2, 1)
        record_every = V.check_int("record_every", max(1, min(steps // 200, half // 2))
                                   if self.record_every is None else self.record_every, lo=1)
        if record_every > half:
            raise ValueError(f"record_every == {record_every}, must be <= {half} (half the convergence window "
                             f"of {window} steps) so that the spectral-drift diagnostic sees the last window.")
        put("record_every", record_every)
        put("warn", V.check_bool("warn", self.warn))
        put("track", V.check_bool("track", self.track))
        put("uniformity_t", V.check_scalar("uniformity_t", self.uniformity_t, lo=0.0, lo_open=True))
        put("alignment_alpha", V.check_scalar("alignment_alpha", self.alignment_alpha, lo=0.0, lo_open=True))
        if self.kappa is not None and not self.loss.normalize:
            raise ValueError(f"kappa == {self.kappa!r} models output normalization; it needs a loss with "
                             "normalize=True.")
        V.check_choice("engine", self.engine, ENGINES)
        if self.optimizer == "adam" and self.momentum != 0.0:
            raise ValueError(f"momentum == {self.momentum!r} applies to optimizer='sgd', not 'adam'.")
        self._check_data(put)
        if not isinstance(self.augmentation, (str, Augmentation)):
            raise TypeError(f"augmentation == {self.augmentation!r}, must be a name or an Augmentation.")

    def _check_batch_size(self, put):
        """``batch_size``: None (full batch) or 2..N (N checked against the data by the planner)."""
        if self.batch_size is None:
            return
        put("batch_size", V.check_int("batch_size", self.batch_size, lo=2))
        if self.model != "exact":
            raise ValueError(f"batch_size == {self.batch_size!r} applies to model='exact'; the effective landscape "
                             "is deterministic (it has no samples to batch).")
        if self.control_variate:
            raise ValueError(f"batch_size == {self.batch_size!r} cannot be combined with control_variate=True (its "
                             "mean E[hat M] is over all N samples, not a minibatch).")

    def _resolve_loss(self):
        loss = self.loss
        if isinstance(loss, Loss):
            if self.loss_params:
                raise TypeError(f"loss parameters {sorted(self.loss_params)} given with a Loss object; set them "
                                "in get_loss().")
            return loss
        if not isinstance(loss, str):
            raise TypeError(f"loss == {loss!r}, must be a loss name or a Loss object.")
        V.check_choice("loss", loss, LOSS_NAMES)
        return get_loss(loss, engine=V.check_choice("engine", self.engine, ENGINES), **self.loss_params)

    def _check_data(self, put):
        data, n, variances, cov = self.data, self.n, self.variances, self.cov
        if data is not None and not isinstance(data, Dataset):
            raise TypeError(f"data == {type(data).__name__}, must be a minissl.data.Dataset.")
        if data is not None and (n is not None or variances is not None or cov is not None):
            raise ValueError("give either data= or the data's n=/variances=/cov=, not both.")
        if variances is not None and cov is not None:
            raise ValueError("give exactly one of variances= and cov=.")
        if data is None:
            put("n", DEFAULT_N if n is None else n)
            if cov is None and variances is None:
                put("variances", DEFAULT_VARIANCES)

    @property
    def compiled_capable(self):
        """Whether the loss, model and dtype allow the compiled loop (the noise must be Gaussian too):
        float64, or float32 for a loss whose step runs in float32 (the InfoNCE family)."""
        from ..losses.step import has_float32_step

        kid = self.loss.spec.kernel_id
        return (self.loss.accelerated and kid is not None and self.model == "exact"
                and (self.dtype == np.float64 or has_float32_step(kid)))
