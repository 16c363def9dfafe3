"""Convergence diagnostics of a training run (reported with every result of :func:`minissl.simulate`).

* ``grad_norm``: norm of the full gradient at the final weights. With fresh noise this is
  the norm of the mean of ``check_draws`` independent stochastic gradients; ``grad_se`` is
  its standard error and ``grad_pvalue`` the p-value of the test of "the expected gradient
  is zero" with the statistic ``T = sum_i gbar_i^2 / se_i^2`` over the ``p`` noisy
  coordinates (see :func:`gradient_test`: under the null each term is ``F(1, m - 1)``
  for ``m`` draws, and the coordinates of a gradient are correlated, so ``T`` is referred to
  a scaled chi-square matched to its mean and variance, the variance estimated from the
  draws). The gradient counts as zero when ``grad_norm <= grad_tol`` or
  ``grad_pvalue > grad_alpha`` (default 1e-3).
* ``spectral_change``: drift of the eigenvalues of ``W^T W``: the mean spectrum over the
  last ``window / 2`` steps minus the mean over the ``window / 2`` steps before, largest
  absolute entry divided by ``lambda_1`` (floored at 1e-8 of the largest ``lambda_1`` of the
  run, so that a spectrum collapsed towards 0 counts as settled; window means, so that the
  step-to-step jitter of fresh noise is not mistaken for drift; default window: 10% of the
  run), and ``spectral_noise``, the standard error of that difference estimated from the
  scatter of the snapshots (same normalisation). The spectrum counts as settled when
  ``spectral_change <= spectral_tol``, or when every eigenvalue's drift is within 3 standard
  errors and ``spectral_noise <= spectral_tol`` (the jitter is itself small enough that a
  drift of the size of the tolerance would have been seen).
* ``converged`` requires both; otherwise :func:`minissl.simulate` issues a
  :class:`~minissl.train.ConvergenceWarning`.

With fresh noise the gradient test certifies stationarity only up to its noise level
(``3 * grad_se``, reported; raise ``check_draws`` to sharpen it), and a very small learning
rate can make any spectrum look stationary over the window: read the diagnostics together
with the history, not as a proof.
"""

from __future__ import annotations

import numpy as np

__all__ = ["spectral_drift", "gradient_test", "convergence", "not_converged_message"]


