"""Collapse diagnostics of a learned representation.

Definitions follow the companion note (``shared/seeds/000``, "The Geometry of Collapse",
"Measuring Dimensional Collapse in Practice"). Every function takes either a symmetric
PSD matrix (``WᵀW``, an embedding covariance) or its eigenvalues.

Conventions
-----------
* Eigenvalues, not singular values, of the symmetric matrix; sorted descending; tiny
  negative round-off (``>= -tol``) is clipped to 0.
* :func:`embedding_covariance` is centred and divided by ``N`` (the note's
  ``Z^T Z / N - zbar zbar^T``); pass ``centered=False`` for the second moment.
* Numerical rank tolerance: ``rtol * lambda_max`` with ``rtol = d * machine-eps``
  by default (as :func:`numpy.linalg.matrix_rank`), or a given ``rtol``.
* For the all-zero matrix (complete collapse) the stable and entropy ranks are 0, the
  log eigenvalue ratio is ``inf`` and the explained-variance curve is all zeros —
  defined values, never NaN.
* :func:`alignment` and :func:`uniformity` (Wang & Isola 2020, the note's "Alignment and
  Uniformity on the Hypersphere") act on embeddings projected to the unit sphere,
  ``u = z / max(|z|, 1e-12)`` (as ``torch.nn.functional.normalize``): a zero embedding
  stays at the origin, so complete collapse reads as alignment 0 and uniformity 0 (its
  maximum), never NaN. Uniformity averages over the ``N (N - 1) / 2`` distinct pairs
  ``i < j`` (as ``torch.pdist``), alignment over the ``N`` positive pairs.
* :func:`trajectory` evaluates all of these along a training history (see there for
  which inputs each diagnostic uses).
"""

from __future__ import annotations

import math

import numpy as np

from . import _validation as V

__all__ = [
    "spectrum",
    "embedding_covariance",
    "numerical_rank",
    "RANK_RTOL",
    "COLLAPSE_SCALE",
    "eigenvalue_agreement",
    "stable_rank",
    "entropy_rank",
    "log_eigenvalue_ratio",
    "explained_variance",
    "summary",
    "alignment",
    "uniformity",
    "principal_angles",
    "eigenspace_angle",
    "top_eigenvectors",
    "trajectory",
]


# relative tolerance of the numerical rank used throughout minissl (reports, CLI, summary)
RANK_RTOL = 1e-3
# the theory's scale when it predicts complete collapse (its top eigenvalue is 0): learned
# eigenvalues below RANK_RTOL x this count as collapsed (as in the figures' rank counts)
COLLAPSE_SCALE = 1e-6


def _eigs(M):
    """Descending, clipped eigenvalues of a PSD matrix, or validated eigenvalues."""
    arr = V.check_array("M", M, dtype=np.float64)
    if arr.ndim == 1:
        ev = np.sort(arr)[::-1]
    elif arr.ndim == 2:
        if arr.shape[0] != arr.shape[1]:
            raise ValueError(f"M has shape {arr.shape}, must be square (or a 1-D array of eigenvalues).")
        if not np.allclose(arr, arr.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.max(np.abs(arr), initial=0.0)))):
            raise ValueError("M is not symmetric; pass W.T @ W or a covariance matrix.")
        ev = np.linalg.eigvalsh(0.5 * (arr + arr.T))[::-1]
    else:
        raise ValueError(f"M has shape {arr.shape}, must be a square matrix or 1-D eigenvalues.")
    if ev.size == 0:
        raise ValueError("M is empty, must have dimension >= 1.")
    tol = 1e-10 * max(1.0, float(np.max(np.abs(ev))))
    if ev[-1] < -tol:
        raise ValueError(f"M has a negative eigenvalue {ev[-1]:.3g}, must be positive semi-definite.")
    return np.clip(ev, 0.0, None)


