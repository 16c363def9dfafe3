"""The standard SimCLR NT-Xent loss (cosine similarity / temperature), NumPy reference.

Beside the paper's Gaussian-kernel losses (:func:`minissl.losses.reference.infonce_core`)
this module implements the loss as SimCLR (Chen et al. 2020) defines it, and the tools of
the companion note's Exercise 6 (the simplex ETF minimises it; dimensional collapse to
``N - 1`` dimensions):

* :func:`simclr_core` -- ``(value, g1, g2)`` for two views, like the other cores;
* :func:`embedding_loss` -- the loss of ``N`` given embeddings used as both views
  (``z1 = z2 = u``) and its total gradient;
* :func:`simplex_etf`, :func:`etf_loss` -- the regular simplex and its loss in closed form;
* :func:`descend_on_sphere` -- projected gradient descent of :func:`embedding_loss` over
  free unit vectors.

Relation to minissl's Gaussian kernel (exact, tested in ``tests/test_simclr.py``): on the
sphere of squared radius ``c``, ``exp(-|y_i - y_j|^2 / 2) = exp(-c) exp(c u_i . u_j)``;
the factor ``exp(-c)`` appears in every term of the denominator and in the positive, so
it cancels, and with ``c = 1 / temperature`` the Gaussian-kernel InfoNCE of one anchor
*equals* its NT-Xent term. Hence

``simclr(z1, z2; tau) = [infonce(z1, z2) + infonce(z2, z1)] / 2`` with
``get_loss("infonce", normalize=True, c=1/tau, negatives="both")``, and
``decoupled=True`` pairs with ``get_loss("weighted", alpha=0, ...)`` the same way.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validation as V

__all__ = ["simclr_core", "embedding_loss", "simplex_etf", "etf_loss", "descend_on_sphere"]


def _unit_rows(z, eps):
    """``u = z / max(|z|, eps)`` row-wise, and the clamped norms (as ``Loss.project``)."""
    nrm = np.maximum(np.sqrt((z * z).sum(1, keepdims=True)), eps)
    return z / nrm, nrm


def _ntxent_unit(u, temperature, decoupled):
    """NT-Xent of ``2N`` rows ``u`` (view 1 then view 2) and its gradient w.r.t. ``u``.

    ``u`` is used as given (no normalisation here): the similarity is ``u_k . u_m``.
    """
    m = u.shape[0]
    n = m // 2
    rows = np.arange(m)
    pos = np.concatenate([np.arange(n, m), np.arange(n)])  # index of each anchor's positive
    s = (u @ u.T) / temperature
    logits = s.copy()
    logits[rows, rows] = -np.inf  # an anchor is never its own negative
    if decoupled:
        logits[rows, pos] = -np.inf  # DCL: the positive leaves the denominator
    mx = logits.max(1)  # finite: every anchor has 2N - 2 >= 2 negatives
    lse = mx + np.log(np.exp(logits - mx[:, None]).sum(1))
    value = float(np.mean(lse - s[rows, pos]))
    # d l_k / d s_km = softmax_km - [m == pos(k)] (s = u u^T / tau is symmetric)
    G = np.exp(logits - lse[:, None])
    G[rows, pos] -= 1.0
    gu = ((G + G.T) @ u) / (m * temperature)
    return value, gu


def simclr_core(z1, z2, temperature=0.5, decoupled=False, eps=1e-12):
    """SimCLR's NT-Xent loss (Chen et al. 2020) of two views, with its gradient.

    With ``u = z / max(|z|, eps)`` for the ``2N`` rows of ``z1`` and ``z2``, cosine
    similarities ``s_km = u_k . u_m`` and, for anchor ``k``, its positive ``k'`` (the other
    view of the same sample),

    .. math::

        \\ell_k = -\\frac{s_{kk'}}{\\tau}
                  + \\log \\sum_{m \\ne k} \\exp(s_{km} / \\tau), \\qquad
        L = \\frac{1}{2N} \\sum_{k=1}^{2N} \\ell_k .

    Every one of the ``2N`` rows is an anchor (both directions, symmetric); the
    denominator has ``2N - 1`` terms: the positive and the ``2N - 2`` negatives (both views
    of every other sample). ``decoupled=True`` drops the positive from the denominator
    (``m \\ne k, k'``: the decoupled contrastive loss of Yeh et al. 2022, the analogue of the
    paper's ``alpha = 0``). Log-sum-exp throughout.

    Parameters
    ----------
    z1, z2 : ndarray, shape (N, d1)
        Representations of the two views (any norm: normalised here); N >= 2.
    temperature : float, > 0
        ``tau``; default 0.5.
    decoupled : bool
        Drop the positive from the denominator (DCL).
    eps : float, > 0
        Lower clamp of ``|z|`` (as ``torch.nn.functional.normalize``): a zero row gives
        ``u = 0`` and finite values, never NaN.

    Returns
    -------
    value : float
        ``L``, the mean over the ``2N`` anchors.
    g1, g2 : ndarray, shape (N, d1)
        ``dL/dz1``, ``dL/dz2``. Through the normalisation, ``dL/dz = (g - u (g . u)) / |z|``
        with ``g = dL/du`` (the same backward as :class:`minissl.losses.Loss` uses for
        ``normalize=True``), so the gradient is tangent to the sphere.

    Notes
    -----
    The Gaussian kernel of :func:`minissl.losses.reference.infonce_core` on outputs
    normalised to squared norm ``c`` is ``exp(-|y_i - y_j|^2/2) = exp(-c) exp(c s_ij)``, so
    with ``c = 1/tau`` its anchor terms equal ``ell_k`` exactly (``exp(-c)`` cancels); the
    minissl InfoNCE uses view-1 anchors only, so ``L`` is the average of minissl's
    ``negatives="both"`` InfoNCE on ``(z1, z2)`` and on ``(z2, z1)``. See docs/conventions.md.
    """
    z1 = np.asarray(z1)
    z2 = np.asarray(z2)
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 has shape {z1.shape} and z2 {z2.shape}; they must be equal 2-D shapes (N, d1).")
    if z1.shape[0] < 2:
        raise ValueError(f"z1 has {z1.shape[0]} rows, must have at least 2 samples (NT-Xent needs negatives).")
    temperature = V.check_scalar("temperature", temperature, lo=0.0, lo_open=True)
    u1, n1 = _unit_rows(z1, eps)
    u2, n2 = _unit_rows(z2, eps)
    value, gu = _ntxent_unit(np.concatenate([u1, u2]), temperature, decoupled)
    n = z1.shape[0]
    gu1, gu2 = gu[:n], gu[n:]
    g1 = (gu1 - u1 * (gu1 * u1).sum(1, keepdims=True)) / n1
    g2 = (gu2 - u2 * (gu2 * u2).sum(1, keepdims=True)) / n2
    return value, g1, g2


def embedding_loss(u, temperature=0.5, decoupled=False):
    """NT-Xent of ``N`` embeddings used as both views (``z1 = z2 = u``), and its gradient.

    This is the setting of Exercise 6 of the companion note: every sample's two views
    coincide, so each positive similarity is 1 and the loss depends only on the
    configuration of the ``N`` points. For unit rows,

    .. math::

        L(u) = \\frac1N \\sum_i \\Big[ -\\frac1\\tau + \\log\\Big(e^{1/\\tau}
               + 2\\sum_{j \\ne i} e^{u_i \\cdot u_j/\\tau}\\Big)\\Big]

    (without the ``e^{1/tau}`` term when ``decoupled``).

    Parameters
    ----------
    u : array_like, shape (N, d)
        Embeddings (normalised inside, like :func:`simclr_core`); N >= 2.
    temperature : float, > 0
    decoupled : bool

    Returns
    -------
    value : float
    grad : ndarray, shape (N, d)
        Total derivative ``dL/du = g1 + g2`` (both views move together); tangent to the
        sphere at unit rows, so ``u - lr * grad`` followed by renormalisation is projected
        (Riemannian) gradient descent.
    """
    u = V.check_array("u", u, ndim=2, dtype=np.float64, min_rows=2)
    temperature = V.check_scalar("temperature", temperature, lo=0.0, lo_open=True)
    decoupled = V.check_bool("decoupled", decoupled)
    value, g1, g2 = simclr_core(u, u, temperature=temperature, decoupled=decoupled)
    return value, g1 + g2


def simplex_etf(n, d=None, seed=None):
    """``n`` unit vectors forming a regular simplex (simplex ETF) in ``d`` dimensions.

    The rows of ``sqrt(n/(n-1)) (I - 11^T/n)`` have unit norm and pairwise inner products
    ``-1/(n-1)``; they sum to zero, so they span an ``(n-1)``-dimensional subspace. They
    are written in an orthonormal basis of that subspace and embedded in ``R^d`` by a
    random isometry (``seed``) or, with ``seed=None``, in the first ``n - 1`` coordinates.

    Parameters
    ----------
    n : int, >= 2
    d : int, >= n - 1, optional
        Ambient dimension (default ``n - 1``).
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    ndarray, shape (n, d)
    """
    n = V.check_int("n", n, lo=2)
    d = V.check_int("d", n - 1 if d is None else d, lo=n - 1)
    M = math.sqrt(n / (n - 1)) * (np.eye(n) - 1.0 / n)
    # coordinates in an orthonormal basis of the (n-1)-dim subspace orthogonal to 1
    U = np.linalg.svd(M)[0]
    coords = M @ U[:, : n - 1]  # (n, n-1); inner products preserved (M's columns lie in span U[:, :n-1])
    if seed is None:
        Q = np.eye(d)[:, : n - 1]
    else:
        rng = np.random.default_rng(seed)
        Q, _ = np.linalg.qr(rng.standard_normal((d, n - 1)))
    return coords @ Q.T


def etf_loss(n, temperature=0.5, decoupled=False):
    """Closed-form NT-Xent of the simplex ETF of ``n`` points with identical views.

    Each anchor sees its copy (similarity 1) and the ``2(n-1)`` copies of the other
    points (similarity ``-1/(n-1)``), so

    * standard: ``L = log(1 + 2(n-1) exp(-n / ((n-1) tau)))``;
    * decoupled: ``L = log(2(n-1)) - n / ((n-1) tau)``.

    It is the minimum of :func:`embedding_loss` over unit vectors in dimension
    ``d >= n - 1`` (where the ETF exists; in fewer dimensions the bound is not reached):
    ``sum_{i != j} u_i.u_j = |sum u|^2 - n >= -n`` and the loss is an increasing convex
    function of each anchor's mean similarity (Jensen twice), with equality only at the ETF.
    """
    n = V.check_int("n", n, lo=2)
    t = V.check_scalar("temperature", temperature, lo=0.0, lo_open=True)
    a = n / ((n - 1) * t)
    if V.check_bool("decoupled", decoupled):
        return math.log(2 * (n - 1)) - a
    return math.log1p(2 * (n - 1) * math.exp(-a))


def descend_on_sphere(u0, temperature=0.5, decoupled=False, steps=2000, lr=0.5, tol=1e-12):
    """Projected gradient descent of :func:`embedding_loss` over free unit vectors.

    ``u <- normalize(u - lr * grad)`` from ``u0`` (normalised first) until the gradient
    norm is below ``tol`` or ``steps`` are done.

    Returns
    -------
    u : ndarray, shape (N, d)
        Final unit embeddings.
    values : ndarray
        Loss at every step taken (the last entry is at the returned ``u``).
    """
    t = V.check_scalar("temperature", temperature, lo=0.0, lo_open=True)
    steps = V.check_int("steps", steps, lo=1)
    lr = V.check_scalar("lr", lr, lo=0.0, lo_open=True)
    u = V.check_array("u0", u0, ndim=2, dtype=np.float64, min_rows=2)
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"u0 has {int(np.sum(norms == 0))} zero row(s); every start must be a nonzero vector "
                         "(it is projected to the unit sphere).")
    u /= norms
    values = []
    for _ in range(steps):
        value, g = embedding_loss(u, t, decoupled)
        values.append(value)
        if float(np.linalg.norm(g)) <= tol:
            break
        u = u - lr * g
        u /= np.linalg.norm(u, axis=1, keepdims=True)
    else:
        values.append(embedding_loss(u, t, decoupled)[0])
    return u, np.asarray(values)
