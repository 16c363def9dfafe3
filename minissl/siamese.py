"""Non-contrastive linear models: SimSiam and BYOL with a linear encoder and predictor.

The companion note (``shared/seeds/000``, "Stop-Gradient: A Formal Analysis", "SimSiam as
an EM Algorithm", "The Linear Regime Analysis") explains why these methods, which have no
negatives, do not collapse: a predictor plus a stop-gradient (SimSiam, Chen & He 2021),
or a predictor plus an exponential-moving-average target (BYOL, Grill et al. 2020). This
module trains the linear model of Tian et al. (2021) on the same data and augmentation
as :func:`minissl.simulate`, with every mechanism switchable, so that its role can be
seen by removing it.

Model
-----
Encoder ``z = W x`` (``W``: ``(d1, d0)``), optional batch normalization of ``z`` (no
affine parameters: ``(z - mean) / sqrt(var + eps)`` per coordinate over the batch),
predictor ``p = P z`` (``P``: ``(d1, d1)``; ``predictor=False`` fixes ``P = I``), target
``t = W_t x`` (same BN) with ``W_t = W`` (SimSiam) or an EMA of ``W`` (BYOL,
``W_t <- ema W_t + (1 - ema) W`` after every step). The objective is symmetrised over the
two views,

.. math::

    L = \\tfrac12 \\ell(p_1, t_2) + \\tfrac12 \\ell(p_2, t_1)
        + \\tfrac{\\eta}{2} (\\|W\\|_F^2 + \\|P\\|_F^2),

with ``objective="mse"``: ``l(p, t) = (1/2N) sum_i |p_i - t_i|^2`` (Tian et al.'s
``J = 1/2 E|W_p W x_1 - sg(W_a x_2)|^2`` in expectation), or ``objective="cosine"``:
``l(p, t) = -(1/N) sum_i cos(p_i, t_i)`` (the note's ``D``, Chen & He's form). The
target is under a stop-gradient unless ``stop_gradient=False`` (SimSiam only: BYOL's
target is not a parameter).

Theory for ``objective="mse"``, no BN (derived here, Tian et al. 2021 Sec. 3)
-------------------------------------------------------------------------------
With ``F = E[x_1 x_2^T] = A0`` (additive noise: the clean second moment) and the noise
covariance ``C`` commuting with ``F``, each common eigendirection (``F`` eigenvalue
``s``, ``C`` eigenvalue ``c``) evolves as

.. math::

    \\dot w = w\\,[p s - p^2 (s + c) - \\eta], \\qquad
    \\dot p = \\rho\\,[w^2 (s - p (s + c)) - \\eta p]

(``rho``: the predictor's relative learning rate). Hence (see :func:`fixed_points`)

* without a predictor (``p = 1``): ``dw/dt = -w (c + eta)`` (``-(2c + eta) w`` without
  the stop-gradient too), every direction decays: **complete collapse** whenever
  ``c + eta > 0``;
* with a predictor, ``w = 0`` is unstable while ``p`` lies between the two roots of
  ``(s + c) p^2 - s p + eta = 0``; the stable non-collapsed point is the larger root
  ``p_+`` with ``w^2 = p_+^2``, and exists iff ``s^2 >= 4 eta (s + c)``: weight decay
  kills the directions of small ``F``-eigenvalue, so the encoder's row space spans the
  top eigenvectors of ``F`` (at most ``d1`` of them: the strongest survive). With
  ``eta > 0`` the collapsed state ``w = p = 0`` is itself a stable node, so which one a
  direction reaches depends on the initialisation;
* the predictor's fixed point differs from the E-step optimum ``A* = Sigma_21
  Sigma_11^{-1}`` (Exercise 3; per direction ``s / (s + c)``) by ``eta / ((s + c) p)``:
  it approaches ``A*`` as ``eta -> 0``;
* without a stop-gradient the loss is minimised only at ``W = 0`` (``C`` full rank):
  collapse.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import _validation as V
from ._progress import report
from .directpred import SCALES as DIRECTPRED_SCALES
from .directpred import _predictor as _directpred_predictor
from .directpred import directpred_checks, directpred_theory_in_basis, quadratic_root, update_correlation
from .data import Augmentation, Dataset, gaussian_data, make_augmentation
from .metrics import principal_angles, spectrum, trajectory
from .train.optim import OPTIMIZERS, SCHEDULES, lr_at, make_optimizer

__all__ = [
    "METHODS",
    "siamese_loss",
    "batchnorm",
    "batchnorm_backward",
    "fixed_points",
    "predictor_optimum",
    "predictor_gap",
    "train_siamese",
    "SiameseResult",
    "stopgrad_toy",
]

METHODS = ("simsiam", "byol")
OBJECTIVES = ("mse", "cosine")


# ----------------------------------------------------------------------------- pieces


def batchnorm(z, eps=1e-5):
    """Batch normalization without affine parameters, per column over the rows.

    ``z_hat = (z - mu) / s`` with ``mu``, ``var`` the batch mean and (biased) variance of
    each column and ``s = sqrt(var + eps)`` (the note's "Batch Normalization as Implicit
    Contrastive Signal", ``gamma = 1, beta = 0``).

    Returns
    -------
    z_hat : ndarray
    cache : tuple
        ``(z_hat, s)`` for :func:`batchnorm_backward`.
    """
    mu = z.mean(0)
    s = np.sqrt(((z - mu) ** 2).mean(0) + eps)
    zh = (z - mu) / s
    return zh, (zh, s)


_batchnorm = batchnorm  # train_siamese's boolean ``batchnorm`` shadows the name


def batchnorm_backward(g, cache):
    """Gradient through :func:`batchnorm`: ``(g - mean(g) - z_hat mean(g z_hat)) / s``.

    Its diagonal, ``d z_hat_b / d z_b = (1 - 1/N - z_hat_b^2 / N) / s``, grows as
    ``1 / sigma`` when a coordinate's batch spread ``sigma`` shrinks (Exercise 4), up to
    ``(1 - 1/N) / sqrt(eps)`` at exact collapse.
    """
    zh, s = cache
    return (g - g.mean(0) - zh * (g * zh).mean(0)) / s


def _objective(p, t, objective):
    """``l(p, t)`` and its gradients with respect to ``p`` and ``t`` (rows are samples)."""
    n = p.shape[0]
    if objective == "mse":
        d = p - t
        return 0.5 * float(np.sum(d * d)) / n, d / n, -d / n
    pn = np.maximum(np.sqrt(np.sum(p * p, 1, keepdims=True)), 1e-12)
    tn = np.maximum(np.sqrt(np.sum(t * t, 1, keepdims=True)), 1e-12)
    pu, tu = p / pn, t / tn
    cos = np.sum(pu * tu, 1, keepdims=True)
    gp = -(tu - cos * pu) / pn / n
    gt = -(pu - cos * tu) / tn / n
    return -float(np.sum(cos)) / n, gp, gt


def siamese_loss(W, P, x1, x2, *, Wt=None, predictor=True, stop_gradient=True, batchnorm_eps=None,
                 objective="mse", weight_decay=0.0):
    """Value and gradients of the symmetrised SimSiam/BYOL objective (module docstring).

    Parameters
    ----------
    W : ndarray (d1, d0)
        Online encoder.
    P : ndarray (d1, d1) or None
        Predictor; ignored (identity) when ``predictor=False``.
    x1, x2 : ndarray (N, d0)
        Paired views.
    Wt : ndarray (d1, d0), optional
        Target encoder (BYOL's EMA); default ``W`` (SimSiam).
    predictor, stop_gradient : bool
        The two mechanisms. ``stop_gradient=False`` lets the gradient flow through the
        target branch too (needs ``Wt`` None).
    batchnorm_eps : float or None
        Batch-normalise the embeddings (online and target, each with its own batch
        statistics) with this ``eps``; ``None``: no BN.
    objective : {"mse", "cosine"}
    weight_decay : float
        ``eta``: adds ``eta/2 (|W|^2 + |P|^2)``.

    Returns
    -------
    value : float
    gW : ndarray (d1, d0)
    gP : ndarray (d1, d1) or None
        ``None`` without a predictor.
    """
    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    d1, d0 = W.shape
    x1 = V.check_array("x1", x1, ndim=2, dtype=np.float64, shape=(None, d0), min_rows=2)
    x2 = V.check_array("x2", x2, ndim=2, dtype=np.float64, shape=x1.shape)
    predictor = V.check_bool("predictor", predictor)
    stop_gradient = V.check_bool("stop_gradient", stop_gradient)
    if predictor:
        P = V.check_array("P", P, ndim=2, dtype=np.float64, shape=(d1, d1))
    if Wt is not None:
        Wt = V.check_array("Wt", Wt, ndim=2, dtype=np.float64, shape=(d1, d0))
    V.check_choice("objective", objective, OBJECTIVES)
    batchnorm_eps = V.check_scalar("batchnorm_eps", batchnorm_eps, lo=0.0, lo_open=True, allow_none=True)
    weight_decay = V.check_scalar("weight_decay", weight_decay, lo=0.0)
    return _siamese_loss(W, P, x1, x2, Wt, predictor, stop_gradient, batchnorm_eps, objective, weight_decay)


def _siamese_loss(W, P, x1, x2, Wt, predictor, stop_gradient, batchnorm_eps, objective, weight_decay,
                  decay_predictor=True):
    """:func:`siamese_loss` without argument checks (the training loop's inner call).

    ``decay_predictor=False`` leaves ``P`` out of the weight decay (DirectPred: ``P`` is
    not a parameter).
    """
    if Wt is not None and not stop_gradient:
        raise ValueError("stop_gradient=False needs the target to be the online encoder (Wt=None, SimSiam); "
                         "an EMA target is not a trained parameter.")
    target = W if Wt is None else Wt
    gW = np.zeros_like(W)
    gP = np.zeros_like(P) if predictor else None
    value = 0.0
    enc = {}
    for a, x in ((1, x1), (2, x2)):
        z = x @ W.T
        zc = None
        if batchnorm_eps is not None:
            z, zc = batchnorm(z, batchnorm_eps)
        t, tc = (z, zc) if Wt is None else (x @ target.T, None)
        if Wt is not None and batchnorm_eps is not None:
            t, tc = batchnorm(t, batchnorm_eps)
        enc[a] = (x, z, zc, t, tc)
    for a, b in ((1, 2), (2, 1)):
        x, z, zc, _, _ = enc[a]
        xb, _, _, t, tc = enc[b]
        p = z @ P.T if predictor else z
        v, gp, gt = _objective(p, t, objective)
        value += 0.5 * v
        gp *= 0.5
        if predictor:
            gP += gp.T @ z
            gz = gp @ P
        else:
            gz = gp
        if zc is not None:
            gz = batchnorm_backward(gz, zc)
        gW += gz.T @ x
        if not stop_gradient:
            gt = 0.5 * gt
            if tc is not None:
                gt = batchnorm_backward(gt, tc)
            gW += gt.T @ xb
    if weight_decay:
        decay_P = predictor and decay_predictor
        value += 0.5 * weight_decay * (float(np.sum(W * W)) + (float(np.sum(P * P)) if decay_P else 0.0))
        gW += weight_decay * W
        if decay_P:
            gP += weight_decay * P
    return value, gW, gP


def predictor_gap(P, W, A0, C, Wt=None, rtol=1e-3):
    """``|P U - A* U| / |A* U|`` on the embedding subspace the encoder still uses.

    ``U`` (``d1 x k``) spans the directions of ``z`` whose variance is at least ``rtol``
    times the largest; collapsed directions are left out as inputs because there the
    E-step optimum is a ratio of vanishing quantities. On the live inputs ``z = U a``,
    the E-step optimum is ``E[t | z] = Sigma_21 U (U^T Sigma_11 U)^{-1} a``, and every
    output row of ``P U`` (dead output directions included) is compared with it.
    """
    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    d1, d0 = W.shape
    P = V.check_array("P", P, ndim=2, dtype=np.float64, shape=(d1, d1))
    A0 = V.check_array("A0", A0, ndim=2, dtype=np.float64, shape=(d0, d0))
    C = V.check_array("C", C, ndim=2, dtype=np.float64, shape=(d0, d0))
    Wt = W if Wt is None else V.check_array("Wt", Wt, ndim=2, dtype=np.float64, shape=(d1, d0))
    rtol = V.check_scalar("rtol", rtol, lo=0.0, lo_open=True, hi=1.0)
    U, sv, _ = np.linalg.svd(W, full_matrices=False)
    if sv[0] == 0:
        raise ValueError("W is zero (complete collapse): the E-step optimum is undefined.")
    Uk = U[:, : max(int(np.sum(sv**2 >= rtol * sv[0] ** 2)), 1)]
    S11 = Uk.T @ W @ (A0 + C) @ W.T @ Uk
    target = Wt @ A0 @ W.T @ Uk @ np.linalg.inv(S11)
    nt = float(np.linalg.norm(target))
    return float(np.linalg.norm(P @ Uk - target)) / nt if nt > 0 else float("inf")


def predictor_optimum(W, A0, C, Wt=None):
    """E-step optimum of a linear predictor, ``A* = Sigma_21 Sigma_11^{-1}`` (Exercise 3).

    For views ``x_a = x + eps_a`` of data with second moment ``A0`` and independent
    noise of covariance ``C``: ``Sigma_11 = E[z_1 z_1^T] = W (A0 + C) W^T`` and
    ``Sigma_21 = E[t_2 z_1^T] = W_t A0 W^T`` (``W_t = W`` for SimSiam). A pseudo-inverse
    is used when ``Sigma_11`` is singular (collapsed rows).
    """
    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    d1, d0 = W.shape
    A0 = V.check_array("A0", A0, ndim=2, dtype=np.float64, shape=(d0, d0))
    C = V.check_array("C", C, ndim=2, dtype=np.float64, shape=(d0, d0))
    Wt = W if Wt is None else V.check_array("Wt", Wt, ndim=2, dtype=np.float64, shape=(d1, d0))
    S11 = W @ (A0 + C) @ W.T
    S21 = Wt @ A0 @ W.T
    return S21 @ np.linalg.pinv(S11, rcond=1e-10, hermitian=True)


def fixed_points(s, c, weight_decay=0.0):
    """Per-direction non-collapsed fixed point of linear SimSiam/BYOL (MSE, no BN).

    Parameters
    ----------
    s, c : array_like
        Eigenvalues of ``F = A0`` and of the commuting noise covariance ``C`` along the
        same eigendirections.
    weight_decay : float
        ``eta``.

    Returns
    -------
    dict of ndarray
        ``p`` (stable predictor eigenvalue, the larger root of
        ``(s + c) p^2 - s p + eta = 0``; 0 where none exists), ``w2`` (encoder
        eigenvalue of ``W^T W``: ``p^2``, or 0 where the direction collapses; NaN
        when ``eta == 0``, where ``w`` is set by the initialisation through the
        conserved ``w^2 - p^2 / rho``),
        ``alive`` (``s^2 >= 4 eta (s + c)``), ``estep`` (``s / (s + c)``, the E-step
        optimum) and ``decay_without_predictor`` (``c + eta``, the rate at which
        ``|w|`` decays when ``P = I``).
    """
    s = np.atleast_1d(V.check_array("s", s, ndim=None, dtype=np.float64)).ravel()
    c = np.atleast_1d(V.check_array("c", c, dtype=np.float64)).ravel()
    if s.shape != c.shape:
        raise ValueError(f"s has {s.size} values and c {c.size}; they must agree.")
    if np.any(s < 0) or np.any(c < 0):
        raise ValueError("s and c are variances and must be >= 0.")
    eta = V.check_scalar("weight_decay", weight_decay, lo=0.0)
    tot = s + c
    root = quadratic_root(s, c, eta)
    alive = ~np.isnan(root) & (s > 0)
    safe = np.where(tot > 0, tot, 1.0)
    p = np.where(alive, root, 0.0)
    estep = np.where(tot > 0, s / safe, 0.0)
    # without weight decay w is not fixed: w^2 - p^2 / rho is conserved along the flow
    w2 = np.where(alive, p * p, 0.0) if eta > 0 else np.full_like(s, np.nan)
    return {"p": p, "w2": w2, "alive": alive, "estep": estep, "decay_without_predictor": c + eta}


def stopgrad_toy(theta, eps, a=None, stop_gradient=True):
    """Exercise 2's one-parameter toy: ``z1 = theta``, ``z2 = theta + eps``.

    Loss ``(h(z1) - z2)^2`` with ``h = id`` (``a=None``) or a linear predictor
    ``h(z) = a z``; with ``stop_gradient`` the target ``z2`` is a constant for the
    gradient. Returns ``(value, update_direction)``: the gradient that training follows
    (the stop-gradient "gradient" is not the derivative of the value).
    """
    theta = V.check_scalar("theta", theta)
    eps = V.check_scalar("eps", eps)
    a = 1.0 if a is None else V.check_scalar("a", a)
    stop_gradient = V.check_bool("stop_gradient", stop_gradient)
    z1, z2 = theta, theta + eps
    r = a * z1 - z2
    g = 2.0 * r * a if stop_gradient else 2.0 * r * (a - 1.0)
    return r * r, g


# ----------------------------------------------------------------------------- training


@dataclass
class SiameseResult:
    """Outcome of :func:`train_siamese`.

    Attributes
    ----------
    W, P, Wt : ndarray
        Encoder, predictor (identity without one) and target encoder (``W`` for SimSiam).
    eigenvalues : ndarray
        Eigenvalues of ``W^T W``, descending.
    history : dict of ndarray
        ``step``, ``loss``, ``W``, ``P``, ``spectrum`` every ``record_every`` steps.
    track : dict of ndarray
        :func:`minissl.metrics.trajectory` along the history.
    F : ndarray
        Augmentation-averaged covariance ``E[x_1 x_2^T]`` (the training set's ``A0``).
    C : ndarray
        Noise covariance.
    theory : dict or None
        :func:`fixed_points` in ``F``'s eigenbasis (MSE, no BN, ``C`` commuting with
        ``F``; else None) with the predicted spectrum ``w2`` sorted descending. For the
        ablations (no predictor, no stop-gradient) the prediction is complete collapse
        (``w2 = 0``; ``collapse`` says why).
    checks : dict
        ``principal_angles`` (degrees) between ``W``'s row space and ``F``'s top
        eigenvectors, ``predictor_gap`` ``|P - A*|_F / |A*|_F`` (with a predictor),
        ``energy_outside_top`` (share of ``|W|_F^2`` outside ``F``'s top-k eigenspace; the
        angles alone are trivially 0 for ``2k > d0``), ``norm_ratio`` ``|W|_F / |W_0|_F``,
        ``complete_collapse`` (``norm_ratio < 1e-3``; angles and the predictor gap are
        then omitted) and the embedding covariance's ``stable_rank`` (near 1: dimensional
        collapse to one direction). The diagnostics use ``z = W x`` before batch norm
        (BN rescales each coordinate, so ranks and directions are those of ``W x``).
    settings : dict
    """

    W: np.ndarray
    P: np.ndarray
    Wt: np.ndarray
    eigenvalues: np.ndarray
    history: dict
    track: dict
    F: np.ndarray
    C: np.ndarray
    theory: dict | None
    checks: dict
    dataset: Dataset
    settings: dict = field(default_factory=dict)


def _commuting_theory(F, C, eta):
    if not np.allclose(F @ C, C @ F, atol=1e-10 * max(1.0, float(np.abs(F).max()) * float(np.abs(C).max()))):
        return None
    ev, U = np.linalg.eigh(F)
    c = np.einsum("ij,jk,ki->i", U.T, C, U)
    fp = fixed_points(np.maximum(ev, 0.0), np.maximum(c, 0.0), eta)
    order = np.argsort(ev)[::-1]
    out = {k: np.asarray(v)[order] for k, v in fp.items()}
    out["s"] = ev[order]
    out["c"] = c[order]
    return out


def train_siamese(method="simsiam", *, data=None, n=256, variances=None, augmentation="isotropic", sigma=1.0,
                  theta=0.5, content_dims=None, d1=None, predictor=True, stop_gradient=True, batchnorm=False,
                  bn_eps=1e-5, objective="mse", ema=None, weight_decay=0.0, steps=3000, lr=0.05,
                  predictor_lr=1.0, optimizer="sgd", momentum=0.0, lr_schedule="constant", init_scale=0.5,
                  predictor_init="small", directpred=False, directpred_eps=None, directpred_rho=None,
                  directpred_scale=None, seed=0, record_every=None, uniformity_t=2.0, alignment_alpha=2.0):
    """Train linear SimSiam or BYOL (or an ablation) with fresh augmentation every step.

    Parameters
    ----------
    method : {"simsiam", "byol"}
        SimSiam: target = online encoder under a stop-gradient. BYOL: target = EMA of the
        encoder (``ema``).
    data, n, variances, augmentation, sigma, theta, content_dims :
        As :func:`minissl.simulate` (default data: ``N = 256`` Gaussian samples with
        variances ``0.5, 1, 2, 3, 4``; isotropic noise ``N(0, sigma^2 I)``).
    d1 : int, optional
        Embedding dimension (default ``d0``).
    predictor, stop_gradient, batchnorm : bool
        The mechanisms; ablate one by setting it False (BN: True adds it).
    bn_eps : float
        BN's ``eps``.
    objective : {"mse", "cosine"}
    ema : float in [0, 1), optional
        BYOL's target decay (default 0.99; ``0``: the target is the current encoder, i.e.
        SimSiam). Refused for SimSiam.
    weight_decay : float
        ``eta`` on ``W`` and ``P``.
    steps, lr, optimizer, momentum, lr_schedule :
        Full-batch training; ``optimizer="sgd"`` (default; gradient flow is what the
        theory describes) or ``"adam"``; ``lr_schedule`` ``"constant"`` or ``"cosine"``
        (to ``lr / 1000``).
    predictor_lr : float
        Learning rate of ``P`` relative to ``W`` (Tian et al.'s ``alpha_p``).
    init_scale : float
        ``W_0 = init_scale * G / sqrt(d0)``.
    predictor_init : {"small", "identity"}
        ``P_0 = init_scale * G' / sqrt(d1)`` (default) or ``I + init_scale * G' / sqrt(d1)``.
        The outcome depends on it: a direction grows only while its predictor eigenvalue
        lies between the roots of ``(s + c) p^2 - s p + eta`` (below ``s / (s + c) <
        1``), so a predictor that starts near ``I`` lets ``w`` decay until ``P`` has
        adapted (without weight decay ``w^2 - p^2 / predictor_lr`` is conserved), and
        weak directions can collapse first.
    directpred : bool
        Set ``P`` every step from the eigen-decomposition of a moving average of the
        predictor inputs' correlation instead of training it (DirectPred, Tian et al.
        2021; :mod:`minissl.directpred`). ``predictor_lr`` and ``predictor_init`` do not
        apply.
    directpred_eps, directpred_rho, directpred_scale :
        DirectPred's ``eps`` (added to every ``p_j``; default 0.1), the moving average's
        weight on the old estimate (default 0.3), and the scale rule ``"max"`` (default;
        ``sqrt(lambda_j / lambda_max)``, Tian et al.'s) or ``"none"`` (``sqrt(lambda_j)``).
        Only with ``directpred=True``. The weight decay applies to ``W`` only. With the MSE objective
        ``"max"`` collapses ``W`` in norm at a predicted rate while its shape converges;
        ``"none"`` has a non-collapsed fixed point (``theory``).
    seed : int
        Data, initialisation, training noise and tracking views come from independent
        streams of this seed; the same seed gives the same numbers.
    record_every : int, optional
        History interval (default ``steps // 100``).
    uniformity_t, alignment_alpha : float
        See :func:`minissl.metrics.trajectory`.

    Returns
    -------
    SiameseResult
    """
    V.check_choice("method", method, METHODS)
    V.check_choice("objective", objective, OBJECTIVES)
    V.check_choice("optimizer", optimizer, OPTIMIZERS)
    V.check_choice("lr_schedule", lr_schedule, SCHEDULES)
    V.check_choice("predictor_init", predictor_init, ("small", "identity"))
    predictor = V.check_bool("predictor", predictor)
    stop_gradient = V.check_bool("stop_gradient", stop_gradient)
    batchnorm = V.check_bool("batchnorm", batchnorm)
    bn_eps = V.check_scalar("bn_eps", bn_eps, lo=0.0, lo_open=True)
    if ema is not None and method != "byol":
        raise ValueError(f"ema == {ema!r} applies to method='byol' (SimSiam's target is the encoder itself).")
    ema = V.check_scalar("ema", 0.99 if ema is None else ema, lo=0.0, hi=1.0, hi_open=True)
    weight_decay = V.check_scalar("weight_decay", weight_decay, lo=0.0)
    uniformity_t = V.check_scalar("uniformity_t", uniformity_t, lo=0.0, lo_open=True)
    alignment_alpha = V.check_scalar("alignment_alpha", alignment_alpha, lo=0.0, lo_open=True)
    steps = V.check_int("steps", steps, lo=1)
    lr = V.check_scalar("lr", lr, lo=0.0, lo_open=True)
    predictor_lr = V.check_scalar("predictor_lr", predictor_lr, lo=0.0, lo_open=True)
    momentum = V.check_scalar("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    init_scale = V.check_scalar("init_scale", init_scale, lo=0.0, lo_open=True)
    seed = V.check_int("seed", seed, lo=0)
    record_every = V.check_int("record_every", max(steps // 100, 1) if record_every is None else record_every,
                               lo=1, hi=steps)
    if method == "byol" and not stop_gradient:
        raise ValueError("stop_gradient=False applies to method='simsiam'; BYOL's EMA target is not a trained "
                         "parameter, so there is no gradient to stop.")
    if optimizer == "adam" and momentum:
        raise ValueError(f"momentum == {momentum!r} applies to optimizer='sgd', not 'adam'.")
    if not predictor and predictor_lr != 1.0:
        raise ValueError(f"predictor_lr == {predictor_lr!r} has no effect with predictor=False.")
    directpred = V.check_bool("directpred", directpred)
    given = {k: v for k, v in (("directpred_eps", directpred_eps), ("directpred_rho", directpred_rho),
                               ("directpred_scale", directpred_scale)) if v is not None}
    if given and not directpred:
        k, v = next(iter(given.items()))
        raise ValueError(f"{k} == {v!r} applies with directpred=True.")
    directpred_eps = V.check_scalar("directpred_eps", 0.1 if directpred_eps is None else directpred_eps, lo=0.0)
    directpred_rho = V.check_scalar("directpred_rho", 0.3 if directpred_rho is None else directpred_rho, lo=0.0,
                                    hi=1.0, hi_open=True)
    directpred_scale = "max" if directpred_scale is None else directpred_scale
    V.check_choice("directpred_scale", directpred_scale, DIRECTPRED_SCALES)
    if directpred and not predictor:
        raise ValueError("directpred=True sets the predictor; it needs predictor=True.")
    if directpred and predictor_lr != 1.0:
        raise ValueError(f"predictor_lr == {predictor_lr!r} applies to a learned predictor, not directpred=True.")
    if directpred and predictor_init != "small":
        raise ValueError(f"predictor_init == {predictor_init!r} applies to a learned predictor, not "
                         "directpred=True (P is set from the features at every step).")

    data_ss, init_ss, noise_ss, track_ss = np.random.SeedSequence(seed).spawn(4)
    if data is None:
        data = gaussian_data(V.check_int("n", n, lo=2),
                             variances=(0.5, 1.0, 2.0, 3.0, 4.0) if variances is None else variances,
                             seed=np.random.default_rng(data_ss))
    elif not isinstance(data, Dataset):
        raise TypeError(f"data == {type(data).__name__}, must be a minissl.data.Dataset.")
    elif variances is not None:
        raise ValueError("give either data= or variances=, not both.")
    x = np.ascontiguousarray(data.x, dtype=np.float64)
    d0 = x.shape[1]
    d1 = V.check_int("d1", d0 if d1 is None else d1, lo=1)
    if isinstance(augmentation, str):
        V.check_choice("augmentation", augmentation, ("isotropic", "structured"))
        augmentation = make_augmentation(augmentation, d0, sigma=sigma, theta=theta, content_dims=content_dims)
    elif not isinstance(augmentation, Augmentation):
        raise TypeError(f"augmentation == {augmentation!r}, must be a name or an Augmentation.")
    C = augmentation.covariance(data.A0)
    F = augmentation.clean_moment(data.A0)

    rng_init = np.random.default_rng(init_ss)
    rng = np.random.default_rng(noise_ss)
    W = init_scale / math.sqrt(d0) * rng_init.standard_normal((d1, d0))
    G = rng_init.standard_normal((d1, d1))
    P = (np.eye(d1) if predictor_init == "identity" else 0.0) + init_scale / math.sqrt(d1) * G
    if not predictor:
        P = np.eye(d1)
    W0_norm = float(np.linalg.norm(W))
    Wt = W.copy() if method == "byol" else None
    params = [W, P] if predictor and not directpred else [W]
    F_hat = None
    opt = make_optimizer(optimizer, params, momentum)
    scales = [1.0, predictor_lr]
    eps_bn = bn_eps if batchnorm else None
    hist = {"step": [], "loss": [], "W": [], "P": [], "spectrum": []}
    t0 = time.perf_counter()
    for t in range(steps + 1):
        x1s, x2s = augmentation.views(x, rng, 1)
        if directpred:  # P from the correlation of the predictor's inputs, before the loss
            z1, z2 = x1s[0] @ W.T, x2s[0] @ W.T
            if batchnorm:
                z1, z2 = _batchnorm(z1, bn_eps)[0], _batchnorm(z2, bn_eps)[0]
            F_hat = update_correlation(F_hat, z1, z2, directpred_rho)
            P = _directpred_predictor(F_hat, directpred_eps, directpred_scale)
        with np.errstate(over="ignore", invalid="ignore"):
            v, gW, gP = _siamese_loss(W, P, x1s[0], x2s[0], Wt, predictor, stop_gradient, eps_bn, objective,
                                      weight_decay, not directpred)
        if not (np.isfinite(v) and np.all(np.isfinite(gW)) and np.all(np.isfinite(W))):
            hint = (f" or directpred_eps (== {directpred_eps!r})." if directpred else
                    f" or predictor_lr (== {predictor_lr!r})." if predictor else ".")
            raise FloatingPointError(f"training diverged at step {t} (loss == {v!r}); lower lr (== {lr!r})" + hint)
        if t % record_every == 0 or t == steps:
            hist["step"].append(t)
            hist["loss"].append(v)
            hist["W"].append(W.copy())
            hist["P"].append(P.copy())
            hist["spectrum"].append(spectrum(W))
        if t == steps:
            break
        grads = [gW, gP] if predictor and not directpred else [gW]
        opt.step(params, grads, lr_at(t, steps, lr, lr_schedule, lr / 1000), scales)
        if Wt is not None:
            Wt *= ema
            Wt += (1.0 - ema) * W
        report(t + 1, steps)
    seconds = time.perf_counter() - t0
    history = {k: np.asarray(v) for k, v in hist.items()}
    tx1, tx2 = augmentation.views(x, np.random.default_rng(track_ss), 1)
    tr = trajectory(history["W"], x, tx1[0], tx2[0], t=uniformity_t, alpha=alignment_alpha)
    tr["step"] = history["step"]
    theory = None
    if objective == "mse" and not batchnorm and directpred and stop_gradient:
        theory = directpred_theory_in_basis(
            _commuting_theory(F, C, weight_decay), d1, weight_decay=weight_decay, eps=directpred_eps,
            scale=directpred_scale, lr=lr, momentum=momentum, ema=ema if method == "byol" else 0.0,
            rho=directpred_rho, sgd_constant=optimizer == "sgd" and lr_schedule == "constant")
    elif objective == "mse" and not batchnorm and not directpred:
        theory = _commuting_theory(F, C, weight_decay)
        if theory is not None and not (predictor and stop_gradient):
            # the ablations. P = I: dw/dt = -(c + eta) w (stop-gradient) or -(2c + eta) w (none);
            # with a predictor but no stop-gradient the loss's only minimum is W = 0 where c > 0,
            # and weight decay removes W where c = 0
            rate = (theory["c"] if stop_gradient or predictor else 2.0 * theory["c"]) + weight_decay
            moves = rate > 0
            theory["alive"] = np.zeros_like(theory["alive"])
            theory["w2"] = np.where(moves, 0.0, np.nan)
            theory["p"] = np.full_like(theory["p"], np.nan)
            theory["decay_rate"] = rate if not predictor else None
            if np.all(moves):
                theory["collapse"] = ("no predictor: |w| decays at rate c + eta" if stop_gradient else
                                      "no predictor, no stop-gradient: |w| decays at rate 2c + eta") \
                    if not predictor else "no stop-gradient: W = 0 is the only minimum"
        elif theory is not None and np.sum(theory["alive"]) > d1:
            # d1 rows keep at most d1 directions: the strongest survivors (largest p_+)
            keep = np.argsort(-np.where(theory["alive"], theory["p"], -np.inf))[:d1]
            drop = np.setdiff1d(np.flatnonzero(theory["alive"]), keep)
            theory["alive"][drop] = False
            theory["p"][drop] = 0.0
            theory["w2"][drop] = 0.0
        if theory is not None:
            theory.setdefault("collapse", None)
            theory["w2_sorted"] = np.sort(theory["w2"])[::-1]
    ev = spectrum(W)
    checks = {"norm_ratio": float(np.linalg.norm(W)) / W0_norm}
    checks["complete_collapse"] = bool(checks["norm_ratio"] < 1e-3)
    checks["stable_rank"] = float(tr["stable_rank"][-1])
    if not checks["complete_collapse"]:
        ang = principal_angles(W, F)
        checks["principal_angles_deg"] = np.degrees(ang).tolist()
        # share of W's energy outside F's top-k eigenspace (k = the angles' dimension): unlike
        # the angles, not trivially small when 2k > d0
        _, U = np.linalg.eigh(F)
        rest = U[:, : d0 - ang.size]
        checks["energy_outside_top"] = float(np.linalg.norm(W @ rest) ** 2 / np.linalg.norm(W) ** 2)
        if predictor:
            checks["predictor_gap"] = predictor_gap(P, W, F, C, Wt)
    if directpred:
        checks.update(directpred_checks(history, W, P, F, W0_norm, directpred_scale))
    settings = {"method": method, "predictor": predictor, "stop_gradient": stop_gradient, "batchnorm": batchnorm,
                "bn_eps": bn_eps, "objective": objective, "ema": ema if method == "byol" else None,
                "weight_decay": weight_decay, "steps": steps, "lr": lr, "predictor_lr": predictor_lr,
                "optimizer": optimizer, "momentum": momentum, "lr_schedule": lr_schedule, "init_scale": init_scale,
                "directpred": directpred, "directpred_eps": directpred_eps if directpred else None,
                "directpred_rho": directpred_rho if directpred else None,
                "directpred_scale": directpred_scale if directpred else None,
                "seed": seed, "n": data.n, "d0": d0, "d1": d1, "augmentation": augmentation.name,
                "sigma": getattr(augmentation, "sigma", None), "theta": getattr(augmentation, "theta", None),
                "content_dims": getattr(augmentation, "content_dims", None), "record_every": record_every,
                "uniformity_t": uniformity_t, "alignment_alpha": alignment_alpha, "train_seconds": seconds}
    return SiameseResult(W=W, P=P, Wt=W if Wt is None else Wt, eigenvalues=ev, history=history, track=tr, F=F,
                         C=C, theory=theory, checks=checks, dataset=data, settings=settings)