def spectrum(W):
    """Eigenvalues of ``W^T W`` (length d0), descending.

    Computed as the squared singular values of ``W`` (zeros past ``min(d1, d0)``), not by
    diagonalising ``W^T W``: an eigenvalue ``lambda`` then carries an absolute error of
    about ``eps sqrt(lambda lambda_max)`` instead of ``eps lambda_max``, so the eigenvalues
    of collapsed directions (``1e-20`` of the top after training) are the training's, not
    round-off of the product (which differed tenfold between two CPUs).

    Parameters
    ----------
    W : array_like, shape (d1, d0)
    """
    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    ev = np.zeros(W.shape[1])
    if W.size:
        s = np.linalg.svd(W, compute_uv=False)
        ev[:s.size] = s**2
    return ev


def embedding_covariance(Z, centered=True):
    """Empirical embedding covariance ``Z^T Z / N - zbar zbar^T`` of ``Z`` (N, d)."""
    Z = V.check_array("Z", Z, ndim=2, dtype=np.float64, min_rows=1)
    if centered:
        Z = Z - Z.mean(0)
    return Z.T @ Z / Z.shape[0]


def numerical_rank(M, rtol=RANK_RTOL):
    """Number of eigenvalues above ``rtol * lambda_max``.

    The default :data:`RANK_RTOL` (1e-3) is the one tolerance minissl's reports, the CLI's
    ``--rank-tol`` and :func:`summary` share; ``rtol=None`` takes NumPy's
    ``matrix_rank`` convention ``d * eps``.
    """
    ev = _eigs(M)
    if rtol is None:
        rtol = ev.size * np.finfo(np.float64).eps
    rtol = V.check_scalar("rtol", rtol, lo=0.0)
    if ev[0] == 0.0:
        return 0
    return int(np.sum(ev > rtol * ev[0]))


def eigenvalue_agreement(learned, predicted, rtol=RANK_RTOL, paired=False):
    """Each learned eigenvalue against its own prediction: the agreement metric of every report.

    ``error_i = |l_i - p_i| / max(p_i, floor)`` with both spectra sorted descending and the
    absolute floor ``floor = rtol * max(p_1, COLLAPSE_SCALE)``: ``rtol`` (the rank tolerance,
    1e-3) times the theory's top eigenvalue, or times :data:`COLLAPSE_SCALE` when the theory
    predicts complete collapse. An eigenvalue the theory puts above the floor is judged
    relative to itself, so a weak direction that training leaves far below its predicted
    value reads as an error near 100% however small it is next to the top (the error
    relative to the top eigenvalue, used before, hid exactly those); one the theory puts at
    zero agrees while the learned value stays below the floor, the level at which the rank
    count calls a direction collapsed.

    Parameters
    ----------
    learned, predicted : array_like, shape (d,)
        Eigenvalues (any order; sorted descending here).
    rtol : float
        Relative tolerance of the floor (default :data:`RANK_RTOL`).
    paired : bool
        Compare ``learned[i]`` with ``predicted[i]`` as given (values along the same
        eigendirections) instead of sorting both.

    Returns
    -------
    dict
        ``errors`` (per eigenvalue, descending order or the given one), ``max_error``,
        ``worst`` (the index of the largest error in that order) and ``floor``.
    """
    l = V.check_array("learned", learned, ndim=1, dtype=np.float64)
    p = V.check_array("predicted", predicted, ndim=1, dtype=np.float64)
    paired = V.check_bool("paired", paired)
    if not paired:
        l, p = np.sort(l)[::-1], np.sort(p)[::-1]
    if l.shape != p.shape:
        raise ValueError(f"learned has {l.size} eigenvalues and predicted {p.size}; they must have the same length.")
    if l.size == 0:
        raise ValueError("learned and predicted are empty, must have length >= 1.")
    rtol = V.check_scalar("rtol", rtol, lo=0.0)
    floor = rtol * max(float(np.max(p)), COLLAPSE_SCALE)
    errors = np.abs(l - p) / np.maximum(p, floor)
    worst = int(np.argmax(errors))
    return {"errors": errors, "max_error": float(errors[worst]), "worst": worst, "floor": floor}


def _unit(ev):
    """Eigenvalues divided by the largest (scale-free; avoids overflow and underflow)."""
    return ev / ev[0] if ev[0] > 0 else ev


