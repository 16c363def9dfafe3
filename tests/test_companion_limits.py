"""The companion note's alignment/uniformity claims as numbers (docs/companion.md, section 4).

* Exercise 5: on the unit sphere, the uniform distribution gives the smallest
  ``E exp(-2 |u - v|^2)`` (the uniformity loss), checked against a closed form and against
  other distributions, and reached by descent on the uniformity of a point cloud.
* Wang & Isola (2020): NT-Xent minus ``log(2N - 1)`` tends to ``align / (2 tau) + E_k log
  E_m exp(-|u_k - u_m|^2 / (2 tau))`` as the batch grows; the gap is measured against a
  closed form and its rate fitted.
"""

import numpy as np
import pytest
from scipy.special import gammaln, iv

from minissl.losses.simclr import simclr_core
from minissl.metrics import uniformity


def sphere_mgf(kappa, d):
    """``E exp(kappa u.v)`` for independent uniform ``u, v`` on S^{d-1} (a Bessel function)."""
    nu = d / 2 - 1
    return float(np.exp(gammaln(d / 2) + nu * np.log(2 / kappa)) * iv(nu, kappa))


def _unit(z):
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _kernel_mean(u, rng, pairs=400_000):
    """Monte Carlo ``E exp(-2 |u - v|^2)`` over independent pairs of rows, with its standard error."""
    i, j = rng.integers(0, len(u), pairs), rng.integers(0, len(u), pairs)
    keep = i != j
    k = np.exp(-2.0 * np.sum((u[i[keep]] - u[j[keep]]) ** 2, axis=1))
    return k.mean(), k.std() / np.sqrt(k.size)


@pytest.mark.parametrize("d", [2, 3, 8])
def test_exercise5_uniform_matches_the_closed_form_and_beats_other_distributions(d):
    rng = np.random.default_rng(d)
    n = 200_000
    uniform = _unit(rng.standard_normal((n, d)))
    closed = np.exp(-4.0) * sphere_mgf(4.0, d)  # |u - v|^2 = 2 - 2 u.v
    m, se = _kernel_mean(uniform, rng)
    assert abs(m - closed) < 5 * se, (m, closed, se)
    others = {
        "von Mises-like, concentrated": _unit(rng.standard_normal((n, d)) + 1.5 * np.eye(d)[0]),
        "anisotropic, centred": _unit(rng.standard_normal((n, d)) * np.linspace(0.5, 2.0, d)),
        "two antipodal clusters": _unit(rng.choice([-1.0, 1.0], (n, 1)) * np.eye(d)[0]
                                        + 0.4 * rng.standard_normal((n, d))),
    }
    for name, u in others.items():
        mo, so = _kernel_mean(u, rng)
        assert mo > closed + 5 * max(so, se), (name, mo, closed)


def test_exercise5_descent_on_uniformity_spreads_points_isotropically():
    """Minimising the uniformity of 150 points on S^2 from a clustered start drives their
    second moment to I/3 (the uniform distribution's) and their uniformity near the closed form."""
    rng = np.random.default_rng(0)
    d, n, t = 3, 150, 2.0
    u = _unit(rng.standard_normal((n, d)) * [1.0, 0.3, 0.3] + [2.0, 0.0, 0.0])
    start = uniformity(u, t=t)
    for _ in range(400):
        diff = u[:, None, :] - u[None, :, :]
        k = np.exp(-t * np.sum(diff**2, axis=2))
        np.fill_diagonal(k, 0.0)
        g = -4.0 * t * np.einsum("ij,ijk->ik", k, diff) / k.sum()  # gradient of log sum k
        g -= np.sum(g * u, axis=1, keepdims=True) * u  # tangent to the sphere
        u = _unit(u - 0.5 * g / np.max(np.linalg.norm(g, axis=1)) * 0.05)
    second = u.T @ u / n
    assert np.max(np.abs(second - np.eye(d) / d)) < 0.03, second
    limit = np.log(np.exp(-2 * t) * sphere_mgf(2 * t, d))
    end = uniformity(u, t=t)
    assert end < start - 1.0 and end < limit + 0.05, (start, end, limit)


def test_wang_isola_limit_gap_shrinks_like_one_over_n():
    """Identical views uniform on S^2: align = 0, so the limit is E log E_m exp(u.v / tau) - 1/tau
    = log M(1/tau) - 1/tau (closed form). The finite-batch gap (the positive pair among the
    2N - 1 terms, the log of a sample mean) is measured at N = 32 ... 512 and falls as N^-1."""
    tau, d = 0.5, 3
    limit = np.log(sphere_mgf(1.0 / tau, d)) - 1.0 / tau
    rng = np.random.default_rng(0)
    ns, gaps = [32, 64, 128, 256, 512], []
    for n in ns:
        vals = []
        for _ in range(64):
            z = rng.standard_normal((n, d))
            vals.append(simclr_core(z, z, temperature=tau)[0] - np.log(2 * n - 1))
        gaps.append(np.mean(vals) - limit)
    gaps = np.array(gaps)
    assert np.all(gaps > 0), gaps
    slope = np.polyfit(np.log(ns), np.log(gaps), 1)[0]
    assert -1.35 < slope < -0.65, (slope, gaps)
    assert gaps[-1] < 0.01 * abs(limit)
