"""Exact sample-based SSL losses for a linear model ``f(x) = W x + b``.

Use :func:`get_loss` to build a loss object; its :meth:`Loss.value_and_grad` returns the
loss of one batch of paired views and its analytic gradient.

Variants shared by every loss (Sec. 3.2 of Ziyin et al. 2023):

* ``normalize=True``: outputs are projected to the sphere of squared radius ``c``,
  ``f -> sqrt(c) f / ||f||`` (the norm is clamped below at ``norm_eps`` as in
  ``torch.nn.functional.normalize``, so a zero output never produces NaN);
* a bias ``b`` (pass ``b=`` to :meth:`Loss.value_and_grad`);
* ``weight_decay = gamma``: ``+ gamma * ||W||_F^2`` (the bias is not decayed).

Engines: ``engine="numba"`` (default) runs a compiled step for every loss and variant
except ``simclr`` — the fused pair kernels of :mod:`minissl.losses.kernels` (InfoNCE
family) and :mod:`minissl.losses.kernels_scl`, and :mod:`minissl.losses.kernels_decorrelation`
(Barlow Twins, VICReg); ``engine="numpy"`` runs the readable reference of
:mod:`minissl.losses.reference`, which every kernel is tested against.

``simclr`` (the standard cosine/temperature NT-Xent, :mod:`minissl.losses.simclr`) has no
Numba kernel: with either engine it runs the NumPy core (``Loss.accelerated`` is False,
so :func:`minissl.simulate` uses its Python training loop). It normalises its outputs
itself, so it refuses ``normalize=True``; ``temperature`` plays the role of ``1/c``
(see docs/conventions.md).
"""

from __future__ import annotations

import numpy as np

from .. import _validation as V
from .registry import COMMON_PARAMS, INFONCE_FAMILY, LOSS_NAMES, REGISTRY, LossSpec, infonce_numbers, spec

__all__ = ["Loss", "get_loss", "check_loss_object", "LOSS_NAMES", "ENGINES", "REGISTRY", "LossSpec", "spec"]

ENGINES = ("numba", "numpy")


