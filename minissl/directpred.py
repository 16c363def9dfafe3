"""DirectPred: a linear predictor set from the eigen-decomposition of the feature correlation.

Tian, Chen & Ganguli (2021, Sec. 5) replace SimSiam/BYOL's learned predictor by one
built directly from a moving estimate of the online features' correlation
``F_hat = E[z z^T]`` (``z = W x`` of an augmented view):

.. math::

    \\hat F \\leftarrow \\rho \\hat F + (1 - \\rho)\\,\\tfrac{1}{2N}\\textstyle\\sum_i
        (z_{1i} z_{1i}^\\top + z_{2i} z_{2i}^\\top), \\qquad
    \\hat F = U \\operatorname{diag}(\\lambda) U^\\top, \\qquad
    P = U \\operatorname{diag}(p) U^\\top,

with ``p_j = sqrt(lambda_j / lambda_max) + eps`` (``scale="max"``, their rule) or
``p_j = sqrt(lambda_j) + eps`` (``scale="none"``, which keeps the features' scale). The
companion note (``shared/seeds/000``) motivates the predictor as the E-step of an EM
algorithm; DirectPred fixes that step in closed form instead of learning it.

Theory (MSE objective, no batch norm, noise covariance ``C`` commuting with ``F = A0``)
------------------------------------------------------------------------------------------
In a common eigendirection (``F`` eigenvalue ``s``, ``C`` eigenvalue ``c``) the encoder
follows the same flow as with a learned predictor (:mod:`minissl.siamese`),

.. math::

    \\dot w = w\\,[p\\, s\\, g - p^2 (s + c) - \\eta],

where ``g`` is the target's size relative to the online encoder (1 for SimSiam and at any
fixed point; below), but ``p`` is now tied to ``w``: ``lambda = w^2 (s + c)``.

* ``scale="none"``: ``p = |w| sqrt(s + c) + eps``. A non-collapsed fixed point needs the
  bracket to vanish, i.e. ``p = p_+`` (the larger root of ``(s + c) p^2 - s p + eta``,
  the learned predictor's fixed point), hence ``w^2 = (p_+ - eps)^2 / (s + c)``; it exists
  iff ``p_+ > eps`` and is stable. ``w = 0`` is stable too when ``eps < p_-`` (the smaller
  root; never for ``eta = 0``).
* ``scale="max"``: the direction with the largest ``lambda`` has ``p = 1 + eps``, above
  ``s / (s + c)``, so it always decays: with the MSE objective **W collapses in norm**,
  ``|W|`` shrinking by a factor ``q`` per step, while its *shape* converges: every
  surviving direction decays at the same rate, ``p_j s_j g - p_j^2 (s_j + c_j) - eta =
  L`` for all ``j``, with ``L`` set by the slowest direction (``p = 1 + eps``). For SGD
  with momentum ``mu`` a common factor ``q`` per step means ``L = (q - 1)(q - mu) / (lr
  q)``, and BYOL's EMA target (``W_t <- ema W_t + (1 - ema) W`` after each step) then
  trails at ``g = (1 - ema) q / (q - ema)``; SimSiam has ``g = 1``. The predicted shape
  is ``w_j^2 ∝ (p_j - eps)^2 / (s_j + c_j)`` (0 where ``p_j <= eps``). The practical
  DirectPred uses a normalised (cosine) loss, for which the scale does not matter; this
  module predicts only the MSE case.
"""

from __future__ import annotations

import math

import numpy as np

from . import _validation as V

__all__ = ["SCALES", "directpred_predictor", "directpred_theory", "quadratic_root", "update_correlation"]

SCALES = ("max", "none")


