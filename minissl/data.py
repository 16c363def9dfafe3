"""Clean data, augmentations, and the population matrices ``A0`` and ``C``.

Glossary (shapes used throughout minissl)
-----------------------------------------
``x`` : (N, d0)
    Clean data, one sample per row (the paper's :math:`\\hat x`).
``x1, x2`` : (N, d0)
    Two augmented views, ``x1 = x + eps1``, ``x2 = x + eps2`` with independent noise.
``A0`` : (d0, d0)
    Second moment of the clean data, :math:`E[\\hat x \\hat x^T]` (Sec. 3 of Ziyin et al. 2023).
``C`` : (d0, d0)
    Covariance of the augmentation noise; ``Sigma = A0 + C``.

The paper's losses are expectations over the augmentation noise. A simulation estimates
them by drawing views with :meth:`Augmentation.views`.
"""

from __future__ import annotations

import abc
import hashlib
import math
from dataclasses import dataclass

import numpy as np

from . import _validation as V

__all__ = [
    "Dataset",
    "gaussian_data",
    "second_moment",
    "covariance",
    "Augmentation",
    "IsotropicNoise",
    "StructuredNoise",
    "GaussianNoise",
    "ScaleAugmentation",
    "make_augmentation",
    "MixtureDataset",
    "gaussian_mixture",
    "imbalance_weights",
    "dirichlet_weights",
    "IMBALANCE_SCHEMES",
    "level_weights",
    "class_means",
    "probe_test_set",
    "stable_seed",
]


def second_moment(x):
    """Empirical second moment ``x.T @ x / N`` (the paper's ``A0`` for a finite set)."""
    x = V.check_array("x", x, ndim=2, min_rows=1)
    return x.T @ x / x.shape[0]


def covariance(x):
    """Empirical covariance with the mean removed, normalised by ``N`` (not ``N - 1``)."""
    x = V.check_array("x", x, ndim=2, min_rows=1)
    xc = x - x.mean(axis=0)
    return xc.T @ xc / x.shape[0]


@dataclass(frozen=True)
class Dataset:
    """A clean training set and its empirical statistics.

    Attributes
    ----------
    x : ndarray, shape (N, d0)
        Clean samples.
    A0 : ndarray, shape (d0, d0)
        Empirical second moment ``x.T @ x / N``.
    A0_centered : ndarray, shape (d0, d0)
        Empirical covariance (mean removed, divided by ``N``). Translation-invariant
        losses (the InfoNCE family) see this one.
    population : ndarray, shape (d0, d0)
        The covariance the samples were drawn from.
    """

    x: np.ndarray
    A0: np.ndarray
    A0_centered: np.ndarray
    population: np.ndarray

    @property
    def n(self):
        return self.x.shape[0]

    @property
    def dim(self):
        return self.x.shape[1]


def gaussian_data(n, variances=None, cov=None, seed=0, dtype=np.float64):
    """Draw ``n`` clean samples from a zero-mean Gaussian.

    Parameters
    ----------
    n : int
        Number of samples, >= 2.
    variances : sequence of float, optional
        Variances of the coordinates (a diagonal covariance). Give exactly one of
        ``variances`` and ``cov``.
    cov : array_like, shape (d0, d0), optional
        Full covariance, symmetric positive semi-definite.
    seed : int or numpy.random.Generator
        Seed; the same seed gives the same data.
    dtype : {float64, float32}
        dtype of the returned samples (statistics are always float64).

    Returns
    -------
    Dataset
    """
    n = V.check_int("n", n, lo=2)
    dtype = V.check_dtype("dtype", dtype)
    if (variances is None) == (cov is None):
        raise ValueError("give exactly one of variances= and cov=.")
    if variances is not None:
        var = V.check_array("variances", variances, ndim=1, dtype=np.float64)
        if var.size < 1:
            raise ValueError("variances is empty, must have at least one entry (dim >= 1).")
        if np.any(var < 0):
            raise ValueError(f"variances contains {float(var.min())!r}, all entries must be >= 0.")
        pop = np.diag(var)
        factor = np.diag(np.sqrt(var))
    else:
        pop = V.check_covariance("cov", cov)
        if pop.shape[0] < 1:
            raise ValueError(f"cov has shape {pop.shape}, must have dimension >= 1.")
        w, U = np.linalg.eigh(pop)
        factor = U * np.sqrt(np.clip(w, 0.0, None))
    rng = V.check_rng(seed)
    z = rng.standard_normal((n, pop.shape[0]))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        x = z @ factor.T
        x64 = np.asarray(x, dtype=np.float64)
        A0 = x64.T @ x64 / n if np.all(np.isfinite(x64)) else np.full((1, 1), np.inf)
    if not np.all(np.isfinite(A0)):
        raise ValueError("the data's second moment overflows float64; variances or cov are too large "
                         f"(largest == {float(np.max(np.abs(pop))):.3g}).")
    return Dataset(
        x=np.ascontiguousarray(x, dtype=dtype),
        A0=A0,
        A0_centered=covariance(x64),
        population=pop,
    )


