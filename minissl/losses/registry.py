"""The loss registry: one entry per exact SSL loss, read by every other part of minissl.

Each :class:`LossSpec` holds, for one loss, everything the rest of the package needs to
know about it: its name and title, its parameters (defaults, validators, help text, CLI
option), the NumPy reference core (:mod:`minissl.losses.reference`), the compiled kernel
(:mod:`minissl.losses.kernels`, ``kernels_scl``, ``kernels_decorrelation``) and the id the
compiled training loop dispatches on, the derived effective ``B`` and the paper's printed
``B`` (Hessian at the origin ``-2B``), the quartic term of the effective landscape, its
invariances, whether the control variate applies, and which command-line options apply.

The training loops (:mod:`minissl.train`), the effective landscape
(:mod:`minissl.landscape`), the theory (:mod:`minissl.theory`), the control variate, the
CLI's choices and the report titles all read this table; no other module compares loss
names. Adding a loss is one entry here, its reference core, its kernel (optional) and its
tests (see docs/architecture.md).

The constants are derived in docs/errata.md and measured against the exact losses in
tests/test_coefficients.py; they differ from the paper's printed ones. Notation:
``A0c = A0 - mean mean^T`` the centred clean covariance, ``v`` the number of views the
negatives come from (1 or 2), ``gamma`` the weight decay (folded in by the callers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import _validation as V
from . import reference, simclr

__all__ = ["Param", "LossSpec", "REGISTRY", "LOSS_NAMES", "COMMON_PARAMS", "PAPER_LOSS", "DEFAULT_LOSS", "INFONCE_FAMILY",
           "QUARTIC_TRACE", "QUARTIC_BARLOW", "QUARTIC_FORMS", "TABLE1_VARIANTS", "spec", "names", "titles",
           "option_params", "infonce_numbers", "KERNEL_INFONCE", "KERNEL_SCL", "KERNEL_BARLOW", "KERNEL_VICREG"]

# ids of the compiled step kernels (minissl.losses.step.linear_step dispatches on them)
KERNEL_INFONCE, KERNEL_SCL, KERNEL_BARLOW, KERNEL_VICREG = 0, 1, 2, 3

# the forms of the fourth-order term of the effective landscape (minissl.Landscape.quartic):
# Prop. 1's k Tr[(W S W^T)^2], and Barlow Twins' sum_k G_kk^2 + lam sum_{k != l} G_kl^2
QUARTIC_TRACE, QUARTIC_BARLOW = "trace", "barlow"
QUARTIC_FORMS = (QUARTIC_TRACE, QUARTIC_BARLOW)


@dataclass(frozen=True)
class Param:
    """One parameter of a loss: name, default, validator, help text and CLI exposure.

    ``check(value)`` returns the validated value or raises ``ValueError``/``TypeError``
    naming the parameter. ``cli`` is False for parameters the ``minissl`` command does not
    expose as an option of its own.
    """

    name: str
    default: object
    check: Callable
    help: str
    cli: bool = True


def _real(name, **bounds):
    return lambda v: V.check_scalar(name, v, **bounds)


def _boolean(name):
    return lambda v: V.check_bool(name, v)


def _negatives():
    return Param("negatives", "view1", lambda v: V.check_choice("negatives", v, ("view1", "both")),
                 "Negatives: other samples' first views (Eq. 1) or both views.")


# parameters every loss takes (Sec. 3.2: normalization, weight decay; engine)
COMMON_PARAMS = {"normalize": False, "c": 1.0, "weight_decay": 0.0, "norm_eps": 1e-12, "engine": "numba"}


@dataclass(frozen=True)
class LossSpec:
    """Everything minissl knows about one loss (see the module docstring).

    Attributes
    ----------
    name, title : str
        Registry key and the title used in reports.
    params : tuple of Param
        The loss's own parameters.
    core : callable
        NumPy reference ``core(z1, z2, **core_kwargs) -> (value, g1, g2)``.
    fixed : dict
        Core arguments the loss fixes (e.g. InfoNCE is the family with ``alpha = beta = 1``).
    kernel : callable or None
        Compiled value and gradient ``kernel(kw, W, x1, x2, b, normalize, c, norm_eps,
        weight_decay, workspace)``; None: the reference runs with every engine.
    kernel_id : int or None
        Id of the compiled step for the whole-loop training (``KERNEL_*``).
    kernel_params : callable
        ``kernel_params(kw) -> tuple of float``: the loss's numbers for the compiled step.
    family : str
        ``"infonce"`` for the InfoNCE family (one core, one kernel, one landscape form).
    effective_B, paper_B : callable or None
        ``effective_B(kw, A0, C, n, mean, d1)`` and ``paper_B(kw, A0, C, n)`` before weight
        decay; None where no such constant exists (the reason is ``no_B``).
    quartic : callable or None
        ``quartic(kw, A0, C, mean, scale) -> dict`` of :class:`minissl.Landscape` fields
        besides ``B`` (``S``, ``k``, ``Sigma``, ``quartic``, ``lam``; with ``scale`` also
        ``kappa`` and ``c``); None: no
        fourth-order landscape (the reason is ``no_landscape``). ``scale``: the views are
        ``s x_hat`` with ``s ~ Exp(mean b)`` (App. F.1; ``A0 = b^2 A_hat``, ``C = b^2 A_hat``)
        instead of Gaussian noise. Only the InfoNCE family's form changes: its quartic is
        a conditional variance over negatives, which sees the fourth moments of ``s``;
        SCL's ``E[(z_i . z_j)^2]`` (``i != j``, independent views) and the raw Barlow
        cross-correlation's expectation involve second moments only, the same for both.
    translation_invariant : callable
        ``translation_invariant(kw) -> bool``: the loss ignores a common shift of outputs.
    control_variate : bool
        The exact quadratic part is available (:mod:`minissl.control_variate`).
    trace_theory : bool
        Its landscape has the trace form, so the closed forms of :mod:`minissl.theory`
        apply (Theorems 1-3).
    mlp : bool
        The small MLP of Appendix B (:mod:`minissl.nonlinear`) supports it.
    normalize_allowed : bool
        ``normalize=True`` is meaningful (False for losses that normalise themselves).
    table1 : dict or None
        The loss's row of Table 1 (:mod:`minissl.theory.table1`): derived and printed
        Hessians as text, whether dimensional / complete collapse can occur (derived and
        as printed), a note, the erratum id and a witness setting for each collapse.
    paper_critical_n : bool
        The paper's printed ``B`` has a ``C / N`` term, hence a critical dataset size
        (Eq. 8; :func:`minissl.theory.critical_n_weighted`).
    expected : callable or None
        ``expected(W, A0, C, **params) -> float``: the loss's expectation over Gaussian
        views of a linear encoder as N -> infinity (:mod:`minissl.theory.decorrelation`);
        ``expected_fixed`` are the parameter values it assumes. None: not available.
    """

    name: str
    title: str
    params: tuple
    core: Callable
    fixed: dict = field(default_factory=dict)
    kernel: Callable | None = None
    kernel_id: int | None = None
    kernel_params: Callable = lambda kw: ()
    family: str = ""
    effective_B: Callable | None = None
    paper_B: Callable | None = None
    no_B: str = ""
    quartic: Callable | None = None
    no_landscape: str = ""
    translation_invariant: Callable = lambda kw: False
    control_variate: bool = False
    trace_theory: bool = False
    mlp: bool = False
    normalize_allowed: bool = True
    table1: dict | None = None
    paper_critical_n: bool = False
    expected: Callable | None = None
    expected_fixed: dict = field(default_factory=dict)

    def param(self, name):
        """The :class:`Param` called ``name`` (KeyError if the loss has none)."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def param_names(self):
        return tuple(p.name for p in self.params)

    @property
    def accelerated(self):
        """True when a compiled kernel exists."""
        return self.kernel is not None


