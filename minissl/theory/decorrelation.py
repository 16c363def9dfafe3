"""Dimensional collapse of Barlow Twins and VICReg as a function of lambda (the companion note).

The note (``shared/seeds/000``, "Why Dimensional Collapse Happens") says that in
non-contrastive learning "if lambda is too large (VICReg) or lambda too small (Barlow
Twins), the encoder is pushed to make z ~ z' but the anti-collapse mechanism is too weak
to maintain full rank". This module makes that quantitative for the linear model
``z_a = W x_a``, ``x_a = x + eps_a`` (``x ~ N(0, A0)``, ``eps_a ~ N(0, C)``), with the
expected losses (N -> infinity) of :func:`minissl.losses.reference.barlow_core` and
:func:`~minissl.losses.reference.vicreg_core`:

* Barlow Twins (standardised, ``lam`` the off-diagonal weight): with ``S = W (A0 + C) W^T``
  and ``Cc_kl = (W A0 W^T)_kl / sqrt((S_kk + eps)(S_ll + eps))``,
  ``L = sum_k (1 - Cc_kk)^2 + lam sum_{k != l} Cc_kl^2``;
* VICReg (``inv`` = lambda, ``var`` = mu, ``cov`` = nu): ``L = inv/d tr(W 2C W^T) +
  var/d sum_k max(0, gamma - sqrt(S_kk + eps)) + 2 cov/d sum_{k != l} S_kl^2``.

Let ``rho_1 >= rho_2 >= ...`` be the canonical correlations of the two views
(``A0 v = rho (A0 + C) v``; ``s / (s + c)`` for commuting ``A0, C``) and ``kappa_j = 1 -
rho_j`` the noise share of each direction. Derived here by the stability of the rank-one
state, where all ``d1`` outputs follow the top direction (``d1 >= 2``):

* **Barlow Twins.** At ``lam = 0`` each output minimises ``(1 - Cc_kk)^2`` on its own and
  every output goes to the top direction: rank one. Turn output ``k`` by a small angle
  ``theta_k`` towards direction 2 (in the whitened coordinates, at unit variance): then
  ``Cc_kl ~ rho_1 (1 - theta_k^2/2 - theta_l^2/2) + rho_2 theta_k theta_l`` and the loss
  changes by ``alpha sum_k theta_k^2 + beta (sum_k theta_k)^2`` with ``alpha = 2 (1 -
  rho_1)(rho_1 - rho_2) - 2 lam ((d1 - 1) rho_1^2 + rho_1 rho_2)`` and ``beta = 2 lam
  rho_1 rho_2 >= 0``. The modes with ``sum theta_k = 0`` turn unstable first, so rank one
  is stable iff ``lam < lam_1 = (1 - rho_1)(rho_1 - rho_2) / ((d1 - 1) rho_1^2 + rho_1
  rho_2)``: too small a lambda collapses the embedding to one dimension.
* **VICReg.** The complete collapse ``W = 0`` is stable iff ``inv >= inv_c = var / (4
  sqrt(eps) kappa_1)`` (the Hessian at 0; Table 1's condition). In the rank-one state every
  output shares the top direction, with variance ``v`` each solving ``2 inv kappa_1 -
  var / (2 sqrt(v + eps)) + 4 cov (d1 - 1) v = 0``. Turning the outputs by angles
  ``theta_k`` towards direction 2 at fixed variance (``S_kl = v cos(theta_k - theta_l)``)
  costs ``2 inv v (kappa_2 - kappa_1) sum theta_k^2 / d1`` and saves ``2 cov v^2
  sum_{k != l} (theta_k - theta_l)^2 / d1``, which is ``4 cov v^2 sum theta_k^2`` for the
  modes with ``sum theta_k = 0``: rank one is stable iff ``2 cov d1 v <= inv (kappa_2 -
  kappa_1)``. ``inv_1`` is where equality holds: too large a lambda collapses the
  embedding to one dimension, and beyond ``inv_c`` to none.

The ranks in between come from :func:`population_minimum`, a numerical minimisation of the
expected loss itself (no sampling), which training is compared with in
``tests/test_decorrelation_lambda.py`` and ``docs/companion.md``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validation as V
from ..losses.registry import REGISTRY

__all__ = ["expected_loss", "canonical_correlations", "population_minimum", "barlow_rank_one_threshold",
           "vicreg_thresholds"]


def _moments(A0, C):
    A0 = V.check_array("A0", A0, ndim=2, dtype=np.float64)
    d0 = A0.shape[0]
    if A0.shape != (d0, d0):
        raise ValueError(f"A0 has shape {A0.shape}; it must be square.")
    C = V.check_array("C", C, ndim=2, dtype=np.float64, shape=(d0, d0))
    return A0, C


def _encoder(W, A0, C):
    A0, C = _moments(A0, C)
    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    if W.shape[1] != A0.shape[0]:
        raise ValueError(f"W has {W.shape[1]} columns but A0 is {A0.shape[0]} x {A0.shape[0]}; they must agree.")
    return W, A0, C


def _spec(loss):
    """The registry entry of a loss with an expected form (its parameters, defaults and checks live there)."""
    if loss not in REGISTRY or REGISTRY[loss].expected is None:
        have = sorted(name for name, spec in REGISTRY.items() if spec.expected is not None)
        raise ValueError(f"loss == {loss!r}, must be one with an expected form: {', '.join(have)}.")
    return REGISTRY[loss]


def _params(spec, params):
    """The registry's defaults and checks for the expected loss's parameters."""
    fixed = spec.expected_fixed
    allowed = [p.name for p in spec.params if p.name not in fixed]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"{spec.name}: unknown parameter(s) {', '.join(unknown)} for the expected loss; "
                        f"allowed: {', '.join(allowed)}" + (f" ({', '.join(fixed)} fixed)." if fixed else "."))
    return {p.name: p.check(params.get(p.name, p.default)) for p in spec.params if p.name not in fixed}


def expected_loss(loss, W, A0, C, **params):
    """The loss's expectation over Gaussian views of the linear encoder ``W`` (module docstring).

    Parameters
    ----------
    loss : str
        A registry loss with an expected form (``spec.expected``): standardised Barlow
        Twins, VICReg.
    W : array_like, shape (d1, d0)
    A0, C : array_like, shape (d0, d0)
        Clean second moment and noise covariance.
    **params
        The loss's parameters, with the registry's defaults and checks.
    """
    spec = _spec(loss)
    W, A0, C = _encoder(W, A0, C)
    return spec.expected(W, A0, C, **_params(spec, params))


COLLAPSED = 1e-8


def canonical_correlations(A0, C):
    """``rho_j`` of ``A0 v = rho (A0 + C) v``, descending: the two views' canonical correlations."""
    A0, C = _moments(A0, C)
    from scipy.linalg import eigh

    return np.sort(eigh(A0, A0 + C, eigvals_only=True))[::-1]