class Loss:
    """An exact SSL loss on a linear model, with analytic gradients (NumPy reference).

    Build it with :func:`get_loss`. Attributes ``name``, ``spec`` (its
    :class:`~minissl.losses.registry.LossSpec`), ``params`` (the loss's own parameters,
    e.g. ``alpha``, ``beta``) and ``normalize``, ``c``, ``weight_decay`` describe it fully;
    ``core_kwargs`` are the arguments of its reference core (own parameters plus the ones
    the loss fixes, e.g. InfoNCE's ``alpha = beta = 1``).
    """

    def __init__(self, name, core, params, normalize=False, c=1.0, weight_decay=0.0,
                 norm_eps=1e-12, engine="numba"):
        self.name = name
        self.spec = spec(name)
        self.engine = V.check_choice("engine", engine, ENGINES)
        self._workspace = None
        self._core = core
        self.params = dict(params)
        self.normalize = V.check_bool("normalize", normalize)
        self.c = V.check_scalar("c", c, lo=0.0, lo_open=True)
        self.weight_decay = V.check_scalar("weight_decay", weight_decay, lo=0.0)
        self.norm_eps = V.check_scalar("norm_eps", norm_eps, lo=0.0, lo_open=True)
        if not self.spec.normalize_allowed:
            if self.normalize:
                raise ValueError(
                    f"normalize == True is not allowed for loss {name!r}: it already normalises its "
                    "outputs (cosine similarity u = f/|f|, scaled by 1/temperature); leave normalize=False "
                    "and set temperature (the Gaussian-kernel losses with normalize=True, c = 1/temperature "
                    "are the equivalent, see docs/conventions.md).")
            if self.c != 1.0:
                raise ValueError(
                    f"c == {self.c!r} has no effect on loss {name!r} (c is the squared output norm under "
                    "normalize=True, which it refuses); its scale is 1/temperature: set temperature "
                    "instead.")
            # a self-normalising core clamps the norm itself
            self.core_kwargs = {**self.params, "eps": self.norm_eps}
        else:
            self.core_kwargs = {**self.params, **self.spec.fixed}

    @property
    def accelerated(self):
        """True when ``value_and_grad`` runs a compiled Numba kernel (engine and loss allow it)."""
        return self.engine == "numba" and self.spec.accelerated

    @property
    def translation_invariant(self):
        """True when the loss ignores a common shift of the outputs (so the bias is free)."""
        return self.spec.translation_invariant(self.core_kwargs)

    @property
    def alpha(self):
        """Positive-pair weight of the InfoNCE family (None for other losses)."""
        return self.core_kwargs.get("alpha")

    @property
    def beta(self):
        """Entropy weight of the InfoNCE family (None for other losses)."""
        return self.core_kwargs.get("beta")

    def infonce_numbers(self):
        """``(alpha, beta, both)`` of an InfoNCE-family loss (``both``: negatives from both views).

        What the family's compiled cores, the control variate and the GPU probes take
        (:func:`minissl.losses.registry.infonce_numbers`).

        Raises
        ------
        ValueError
            For a loss outside the InfoNCE family.
        """
        if self.name not in INFONCE_FAMILY:
            raise ValueError(f"loss {self.name!r} is not of the InfoNCE family ({', '.join(INFONCE_FAMILY)}): "
                             "it has no alpha, beta or negatives of that family.")
        return infonce_numbers(self.core_kwargs)

    def core(self, y1, y2):
        """The NumPy reference core on (projected) outputs: ``(value, g1, g2)`` (no weight decay)."""
        return self._core(y1, y2, **self.core_kwargs)

    @property
    def title(self):
        """The loss's title in reports (from the registry)."""
        return self.spec.title

    def unnormalized(self):
        """The same loss without output normalization (what the Eq. (10) penalty model uses)."""
        if not self.normalize:
            return self
        return get_loss(self.name, weight_decay=self.weight_decay, **self.params)

    def __repr__(self):
        extra = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        var = (f"normalize={self.normalize}, c={self.c}, weight_decay={self.weight_decay}, "
               f"engine={self.engine!r}")
        return f"Loss({self.name!r}{', ' + extra if extra else ''}, {var})"

    def project(self, z):
        """Outputs as the loss sees them: ``sqrt(c) z / max(|z|, norm_eps)`` with normalize, else ``z``.

        Returns ``(y, cache)``; ``cache`` (None without normalization) is what
        :meth:`project_backward` needs.
        """
        if not self.normalize:
            return z, None
        nrm = np.maximum(np.sqrt((z * z).sum(1, keepdims=True)), self.norm_eps)
        u = z / nrm
        return np.sqrt(self.c) * u, (u, nrm)

    def project_backward(self, g, cache):
        """Gradient with respect to ``z`` from the gradient ``g`` with respect to :meth:`project`'s output."""
        if cache is None:
            return g
        u, nrm = cache
        return np.sqrt(self.c) / nrm * (g - u * (g * u).sum(1, keepdims=True))

    def value_and_grad(self, W, x1, x2, b=None):
        """Loss of one batch of paired views and its gradient.

        Parameters
        ----------
        W : array_like, shape (d1, d0)
            Weights; float64 by default, float32 is kept as float32.
        x1, x2 : array_like, shape (N, d0)
            The two views, row ``i`` of each coming from clean sample ``i``; N >= 2.
        b : array_like, shape (d1,), optional
            Bias; ``f(x) = x @ W.T + b``.

        Returns
        -------
        value : float
            The loss averaged over anchors (plus weight decay).
        dW : ndarray, shape (d1, d0)
        db : ndarray, shape (d1,) or None
            ``None`` when ``b`` is None.
        """
        W, x1, x2, b = V.check_matrix_pair(W, x1, x2, b)
        with np.errstate(over="ignore", invalid="ignore"):
            value, dW, db = self.value_and_grad_unchecked(W, x1, x2, b)
            finite = np.isfinite(value) and np.all(np.isfinite(dW)) and (db is None or np.all(np.isfinite(db)))
            zmax = float(np.max(np.abs(x1 @ W.T))) if not finite else 0.0
        if not finite:
            raise ValueError(
                f"W, x1, x2: the loss {self.name!r} is not finite in {np.dtype(W.dtype).name} at these inputs "
                f"(value == {value!r}, largest |W x1| == {zmax:.3g}); scale W or the data down.")
        return value, dW, db

    def value_and_grad_unchecked(self, W, x1, x2, b=None):
        """As :meth:`value_and_grad` without argument checks (for inner loops)."""
        if self.accelerated:
            if self._workspace is None:
                from .kernels import LinearWorkspace

                self._workspace = LinearWorkspace()
            return self.spec.kernel(self.core_kwargs, W, x1, x2, b, self.normalize, self.c, self.norm_eps,
                                    self.weight_decay, self._workspace)
        z1 = x1 @ W.T
        z2 = x2 @ W.T
        if b is not None:
            z1 = z1 + b
            z2 = z2 + b
        y1, c1 = self.project(z1)
        y2, c2 = self.project(z2)
        value, g1, g2 = self.core(y1, y2)
        g1 = self.project_backward(g1, c1)
        g2 = self.project_backward(g2, c2)
        dW = g1.T @ x1 + g2.T @ x2
        db = None if b is None else g1.sum(0) + g2.sum(0)
        if self.weight_decay:
            value += self.weight_decay * float((W * W).sum())
            dW = dW + 2.0 * self.weight_decay * W
        return value, dW.astype(W.dtype, copy=False), (None if db is None else db.astype(W.dtype, copy=False))

    def value(self, W, x1, x2, b=None):
        """The loss value only (see :meth:`value_and_grad`)."""
        return self.value_and_grad(W, x1, x2, b)[0]