def _centered(A0, mean):
    if mean is None:
        return A0
    m = V.check_array("mean", mean, ndim=1, shape=(A0.shape[0],), dtype=np.float64)
    return A0 - np.outer(m, m)


# ----------------------------------------------------------------------------- InfoNCE family

def infonce_numbers(kw):
    """``(alpha, beta, both)`` of an InfoNCE-family loss from its core arguments ``kw``.

    ``alpha`` weighs the positive pair in the denominator, ``beta`` the entropy term (Eq. 7,
    Sec. 4.2) and ``both`` is True when the negatives come from both views (``v = 2``).
    The one place that reads these numbers by name (:meth:`minissl.losses.Loss.infonce_numbers`).
    """
    return float(kw["alpha"]), float(kw["beta"]), kw["negatives"] == "both"


def _infonce_B(kw, A0, C, n, mean, d1):
    """``B = beta v N / (v (N - 1) + alpha) A0c - (1 - beta) C`` (N -> inf: factor 1).

    Every pair in the denominator has a noise difference of covariance ``2C``, so the
    augmentation terms of the energy and the repulsion cancel exactly for any ``alpha``:
    the paper's ``A0 - (1 - alpha) C / N`` (Eq. 8) and ``A0 - (1 - beta) C`` (Sec. 4.2)
    are not what the losses give (docs/errata.md E2, E3).
    """
    alpha, beta, both = infonce_numbers(kw)
    views = 2 if both else 1
    factor = 1.0 if n is None else views * n / (views * (n - 1) + alpha)
    return beta * factor * _centered(A0, mean) - (1.0 - beta) * C