def quadratic_root(s, c, eta, g=1.0, rate=0.0, larger=True):
    """Roots ``p`` of ``p s g - p^2 (s + c) - eta = rate`` (per direction); NaN where none is real.

    ``g = 1, rate = 0`` gives the fixed points of the learned predictor,
    ``(s + c) p^2 - s p + eta = 0`` (:func:`minissl.siamese.fixed_points`).
    """
    s, c = np.asarray(s, dtype=np.float64), np.asarray(c, dtype=np.float64)
    tot = s + c
    disc = (s * g) ** 2 - 4.0 * tot * (eta + rate)
    safe = np.where(tot > 0, tot, 1.0)
    root = (s * g + (1.0 if larger else -1.0) * np.sqrt(np.maximum(disc, 0.0))) / (2.0 * safe)
    return np.where((disc >= 0) & (tot > 0), root, np.nan)


def update_correlation(F_hat, z1, z2, rho):
    """One moving-average step of the feature correlation (module docstring).

    ``F_hat is None`` starts the average at the batch's own correlation.
    """
    batch = (z1.T @ z1 + z2.T @ z2) / (2.0 * z1.shape[0])
    return batch if F_hat is None else rho * F_hat + (1.0 - rho) * batch


def directpred_predictor(F_hat, eps=0.1, scale="max"):
    """The DirectPred predictor ``P = U diag(p) U^T`` of a feature correlation ``F_hat``.

    Parameters
    ----------
    F_hat : array_like, shape (d1, d1)
        Symmetric feature correlation (negative eigenvalues from round-off count as 0).
    eps : float
        ``eps >= 0`` added to every eigenvalue (Tian et al. 2021, Eq. (19) of Sec. 5).
    scale : {"max", "none"}
        ``p_j = sqrt(lambda_j / lambda_max) + eps`` or ``sqrt(lambda_j) + eps``. With
        ``F_hat = 0`` (complete collapse) both give ``P = eps I``.

    Returns
    -------
    ndarray, shape (d1, d1)
    """
    F_hat = V.check_array("F_hat", F_hat, ndim=2, dtype=np.float64)
    if F_hat.shape[0] != F_hat.shape[1]:
        raise ValueError(f"F_hat has shape {F_hat.shape}; it must be square.")
    eps = V.check_scalar("eps", eps, lo=0.0)
    V.check_choice("scale", scale, SCALES)
    return _predictor(F_hat, eps, scale)


def _predictor(F_hat, eps, scale):
    lam, U = np.linalg.eigh(0.5 * (F_hat + F_hat.T))
    lam = np.maximum(lam, 0.0)
    top = lam[-1]
    if top == 0.0:
        return eps * np.eye(F_hat.shape[0])
    root = np.sqrt(lam / top) if scale == "max" else np.sqrt(lam)
    return (U * (root + eps)) @ U.T


