"""Learning dynamics on the effective landscape: early rates, learning times, critical slowing down.

The theory of Ziyin et al. (2023) predicts end points (Theorem 1). Near ``W = 0`` the landscape
``L = -Tr[W B W^T] + k Tr[(W S W^T)^2]`` (Prop. 1, Eq. 3) is dominated by its quadratic part,
and gradient descent is linear: ``W <- W (I + 2 lr B)``. In the eigenbasis ``e_i`` of ``B``
(eigenvalues ``b_i``) each direction's weight grows or decays geometrically. With heavy-ball
momentum ``mu`` (minissl's SGD: ``buf = mu buf + g``, ``W -= lr buf``) the component ``w`` of
a direction obeys ``w_{t+1} = (1 + mu + 2 lr b) w_t - mu w_{t-1}``, whose larger root ``z`` of
``z^2 - (1 + mu + 2 lr b) z + mu = 0`` gives the per-step rate ``ln |z|`` of ``w`` and
``2 ln |z|`` of the eigenvalue ``u_i = e_i^T W^T W e_i`` (:func:`linear_rates`).

Beyond the linear regime the quartic term saturates the growth. When ``B`` and ``S`` commute
(isotropic augmentation: both are functions of ``A0``) a direction aligned with ``e_i`` stays
decoupled, ``s_i = e_i^T S e_i``, and gradient flow gives the logistic equation

    du/dt = a u - c u^2,   a = 4 lr b,  c = 8 lr k s^2,   u* = a / c = b / (2 k s^2),

(``u*`` the eigenvalue of Theorem 1's minimum). :func:`learning_times` uses it with the
discrete rate ``a = 2 ln |z|`` of the linear regime in place of ``4 lr b`` (for small
``lr b`` it is ``4 lr b / (1 - mu)``: momentum acts as the learning rate ``lr / (1 - mu)``;
``c`` is scaled alike, keeping ``u*``) and reports the steps a direction takes

* with ``b > 0``: from ``u0`` to within a fraction ``eps`` of ``u*``;
* with ``b < 0``: from ``u0`` down to ``eps u0``.

Both diverge like ``1 / |b|`` as ``b -> 0`` (critical slowing down at a collapse threshold) as
long as ``|b| >> 2 k s^2 u0``, i.e. a start far below the stationary scale; closer to the
threshold the quartic term alone relaxes ``u`` algebraically, ``u0 / (1 + c u0 t)``, and the
time saturates at ``(1/eps - 1) (1 - mu) / (8 lr k s^2 u0)`` (its value at ``b = 0``).
Since ``b`` is linear in ``sigma^2`` near a threshold ``sigma_c``, the learning time diverges
as ``|sigma - sigma_c|^(-1)`` (exponent -1; for ``b > 0`` with a logarithmic correction,
``ln(u*/u0)`` with ``u* ~ b``). Adam has no linear rate (it normalises the gradient per
coordinate), so only SGD is predicted. When ``B`` and ``S`` do not commute the decoupled
picture is an approximation; ``commutator`` reports how far they are from commuting.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validation as V

__all__ = ["linear_rates", "learning_times", "dynamics", "CRITICAL_EXPONENT"]

CRITICAL_EXPONENT = -1.0  # learning time ~ |sigma - sigma_c|^-1 near a threshold (mean-field slowing down)


def linear_rates(b, lr, momentum=0.0):
    """Per-step growth rates ``ln |z|`` of a weight component along directions with ``B``-eigenvalues ``b``.

    Parameters
    ----------
    b : array_like
        Eigenvalues of ``B``.
    lr : float
        SGD learning rate (> 0).
    momentum : float
        Heavy-ball momentum in ``[0, 1)``.

    Returns
    -------
    ndarray
        ``ln |z|`` per direction, ``z`` the root of ``z^2 - (1 + mu + 2 lr b) z + mu`` of larger
        modulus (``z = 1 + 2 lr b`` without momentum). The eigenvalue of ``W^T W`` along the
        direction changes at twice this rate. ``-inf`` where ``z = 0``.
    """
    b = V.check_array("b", b, ndim=1, dtype=np.float64)
    lr = V.check_scalar("lr", lr, lo=0.0, lo_open=True)
    mu = V.check_scalar("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    p = 1.0 + mu + 2.0 * lr * b
    disc = p * p - 4.0 * mu
    root = np.where(disc >= 0.0, (np.abs(p) + np.sqrt(np.clip(disc, 0.0, None))) / 2.0, math.sqrt(mu))
    with np.errstate(divide="ignore"):
        return np.log(root)


def learning_times(b, s, k, lr, u0, momentum=0.0, eps=0.1):
    """Steps each direction takes to reach its stationary value (``b > 0``) or to decay (``b < 0``).

    Parameters
    ----------
    b, s : array_like
        ``B``-eigenvalues and the quartic's ``s_i = e_i^T S e_i`` per direction (``s > 0``).
    k : float
        Quartic coefficient of the trace form (> 0).
    lr, momentum : float
        SGD settings (see :func:`linear_rates`).
    u0 : float or array_like
        Initial eigenvalue ``e_i^T W_0^T W_0 e_i`` (> 0).
    eps : float
        Tolerance in ``(0, 1)``: within ``eps u*`` of ``u*``, or down to ``eps u0``.

    Returns
    -------
    dict of ndarray
        ``rate`` (per-step rate of the eigenvalue, ``2 ln |z|``), ``u_star`` (``b / (2 k s^2)``,
        0 where ``b <= 0``) and ``steps`` (at ``b = 0``: the quartic's algebraic decay to ``eps u0``;
        1 where ``z = 0``: the component vanishes in one step).

    Raises
    ------
    ValueError
        A decaying direction (``b < 0``) that SGD does not make decay at this ``lr``
        (``|z| >= 1``: the step overshoots, ``lr >= (1 + mu) / |b|``), naming ``lr``.
    """
    b = V.check_array("b", b, ndim=1, dtype=np.float64)
    s = V.check_array("s", s, ndim=1, shape=b.shape, dtype=np.float64)
    if np.any(s <= 0):
        raise ValueError(f"s == {s.tolist()}, must be positive (the quartic's diagonal).")
    k = V.check_scalar("k", k, lo=0.0, lo_open=True)
    eps = V.check_scalar("eps", eps, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    try:
        u0 = np.broadcast_to(np.asarray(u0, dtype=np.float64), b.shape)
    except (ValueError, TypeError):
        raise ValueError(f"u0 == {u0!r}, must be a positive number or one per direction ({b.size}).") from None
    if np.any(~(u0 > 0)) or not np.all(np.isfinite(u0)):
        raise ValueError(f"u0 == {u0.tolist()}, must be positive and finite.")
    a = 2.0 * linear_rates(b, lr, momentum)
    mu = float(momentum)
    bad = (b < 0) & (a >= 0)
    if np.any(bad):
        raise ValueError(f"lr == {lr!r}: the directions with b = {b[bad].tolist()} do not decay under SGD at this "
                         f"learning rate (|z| >= 1, the step overshoots); use lr < {(1 + mu) / np.max(-b[bad]):.4g}.")
    nz = np.where(b != 0, b, 1.0)
    c = 2.0 * k * s**2 * a / nz  # so that u* = a / c = b / (2 k s^2), Theorem 1's eigenvalue
    u_star = np.where(b > 0, b / (2.0 * k * s**2), 0.0)
    steps = np.full(b.shape, np.inf)
    for i in range(b.size):
        if b[i] == 0:  # du/dt = -c u^2, c = 8 lr k s^2 / (1 - mu): u0 / (1 + c u0 t) reaches eps u0
            steps[i] = (1.0 / eps - 1.0) * (1.0 - mu) / (8.0 * lr * k * s[i] ** 2 * u0[i])
            continue
        if a[i] == -np.inf:  # z = 0: gone after one step
            steps[i] = 1.0
            continue
        if b[i] > 0:
            target = u_star[i] * ((1 - eps) if u0[i] < u_star[i] else (1 + eps))
            if abs(u0[i] - u_star[i]) <= eps * u_star[i]:
                steps[i] = 0.0
                continue
        else:
            target = eps * u0[i]
        # logistic solution u(t) = a u0 e^{at} / (a + c u0 (e^{at} - 1)), solved for u(t) = target
        ratio = target * (a[i] - c[i] * u0[i]) / (u0[i] * (a[i] - c[i] * target))
        steps[i] = math.log(ratio) / a[i]
    return {"rate": a, "u_star": u_star, "steps": steps}


def dynamics(land, lr, momentum=0.0, u0=1e-4, eps=0.1, optimizer="sgd"):
    """Early rates and learning times of every direction of an effective landscape.

    Parameters
    ----------
    land : minissl.landscape.Landscape
        A trace-form landscape without the normalization penalty (``kappa = 0``).
    lr, momentum : float
        SGD's learning rate and heavy-ball momentum.
    u0 : float
        Initial eigenvalue of ``W^T W`` along each direction (``init_scale^2`` for an orthogonal
        square initialisation).
    eps : float
        Tolerance of :func:`learning_times`.
    optimizer : {"sgd"}
        Adam is refused: its update is normalised per coordinate, so it has no linear rate.

    Returns
    -------
    dict
        JSON-ready: ``directions`` (rows of ``e_i``, by decreasing ``b``), ``b``, ``s``,
        ``rate`` (per step, of the eigenvalue), ``u_star``, ``steps``, ``commutator``
        (``|BS - SB|_F / (|B|_F |S|_F)``, 0 when the decoupled picture is exact) and the settings.
    """
    from ..landscape import Landscape
    from ..losses.registry import QUARTIC_TRACE

    if not isinstance(land, Landscape):
        raise TypeError(f"land == {type(land).__name__}, must be a minissl.landscape.Landscape.")
    if optimizer != "sgd":
        raise ValueError(f"optimizer == {optimizer!r}: only 'sgd' has a linear rate at W = 0 (Adam normalises "
                         "the gradient per coordinate).")
    if land.quartic != QUARTIC_TRACE or land.kappa:
        raise ValueError("dynamics needs a trace-form landscape without the normalization penalty (kappa == 0).")
    w, U = np.linalg.eigh(land.B)
    order = np.argsort(w)[::-1]
    b, U = w[order], U[:, order]
    s = np.einsum("ji,jk,ki->i", U, land.S, U)
    t = learning_times(b, s, land.k, lr, u0, momentum=momentum, eps=eps)
    B, S = land.B, land.S
    comm = float(np.linalg.norm(B @ S - S @ B) / max(np.linalg.norm(B) * np.linalg.norm(S), 1e-300))
    return {"directions": U.T.tolist(), "b": b.tolist(), "s": s.tolist(), "k": float(land.k),
            "rate": t["rate"].tolist(), "u_star": t["u_star"].tolist(),
            "steps": [None if not np.isfinite(x) else float(x) for x in t["steps"]], "commutator": comm,
            "lr": float(lr), "momentum": float(momentum), "u0": float(u0), "eps": float(eps)}