def population_minimum(loss, A0, C, d1=None, *, restarts=8, init_scale=0.1, seed=0, rank_rtol=1e-2, **params):
    """Minimise the expected loss over linear encoders (L-BFGS from ``restarts`` random starts).

    Parameters
    ----------
    loss : {"barlow", "vicreg"}
    A0, C : array_like, shape (d0, d0)
    d1 : int, optional
        Output dimension (default ``d0``).
    restarts, init_scale, seed :
        Starts ``W_0 = init_scale * G`` (like training's small initialisation); the best
        end point is kept.
    rank_rtol : float
        ``rank`` counts eigenvalues of the output correlation matrix (``S`` standardised to
        unit diagonal) above ``rank_rtol`` times the largest (Barlow), or of ``S`` itself
        (VICReg, whose scale is meaningful; 0 on complete collapse, a largest eigenvalue
        below :data:`COLLAPSED`, the optimiser's resolution).
    **params
        The loss's parameters (``lam``, ``eps`` / ``inv``, ``var``, ``cov``, ``gamma``, ``eps``).

    Returns
    -------
    dict
        ``W``, ``value``, ``spectrum`` (eigenvalues of ``S`` for VICReg, of the correlation
        matrix for Barlow; descending) and ``rank``.
    """
    spec = _spec(loss)
    A0, C = _moments(A0, C)
    d0 = A0.shape[0]
    d1 = V.check_int("d1", d0 if d1 is None else d1, lo=1)
    restarts = V.check_int("restarts", restarts, lo=1)
    init_scale = V.check_scalar("init_scale", init_scale, lo=0.0, lo_open=True)
    rank_rtol = V.check_scalar("rank_rtol", rank_rtol, lo=0.0, hi=1.0)
    params = _params(spec, params)
    from scipy.optimize import minimize

    f = spec.expected
    rng = np.random.default_rng(V.check_int("seed", seed, lo=0))
    best = None
    for _ in range(restarts):
        r = minimize(lambda w: f(w.reshape(d1, d0), A0, C, **params), init_scale * rng.standard_normal(d1 * d0),
                     method="L-BFGS-B", options={"maxiter": 20000, "maxfun": 400000})
        if best is None or r.fun < best.fun:
            best = r
    W = best.x.reshape(d1, d0)
    S = W @ (A0 + C) @ W.T
    if spec.expected_fixed.get("standardize"):  # invariant to each output's scale: compare correlations
        dn = 1.0 / np.sqrt(np.diag(S))
        S = dn[:, None] * S * dn[None, :]
    ev = np.sort(np.linalg.eigvalsh(S))[::-1]
    rank = int(np.sum(ev > rank_rtol * ev[0])) if ev[0] > COLLAPSED else 0
    return {"W": W, "value": float(best.fun), "spectrum": ev, "rank": rank}