class Augmentation(abc.ABC):
    """Base class: an augmentation draws a view of each clean sample.

    Subclasses implement :meth:`sample` and :meth:`covariance`.
    """

    name = "augmentation"

    @abc.abstractmethod
    def sample(self, x, rng):
        """Return one augmented view of the clean samples ``x`` (N, d0)."""

    @abc.abstractmethod
    def covariance(self, A0):
        """Noise covariance ``C`` (d0, d0) for clean data with second moment ``A0``."""

    def clean_moment(self, A0):
        """Second moment of the noise-averaged view ``E[x | x_hat]``; ``A0`` for additive noise."""
        return A0

    def views(self, x, rng, replicates=1):
        """Draw ``replicates`` pairs of independent views.

        Returns
        -------
        x1, x2 : ndarray, shape (replicates, N, d0)
        """
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype.kind != "f":
            x = V.check_array("x", x, ndim=2)
        replicates = V.check_int("replicates", replicates, lo=1)
        rng = V.check_rng(rng)
        out1 = np.empty((replicates,) + x.shape, dtype=x.dtype)
        out2 = np.empty_like(out1)
        for r in range(replicates):
            out1[r] = self.sample(x, rng)
            out2[r] = self.sample(x, rng)
        return out1, out2


def _check_sigma(sigma):
    sigma = V.check_scalar("sigma", sigma, lo=0.0)
    if not np.isfinite(sigma * sigma):
        raise ValueError(f"sigma == {sigma!r} is too large: sigma^2 overflows float64.")
    return sigma


class GaussianNoise(Augmentation):
    """Additive Gaussian noise ``x = x_hat + eps``, ``eps ~ N(0, C)`` with a given ``C``."""

    name = "gaussian"

    def __init__(self, C):
        self.C = V.check_covariance("C", C)
        if np.count_nonzero(self.C - np.diag(np.diag(self.C))) == 0:
            self._factor = np.diag(np.sqrt(np.clip(np.diag(self.C), 0.0, None)))
            self._diag = np.sqrt(np.clip(np.diag(self.C), 0.0, None))
        else:
            w, U = np.linalg.eigh(self.C)
            self._factor = U * np.sqrt(np.clip(w, 0.0, None))
            self._diag = None

    @property
    def factor(self):
        """``F`` with ``F F^T = C``; noise is ``F xi``, ``xi ~ N(0, I)`` (diagonal when C is)."""
        return self._factor.copy()

    def sample(self, x, rng):
        d0 = self.C.shape[0]
        if x.shape[1] != d0:
            raise ValueError(f"x has shape {x.shape} but the augmentation expects d0 == {d0}.")
        xi = rng.standard_normal(x.shape)
        # diagonal C (isotropic, structured): elementwise, no BLAS call in the training loop
        eps = xi * self._diag if self._diag is not None else xi @ self._factor.T
        return (x + eps).astype(x.dtype, copy=False)

    def covariance(self, A0=None):
        return self.C.copy()