def _infonce_quartic(kw, A0, C, mean, scale=False):
    """Gaussian noise: ``k = 3 beta / 4``, ``S = A0c + C`` (docs/errata.md E1).

    Scale augmentation (App. F.1, zero-mean clean data): ``S = Sigma = A0 + C = 2 b^2 A_hat``,
    quartic ``2 beta Tr[(W S W^T)^2] + (5 beta / 8) Tr[W S W^T]^2``: the anchor-conditional variance of
    ``u = |W(s_a x_hat - s chi_hat)|^2`` has ``E s^2 = 2 b^2``, ``E s^3 = 6 b^3``,
    ``E s^4 = 24 b^4`` and gives ``E_a Var(u | a) = b^4 (64 Tr[(M A)^2] + 20 Tr[M A]^2)``,
    ``M = W^T W`` (docs/errata.md E10, measured in tests/test_coefficients.py). The squared
    trace is returned as Eq. (10)'s penalty with ``c = 0``: ``kappa = 5 beta / 8``.
    """
    beta = kw["beta"]
    if scale:
        S = A0 + C
        return {"S": S, "k": 2.0 * beta, "Sigma": S, "kappa": 0.625 * beta, "c": 0.0}
    Ac = _centered(A0, mean)
    return {"S": Ac + C, "k": 0.75 * beta, "Sigma": Ac + C}


def _infonce_kernel(kw, W, x1, x2, b, normalize, c, norm_eps, weight_decay, workspace):
    from . import kernels

    return kernels.infonce_linear(W, x1, x2, b, kw["alpha"], kw["beta"], kw["negatives"], normalize, c,
                                  norm_eps, weight_decay, workspace=workspace)


def _infonce_family(name, title, params, fixed, paper_B, table1, paper_critical_n=False):
    return LossSpec(
        name=name, title=title, params=params, core=reference.infonce_core, fixed=fixed,
        kernel=_infonce_kernel, kernel_id=KERNEL_INFONCE,
        kernel_params=lambda kw: infonce_numbers(kw)[:2],  # (alpha, beta); the loops pass ``both`` apart
        family="infonce",
        effective_B=_infonce_B, paper_B=paper_B, quartic=_infonce_quartic,
        translation_invariant=lambda kw: True, control_variate=True, trace_theory=True, mlp=True,
        table1=table1, paper_critical_n=paper_critical_n)


def _paper_weighted_B(kw, A0, C, n):
    if n is None:
        raise ValueError("weighted: paper_B needs n= (dataset size).")
    return A0 - (1.0 - kw["alpha"]) * C / n


_INFONCE = _infonce_family(
    "infonce", "InfoNCE (Eq. 1)", (_negatives(),), {"alpha": 1.0, "beta": 1.0},
    lambda kw, A0, C, n: A0.copy(),
    table1={"loss": "InfoNCE", "hessian": "v N / (v (N-1) + 1) A0c", "paper_hessian": "A0",
        "dim": False, "complete": False, "paper_dim": False, "paper_complete": False,
        "note": "B is positive semidefinite: only directions without data variance are lost.",
        "erratum": None, "witness": None})
_WEIGHTED = _infonce_family(
    "weighted", "weighted InfoNCE (Eq. 7)",
    (Param("alpha", 0.0, _real("alpha", lo=0.0),
           "Positive-pair weight in the denominator (Eq. 7); 0 is the paper's NT-Xent."),
     _negatives()),
    {"beta": 1.0}, _paper_weighted_B, paper_critical_n=True,
    table1={"loss": "weighted InfoNCE / NT-Xent (Eq. 7)", "hessian": "v N / (v (N-1) + alpha) A0c", "paper_hessian": "A0 - (1 - alpha) C / N",
        "dim": False, "complete": False, "paper_dim": True, "paper_complete": True,
        "note": "The noise terms of energy and repulsion cancel for every alpha: no C/N term, no "
                "critical dataset size at this order.",
        "erratum": "E2", "witness": None})