def barlow_rank_one_threshold(A0, C, d1):
    """``lam_1 = (1 - rho_1)(rho_1 - rho_2) / ((d1 - 1) rho_1^2 + rho_1 rho_2)``: below it, rank one is stable."""
    d1 = V.check_int("d1", d1, lo=2)
    rho = canonical_correlations(A0, C)
    if rho.size < 2:
        raise ValueError("the rank-one threshold needs at least two input directions.")
    if rho[0] <= 0:
        raise ValueError("the views share no signal (largest canonical correlation 0): there is no rank-one state.")
    return float((1.0 - rho[0]) * (rho[0] - rho[1]) / ((d1 - 1) * rho[0] ** 2 + rho[0] * rho[1]))


def vicreg_thresholds(A0, C, d1, *, var=None, cov=None, gamma=None, eps=None):
    """VICReg's ``inv_1`` (rank one from here) and ``inv_c`` (complete collapse from here).

    ``var``, ``cov``, ``gamma``, ``eps``: VICReg's parameters (default: the registry's).

    Returns
    -------
    dict
        ``complete`` (``var / (4 sqrt(eps) kappa_1)``), ``rank_one`` (``inv_1``; None when the shared
        variance at the threshold would leave the hinge, ``sqrt(v + eps) >= gamma``, where
        the derivation does not hold), ``kappa`` (noise shares, ascending).
    """
    d1 = V.check_int("d1", d1, lo=2)
    rho = canonical_correlations(A0, C)
    given = {k: v for k, v in dict(var=var, cov=cov, gamma=gamma, eps=eps).items() if v is not None}
    p = _params(_spec("vicreg"), given)
    var, cov, gamma, eps = p["var"], p["cov"], p["gamma"], p["eps"]
    if var <= 0 or cov <= 0:
        raise ValueError(f"var == {var!r} and cov == {cov!r} must be > 0 for the thresholds.")
    kappa = 1.0 - rho
    if kappa[0] <= 0:
        raise ValueError("a noise-free direction (kappa = 0) never collapses; C must be positive along every "
                         "direction of A0.")
    complete = var / (4.0 * math.sqrt(eps) * kappa[0])
    gap = kappa[1] - kappa[0]
    out = {"complete": complete, "rank_one": None, "kappa": kappa}
    if gap <= 0:
        return out
    from scipy.optimize import brentq

    def shared_variance(inv):  # where rank one turns unstable: 2 cov d1 v = inv (kappa_2 - kappa_1)
        return inv * gap / (2.0 * cov * d1)

    def balance(inv):  # the shared variance's stationarity, at that variance
        v = shared_variance(inv)
        return 2.0 * inv * kappa[0] + 4.0 * cov * (d1 - 1) * v - var / (2.0 * math.sqrt(v + eps))

    inv1 = brentq(balance, 1e-12 * complete, complete)
    if math.sqrt(shared_variance(inv1) + eps) < gamma:
        out["rank_one"] = float(inv1)
    return out