class IsotropicNoise(GaussianNoise):
    """Isotropic Gaussian noise ``eps ~ N(0, sigma^2 I)`` (Appendix A of Ziyin et al. 2023)."""

    name = "isotropic"

    def __init__(self, sigma, dim):
        self.sigma = _check_sigma(sigma)
        dim = V.check_int("dim", dim, lo=1)
        super().__init__(self.sigma**2 * np.eye(dim))


class StructuredNoise(GaussianNoise):
    """Content/style noise ``x = x_hat + sigma R xi`` of Sec. 4.2 of Ziyin et al. (2023).

    ``R = diag(sqrt(1 - theta) on the content block, sqrt(theta) on the style block)``,
    ``xi ~ N(0, I)``. ``theta = 0.5`` is isotropic noise of variance ``sigma^2 / 2``,
    ``theta = 1`` perturbs only the style (task-irrelevant) coordinates, ``theta = 0``
    only the content. The paper's example is ``d0 = 2`` with one content coordinate.

    Parameters
    ----------
    sigma : float, >= 0
        Overall strength.
    theta : float in [0, 1]
        Orientation: the share of the variance put on the style block.
    dim : int, >= 1
        Input dimension ``d0``.
    content_dims : int, optional
        Number of leading (content) coordinates, ``0 <= content_dims <= dim``;
        default ``dim // 2`` (1 for the paper's ``d0 = 2``).
    """

    name = "structured"

    def __init__(self, sigma, theta, dim, content_dims=None):
        self.sigma = _check_sigma(sigma)
        self.theta = V.check_scalar("theta", theta, lo=0.0, hi=1.0)
        dim = V.check_int("dim", dim, lo=1)
        if content_dims is None:
            content_dims = max(dim // 2, 0)
        self.content_dims = V.check_int("content_dims", content_dims, lo=0, hi=dim)
        r2 = np.full(dim, self.theta)
        r2[: self.content_dims] = 1.0 - self.theta
        super().__init__(self.sigma**2 * np.diag(r2))


class ScaleAugmentation(Augmentation):
    """Global rescaling ``x = s * x_hat``, ``s ~ Exponential(mean b)`` (Appendix F.1).

    The noise is multiplicative, data dependent and non-Gaussian. Its mean view is
    ``b * x_hat``, so the clean second moment seen by the model is ``b^2 A0`` and the
    augmentation covariance is ``C = Var(s) A0 = b^2 A0`` (Eq. 54). Its fourth-order
    landscape is not Proposition 1's: :func:`minissl.effective_landscape` with ``scale=True``
    (derived constants, docs/errata.md E10; used by ``simulate`` and ``theory point
    --augmentation scale``).
    """

    name = "scale"

    def __init__(self, b):
        self.b = V.check_scalar("b", b, lo=0.0, lo_open=True)

    def sample(self, x, rng):
        s = rng.exponential(self.b, size=(x.shape[0], 1))
        return (s * x).astype(x.dtype, copy=False)

    def covariance(self, A0):
        A0 = V.check_covariance("A0", A0)
        return self.b**2 * A0

    def clean_moment(self, A0):
        A0 = V.check_covariance("A0", A0)
        return self.b**2 * A0


def make_augmentation(kind, dim, sigma=1.0, theta=0.5, content_dims=None, b=1.0):
    """Build an augmentation by name: ``isotropic``, ``structured`` or ``scale``."""
    V.check_choice("augmentation", kind, ("isotropic", "structured", "scale"))
    if kind == "isotropic":
        return IsotropicNoise(sigma, dim)
    if kind == "structured":
        return StructuredNoise(sigma, theta, dim, content_dims)
    return ScaleAugmentation(b)


# --------------------------------------------------------------------------- class mixtures

@dataclass(frozen=True)
class MixtureDataset(Dataset):
    """A :class:`Dataset` drawn from a Gaussian mixture, with its class labels.

    Everything a :class:`Dataset` has (``x``, ``A0``, ``A0_centered``, ``population``;
    accepted wherever a Dataset is), plus:

    Attributes
    ----------
    labels : ndarray of int, shape (N,)
        Class of each sample, ``0 .. K-1``.
    means : ndarray, shape (K, d0)
        Class means.
    weights : ndarray, shape (K,)
        Class probabilities (normalised to sum 1).
    within : float
        Within-class standard deviation (isotropic).
    population : ndarray, shape (d0, d0)
        The mixture's covariance (mean removed):
        ``sum_k w_k mu_k mu_k^T - m m^T + within^2 I`` with ``m = sum_k w_k mu_k``.
    """

    labels: np.ndarray
    means: np.ndarray
    weights: np.ndarray
    within: float

    @property
    def n_classes(self):
        """Number of classes ``K`` (including any with weight 0)."""
        return self.means.shape[0]

    @property
    def counts(self):
        """Number of samples of each class, shape (K,)."""
        return np.bincount(self.labels, minlength=self.n_classes)

    @property
    def population_mean(self):
        """``m = sum_k w_k mu_k``."""
        return self.weights @ self.means

    @property
    def population_A0(self):
        """Population second moment ``sum_k w_k mu_k mu_k^T + within^2 I`` (the paper's A0)."""
        return (self.means.T * self.weights) @ self.means + self.within**2 * np.eye(self.means.shape[1])


def imbalance_weights(k, ratio):
    """Geometric class weights with a given imbalance ratio ``n_max / n_min``.

    ``w_j proportional to ratio^(-j / (k - 1))`` for ``j = 0 .. k-1``: class 0 is the
    majority, class ``k - 1`` the minority, and ``w_0 / w_{k-1} == ratio``
    (``ratio = 1``: balanced).

    Parameters
    ----------
    k : int, >= 1
        Number of classes.
    ratio : float, >= 1
        Imbalance ratio (finite).

    Returns
    -------
    ndarray, shape (k,)
        Non-negative, summing to 1, non-increasing.
    """
    k = V.check_int("k", k, lo=1)
    ratio = V.check_scalar("ratio", ratio, lo=1.0)
    if k == 1:
        return np.ones(1)
    with np.errstate(under="ignore"):
        w = np.exp(-np.log(ratio) * np.arange(k) / (k - 1))
    return w / w.sum()


def dirichlet_weights(k, alpha, seed=0):
    """Class weights drawn from a symmetric Dirichlet(alpha) distribution.

    The protocol of Appendix C of Ziyin et al. (2023) (after Hsu et al. 2019): a small
    ``alpha`` gives a highly imbalanced draw (some classes nearly or exactly empty), a
    large one a nearly balanced one; ``alpha = inf`` gives exactly uniform weights.

    Parameters
    ----------
    k : int, >= 1
    alpha : float, > 0 (``numpy.inf`` allowed)
    seed : int or numpy.random.Generator

    Returns
    -------
    ndarray, shape (k,)
        Non-negative, summing to 1.
    """
    k = V.check_int("k", k, lo=1)
    alpha = V.check_scalar("alpha", alpha, lo=0.0, lo_open=True, allow_inf=True)
    if np.isinf(alpha):
        return np.full(k, 1.0 / k)
    rng = V.check_rng(seed)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        w = rng.dirichlet(np.full(k, alpha))
    if not np.all(np.isfinite(w)) or not w.sum() > 0:
        if alpha >= 1.0:
            # the gamma variates are ~alpha each; their sum overflows near alpha ~ 1.8e308 / k
            raise ValueError(f"alpha == {alpha!r} is too large: the Dirichlet draw overflows float64 "
                             f"(its {k} gamma variates of size ~alpha sum past 1.8e308); use a finite alpha "
                             f"below {1e307 / k:.3g}, or alpha = inf for exactly uniform weights.")
        raise ValueError(f"alpha == {alpha!r} is too small: the Dirichlet draw underflows (no class gets a "
                         "positive weight); use a larger alpha. Note that any alpha below ~0.01 already puts "
                         "almost all weight on one class and can leave classes with weight exactly 0.")
    return w / w.sum()


IMBALANCE_SCHEMES = ("geometric", "dirichlet")


def stable_seed(*parts):
    """A 32-bit seed from printable parts, the same in every process and Python version.

    ``int(sha256("/".join(repr(p) for p in parts))[:8], 16)``: the seed of one piece of data
    depends only on the parts that name it (e.g. ``("sample", seed, scheme, level)``), not on
    the order in which a program draws the pieces.
    """
    return int(hashlib.sha256("/".join(repr(p) for p in parts).encode()).hexdigest()[:8], 16)


def level_weights(scheme, level, classes, seed):
    """Class weights of one imbalance level.

    Parameters
    ----------
    scheme : {"geometric", "dirichlet"}
        ``geometric``: :func:`imbalance_weights` with ratio ``level``; ``dirichlet``:
        :func:`dirichlet_weights` with concentration ``level``, the draw seeded by
        ``stable_seed("dirichlet", seed, level)``.
    level : float
    classes : int
    seed : int

    Returns
    -------
    ndarray, shape (classes,)
    """
    V.check_choice("scheme", scheme, IMBALANCE_SCHEMES)
    if scheme == "geometric":
        return imbalance_weights(classes, level)
    return dirichlet_weights(classes, level, seed=np.random.default_rng(stable_seed("dirichlet", seed, level)))


def class_means(classes, dim, radius, seed, center=True):
    """Class means ``~ N(0, radius^2 / dim I)``, shape (classes, dim); centred to mean 0 if ``center``.

    The draw is seeded by ``stable_seed("means", seed)``.
    """
    classes = V.check_int("classes", classes, lo=2)
    dim = V.check_int("dim", dim, lo=1)
    radius = V.check_scalar("radius", radius, lo=0.0, lo_open=True)
    rng = np.random.default_rng(stable_seed("means", seed))
    mu = rng.standard_normal((classes, dim)) * radius / math.sqrt(dim)
    return mu - mu.mean(0) if center else mu


def probe_test_set(means, within, per_class, seed):
    """A balanced labelled test set of a mixture with isotropic within-class noise.

    Parameters
    ----------
    means : ndarray (K, d0)
        Class means.
    within : float
        Within-class standard deviation.
    per_class : int, >= 1
        Samples of every class.
    seed : int
        The draw is seeded by ``stable_seed("test", seed)``.

    Returns
    -------
    x : ndarray (K * per_class, d0)
    y : ndarray of int (K * per_class,)
        Labels, ``per_class`` of each class in class order.
    """
    per_class = V.check_int("test_per_class", per_class, lo=1)
    rng = np.random.default_rng(stable_seed("test", seed))
    k, d0 = means.shape
    y = np.repeat(np.arange(k), per_class)
    return means[y] + within * rng.standard_normal((y.size, d0)), y


def _stratified_counts(n, w):
    """Largest-remainder counts ``~ n w`` with at least one sample per class of weight > 0."""
    raw = n * w
    counts = np.floor(raw).astype(np.int64)
    rest = n - int(counts.sum())
    order = np.lexsort((np.arange(w.size), -(raw - counts)))  # largest remainder first, ties by index
    counts[order[:rest]] += 1
    for j in np.flatnonzero((w > 0) & (counts == 0)):
        counts[int(np.argmax(counts))] -= 1  # n >= #positive classes, so the largest count is >= 2
        counts[j] = 1
    return counts


def gaussian_mixture(n, means, weights=None, within=1.0, seed=0, stratified=False, dtype=np.float64):
    """Draw ``n`` samples from a Gaussian mixture with isotropic within-class noise.

    ``x = mu_y + within * z`` with class ``y ~ weights`` and ``z ~ N(0, I)``.

    Parameters
    ----------
    n : int, >= 2
        Number of samples; at least the number of classes with weight > 0.
    means : array_like, shape (K, d0)
        Class means, one per row (finite).
    weights : array_like, shape (K,), optional
        Class probabilities, >= 0 with a positive sum; normalised to sum 1. Default
        uniform. See :func:`imbalance_weights` and :func:`dirichlet_weights`.
    within : float, >= 0
        Within-class standard deviation.
    seed : int or numpy.random.Generator
        The same seed gives the same labels and samples.
    stratified : bool
        ``False`` (default): labels i.i.d. from ``weights`` (class counts are multinomial).
        ``True``: class counts fixed at ``n * weights`` rounded by largest remainder,
        every class of positive weight getting at least one sample (a controlled
        imbalance without sampling noise in the counts); the order is shuffled.
    dtype : {float64, float32}

    Returns
    -------
    MixtureDataset
        A :class:`Dataset` (``A0`` is the empirical second moment, ``A0_centered`` the
        empirical covariance) with ``labels``, ``means``, ``weights`` and ``within``.
    """
    n = V.check_int("n", n, lo=2)
    dtype = V.check_dtype("dtype", dtype)
    mu = V.check_array("means", means, ndim=2, dtype=np.float64)
    if mu.shape[0] < 1 or mu.shape[1] < 1:
        raise ValueError(f"means has shape {mu.shape}, must be (K, d0) with K >= 1 classes and d0 >= 1.")
    k, d0 = mu.shape
    if weights is None:
        w = np.full(k, 1.0 / k)
    else:
        w = V.check_array("weights", weights, ndim=1, dtype=np.float64)
        if w.shape != (k,):
            raise ValueError(f"weights has shape {w.shape}, must have shape ({k},) (one weight per row of means).")
        if np.any(w < 0):
            raise ValueError(f"weights contains {float(w.min())!r}, all entries must be >= 0.")
        top = float(w.max())
        if not top > 0:
            raise ValueError("weights sums to 0, must have a positive sum (at least one class with weight > 0).")
        w = w / top  # rescale first: the sum of large finite weights (e.g. 3 x 1e308) would overflow
        w = w / float(w.sum())
    within = V.check_scalar("within", within, lo=0.0)
    stratified = V.check_bool("stratified", stratified)
    nonempty = int(np.count_nonzero(w > 0))
    if n < nonempty:
        raise ValueError(f"n == {n}, must be >= {nonempty} (the number of classes with weight > 0).")
    scale = max(float(np.max(np.abs(mu))), within)
    if not np.isfinite(scale * scale * d0):
        raise ValueError(f"the data's second moment overflows float64; means or within are too large "
                         f"(largest == {scale:.3g}).")
    rng = V.check_rng(seed)
    if stratified:
        labels = np.repeat(np.arange(k), _stratified_counts(n, w))
        labels = labels[rng.permutation(n)]
    else:
        labels = rng.choice(k, size=n, p=w)
    z = rng.standard_normal((n, d0))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        x64 = mu[labels] + within * z
        m = w @ mu
        pop = (mu.T * w) @ mu - np.outer(m, m) + within**2 * np.eye(d0)
        finite_x = bool(np.all(np.isfinite(x64)))
        A0 = x64.T @ x64 / n if finite_x else np.full((d0, d0), np.inf)
        A0c = covariance(x64) if finite_x else np.full((d0, d0), np.inf)
    if not (np.all(np.isfinite(A0)) and np.all(np.isfinite(A0c)) and np.all(np.isfinite(pop))):
        raise ValueError(f"the data's second moment A0 overflows float64 (n == {n} samples); means or within are "
                         f"too large (largest |mean| entry == {float(np.max(np.abs(mu))):.3g}, "
                         f"within == {within:.3g}).")
    if dtype == np.float32 and not np.all(np.isfinite(x64.astype(np.float32))):
        raise ValueError(f"the data overflow float32 (largest |mean| entry == {float(np.max(np.abs(mu))):.3g}, "
                         f"within == {within:.3g}); use dtype=float64 or smaller means/within.")
    return MixtureDataset(
        x=np.ascontiguousarray(x64, dtype=dtype),
        A0=A0,
        A0_centered=A0c,
        population=0.5 * (pop + pop.T),
        labels=labels.astype(np.int64),
        means=mu,
        weights=w,
        within=within,
    )