_BETA = _infonce_family(
    "beta", "beta-InfoNCE (Sec. 4.2)",
    (Param("beta", 0.5, _real("beta", lo=0.0, lo_open=True), "Entropy weight of beta-InfoNCE (Sec. 4.2)."),
     Param("alpha", 1.0, _real("alpha", lo=0.0), "Positive-pair weight in the denominator (Eq. 7)."),
     _negatives()),
    {}, lambda kw, A0, C, n: A0 - (1.0 - kw["beta"]) * C,
    table1={"loss": "beta-InfoNCE (Sec. 4.2)", "hessian": "beta A0c - (1 - beta) C", "paper_hessian": "A0 - (1 - beta) C",
        "dim": True, "complete": True, "paper_dim": True, "paper_complete": True,
        "note": "Direction i collapses when beta a_i <= (1 - beta) c_i (not a_i <= (1 - beta) c_i).",
        "erratum": "E3",
        "witness": {"dim": {"beta": 0.5, "variances": [1.0, 4.0], "sigma": 1.5},
                    "complete": {"beta": 0.5, "variances": [1.0, 4.0], "sigma": 2.5}}})


# ----------------------------------------------------------------------------- SCL, Barlow Twins, VICReg

def _scl_kernel(kw, W, x1, x2, b, normalize, c, norm_eps, weight_decay, workspace):
    from . import kernels_scl

    return kernels_scl.scl_linear(W, x1, x2, b, kw["negatives"], normalize, c, norm_eps, weight_decay,
                                  workspace=workspace)


_SCL = LossSpec(
    name="scl", title="spectral contrastive loss (Eq. 14)", params=(_negatives(),), core=reference.scl_core,
    kernel=_scl_kernel, kernel_id=KERNEL_SCL, family="scl",
    # the positive-pair term gives 2 (A0 + C), the repulsion -2 C (docs/errata.md E4)
    effective_B=lambda kw, A0, C, n, mean, d1: 2.0 * A0,
    paper_B=lambda kw, A0, C, n: 2.0 * C,
    quartic=lambda kw, A0, C, mean, scale=False: {"S": A0 + C, "k": 1.0, "Sigma": A0 + C},
    trace_theory=True,
    table1={"loss": "spectral contrastive (Eq. 14)", "hessian": "2 A0", "paper_hessian": "C (Table 1), 2 C (Eq. 15)",
        "dim": False, "complete": False, "paper_dim": False, "paper_complete": False,
        "note": "The positive-pair term gives 2 (A0 + C), the repulsion -2 C at second order.",
        "erratum": "E4", "witness": None})


def _barlow_B(kw, A0, C, n, mean, d1):
    if kw["standardize"]:
        raise ValueError(
            "barlow with standardize=True is invariant to rescaling each output "
            "dimension and has no expansion at W = 0; use standardize=False (raw "
            "cross-correlation), for which B = 2 A0."
        )
    return 2.0 * A0


def _barlow_kernel(kw, W, x1, x2, b, normalize, c, norm_eps, weight_decay, workspace):
    from . import kernels_decorrelation

    return kernels_decorrelation.barlow_linear(W, x1, x2, b, kw["lam"], kw["standardize"], kw["eps"], normalize,
                                               c, norm_eps, weight_decay, workspace=workspace)