def spectral_drift(steps_recorded, spectra, final, steps, window, start=None):
    """Drift of the spectrum of ``W^T W`` over the last window and its jitter.

    Parameters
    ----------
    steps_recorded : array of int
        Steps of the history rows.
    spectra : ndarray (rows, d0)
        Eigenvalues of ``W^T W`` at those steps.
    final : ndarray (d0,)
        Eigenvalues at the end of the run.
    steps, window : int
        Length of the run and of the convergence window.
    start : ndarray (d0,), optional
        Spectrum at step ``steps - window`` (used when no history row falls in the window).

    Returns
    -------
    change, noise : float
        ``spectral_change`` and ``spectral_noise`` of the module docstring.
    settled_within_noise : bool
        Every eigenvalue's drift is within 3 standard errors.
    """
    steps_arr = np.asarray(steps_recorded)
    spec_arr = np.asarray(spectra)
    half = max(window // 2, 1)
    late = spec_arr[steps_arr > steps - half]
    early = spec_arr[(steps_arr >= steps - window) & (steps_arr <= steps - half)]
    if len(late) == 0:
        late = final[None, :]
    if len(early) == 0:
        early = (final if start is None else start)[None, :]
    drift = np.abs(late.mean(0) - early.mean(0))
    # normalise by the top eigenvalue, floored at 1e-8 of the largest seen in the run: a
    # spectrum that has collapsed towards 0 by many orders of magnitude has settled, even
    # though its own top eigenvalue still shrinks by a large *relative* amount
    top_seen = float(np.max(spec_arr[:, 0])) if spec_arr.size else float(final[0])
    ref = max(float(final[0]), 1e-8 * max(top_seen, float(final[0])))
    change = float(np.max(drift) / ref) if ref > 0 else 0.0
    se = np.zeros_like(drift)
    if len(late) > 1 and len(early) > 1:
        se = np.sqrt(late.var(0, ddof=1) / len(late) + early.var(0, ddof=1) / len(early))
    noise = float(np.max(se) / ref) if ref > 0 else 0.0
    return change, noise, bool(np.all(drift <= 3.0 * se))


def gradient_test(grads, grad_tol, grad_alpha):
    """Is the (expected) gradient zero? From ``draws`` independent gradients at the final point.

    The statistic is ``T = sum_i gbar_i^2 / se_i^2`` over the ``p`` coordinates with noise
    (``gbar`` the mean of the ``m`` draws, ``se_i^2`` its estimated squared standard error).
    Under the null hypothesis (zero expected gradient, Gaussian draws) each term is a squared
    t statistic, ``F(1, nu)`` with ``nu = m - 1``: mean ``nu / (nu - 2)``, variance
    ``v_F = 2 nu^2 (nu - 1) / ((nu - 2)^2 (nu - 4))``. The coordinates of a stochastic
    gradient are strongly correlated (the noise of one draw moves whole rows of W together),
    so ``Var T = v_F tr(R^2)`` with ``R`` their correlation matrix, not ``v_F p``: ``tr(R^2)``
    is estimated without bias from the ``m x m`` Gram matrix of the standardised draws
    (Wishart moments, clipped to ``[p, p^2]``), and ``T`` is referred to the chi-square
    scaled to this mean and variance (Satterthwaite). Treating the coordinates as
    independent chi-square variables (what minissl did before) rejects a true zero gradient
    far too often: at the end of a converged Fig. 5 run (d = 32, 64 draws) ``tr(R^2) / p``
    is about 3 and the independent test gave p = 5e-10 where the calibrated one, and a
    split-sample test along the mean direction, gave 0.07 and 0.57.
    ``tests/test_diagnostics.py`` checks the calibration on correlated Gaussian draws. With fewer
    than 6 draws the moments do not exist and the plain ``chi2(p)`` reference is used.

    Parameters
    ----------
    grads : ndarray (draws, p)
        Flattened gradients (one row for a deterministic objective).
    grad_tol, grad_alpha : float
        Tolerance on the mean gradient's norm; level of the test.

    Returns
    -------
    dict
        ``grad_norm``, ``grad_se``, ``grad_pvalue`` (None for one draw or no noise) and
        ``ok``.
    """
    gs = np.asarray(grads, dtype=np.float64)
    draws = gs.shape[0]
    gmean = gs.mean(0)
    grad_norm = float(np.linalg.norm(gmean))
    grad_pvalue = None
    grad_se = 0.0
    ok = grad_norm <= grad_tol
    if draws > 1:
        var = gs.var(0, ddof=1) / draws  # squared standard error of each coordinate
        grad_se = float(np.sqrt(np.sum(var)))
        # coordinates without noise (se == 0) must have gbar == 0 exactly to pass
        noisy = var > 1e-30 * max(float(np.max(var)), 1e-300)
        if np.any(noisy):
            grad_pvalue = _zero_mean_pvalue(gs[:, noisy], gmean[noisy], var[noisy])
        quiet_ok = bool(np.all(np.abs(gmean[~noisy]) <= grad_tol))
        ok = ok or (quiet_ok and (grad_pvalue is None or grad_pvalue > grad_alpha))
    return {"grad_norm": grad_norm, "grad_se": grad_se, "grad_pvalue": grad_pvalue, "ok": bool(ok)}


def _zero_mean_pvalue(gs, gmean, var):
    """p-value of ``sum_i gmean_i^2 / var_i`` under a zero mean (see :func:`gradient_test`)."""
    from scipy import stats  # imported on use: `import minissl` stays light

    m, p = gs.shape
    stat = float(np.sum(gmean**2 / var))
    if m < 6:
        return float(stats.chi2.sf(stat, p))
    nu = m - 1
    mean_f = nu / (nu - 2)
    var_f = 2.0 * nu**2 * (nu - 1) / ((nu - 2) ** 2 * (nu - 4))
    Z = (gs - gmean) / np.sqrt(var * m)  # standardised draws: Z^T Z / nu is the sample correlation
    G = Z @ Z.T / nu
    tr_r2 = nu / (nu + 1) * (float(np.sum(G**2)) - float(np.trace(G)) ** 2 / nu)
    tr_r2 = min(max(tr_r2, float(p)), float(p) ** 2)
    mu, s2 = p * mean_f, var_f * tr_r2
    scale, dof = s2 / (2.0 * mu), 2.0 * mu**2 / s2
    return float(stats.chi2.sf(stat / scale, dof))


def convergence(history, final, grads, *, steps, window, spectral_tol, grad_tol, grad_alpha, start=None):
    """The diagnostics dict of a run: spectral drift, gradient test and the verdict ``converged``.

    ``history`` has ``step`` and ``spectrum``; ``grads`` as in :func:`gradient_test`.
    """
    change, noise, within_noise = spectral_drift(history["step"], history["spectrum"], final, steps, window,
                                                 start)
    spectrum_ok = change <= spectral_tol or (within_noise and noise <= spectral_tol)
    g = gradient_test(grads, grad_tol, grad_alpha)
    return {"grad_norm": g["grad_norm"], "grad_se": g["grad_se"], "grad_pvalue": g["grad_pvalue"],
            "spectral_change": change, "spectral_noise": noise, "window": window,
            "converged": bool(g["ok"] and spectrum_ok), "grad_tol": grad_tol, "spectral_tol": spectral_tol,
            "check_draws": int(np.asarray(grads).shape[0])}


def not_converged_message(d, steps, grad_alpha):
    """The :class:`ConvergenceWarning` text for diagnostics ``d``."""
    return (f"run not converged after {steps} steps: spectral change {d['spectral_change']:.3g} "
            f"(tol {d['spectral_tol']:g}, jitter SE {d['spectral_noise']:.2g}) over the last {d['window']} steps, "
            f"mean gradient norm {d['grad_norm']:.3g} (tol {d['grad_tol']:g}"
            + (f"; p-value of 'zero mean gradient' {d['grad_pvalue']:.2g}, needs > {grad_alpha:g}"
               if d["grad_pvalue"] is not None else "") + "); "
            "increase steps, lower lr, use lr_schedule='cosine' or more replicates.")