def stable_rank(M):
    """Stable rank ``(sum lambda)^2 / sum lambda^2`` in ``[1, d]`` (0 for the zero matrix)."""
    ev = _unit(_eigs(M))
    s2 = float(np.sum(ev**2))
    return 0.0 if s2 == 0.0 else float(np.sum(ev)) ** 2 / s2


def entropy_rank(M):
    """Entropy (effective) rank ``exp(-sum p_i log p_i)``, ``p_i = lambda_i / sum lambda``."""
    ev = _unit(_eigs(M))
    tot = float(np.sum(ev))
    if tot == 0.0:
        return 0.0
    p = ev[ev > 0] / tot
    return float(np.exp(-np.sum(p * np.log(p))))


def log_eigenvalue_ratio(M):
    """``log(lambda_1 / lambda_d)``; ``inf`` when ``lambda_d == 0`` (a collapsed direction)."""
    ev = _eigs(M)
    if ev[0] == 0.0 or ev[-1] == 0.0:
        return float("inf")
    return float(np.log(ev[0] / ev[-1]))


def explained_variance(M):
    """Cumulative explained variance ``sum_{i<=k} lambda_i / sum_i lambda_i`` for k = 1..d."""
    ev = _unit(_eigs(M))
    tot = float(np.sum(ev))
    if tot == 0.0:
        return np.zeros_like(ev)
    return np.cumsum(ev) / tot


def summary(M, rtol=RANK_RTOL):
    """All diagnostics of ``M`` in one dict (JSON-friendly floats and lists)."""
    ev = _eigs(M)
    return {
        "eigenvalues": ev.tolist(),
        "rank": numerical_rank(ev, rtol),
        "stable_rank": stable_rank(ev),
        "entropy_rank": entropy_rank(ev),
        "log_eigenvalue_ratio": log_eigenvalue_ratio(ev),
        "explained_variance": explained_variance(ev).tolist(),
    }


def _unit_rows(Z, eps=1e-12):
    nrm = np.sqrt(np.sum(Z * Z, axis=1, keepdims=True))
    return Z / np.maximum(nrm, eps)


def alignment(z1, z2, alpha=2.0, normalize=True):
    """Alignment ``E ||u1 - u2||^alpha`` of positive pairs (Wang & Isola 2020).

    Parameters
    ----------
    z1, z2 : array_like, shape (N, d)
        Embeddings of the two views; row ``i`` of each comes from sample ``i``.
    alpha : float, > 0
        Exponent (the note's definition and Wang & Isola's default: 2).
    normalize : bool
        Project to the unit sphere first (default, the note's setting).

    Returns
    -------
    float
        In ``[0, 2^alpha]`` when normalized; 0 for identical views (or collapse).
    """
    z1 = V.check_array("z1", z1, ndim=2, dtype=np.float64, min_rows=1)
    z2 = V.check_array("z2", z2, ndim=2, dtype=np.float64, shape=z1.shape)
    alpha = V.check_scalar("alpha", alpha, lo=0.0, lo_open=True)
    if V.check_bool("normalize", normalize):
        z1, z2 = _unit_rows(z1), _unit_rows(z2)
    d = np.sqrt(np.sum((z1 - z2) ** 2, axis=1))
    return float(np.mean(d**alpha))