_BARLOW = LossSpec(
    name="barlow", title="Barlow Twins", core=reference.barlow_core,
    params=(Param("lam", 5e-3, _real("lam", lo=0.0), "Barlow Twins off-diagonal weight."),
            Param("standardize", True, _boolean("standardize"),
                  "Batch-standardised (True) or raw cross-correlation."),
            Param("eps", 1e-5, _real("eps", lo=0.0), "Standardisation epsilon.", cli=False)),
    kernel=_barlow_kernel, kernel_id=KERNEL_BARLOW, family="barlow",
    kernel_params=lambda kw: (kw["lam"], 1.0 if kw["standardize"] else 0.0, kw["eps"]),
    effective_B=_barlow_B, paper_B=lambda kw, A0, C, n: A0 + C,
    # raw cross-correlation only (effective_B rejects the standardised one)
    quartic=lambda kw, A0, C, mean, scale=False: {"S": A0, "Sigma": A0 + C, "quartic": QUARTIC_BARLOW,
                                                  "lam": kw["lam"]},
    translation_invariant=lambda kw: bool(kw["standardize"]),
    expected=reference.barlow_expected, expected_fixed={"standardize": True},
    table1={"loss": "Barlow Twins (raw cross-correlation)", "hessian": "2 A0", "paper_hessian": "A0 + C",
        "dim": False, "complete": False, "paper_dim": False, "paper_complete": False,
        "note": "With batch standardisation (the usual form) the loss is scale invariant and has "
                "no expansion at the origin.",
        "erratum": "E5", "witness": None})


def _vicreg_B(kw, A0, C, n, mean, d1):
    if n is None or d1 is None:
        raise ValueError("vicreg: effective_B needs n= (batch size) and d1= (output dimension).")
    Au = n / (n - 1) * _centered(A0, mean)
    return kw["var"] / (2.0 * d1 * np.sqrt(kw["eps"])) * (Au + C) - 2.0 * kw["inv"] / d1 * C


def _vicreg_kernel(kw, W, x1, x2, b, normalize, c, norm_eps, weight_decay, workspace):
    from . import kernels_decorrelation

    return kernels_decorrelation.vicreg_linear(W, x1, x2, b, kw["inv"], kw["var"], kw["cov"], kw["gamma"],
                                               kw["eps"], normalize, c, norm_eps, weight_decay,
                                               workspace=workspace)


_VICREG = LossSpec(
    name="vicreg", title="VICReg", core=reference.vicreg_core,
    params=(Param("inv", 25.0, _real("inv", lo=0.0), "VICReg invariance weight.", cli=False),
            Param("var", 25.0, _real("var", lo=0.0), "VICReg variance weight.", cli=False),
            Param("cov", 1.0, _real("cov", lo=0.0), "VICReg covariance weight.", cli=False),
            Param("gamma", 1.0, _real("gamma", lo=0.0, lo_open=True), "VICReg target std.", cli=False),
            Param("eps", 1e-4, _real("eps", lo=0.0, lo_open=True), "VICReg variance epsilon.", cli=False)),
    kernel=_vicreg_kernel, kernel_id=KERNEL_VICREG, family="vicreg",
    kernel_params=lambda kw: (kw["inv"], kw["var"], kw["cov"], kw["gamma"], kw["eps"]),
    effective_B=_vicreg_B,
    no_landscape=("vicreg: no fourth-order landscape (the variance hinge sqrt(var + eps) expands "
                  "only for var << eps); effective_B(loss, A0, C, n=, d1=) gives its Hessian at 0."),
    translation_invariant=lambda kw: True,
    expected=reference.vicreg_expected,
    table1={"loss": "VICReg", "hessian": "var / (2 d1 sqrt(eps)) (A0u + C) - 2 inv C / d1", "paper_hessian": "-A0 (Sec. 3.2 text)",
        "dim": True, "complete": True, "paper_dim": None, "paper_complete": None,
        "note": "Collapse needs var (a_i + c_i) <= 4 sqrt(eps) inv c_i: never at the default "
                "(25, 25, eps 1e-4); the Hessian scale 1/sqrt(eps) makes the expansion radius tiny.",
        "erratum": "E6",
        "witness": {"dim": {"var": 0.001, "inv": 25.0, "variances": [1.0, 4.0], "sigma": 0.045},
                    "complete": {"var": 0.001, "inv": 25.0, "variances": [1.0, 4.0], "sigma": 3.0}}})


# ----------------------------------------------------------------------------- SimCLR

_SIMCLR_NO_THEORY = (
    "its cosine similarity is scale invariant (no expansion at W = 0) and the paper gives no "
    "fourth-order landscape for it. The Gaussian-kernel equivalent "
    "get_loss('infonce', normalize=True, c=1/temperature, negatives='both') is modelled by "
    "effective_landscape(..., kappa=...) (docs/conventions.md)")