def directpred_theory(s, c, *, weight_decay=0.0, eps=0.1, scale="max", lr=None, momentum=0.0, ema=0.0, rho=0.0):
    """Per-direction prediction for DirectPred (module docstring), MSE objective, no BN.

    Parameters
    ----------
    s, c : array_like
        Eigenvalues of ``F = A0`` and of the commuting noise covariance along the same
        eigendirections.
    weight_decay, eps, scale :
        ``eta``, the predictor's ``eps`` and its scale rule.
    lr, momentum : float
        SGD's step and heavy-ball momentum (``scale="max"`` only: they set the common
        decay factor ``q`` per step).
    ema : float
        BYOL's target decay (0: SimSiam).
    rho : float
        The correlation's moving-average weight. With ``scale="max"`` the average of a
        sequence shrinking by ``q^2`` per step is dominated by its start unless
        ``rho < q^2``; otherwise the shape is not predicted (None).

    Returns
    -------
    dict
        ``p`` (predictor eigenvalue at the prediction), ``w2`` (``scale="none"``: the
        fixed point's eigenvalues of ``W^T W``; ``"max"``: the shape, largest 1),
        ``alive``, ``estep`` (``s / (s + c)``), ``bistable`` (``"none"``: ``w = 0`` is
        stable too), and for ``"max"`` ``decay_per_step`` (``q``), ``rate`` (``L``),
        ``target_ratio`` (``g``) and ``slowest`` (index of the direction with
        ``p = 1 + eps``). ``collapse`` says why everything dies, else None. None where
        no prediction applies (no real decay factor, or ``rho >= q^2``).
    """
    s = np.atleast_1d(V.check_array("s", s, ndim=None, dtype=np.float64)).ravel()
    c = np.atleast_1d(V.check_array("c", c, ndim=None, dtype=np.float64)).ravel()
    if s.shape != c.shape:
        raise ValueError(f"s has {s.size} values and c {c.size}; they must agree.")
    if np.any(s < 0) or np.any(c < 0):
        raise ValueError("s and c are variances and must be >= 0.")
    eta = V.check_scalar("weight_decay", weight_decay, lo=0.0)
    eps = V.check_scalar("eps", eps, lo=0.0)
    V.check_choice("scale", scale, SCALES)
    momentum = V.check_scalar("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    ema = V.check_scalar("ema", ema, lo=0.0, hi=1.0, hi_open=True)
    rho = V.check_scalar("rho", rho, lo=0.0, hi=1.0, hi_open=True)
    tot = s + c
    estep = np.where(tot > 0, s / np.where(tot > 0, tot, 1.0), 0.0)
    if scale == "none":
        p_plus = quadratic_root(s, c, eta)
        p_minus = quadratic_root(s, c, eta, larger=False)
        alive = np.nan_to_num(p_plus, nan=-1.0) > eps
        p = np.where(alive, p_plus, eps)
        w2 = np.where(alive, (np.nan_to_num(p_plus) - eps) ** 2 / np.where(tot > 0, tot, 1.0), 0.0)
        bistable = alive & (eps < np.nan_to_num(p_minus, nan=-1.0))
        return {"p": p, "w2": w2, "alive": alive, "estep": estep, "bistable": bistable,
                "collapse": None if np.any(alive) else f"p_+ <= eps (== {eps:g}) in every direction"}
    if lr is None:
        raise ValueError("scale='max' needs lr: the common decay factor per step depends on it.")
    lr = V.check_scalar("lr", lr, lo=0.0, lo_open=True)
    mu, top_p = momentum, 1.0 + eps

    def target_ratio(q):
        return 1.0 if ema == 0.0 else (1.0 - ema) * q / (q - ema)

    def mismatch(q):  # common rate L(q) minus the slowest direction's bracket at p = 1 + eps
        bracket = top_p * s * target_ratio(q) - top_p ** 2 * tot - eta
        return (q - 1.0) * (q - mu) / (lr * q) - np.max(bracket)

    # the larger heavy-ball root lies above sqrt(mu); BYOL's lag needs q > ema
    lo = max(ema, math.sqrt(mu)) + 1e-12
    if not (mismatch(lo) < 0.0 < mismatch(1.0)):
        # no real decay factor in (lo, 1): heavy-ball oscillation, or lr too large
        return None
    from scipy.optimize import brentq

    q = brentq(mismatch, lo, 1.0, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    if rho >= q * q:
        return None
    g = target_ratio(q)
    rate = (q - 1.0) * (q - mu) / (lr * q)
    p = quadratic_root(s, c, eta, g=g, rate=rate)
    slowest = int(np.argmax(top_p * s * g - top_p ** 2 * tot - eta))
    p[slowest] = top_p
    alive = np.nan_to_num(p, nan=-1.0) > eps
    shape = np.where(alive, (np.nan_to_num(p) - eps) ** 2 / np.where(tot > 0, tot, 1.0), 0.0)
    shape = shape / shape.max()
    return {"p": np.where(alive, p, eps), "w2": shape, "alive": alive, "estep": estep,
            "bistable": np.zeros_like(alive), "decay_per_step": q, "rate": rate, "target_ratio": g,
            "slowest": slowest,
            "collapse": f"scale='max': the slowest direction has p = 1 + eps > s / (s + c), so |W| "
                        f"shrinks by {q:.6g} per step (log10 {math.log10(q):.3g}); the shape converges"}


# ----------------------------------------------------------------------------- a training run's view

def directpred_theory_in_basis(base, d1, *, sgd_constant, **kw):
    """:func:`directpred_theory` in ``F``'s eigenbasis (the training run's ``theory``).

    ``base`` is the learned predictor's theory of the same run (``s``, ``c`` sorted by
    descending ``s``, ``decay_without_predictor``; None where ``C`` does not commute with
    ``F``). None where the prediction does not apply: no commuting basis; ``scale="max"``
    without constant-lr SGD (the decay factor per step is SGD's); more surviving
    directions than ``d1`` rows.
    """
    if base is None or (kw["scale"] == "max" and not sgd_constant):
        return None
    th = directpred_theory(np.maximum(base["s"], 0.0), np.maximum(base["c"], 0.0), **kw)
    if th is None or np.sum(th["alive"]) > d1:
        return None
    th.update(s=base["s"], c=base["c"], decay_without_predictor=base["decay_without_predictor"])
    th["w2_sorted"] = np.sort(th["w2"])[::-1]
    return th


SHAPE_FLOOR = 1e-200


def _along_F(F):
    """``F``'s eigenvectors as columns, eigenvalues descending (the order of the theory's rows)."""
    ev, U = np.linalg.eigh(F)
    return U[:, np.argsort(ev)[::-1]]


def directpred_checks(history, W, P, F, W0_norm, scale):
    """A DirectPred run's per-direction diagnostics in ``F``'s eigenbasis ``u_j`` (descending ``s``).

    ``w2_along_F`` (``|W u_j|^2``) and ``p_along_F`` (the predictor's Rayleigh quotient along
    the embedding of ``u_j``, ``v^T P v / |v|^2`` with ``v = W u_j``; NaN where ``v = 0``)
    at the end; for ``scale="max"`` ``p_along_F`` is read at the last snapshot above the
    floor below (at the end ``W`` may have underflowed to 0).
    With ``scale="max"`` also the *shape* and the decay of ``|W|`` per step, both from the
    later half of the snapshots where ``|W| / |W_0| > SHAPE_FLOOR`` (later ones may have
    lost precision to underflow): ``shape_along_F`` is the mean over them of
    ``u_j^T W^T W u_j`` divided by its largest value (the shape fluctuates with the fresh
    noise of every step), ``decay_per_step`` is ``exp`` of the least-squares slope of
    ``log |W|`` against the step, and ``shape_steps`` the first and last step used.
    """
    U = _along_F(F)

    def p_along(W, P):
        v = W @ U
        n2 = np.sum(v * v, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n2 > 0, np.einsum("ij,ik,kj->j", v, P, v) / n2, np.nan)

    out = {"w2_along_F": np.sum((W @ U) ** 2, axis=0).tolist(), "p_along_F": p_along(W, P).tolist()}
    if scale != "max":
        return out
    Ws = np.asarray(history["W"])
    norms = np.linalg.norm(Ws, axis=(1, 2))
    ok = np.flatnonzero(norms > SHAPE_FLOOR * W0_norm)
    half = ok[len(ok) // 2:]
    out["p_along_F"] = p_along(Ws[half[-1]], history["P"][half[-1]]).tolist()
    along = np.sum((Ws[half] @ U) ** 2, axis=1)
    out["shape_steps"] = [int(history["step"][half[0]]), int(history["step"][half[-1]])]
    out["shape_along_F"] = np.mean(along / along.max(axis=1, keepdims=True), axis=0).tolist()
    if half.size >= 2:
        slope = np.polyfit(history["step"][half].astype(float), np.log(norms[half]), 1)[0]
        out["decay_per_step"] = float(np.exp(slope))
    return out
