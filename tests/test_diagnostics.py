"""The convergence diagnostics' gradient test (minissl.train.diagnostics.gradient_test).

Independent source: Monte Carlo. Draws with a known mean (zero, or a stated shift) and a
known correlated covariance are fed to the test; under the null the p-values must be
uniform (rejection rate at a level within binomial bounds), and a real shift must be found.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from minissl.train.diagnostics import gradient_test


def _draws(rng, m, p, rank, strength, scales, shift=None):
    L = rng.standard_normal((p, rank)) * strength
    z = rng.standard_normal((m, p)) + (rng.standard_normal((m, rank)) @ L.T if rank else 0.0)
    g = z * scales
    if shift is not None:
        g = g + shift
    return g


@pytest.mark.parametrize("p,m,rank,strength", [(300, 64, 5, 3.0), (300, 64, 0, 0.0), (40, 12, 3, 2.0)])
def test_pvalues_are_uniform_under_a_zero_mean_with_correlated_coordinates(p, m, rank, strength):
    rng = np.random.default_rng(p + m + rank)
    scales = rng.uniform(0.1, 10.0, p)  # coordinates of very different noise levels
    reps = 300
    pv = np.array([gradient_test(_draws(rng, m, p, rank, strength, scales), 0.0, 1e-3)["grad_pvalue"]
                   for _ in range(reps)])
    # at level 0.05: binomial(300, 0.05) has mean 15, sd 3.8; allow the test's small
    # anti-conservatism of the moment-matched reference (measured: 5-8%)
    assert 0.02 <= np.mean(pv < 0.05) <= 0.10, np.mean(pv < 0.05)
    assert np.mean(pv < 1e-3) <= 0.01
    assert stats.kstest(pv, "uniform").pvalue > 1e-3


def test_the_independent_chi2_reference_would_reject_a_true_zero():
    """Why the correction exists: with correlated coordinates sum t_i^2 has a much larger
    variance than chi2(p), so the plain chi2(p) tail rejects a zero mean far too often."""
    rng = np.random.default_rng(1)
    p, m = 300, 64
    scales = rng.uniform(0.1, 10.0, p)
    naive = []
    for _ in range(200):
        g = _draws(rng, m, p, 5, 3.0, scales)
        t2 = np.sum(g.mean(0) ** 2 / (g.var(0, ddof=1) / m))
        naive.append(stats.chi2.sf(t2, p))
    assert np.mean(np.array(naive) < 1e-3) > 0.15


def test_a_real_mean_is_detected():
    rng = np.random.default_rng(2)
    p, m = 300, 64
    scales = rng.uniform(0.1, 10.0, p)
    shift = np.zeros(p)
    # one standard deviation of a single draw on 20 coordinates (sd_i = scale_i sqrt(1 + 9 |L_i|^2),
    # |L_i|^2 ~ 5): each coordinate's mean is ~8 of its standard errors
    shift[:20] = np.sqrt(1.0 + 9.0 * 5.0) * scales[:20]
    pv = [gradient_test(_draws(rng, m, p, 5, 3.0, scales, shift), 0.0, 1e-3)["grad_pvalue"] for _ in range(50)]
    assert np.mean(np.array(pv) < 1e-3) >= 0.9


def test_deterministic_and_noise_free_coordinates():
    g = np.array([[1e-6, -2e-6]])
    out = gradient_test(g, 1e-4, 1e-3)
    assert out["grad_pvalue"] is None and out["ok"] and out["grad_se"] == 0.0
    assert not gradient_test(np.array([[1.0, 0.0]]), 1e-4, 1e-3)["ok"]
    # a coordinate without noise must be zero to pass, whatever the others do
    rng = np.random.default_rng(3)
    g = np.column_stack([rng.standard_normal(64), np.full(64, 0.5)])
    assert not gradient_test(g, 1e-4, 1e-3)["ok"]
    g[:, 1] = 0.0
    assert gradient_test(g, 1e-4, 1e-3)["grad_pvalue"] > 1e-3