_SIMCLR = LossSpec(
    name="simclr", title="SimCLR NT-Xent (cosine / temperature)", core=simclr.simclr_core,
    params=(Param("temperature", 0.5, _real("temperature", lo=0.0, lo_open=True),
                  "SimCLR NT-Xent temperature (cosine similarity / temperature)."),
            Param("decoupled", False, _boolean("decoupled"),
                  "SimCLR: drop the positive from the denominator (decoupled contrastive loss).")),
    family="simclr", no_B=_SIMCLR_NO_THEORY,
    no_landscape="loss 'simclr' has no effective landscape: " + _SIMCLR_NO_THEORY + ".", normalize_allowed=False)


REGISTRY = {s.name: s for s in (_INFONCE, _WEIGHTED, _BETA, _SCL, _BARLOW, _VICREG, _SIMCLR)}
LOSS_NAMES = tuple(REGISTRY)

# the paper's running example (beta-InfoNCE, Sec. 4.2; its default beta = 1/2 is the paper's
# choice): the default loss of the commands and of the theory's phase diagram
PAPER_LOSS = _BETA.name
# the library's default loss (minissl.simulate); the CLI defaults to PAPER_LOSS
DEFAULT_LOSS = _INFONCE.name
# the losses of the InfoNCE family (one core, one kernel, one landscape form)
INFONCE_FAMILY = tuple(s.name for s in REGISTRY.values() if s.family == "infonce")


# ----------------------------------------------------------------------------- Table 1: variants

# Table 1's rows for the variants every loss takes (the common parameters ``normalize`` and
# ``weight_decay``, and a bias ``b``), beside the loss rows of the field ``table1`` above
# (minissl.theory.table1 reads both). A witness without a ``loss`` key is PAPER_LOSS with the
# parameters it gives.
TABLE1_VARIANTS = (
    {"loss": "+ normalization", "key": None, "variant": "normalize",
     "hessian": "- (kappa -> inf: Theorem 2)", "paper_hessian": "-",
     "dim": True, "complete": False, "paper_dim": True, "paper_complete": False,
     "note": "rho = c is enforced, so W = 0 is excluded; Eq. (13) decides which directions survive.",
     "erratum": None,
     "witness": {"dim": {"beta": 0.5, "variances": [0.01, 100.0], "sigma": 1.0}}},
    {"loss": "+ bias (with normalization)", "key": None, "variant": "bias",
     "hessian": "-", "paper_hessian": "-",
     "dim": True, "complete": True, "paper_dim": True, "paper_complete": True,
     "note": "Stationary points: unnormalized ones with rho <= c (|b|^2 = c - rho) and the "
             "normalized ones with b = 0; complete collapse W = 0, |b|^2 = c is a minimum iff B <= 0.",
     "erratum": "E8",
     "witness": {"dim": {"beta": 0.5, "variances": [1.0, 4.0], "sigma": 1.5},
                 "complete": {"beta": 0.5, "variances": [1.0, 4.0], "sigma": 3.0}}},
    {"loss": "+ weight decay", "key": None, "variant": "weight_decay",
     "hessian": "B - gamma I", "paper_hessian": "+ gamma I (sign as printed)",
     "dim": True, "complete": True, "paper_dim": True, "paper_complete": True,
     "note": "Weight decay gamma ||W||^2 lowers every eigenvalue of B by gamma.",
     "erratum": "E7",
     "witness": {"dim": {"loss": "infonce", "weight_decay": 2.0, "variances": [1.0, 4.0], "sigma": 1.0},
                 "complete": {"loss": "infonce", "weight_decay": 5.0, "variances": [1.0, 4.0], "sigma": 1.0}}},
)


def spec(name):
    """The :class:`LossSpec` of loss ``name`` (ValueError naming the allowed ones)."""
    V.check_choice("loss", name, LOSS_NAMES)
    return REGISTRY[name]


def names(where=None):
    """Loss names, in registry order, whose spec satisfies ``where(spec)`` (all by default)."""
    return tuple(n for n, s in REGISTRY.items() if where is None or where(s))


def option_params(losses=None):
    """Names of the parameters of ``losses`` (all by default) that are options of their own
    (``Param.cli``), in registry order, each once.

    These are also the loss parameters :func:`minissl.simulate` and the settings files take by
    name (VICReg's are not: its ``cov`` would be read as the data covariance).
    """
    losses = LOSS_NAMES if losses is None else losses
    return tuple(dict.fromkeys(p.name for n in losses for p in spec(n).params if p.cli))


def titles():
    """``{name: title}`` for every loss."""
    return {n: s.title for n, s in REGISTRY.items()}
