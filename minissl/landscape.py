"""The effective fourth-order landscape of linear SSL (Ziyin et al. 2023, Prop. 1, Eq. 3, 10).

.. math::

    L(W, b) = -Tr[W B W^T] + Q(W) + \\kappa (Tr[W \\Sigma W^T] + \\|b\\|^2 - c)^2
              + \\gamma \\|W\\|_F^2

with the quartic term ``Q(W) = k Tr[(W S W^T)^2]`` ("trace" form, Prop. 1 with a
per-loss coefficient ``k``) or, for Barlow Twins on the raw cross-correlation,
``Q(W) = sum_k G_kk^2 + lam sum_{k != l} G_kl^2`` with ``G = W A0 W^T``.

The constants are derived in ``docs/errata.md`` and measured against the exact losses
in ``tests/test_coefficients.py``; they differ from the paper's printed ones.

Derived constants (the Hessian at the origin is ``-2 B``):

* InfoNCE family (``alpha``, ``beta``):
  ``B = beta * v N / (v (N - 1) + alpha) * A0c - (1 - beta) C``,
  quartic "trace" with ``S = A0c + C`` and ``k = 3 beta / 4``;
* SCL: ``B = 2 A0``, "trace" with ``S = A0 + C``, ``k = 1``;
* Barlow Twins on the raw cross-correlation: ``B = 2 A0``, "barlow" quartic with ``S = A0``;
* VICReg: ``B = var / (2 d1 sqrt(eps)) (A0u + C) - 2 inv C / d1`` (Hessian only).

``A0c`` is the centred empirical covariance of the clean training set (divided by N),
``A0u = N/(N-1) A0c``, ``v`` the number of views the negatives are drawn from (1 or 2),
``N_neg = v (N - 1)``. The landscape models the *noise-averaged* loss, i.e. training
with ``noise="fresh"``; with ``noise="fixed"`` the empirical loss has a Hessian that
fluctuates around ``-2B`` by ``O(C / sqrt(N))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from . import _validation as V
from ._config import CACHE, FASTMATH
from .losses import check_loss_object
from .losses.registry import QUARTIC_FORMS, QUARTIC_TRACE
from .metrics import spectrum

__all__ = ["Landscape", "effective_B", "effective_landscape", "paper_B", "predict", "descend_batch"]

# largest number of parameters for which Landscape.minimize polishes with dense Newton steps
POLISH_MAX_SIZE = 1100


def _refuse_without_B(loss, what):
    """Losses without an effective B in the registry (scale-free cosine forms): refuse clearly."""
    if loss.spec.effective_B is None:
        raise ValueError(f"loss {loss.name!r} has no {what}: {loss.spec.no_B}.")


def effective_B(loss, A0, C, n=None, mean=None, d1=None):
    """The matrix ``B`` of the effective landscape for an exact loss (derived, not Table 1).

    ``-Tr[W B W^T]`` is the second-order term of the noise-averaged exact loss around
    ``W = 0`` (weight decay ``gamma`` included as ``B - gamma I``).

    Parameters
    ----------
    loss : minissl.losses.Loss
        The exact loss (from :func:`minissl.get_loss`).
    A0 : array_like, shape (d0, d0)
        Empirical second moment of the clean training set.
    C : array_like, shape (d0, d0)
        Covariance of the augmentation noise.
    n : int, optional
        Training-set size N; ``None`` takes the N -> infinity limit of the N-dependent
        factors. Required for VICReg.
    mean : array_like, shape (d0,), optional
        Mean of the clean training set (default 0). Translation-invariant losses see
        the centred covariance ``A0 - mean mean^T``.
    d1 : int, optional
        Output dimension; required for VICReg (its terms are averaged over d1).

    Returns
    -------
    ndarray, shape (d0, d0)

    Raises
    ------
    ValueError
        For losses without an expansion at the origin (normalized outputs; Barlow
        Twins with batch standardisation), see Notes.

    Notes
    -----
    For the InfoNCE family every pair in the denominator (positive or negative) has a
    noise difference of covariance ``2C``, so the augmentation terms of the energy and
    of the repulsion cancel *exactly* for any ``alpha``: the paper's ``A0 - (1-alpha)
    C / N`` (Eq. 8, Table 1) is not what Eq. (7) gives, and beta-InfoNCE has
    ``beta A0 - (1-beta) C``, not ``A0 - (1-beta) C`` (Sec. 4.2). See docs/errata.md.
    """
    check_loss_object(loss)
    _refuse_without_B(loss, "effective B")
    A0 = V.check_covariance("A0", A0)
    C = V.check_covariance("C", C, dim=A0.shape[0])
    n = V.check_int("n", n, lo=2, allow_none=True)
    d1 = V.check_int("d1", d1, lo=1, allow_none=True)
    gamma = loss.weight_decay
    eye = np.eye(A0.shape[0])
    if loss.normalize:
        raise ValueError(
            "normalize=True: the normalized loss is scale invariant and has no expansion at "
            "W = 0; use effective_landscape(..., kappa=...) which models normalization by "
            "the penalty of Eq. (10) with the unnormalized loss's B."
        )
    B = loss.spec.effective_B(loss.core_kwargs, A0, C, n, mean, d1)
    return B - gamma * eye


def paper_B(loss, A0, C, n=None):
    """``B`` as printed in the paper (Eq. 6, 8, 15, Sec. 4.2, Table 1), for comparison.

    InfoNCE ``A0``; weighted ``A0 - (1 - alpha) C / N``; beta-InfoNCE
    ``A0 - (1 - beta) C``; SCL ``2 C`` (Eq. 15); Barlow Twins ``A0 + C`` (Table 1);
    weight decay ``- gamma I``. These are *not* the true constants; see docs/errata.md.
    """
    check_loss_object(loss)
    _refuse_without_B(loss, "B printed in the paper")
    A0 = V.check_covariance("A0", A0)
    C = V.check_covariance("C", C, dim=A0.shape[0])
    n = V.check_int("n", n, lo=1, allow_none=True)
    eye = np.eye(A0.shape[0])
    if loss.spec.paper_B is None:
        raise ValueError(f"the paper prints no B for {loss.name!r}.")
    B = loss.spec.paper_B(loss.core_kwargs, A0, C, n)
    return B - loss.weight_decay * eye


@dataclass
class Landscape:
    """The effective landscape ``L(W, b)`` (see the module docstring).

    Attributes
    ----------
    B : ndarray (d0, d0)
        Quadratic matrix (weight decay already folded in by :func:`effective_landscape`).
    S : ndarray (d0, d0)
        Matrix of the quartic term.
    k : float
        Quartic coefficient of the "trace" form.
    Sigma : ndarray (d0, d0)
        ``A0 + C``, used by the normalization penalty ``rho = Tr[W Sigma W^T]``.
    kappa, c : float
        Normalization penalty strength and target (Eq. 10); ``kappa = 0`` disables it.
    quartic : {"trace", "barlow"}
    lam : float
        Off-diagonal weight of the Barlow Twins quartic.
    """

    B: np.ndarray
    S: np.ndarray
    k: float = 1.0
    Sigma: np.ndarray | None = None
    kappa: float = 0.0
    c: float = 1.0
    quartic: str = QUARTIC_TRACE
    lam: float = 1.0

    def __post_init__(self):
        self.B = V.check_array("B", self.B, ndim=2, dtype=np.float64)
        d0 = self.B.shape[0]
        if self.B.shape != (d0, d0) or np.max(np.abs(self.B - self.B.T), initial=0.0) > 1e-10 * max(1.0, np.max(np.abs(self.B))):
            raise ValueError(f"B has shape {self.B.shape}, must be a symmetric square matrix.")
        self.S = V.check_covariance("S", self.S, dim=d0)
        self.Sigma = self.S.copy() if self.Sigma is None else V.check_covariance("Sigma", self.Sigma, dim=d0)
        self.k = V.check_scalar("k", self.k, lo=0.0, lo_open=True)
        self.kappa = V.check_scalar("kappa", self.kappa, lo=0.0)
        self.c = V.check_scalar("c", self.c, lo=0.0)  # 0: the scale augmentation's Tr^2 term (App. F.1)
        V.check_choice("quartic", self.quartic, QUARTIC_FORMS)
        self.lam = V.check_scalar("lam", self.lam, lo=0.0)

    @property
    def dim(self):
        return self.B.shape[0]

    def _check(self, W, b):
        W = V.check_array("W", W, ndim=2, dtype=np.float64)
        if W.shape[1] != self.dim:
            raise ValueError(f"W has shape {W.shape} but the landscape expects d0 == {self.dim} columns.")
        if b is not None:
            b = V.check_array("b", b, ndim=1, shape=(W.shape[0],), dtype=np.float64)
        return W, b

    def value_and_grad(self, W, b=None):
        """Landscape value and analytic gradient.

        Returns
        -------
        value : float
        dW : ndarray, shape (d1, d0)
        db : ndarray, shape (d1,) or None
        """
        W, b = self._check(W, b)
        return self.value_and_grad_unchecked(W, b)

    def value_and_grad_unchecked(self, W, b=None):
        WB = W @ self.B
        value = -float(np.sum(WB * W))
        dW = -2.0 * WB
        WS = W @ self.S
        G = WS @ W.T
        if self.quartic == QUARTIC_TRACE:
            value += self.k * float(np.sum(G * G))
            dW += 4.0 * self.k * (G @ WS)
        else:
            m = np.full(G.shape, self.lam)
            np.fill_diagonal(m, 1.0)
            value += float(np.sum(m * G * G))
            dW += 4.0 * ((m * G) @ WS)
        db = None if b is None else np.zeros_like(b)
        if self.kappa:
            rho = float(np.sum((W @ self.Sigma) * W))
            r = rho - self.c + (0.0 if b is None else float(b @ b))
            value += self.kappa * r * r
            dW += 4.0 * self.kappa * r * (W @ self.Sigma)
            if b is not None:
                db = 4.0 * self.kappa * r * b
        return value, dW, db

    def value(self, W, b=None):
        """Landscape value only."""
        return self.value_and_grad(W, b)[0]

    def hessian_vector(self, W, V_, b=None, Vb=None):
        """Directional derivative of the gradient: ``d/dt grad L(W + t V, b + t Vb)`` at t = 0.

        Analytic (tested against finite differences of :meth:`value_and_grad`).

        Returns
        -------
        HW : ndarray (d1, d0)
        Hb : ndarray (d1,) or None
        """
        W, b = self._check(W, b)
        V_ = V.check_array("V", V_, ndim=2, shape=W.shape, dtype=np.float64)
        if b is not None:
            Vb = np.zeros_like(b) if Vb is None else V.check_array("Vb", Vb, shape=b.shape, dtype=np.float64)
        elif Vb is not None:
            raise ValueError("Vb given without b: a direction in b needs a point with a bias.")
        return self._hvp(W, V_, b, Vb)

    def _hvp(self, W, Vw, b, Vb):
        HW = -2.0 * (Vw @ self.B)
        WS, VS = W @ self.S, Vw @ self.S
        G = WS @ W.T
        dG = VS @ W.T + WS @ Vw.T
        if self.quartic == QUARTIC_TRACE:
            HW += 4.0 * self.k * (dG @ WS + G @ VS)
        else:
            m = np.full(G.shape, self.lam)
            np.fill_diagonal(m, 1.0)
            HW += 4.0 * ((m * dG) @ WS + (m * G) @ VS)
        Hb = None if b is None else np.zeros_like(b)
        if self.kappa:
            WSig, VSig = W @ self.Sigma, Vw @ self.Sigma
            r = float(np.sum(WSig * W)) - self.c + (0.0 if b is None else float(b @ b))
            dr = 2.0 * float(np.sum(WSig * Vw)) + (0.0 if b is None else 2.0 * float(b @ Vb))
            HW += 4.0 * self.kappa * (dr * WSig + r * VSig)
            if b is not None:
                Hb = 4.0 * self.kappa * (dr * b + r * Vb)
        return HW, Hb

    def hessian(self, W, b=None):
        """Full Hessian at ``(W, b)`` in the flattened coordinates ``(W.ravel(), b)``.

        Built column by column from :meth:`hessian_vector` (exact, symmetric up to
        round-off; symmetrised on return). Size ``d1 d0 (+ d1)`` squared.
        """
        W, b = self._check(W, b)
        d1, d0 = W.shape
        nW = d1 * d0
        n = nW + (0 if b is None else d1)
        H = np.empty((n, n))
        e = np.zeros(n)
        for j in range(n):
            e[:] = 0.0
            e[j] = 1.0
            HW, Hb = self._hvp(W, e[:nW].reshape(d1, d0), b, None if b is None else e[nW:])
            H[:nW, j] = HW.ravel()
            if b is not None:
                H[nW:, j] = Hb
        return 0.5 * (H + H.T)

    def stationary_spectrum(self, d1):
        """Eigenvalues of ``W^T W`` (descending, length d0) at the global minimum.

        Closed form of Theorem 1 with a general quartic coefficient ``k``: with
        ``U Lambda U^T`` the eigendecomposition of ``S^{-1/2} B S^{-1/2}``, every
        stationary point has ``S^{1/2} W^T W S^{1/2} = U M Lambda U^T / (2k)`` and the
        global minimum keeps the ``min(m, d1, d0)`` largest positive eigenvalues
        (``L = -sum_M lambda_i^2 / (4k)``). Only for the "trace" quartic without the
        normalization penalty and with ``S`` positive definite; otherwise use
        :meth:`minimize`.
        """
        d1 = V.check_int("d1", d1, lo=1)
        if self.quartic != QUARTIC_TRACE or self.kappa:
            raise ValueError("stationary_spectrum needs quartic='trace' and kappa == 0; use minimize().")
        w, U = np.linalg.eigh(self.S)
        if w[0] <= 1e-12 * max(1.0, w[-1]):
            raise ValueError("S is singular; the closed form needs a positive definite S.")
        Sih = (U / np.sqrt(w)) @ U.T
        lam, P = np.linalg.eigh(Sih @ self.B @ Sih)
        order = np.argsort(lam)[::-1]
        lam, P = lam[order], P[:, order]
        keep = np.zeros_like(lam)
        kmax = min(d1, self.dim)
        # eigenvalues within round-off of zero (e.g. B = 0 directions) are not positive
        pos = np.flatnonzero(lam > 1e-12 * max(float(np.max(np.abs(lam))), 1e-300))[:kmax]
        keep[pos] = lam[pos]
        H = (P * keep) @ P.T / (2.0 * self.k)
        WtW = Sih @ H @ Sih
        ev = np.clip(np.linalg.eigvalsh(0.5 * (WtW + WtW.T))[::-1], 0.0, None)
        ev[ev <= 1e-12 * max(float(ev[0]), 1e-300)] = 0.0  # round-off of masked directions
        return ev

    def minimize(self, d1, bias=False, seed=0, restarts=4, init_scale=0.3, tol=1e-12,
                 maxiter=20000):
        """Minimise the landscape numerically (L-BFGS, analytic gradient, random restarts).

        Returns
        -------
        W : ndarray (d1, d0)
        b : ndarray (d1,) or None
        value : float
        grad_norm : float
            Norm of the gradient at the returned point.
        """
        d1 = V.check_int("d1", d1, lo=1)
        restarts = V.check_int("restarts", restarts, lo=1)
        init_scale = V.check_scalar("init_scale", init_scale, lo=0.0, lo_open=True)
        tol = V.check_scalar("tol", tol, lo=0.0, lo_open=True)
        maxiter = V.check_int("maxiter", maxiter, lo=1)
        bias = V.check_bool("bias", bias)
        rng = V.check_rng(seed)
        d0 = self.dim
        nW = d1 * d0

        def fun(p):
            W = p[:nW].reshape(d1, d0)
            b = p[nW:] if bias else None
            v, gW, gb = self.value_and_grad_unchecked(W, b)
            g = gW.ravel() if not bias else np.concatenate([gW.ravel(), gb])
            return v, g

        best = None
        for _ in range(restarts):
            p0 = init_scale * rng.standard_normal(nW + (d1 if bias else 0))
            from scipy import optimize  # imported on use: `import minissl` stays light

            res = optimize.minimize(fun, p0, jac=True, method="L-BFGS-B",
                                    options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-12})
            if best is None or res.fun < best.fun:
                best = res
        W, b = self._polish(best.x[:nW].reshape(d1, d0), best.x[nW:] if bias else None)
        v, gW, gb = self.value_and_grad_unchecked(W, b)
        gn = float(np.sqrt(np.sum(gW**2) + (0.0 if gb is None else np.sum(gb**2))))
        return W, b, v, gn

    def _polish(self, W, b, max_newton=12):
        """Newton steps from L-BFGS's point until the gradient stops shrinking.

        L-BFGS stops with the parameters known to about ``sqrt(ftol)``; the spectrum it
        returns then depends on round-off of the path (it differed by 1e-6 relative between
        two CPUs). Newton's method converges quadratically, so a few steps take the gradient
        to round-off and the minimum to machine precision. The Hessian is singular along
        the rotations ``W -> O W`` (and along collapsed directions when their curvature
        vanishes), so the step is restricted (:func:`_newton_step`). A step is kept only if
        it lowers the gradient norm (halved up to 20 times until it does); the loop stops
        when a full step no longer halves it (round-off). Skipped above
        ``POLISH_MAX_SIZE`` parameters (the dense Hessian would cost more than the
        minimisation).
        """
        d1, d0 = W.shape
        nW = d1 * d0
        if nW + (0 if b is None else d1) > POLISH_MAX_SIZE:
            return W, b

        def gnorm(W_, b_):
            _, gW_, gb_ = self.value_and_grad_unchecked(W_, b_)
            g_ = gW_.ravel() if b_ is None else np.concatenate([gW_.ravel(), gb_])
            return float(np.linalg.norm(g_)), g_

        gn, g = gnorm(W, b)
        for _ in range(max_newton):
            step = _newton_step(self.hessian(W, b), g)
            for halvings in range(20):  # backtrack: far from the minimum the full step can overshoot
                W_new = W + step[:nW].reshape(d1, d0)
                b_new = None if b is None else b + step[nW:]
                gn_new, g_new = gnorm(W_new, b_new)
                if gn_new < gn:
                    break
                step *= 0.5
            else:
                break
            at_floor = halvings == 0 and gn_new > 0.5 * gn  # a full step that no longer halves |g|
            W, b, gn, g = W_new, b_new, gn_new, g_new
            if at_floor:
                break
        return W, b


def _newton_step(H, g, rel=1e-10):
    """Newton's step ``-H^+ g`` restricted to the eigen-directions of ``H`` with curvature
    above ``rel x max |h|``.

    A minimum's Hessian is positive there; the dropped directions are its (near-)null
    space (rotations ``W -> O W``, flat collapsed directions), along which the gradient has
    no component beyond round-off. (A Cholesky solve of ``H + mu I`` is cheaper but stalls
    at a gradient ~100x larger on ill-conditioned landscapes.)
    """
    h, U = np.linalg.eigh(H)
    keep = h > rel * max(float(np.max(np.abs(h))), 1e-300)
    return -(U[:, keep] @ ((U[:, keep].T @ g) / h[keep]))


def effective_landscape(loss, A0, C, n=None, mean=None, kappa=None, d1=None, scale=False):
    """The effective landscape of an exact loss, with the constants derived in docs/errata.md.

    Parameters
    ----------
    loss : minissl.losses.Loss
    A0, C, n, mean : see :func:`effective_B`.
    kappa : float, optional
        Strength of the normalization penalty of Eq. (10). For ``loss.normalize`` it
        models the projection ``f -> sqrt(c) f/||f||`` (default 100, approaching the
        kappa -> infinity limit of Theorem 2); otherwise default 0.
    d1 : int, optional
        Output dimension (needed only by :func:`effective_B` for VICReg).
    scale : bool
        The views are ``s x_hat``, ``s ~ Exp(mean b)`` (App. F.1) and ``A0 = C = b^2 A_hat``
        are the model's second moments (:class:`minissl.data.ScaleAugmentation`): ``B`` is
        unchanged (it sees second moments only); the InfoNCE family's quartic becomes
        ``2 beta Tr[(W S W^T)^2] + (5 beta / 8) Tr[W S W^T]^2`` with ``S = A0 + C``, i.e.
        Eq. (10) with ``kappa = 5 beta / 8`` and ``c = 0`` as App. F.1 says, with
        derived constants (docs/errata.md E10). Derived for zero-mean clean data (a data
        mean adds odd-moment terms not modelled); not with ``loss.normalize`` (the two
        penalties are not derived together) nor with ``kappa``.

    Returns
    -------
    Landscape

    Raises
    ------
    ValueError
        For VICReg and standardised Barlow Twins: their quartic terms are not of the
        forms implemented here (VICReg's hinge expansion has radius ``~ sqrt(eps)``).
    """
    check_loss_object(loss)
    if loss.spec.quartic is None:
        raise ValueError(loss.spec.no_landscape)
    A0 = V.check_covariance("A0", A0)
    C = V.check_covariance("C", C, dim=A0.shape[0])
    kappa = V.check_scalar("kappa", kappa, lo=0.0, allow_none=True)
    scale_kappa = kappa  # as given (None or a number), for the scale augmentation's check
    if kappa is None:
        kappa = 100.0 if loss.normalize else 0.0
    B = effective_B(loss.unnormalized(), A0, C, n=n, mean=mean, d1=d1)
    scale = V.check_bool("scale", scale)
    quartic = loss.spec.quartic(loss.core_kwargs, A0, C, mean, scale=scale)
    if "kappa" in quartic:  # the scale augmentation's Tr^2 term has the form of Eq. (10) with c = 0
        if loss.normalize or scale_kappa:
            raise ValueError(f"scale augmentation with normalize == {loss.normalize!r}, kappa == {scale_kappa!r}: its "
                             "Tr[W S W^T]^2 term and the normalization penalty are not derived together; use "
                             "normalize=False and no kappa.")
        return Landscape(B=B, **quartic)
    return Landscape(B=B, kappa=kappa, c=loss.c, **quartic)


def predict(loss, A0, C, n=None, mean=None, d1=None, bias=False, kappa=None, seed=0, scale=False):
    """The effective landscape's prediction for the spectrum of ``W^T W`` at its global minimum.

    Uses the closed form of Theorem 1 (with this loss's ``k``) when it applies (trace
    quartic, no normalization penalty), otherwise L-BFGS with random restarts.

    Returns
    -------
    dict
        ``eigenvalues`` (descending, length d0), ``method`` (str), ``landscape``.
    """
    check_loss_object(loss)
    A0 = V.check_covariance("A0", A0)
    d1 = V.check_int("d1", A0.shape[0] if d1 is None else d1, lo=1)
    land = effective_landscape(loss, A0, C, n=n, mean=mean, kappa=kappa, d1=d1, scale=scale)
    if land.quartic == QUARTIC_TRACE and land.kappa == 0.0:
        ev = land.stationary_spectrum(d1)
        method = f"closed form (Theorem 1 with k = {land.k:g})"
    else:
        W, b, _, _ = land.minimize(d1, bias=bias, seed=seed)
        ev = spectrum(W)
        method = "L-BFGS on the effective landscape" + (f" (kappa = {land.kappa:g})" if land.kappa else "")
    return {"eigenvalues": ev, "method": method, "landscape": land}


# --------------------------------------------------------------------------- batched descent

@njit(fastmath=FASTMATH, cache=CACHE)
def _land_value_grad(W, B, S, k, Sig, kappa, c, G):
    """Value and gradient (into G) of the "trace" landscape for one problem (compiled)."""
    d1, d0 = W.shape
    WB = W @ B
    WS = W @ S
    M = WS @ W.T
    val = 0.0
    for p in range(d1):
        for q in range(d0):
            val -= WB[p, q] * W[p, q]
    MM = 0.0
    for p in range(d1):
        for r in range(d1):
            MM += M[p, r] * M[r, p]
    val += k * MM
    MWS = M @ WS
    for p in range(d1):
        for q in range(d0):
            G[p, q] = -2.0 * WB[p, q] + 4.0 * k * MWS[p, q]
    if kappa > 0.0:
        WSig = W @ Sig
        rho = 0.0
        for p in range(d1):
            for q in range(d0):
                rho += WSig[p, q] * W[p, q]
        r = rho - c
        val += kappa * r * r
        for p in range(d1):
            for q in range(d0):
                G[p, q] += 4.0 * kappa * r * WSig[p, q]
    return val


@njit(fastmath=FASTMATH, cache=CACHE)
def _descend_one(W, B, S, k, Sig, kappa, c, tol, max_iter):
    """Gradient descent with Barzilai-Borwein steps and an Armijo backtracking safeguard.

    Near the minimum, where the decrease of L falls below its floating-point resolution,
    a step is also accepted when L stays within round-off and the gradient shrinks.
    Updates W in place; returns (iterations, gradient norm).
    """
    G = np.empty_like(W)
    Gn = np.empty_like(W)
    Wn = np.empty_like(W)
    f = _land_value_grad(W, B, S, k, Sig, kappa, c, G)
    gg = np.sum(G * G)
    step = 1e-2
    it = 0
    while it < max_iter and np.sqrt(gg) > tol:
        t = step
        for _ in range(60):
            Wn[:] = W - t * G
            fn = _land_value_grad(Wn, B, S, k, Sig, kappa, c, Gn)
            if fn <= f - 1e-4 * t * gg:
                break
            # near the minimum the decrease of L drops below its round-off: then accept a
            # step that keeps L within round-off and shrinks the gradient
            if fn <= f + 1e-13 * abs(f) and np.sum(Gn * Gn) < gg:
                break
            t *= 0.5
        sy = 0.0
        ss = 0.0
        for p in range(W.shape[0]):
            for q in range(W.shape[1]):
                s_ = Wn[p, q] - W[p, q]
                ss += s_ * s_
                sy += s_ * (Gn[p, q] - G[p, q])
        step = ss / sy if sy > 0.0 else 2.0 * t
        step = min(max(step, 1e-12), 1e6)
        W[:] = Wn
        G[:] = Gn
        f = fn
        gg = np.sum(G * G)
        it += 1
    return it, np.sqrt(gg)


@njit(parallel=True, cache=CACHE)
def _descend_batch(Ws, Bs, Ss, ks, Sigs, kappa, c, tol, max_iter, iters, gnorms):
    for j in prange(Ws.shape[0]):
        iters[j], gnorms[j] = _descend_one(Ws[j], Bs[j], Ss[j], ks[j], Sigs[j], kappa, c, tol, max_iter)


def descend_batch(B, S, k=1.0, d1=None, Sigma=None, kappa=0.0, c=1.0, seed=0, init_scale=0.3,
                  tol=1e-8, max_iter=100_000):
    """Descend thousands of effective landscapes at once (compiled, parallel over problems).

    Each problem ``j`` is ``L(W) = -Tr[W B_j W^T] + k_j Tr[(W S_j W^T)^2]``
    ``+ kappa (Tr[W Sigma_j W^T] - c)^2`` (the "trace" form of :class:`Landscape`), minimised
    from a random start by gradient descent with Barzilai-Borwein steps and Armijo
    backtracking until ``|grad| <= tol``. This is what phase diagrams and sweeps use.

    Parameters
    ----------
    B, S : array_like, shape (K, d0, d0)
        Quadratic and quartic matrices of each problem (e.g. from :func:`effective_landscape`).
    k : float or array_like (K,)
        Quartic coefficients.
    d1 : int, optional
        Output dimension (default d0).
    Sigma : array_like (K, d0, d0), optional
        Matrix of the normalization penalty (default ``S``); used when ``kappa > 0``.
    kappa, c : float
        Normalization penalty (Eq. 10).
    seed : int
        Seed of the random starts ``W0 = init_scale * N(0, 1) / sqrt(d0)``.
    tol, max_iter :
        Stopping rule.

    Returns
    -------
    dict
        ``W`` (K, d1, d0), ``eigenvalues`` (K, d0) of ``W^T W`` (descending),
        ``grad_norm`` (K,), ``iterations`` (K,), ``converged`` (K,) bool.
    """
    B = V.check_array("B", B, ndim=3, dtype=np.float64)
    K, d0, _ = B.shape
    if B.shape != (K, d0, d0):
        raise ValueError(f"B has shape {B.shape}, must be (K, d0, d0).")
    if K < 1 or d0 < 1:
        raise ValueError(f"B has shape {B.shape}, needs at least one problem of dimension >= 1.")
    S = V.check_array("S", S, shape=(K, d0, d0), dtype=np.float64)
    Sig = S if Sigma is None else V.check_array("Sigma", Sigma, shape=(K, d0, d0), dtype=np.float64)
    for name_, M in (("S", S), ("Sigma", Sig)):
        if np.max(np.abs(M - np.swapaxes(M, 1, 2)), initial=0.0) > 1e-10 * max(1.0, float(np.max(np.abs(M)))):
            raise ValueError(f"{name_} is not symmetric in its last two axes.")
    k_arr = V.check_array("k", k, dtype=np.float64)
    if k_arr.ndim > 1 or (k_arr.ndim == 1 and k_arr.shape[0] not in (1, K)):
        raise ValueError(f"k has shape {k_arr.shape}, must be a scalar or have shape ({K},).")
    ks = np.broadcast_to(k_arr, (K,)).copy()
    init_scale = V.check_scalar("init_scale", init_scale, lo=0.0, lo_open=True)
    if np.any(ks <= 0):
        raise ValueError(f"k contains {float(ks.min())!r}, all quartic coefficients must be > 0.")
    if np.max(np.abs(B - np.swapaxes(B, 1, 2)), initial=0.0) > 1e-10 * max(1.0, float(np.max(np.abs(B)))):
        raise ValueError("B is not symmetric in its last two axes.")
    d1 = V.check_int("d1", d0 if d1 is None else d1, lo=1)
    kappa = V.check_scalar("kappa", kappa, lo=0.0)
    c = V.check_scalar("c", c, lo=0.0, lo_open=True)
    tol = V.check_scalar("tol", tol, lo=0.0, lo_open=True)
    max_iter = V.check_int("max_iter", max_iter, lo=1)
    rng = V.check_rng(seed)
    Ws = init_scale / np.sqrt(d0) * rng.standard_normal((K, d1, d0))
    iters = np.zeros(K, dtype=np.int64)
    gnorms = np.zeros(K)
    _descend_batch(Ws, np.ascontiguousarray(B), np.ascontiguousarray(S), ks, np.ascontiguousarray(Sig),
                   kappa, c, tol, max_iter, iters, gnorms)
    ev = np.stack([spectrum(W) for W in Ws]) if K else np.zeros((0, d0))
    return {"W": Ws, "eigenvalues": ev, "grad_norm": gnorms, "iterations": iters,
            "converged": gnorms <= tol}