def check_loss_object(loss):
    """Return ``loss`` if it is a :class:`Loss`, else raise ``TypeError`` naming it."""
    if not isinstance(loss, Loss):
        raise TypeError(f"loss == {loss!r}, must be a Loss from minissl.get_loss(...).")
    return loss


def get_loss(name, **params):
    """Build an exact SSL loss by name.

    Parameters
    ----------
    name : {"infonce", "weighted", "beta", "scl", "barlow", "vicreg", "simclr"}
        ``infonce``: Eq. (1) of Ziyin et al. (2023). ``weighted``: Eq. (7), param
        ``alpha`` (default 0, the paper's NT-Xent). ``beta``: beta-InfoNCE of Sec. 4.2,
        param ``beta`` (default 0.5) and ``alpha`` (default 1). ``scl``: spectral
        contrastive loss, Eq. (14). ``barlow``: Barlow Twins, params ``lam`` (5e-3),
        ``standardize`` (True), ``eps`` (1e-5). ``vicreg``: VICReg, params ``inv``,
        ``var``, ``cov`` (25, 25, 1), ``gamma`` (1), ``eps`` (1e-4). ``simclr``: SimCLR's
        NT-Xent (cosine similarity / temperature, 2N anchors, 2N - 2 negatives; see
        :func:`minissl.losses.simclr.simclr_core`), params ``temperature`` (0.5) and
        ``decoupled`` (False; True drops the positive from the denominator, DCL); it
        refuses ``normalize=True`` (it normalises itself) and ``c != 1``, and has no Numba
        kernel (any engine runs its NumPy core).
        The InfoNCE family and SCL also take ``negatives`` ("view1" or "both").
    **params
        The loss's own parameters and the common ones: ``normalize`` (bool, default
        False), ``c`` (squared output norm under normalization, default 1),
        ``weight_decay`` (default 0), ``norm_eps`` (default 1e-12), ``engine``
        ("numba", default, or "numpy"; see the module docstring).

    Returns
    -------
    Loss

    Examples
    --------
    >>> import numpy as np, minissl
    >>> loss = minissl.get_loss("beta", beta=0.5)
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(2, 3)); x1 = rng.normal(size=(8, 3)); x2 = x1 + 0.1
    >>> value, dW, db = loss.value_and_grad(W, x1, x2)
    >>> dW.shape, db is None
    ((2, 3), True)
    """
    V.check_choice("name", name, LOSS_NAMES)
    entry = REGISTRY[name]
    own_names = entry.param_names
    unknown = set(params) - set(own_names) - set(COMMON_PARAMS)
    if unknown:
        allowed = ", ".join(sorted(set(own_names) | set(COMMON_PARAMS)))
        bad = sorted(unknown)[0]
        hint = (" (a bias is not part of the loss: pass b= to Loss.value_and_grad(W, x1, x2, b), or bias=True to "
                "minissl.simulate to train one)" if bad in ("b", "bias") else "")
        raise TypeError(f"get_loss({name!r}) got an unknown parameter {bad!r}; allowed: {allowed}{hint}.")
    own = {p.name: p.check(params.get(p.name, p.default)) for p in entry.params}
    common = {k: params.get(k, default) for k, default in COMMON_PARAMS.items()}
    return Loss(name, entry.core, own, **common)