def uniformity(z, t=2.0, normalize=True):
    """Uniformity ``log E_{i<j} exp(-t ||u_i - u_j||^2)`` (Wang & Isola 2020).

    Lower is more uniform; 0 when all embeddings coincide (complete collapse). On the
    unit sphere the value is bounded below by ``-4 t`` (antipodal pairs only).

    Parameters
    ----------
    z : array_like, shape (N, d), N >= 2
    t : float, > 0
        Kernel scale (the note's and Wang & Isola's default: 2).
    normalize : bool
        Project to the unit sphere first (default).
    """
    z = V.check_array("z", z, ndim=2, dtype=np.float64, min_rows=2)
    t = V.check_scalar("t", t, lo=0.0, lo_open=True)
    if V.check_bool("normalize", normalize):
        z = _unit_rows(z)
    # row blocks with a running log-sum-exp: O(N * block) memory for any N
    n = z.shape[0]
    sq = np.sum(z * z, axis=1)
    block = max(1, min(n, 2_000_000 // max(n, 1)))
    m, acc = -np.inf, 0.0
    for i0 in range(0, n - 1, block):
        i1 = min(i0 + block, n - 1)
        D = np.maximum(sq[i0:i1, None] + sq[None, :] - 2.0 * (z[i0:i1] @ z.T), 0.0)
        a = -t * D
        a[np.arange(n)[None, :] <= np.arange(i0, i1)[:, None]] = -np.inf  # keep pairs i < j only
        bm = float(np.max(a))
        if bm > m:
            acc = acc * math.exp(m - bm) if m > -np.inf else 0.0
            m = bm
        acc += float(np.sum(np.exp(a - m)))
    return float(m + math.log(acc / (n * (n - 1) / 2)))


def principal_angles(W, F, k=None):
    """Principal angles (radians, ascending) between ``W``'s row space and ``F``'s top eigenvectors.

    Tian et al. (2021) predict that linear SimSiam/BYOL learn an encoder whose row space
    spans the top eigenvectors of the augmentation-averaged covariance ``F``
    (the note's "The Linear Regime Analysis"). The row space is represented by the top
    ``k`` right singular vectors of ``W``.

    Parameters
    ----------
    W : array_like, shape (d1, d0)
    F : array_like, shape (d0, d0)
        Symmetric; its top-``k`` eigenvectors (largest eigenvalues) are compared.
    k : int, optional
        Subspace dimension; default: the number of eigenvalues of ``W^T W`` above
        ``1e-3`` times the largest (so that collapsing directions do not enter), at
        least 1.

    Returns
    -------
    ndarray, shape (k,)
        ``0`` means the subspaces share that direction; ``pi / 2`` orthogonal.
    """
    from scipy.linalg import subspace_angles

    W = V.check_array("W", W, ndim=2, dtype=np.float64)
    F = V.check_array("F", F, ndim=2, dtype=np.float64, shape=(W.shape[1], W.shape[1]))
    if k is None:
        k = max(numerical_rank(W.T @ W, rtol=1e-3), 1)
    k = V.check_int("k", k, lo=1, hi=min(W.shape))
    _, _, Vt = np.linalg.svd(W, full_matrices=False)
    return np.sort(subspace_angles(Vt[:k].T, top_eigenvectors(F, k)))


def top_eigenvectors(M, k):
    """Orthonormal eigenvectors of the ``k`` largest eigenvalues of a symmetric matrix.

    Parameters
    ----------
    M : ndarray, shape (d, d)
        Symmetric (its symmetric part ``(M + M^T) / 2`` is used).
    k : int
        How many, ``0 <= k <= d``.

    Returns
    -------
    ndarray, shape (d, k)
        Columns ordered by eigenvalue, largest first.
    """
    _, U = np.linalg.eigh(0.5 * (M + M.T))
    return U[:, ::-1][:, :k]


def eigenspace_angle(M1, M2, k):
    """Largest principal angle (degrees) between the top-``k`` eigenspaces of two symmetric matrices.

    For two PSD matrices such as two ``W^T W``: how far apart the ``k`` directions that each
    keeps most of are. Unlike :func:`principal_angles` (all angles, via the cosines), only the
    largest angle is computed, from its sine: the largest singular value of the part of ``U1``
    orthogonal to ``U2``, which stays accurate near 0.

    Parameters
    ----------
    M1, M2 : ndarray, shape (d, d)
        Symmetric (their symmetric parts are used).
    k : int
        Subspace dimension, ``0 <= k <= d``; ``k = 0`` gives 0.

    Returns
    -------
    float
        In ``[0, 90]``; 0 when the subspaces coincide.
    """
    M1 = V.check_array("M1", M1, ndim=2, dtype=np.float64)
    M2 = V.check_array("M2", M2, dtype=np.float64, shape=M1.shape)
    if M1.shape[0] != M1.shape[1]:
        raise ValueError(f"M1 has shape {M1.shape}, must be square.")
    k = V.check_int("k", k, lo=0, hi=M1.shape[0])
    if k == 0:
        return 0.0
    U1, U2 = top_eigenvectors(M1, k), top_eigenvectors(M2, k)
    s = np.linalg.norm(U1 - U2 @ (U2.T @ U1), ord=2)
    return float(np.degrees(np.arcsin(min(float(s), 1.0))))


def trajectory(Ws, x, x1, x2, bs=None, t=2.0, alpha=2.0, rtol=1e-6):
    """Collapse diagnostics along a training history.

    For each snapshot ``(W, b)`` the embeddings are ``z = x W^T + b``:

    * ``cov_eigenvalues`` (rows: descending eigenvalues of the centred embedding
      covariance ``Sigma_z = Z^T Z / N - zbar zbar^T`` of the *clean* data ``x``, the
      note's Sigma), and from them ``rank`` (eigenvalues above ``rtol`` times the
      largest), ``stable_rank``, ``entropy_rank``, ``log_eigenvalue_ratio`` and the
      cumulative ``explained_variance``;
    * ``wtw_eigenvalues`` and ``wtw_stable_rank``: spectrum (descending) and stable rank
      of ``W^T W`` (the paper's object);
    * ``alignment`` on the positive pairs ``(x1, x2)`` and ``uniformity`` of the clean
      embeddings, both on the unit sphere (the note's ``E_{x,t}`` and ``E_{x,y ~ data}``).

    Parameters
    ----------
    Ws : array_like, shape (T, d1, d0)
    x : array_like, shape (N, d0)
        Clean data.
    x1, x2 : array_like, shape (M, d0)
        One fixed draw of paired views (the same at every snapshot, so that changes
        along the trajectory are the model's, not the noise's).
    bs : array_like, shape (T, d1), optional
    t, alpha : float
        Uniformity kernel scale and alignment exponent.
    rtol : float
        Relative tolerance of ``rank``.

    Returns
    -------
    dict of ndarray
        One entry per diagnostic, first axis = snapshot.
    """
    Ws = V.check_array("Ws", Ws, ndim=3, dtype=np.float64)
    x = V.check_array("x", x, ndim=2, dtype=np.float64, min_rows=2)
    x1 = V.check_array("x1", x1, ndim=2, dtype=np.float64, min_rows=1)
    x2 = V.check_array("x2", x2, ndim=2, dtype=np.float64, shape=x1.shape)
    if x.shape[1] != Ws.shape[2] or x1.shape[1] != Ws.shape[2]:
        raise ValueError(f"Ws has input dimension {Ws.shape[2]} but x has {x.shape[1]} and x1 {x1.shape[1]} "
                         "features; they must agree.")
    if bs is not None:
        bs = V.check_array("bs", bs, dtype=np.float64, shape=(Ws.shape[0], Ws.shape[1]))
    rtol = V.check_scalar("rtol", rtol, lo=0.0)
    cx = embedding_covariance(x)
    out = {k: [] for k in ("cov_eigenvalues", "rank", "stable_rank", "entropy_rank", "log_eigenvalue_ratio",
                           "explained_variance", "wtw_eigenvalues", "wtw_stable_rank", "alignment",
                           "uniformity")}
    for s, W in enumerate(Ws):
        b = 0.0 if bs is None else bs[s]
        ev = _eigs(W @ cx @ W.T)
        out["cov_eigenvalues"].append(ev)
        out["rank"].append(numerical_rank(ev, rtol))
        out["stable_rank"].append(stable_rank(ev))
        out["entropy_rank"].append(entropy_rank(ev))
        out["log_eigenvalue_ratio"].append(log_eigenvalue_ratio(ev))
        out["explained_variance"].append(explained_variance(ev))
        wev = _eigs(W.T @ W)
        out["wtw_eigenvalues"].append(wev)
        out["wtw_stable_rank"].append(stable_rank(wev))
        out["alignment"].append(alignment(x1 @ W.T + b, x2 @ W.T + b, alpha))
        out["uniformity"].append(uniformity(x @ W.T + b, t))
    return {k: np.asarray(v) for k, v in out.items()}
