"""Data and augmentation: the covariances they claim against Monte Carlo and closed forms."""

import numpy as np
import pytest

import minissl
from minissl.data import (IsotropicNoise, ScaleAugmentation, StructuredNoise, covariance,
                          gaussian_data, make_augmentation, second_moment)


def test_gaussian_data_statistics_and_seed():
    ds = gaussian_data(20000, variances=[0.5, 2.0, 4.0], seed=1)
    # sample covariance of N=20000 Gaussians: relative SE sqrt(2/N) = 1% per variance
    np.testing.assert_allclose(np.diag(ds.A0), [0.5, 2.0, 4.0], rtol=0.05)
    np.testing.assert_allclose(ds.A0, ds.x.T @ ds.x / ds.n, rtol=1e-12)
    np.testing.assert_allclose(ds.A0_centered, np.cov(ds.x.T, bias=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(ds.x, gaussian_data(20000, variances=[0.5, 2.0, 4.0], seed=1).x)
    assert not np.array_equal(ds.x, gaussian_data(20000, variances=[0.5, 2.0, 4.0], seed=2).x)


def test_full_covariance_is_reproduced():
    cov = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])
    ds = gaussian_data(40000, cov=cov, seed=0)
    np.testing.assert_allclose(ds.A0, cov, atol=0.05)
    np.testing.assert_array_equal(ds.population, cov)


def test_float32_data():
    ds = gaussian_data(10, variances=[1.0, 2.0], seed=0, dtype=np.float32)
    assert ds.x.dtype == np.float32 and ds.A0.dtype == np.float64


def test_isotropic_noise_covariance_monte_carlo():
    x = np.zeros((50000, 3))
    aug = IsotropicNoise(1.5, 3)
    np.testing.assert_allclose(aug.covariance(), 2.25 * np.eye(3))
    eps = aug.sample(x, np.random.default_rng(0))
    np.testing.assert_allclose(np.cov(eps.T), aug.covariance(), atol=0.06)


@pytest.mark.parametrize("theta", [0.0, 0.3, 0.5, 1.0])
def test_structured_noise_is_sigma_R(theta):
    """Sec. 4.2: x = x_hat + sigma R xi, R = diag(sqrt(1-theta), sqrt(theta))."""
    aug = StructuredNoise(2.0, theta, dim=2)
    np.testing.assert_allclose(aug.covariance(), 4.0 * np.diag([1 - theta, theta]), atol=1e-14)
    eps = aug.sample(np.zeros((40000, 2)), np.random.default_rng(1))
    np.testing.assert_allclose(np.cov(eps.T), aug.covariance(), atol=0.12)


def test_structured_noise_content_blocks():
    aug = StructuredNoise(1.0, 0.8, dim=5, content_dims=2)
    np.testing.assert_allclose(np.diag(aug.covariance()), [0.2, 0.2, 0.8, 0.8, 0.8])


def test_scale_augmentation_moments():
    """App. F.1: x = s x_hat, s ~ Exp(mean b): E[x|x_hat] = b x_hat, C = Var(s) A0 = b^2 A0."""
    b = 0.7
    aug = ScaleAugmentation(b)
    A0 = np.diag([1.0, 3.0])
    np.testing.assert_allclose(aug.covariance(A0), b**2 * A0)
    np.testing.assert_allclose(aug.clean_moment(A0), b**2 * A0)
    x = np.tile([[1.0, 2.0]], (200000, 1))
    v = aug.sample(x, np.random.default_rng(3))
    np.testing.assert_allclose(v.mean(0), b * x[0], rtol=0.01)
    np.testing.assert_allclose(v.var(0), b**2 * x[0] ** 2, rtol=0.02)


def test_views_are_independent_pairs():
    ds = gaussian_data(30000, variances=[1.0], seed=0)
    x1, x2 = IsotropicNoise(1.0, 1).views(ds.x, np.random.default_rng(0), replicates=2)
    assert x1.shape == (2, 30000, 1)
    e1, e2 = x1[0] - ds.x, x2[0] - ds.x
    assert abs(np.mean(e1 * e2)) < 0.03  # independent noises: E[e1 e2] = 0, SE ~ 0.006
    assert not np.array_equal(x1[0], x1[1])


def test_make_augmentation_and_helpers():
    assert isinstance(make_augmentation("structured", 2, sigma=1, theta=0.2), StructuredNoise)
    assert isinstance(make_augmentation("scale", 2, b=2.0), ScaleAugmentation)
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(second_moment(x), [[5.0, 7.0], [7.0, 10.0]])
    np.testing.assert_allclose(covariance(x), [[1.0, 1.0], [1.0, 1.0]])
    assert minissl.gaussian_data is gaussian_data
