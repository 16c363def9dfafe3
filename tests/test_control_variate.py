"""The control variate of minissl.control_variate: exact quadratic part, unbiased, effective."""

import numpy as np
import pytest

from minissl import effective_B, get_loss, simulate
from minissl.control_variate import quadratic_moment_into, quadratic_moment, quadratic_moment_mean

CASES = [(1.0, 1.0, False), (0.0, 1.0, False), (1.0, 0.5, False), (0.3, 0.7, True)]


def _loss(alpha, beta, both, **kw):
    neg = "both" if both else "view1"
    if beta == 1.0 and alpha != 1.0:
        return get_loss("weighted", alpha=alpha, negatives=neg, **kw)
    return get_loss("beta", alpha=alpha, beta=beta, negatives=neg, **kw)


@pytest.mark.parametrize("alpha,beta,both", CASES)
def test_compiled_moment_equals_reference(alpha, beta, both):
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 17, 5))
    out, s1, s2 = np.empty((5, 5)), np.empty(5), np.empty(5)
    quadratic_moment_into(x1, x2, alpha, beta, both, out, s1, s2)
    assert np.allclose(out, quadratic_moment(x1, x2, alpha, beta, both), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha,beta,both", CASES)
def test_quadratic_part_of_the_exact_gradient(alpha, beta, both):
    """For W -> 0 the exact gradient of one pair of views is W hat M + O(|W|^3)."""
    loss = _loss(alpha, beta, both, engine="numpy")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 4))
    x1, x2 = x + 2 * rng.standard_normal(x.shape), x + 2 * rng.standard_normal(x.shape)
    M = quadratic_moment(x1, x2, alpha, beta, both)
    V = rng.standard_normal((3, 4))
    res = []
    for eps in (1e-2, 1e-3):
        _, g, _ = loss.value_and_grad(eps * V, x1, x2)
        res.append(np.max(np.abs(g - eps * V @ M)) / np.max(np.abs(eps * V @ M)))
    assert res[1] < 1e-4 and res[0] / res[1] > 50, res  # relative residual O(eps^2)


@pytest.mark.parametrize("alpha,beta,both", CASES)
def test_expectation_is_minus_two_B(alpha, beta, both):
    """Monte Carlo mean of hat M over 6000 noise draws = the closed form = -2 B (effective_B,
    measured against the exact losses in test_coefficients.py), within 5 standard errors."""
    rng = np.random.default_rng(2)
    n, d = 9, 3
    x = rng.standard_normal((n, d)) * np.array([0.5, 1.0, 2.0])
    Lc = np.linalg.cholesky(np.array([[1.0, 0.3, 0.0], [0.3, 2.0, 0.5], [0.0, 0.5, 1.5]]))
    C = Lc @ Lc.T
    draws = np.array([quadratic_moment(x + rng.standard_normal((n, d)) @ Lc.T,
                                       x + rng.standard_normal((n, d)) @ Lc.T, alpha, beta, both)
                      for _ in range(6000)])
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
    closed = quadratic_moment_mean(x, C, alpha, beta, both)
    assert np.all(np.abs(mean - closed) <= 5 * se + 1e-12), (mean - closed) / se
    loss = _loss(alpha, beta, both)
    A0 = x.T @ x / n
    B = effective_B(loss, A0, C, n=n, mean=x.mean(0))
    assert np.allclose(closed, -2 * B, rtol=1e-12, atol=1e-12)


def test_variance_drops_and_training_reaches_the_theory():
    """sigma = 5, small W: the control variate removes > 95% of the gradient variance."""
    loss = get_loss("infonce")
    rng = np.random.default_rng(3)
    n, d = 64, 4
    x = rng.standard_normal((n, d))
    C = 25.0 * np.eye(d)
    Mbar = quadratic_moment_mean(x, C, 1.0, 1.0, False)
    W = 0.02 * rng.standard_normal((d, d))
    plain, cv = [], []
    for _ in range(400):
        x1, x2 = x + 5 * rng.standard_normal(x.shape), x + 5 * rng.standard_normal(x.shape)
        _, g, _ = loss.value_and_grad(W, x1, x2)
        plain.append(g)
        cv.append(g - W @ (quadratic_moment(x1, x2, 1.0, 1.0, False) - Mbar))
    ratio = np.var(np.array(cv), 0).sum() / np.var(np.array(plain), 0).sum()
    assert ratio < 0.05, ratio


def test_compiled_and_python_loops_agree_with_control_variate():
    kw = dict(beta=0.5, n=24, variances=[1.0, 2.0, 3.0], sigma=2.0, steps=150, replicates=2, seed=3,
              warn=False, control_variate=True)
    a = simulate("beta", **kw)
    b = simulate("beta", engine="numpy", **kw)
    assert a.settings["compiled_loop"] and not b.settings["compiled_loop"]
    assert np.max(np.abs(a.W - b.W)) < 1e-12
    assert a.settings["control_variate"]


@pytest.mark.parametrize("kw", [dict(loss="scl"), dict(loss="infonce", normalize=True),
                                dict(loss="infonce", noise="fixed"), dict(loss="infonce", model="effective")])
def test_unsupported_settings_are_refused(kw):
    with pytest.raises(ValueError, match="control_variate"):
        simulate(n=8, variances=[1.0, 2.0], steps=2, control_variate=True, warn=False, **kw)


def test_simulate_wiring_is_unbiased():
    """The gradient simulate() trains on, with and without the control variate, has the same mean
    (common random numbers; 3000 draws at a fixed W): catches a wrong E[hat M] in the wiring."""
    from minissl.train import RunConfig, plan

    kw = dict(n=12, variances=[0.5, 1.0, 2.0], sigma=1.5, augmentation="isotropic", seed=5, beta=0.7)
    p_cv = plan(RunConfig.from_kwargs("beta", control_variate=True, **kw))
    p_0 = plan(RunConfig.from_kwargs("beta", control_variate=False, **kw))
    W = np.random.default_rng(0).standard_normal((3, 3)) * 0.3
    diff = np.array([p_cv.grad_fn(W, None)[1] - p_0.grad_fn(W, None)[1] for _ in range(3000)])
    mean, se = diff.mean(0), diff.std(0, ddof=1) / np.sqrt(len(diff))
    assert np.all(np.abs(mean) <= 5 * se), mean / se
    assert np.max(se) > 0  # the correction is not identically zero
