"""The small MLP of Appendix B: reference gradients vs finite differences, Numba vs reference,
exact symmetries and closed-form values of the landscape probes, regimes vs the linear theory."""

import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, os.path.dirname(__file__))
from _helpers import assert_grad_close, central_diff  # noqa: E402

from minissl import gaussian_data, get_loss  # noqa: E402
from minissl.cli import main  # noqa: E402
from minissl.data import IsotropicNoise  # noqa: E402
from minissl.nonlinear import (classify_regime, init_mlp, linear_regime, plane_probe, scale_probe,  # noqa: E402
                               train_mlp, value_and_grad)

LOSSES = [("beta", {"beta": 0.5}), ("infonce", {}), ("weighted", {"alpha": 0.2}),
          ("infonce", {"normalize": True})]


def _problem(activation, seed=0):
    rng = np.random.default_rng(seed)
    mlp = init_mlp(3, (5, 4), 2, activation, seed=seed + 1)
    x1 = rng.standard_normal((9, 3))
    x2 = x1 + 0.7 * rng.standard_normal((9, 3))
    return mlp, x1, x2


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("name,params", LOSSES)
def test_reference_gradient_matches_finite_differences(activation, name, params):
    loss = get_loss(name, engine="numpy", **params)
    mlp, x1, x2 = _problem(activation)
    _, grads = value_and_grad(mlp, loss, x1, x2, engine="numpy", weight_decay=0.01)
    for k, p in enumerate(mlp.params()):
        def f(q, k=k):
            m = mlp.copy()
            m.params()[k][...] = q
            return value_and_grad(m, loss, x1, x2, engine="numpy", weight_decay=0.01)[0]
        assert_grad_close(grads[k], central_diff(f, p), what=f"{activation} {name} param {k}")


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("name,params", LOSSES)
def test_numba_engine_matches_reference(activation, name, params):
    loss = get_loss(name, **params)
    mlp, x1, x2 = _problem(activation, seed=3)
    v0, g0 = value_and_grad(mlp, loss, x1, x2, engine="numpy")
    v1, g1 = value_and_grad(mlp, loss, x1, x2, engine="numba")
    assert abs(v0 - v1) <= 1e-12 * max(1.0, abs(v0))
    for a, b in zip(g0, g1):
        assert np.max(np.abs(a - b)) <= 1e-11 * max(1.0, np.max(np.abs(a)))


def test_probe_values_closed_form_and_symmetries():
    """a = 0: every distance vanishes, L = beta log(N - 1 + alpha). The loss depends on z only
    through distances, so flipping the sign of one singular direction (r -> -r) changes nothing."""
    loss = get_loss("beta", beta=0.5)
    data = gaussian_data(20, [1.0, 2.0], seed=0)
    aug = IsotropicNoise(0.8, 2)
    mlp = init_mlp(2, (6, 6), 2, "tanh", seed=2)
    L = scale_probe(mlp, loss, data.x, aug, [0.0, 1.0], draws=3)
    assert np.isclose(L[0], 0.5 * np.log(20 - 1 + 1.0), rtol=1e-12)
    r = np.linspace(-1.0, 1.0, 5)
    G = plane_probe(mlp, loss, data.x, aug, r, draws=3)
    assert np.allclose(G, G[::-1, :], rtol=1e-12) and np.allclose(G, G[:, ::-1], rtol=1e-12)
    assert np.isclose(G[4, 4], L[1], rtol=1e-12)  # r1 = r2 = 1 is the trained last layer (not collapsed)


def test_trained_mlp_regimes_follow_the_linear_theory():
    """beta-InfoNCE (beta = 1/2) on variances (1, 2): weak augmentation keeps both directions,
    strong augmentation collapses completely, in the MLP as in the linear theory."""
    loss = get_loss("beta", beta=0.5)
    data = gaussian_data(64, [1.0, 2.0], seed=0)
    r = np.linspace(-1.6, 1.6, 15)
    for sigma, expect in ((0.7, "no collapse"), (1.7, "complete collapse")):
        aug = IsotropicNoise(sigma, 2)
        mlp, hist = train_mlp(loss, data, aug, widths=(16, 16), steps=800, lr=0.02, seed=0)
        regime, _ = classify_regime(plane_probe(mlp, loss, data.x, aug, r, draws=4), r)
        lin, _ = linear_regime(loss, data.A0, aug.C, 2, n=64, mean=data.x.mean(0))
        assert regime == lin == expect, (sigma, regime, lin)
        assert hist["loss"][-1] < hist["loss"][0] + 1e-12


def test_training_is_deterministic_and_engines_agree():
    loss = get_loss("beta", beta=0.5)
    data = gaussian_data(16, [1.0, 2.0], seed=1)
    aug = IsotropicNoise(1.0, 2)
    a, _ = train_mlp(loss, data, aug, widths=(4, 4), steps=30, lr=0.05, seed=7, engine="numba")
    b, _ = train_mlp(loss, data, aug, widths=(4, 4), steps=30, lr=0.05, seed=7, engine="numpy")
    for p, q in zip(a.params(), b.params()):
        assert np.max(np.abs(p - q)) < 1e-10


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        init_mlp(2, (3, 3), 2, "sigmoid")
    with pytest.raises(ValueError, match="widths"):
        init_mlp(2, (3,), 2)
    mlp, x1, x2 = _problem("tanh")
    with pytest.raises(ValueError, match="supports"):
        value_and_grad(mlp, get_loss("scl"), x1, x2)


def test_cli(tmp_path):
    res = CliRunner().invoke(main, ["nonlinear", "--sigma", "1.7", "--steps", "300", "--n", "32",
                                    "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "linear theory" in res.output and (tmp_path / "o" / "report.json").is_file()
    res = CliRunner().invoke(main, ["nonlinear", "--widths", "3"])
    assert res.exit_code == 2 and "--widths" in res.output


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_probe_features_are_the_networks(activation):
    """The probes see exactly the network's last-layer input: features @ W3^T == forward()."""
    from minissl.nonlinear.mlp import forward
    from minissl.nonlinear.probes import _features

    mlp, x1, _ = _problem(activation, seed=4)
    assert np.allclose(_features(mlp, x1) @ mlp.W3.T, forward(mlp, x1)[0], rtol=1e-13, atol=1e-14)


def test_plane_axes_and_dimensional_collapse_direction():
    """r1 carries the larger singular value; minima at (0, +-r) (the larger direction collapsed)
    are not accepted as the dimensional collapse the theory means."""
    from minissl.nonlinear import LinearModel
    from minissl.nonlinear.probes import probe_svd, split_halves

    U, s, Vt = probe_svd(LinearModel(np.diag([2.0, 1.0])), [(np.ones((3, 2)), np.ones((3, 2)))])
    big, small = split_halves(s)
    assert np.allclose(big, [2.0, 0.0]) and np.allclose(small, [0.0, 1.0])
    r = np.linspace(-1, 1, 11)
    L = np.add.outer(np.zeros(11), (r ** 2 - 0.36) ** 2) + 0.5 * r[:, None] ** 2  # minima at (0, +-0.6)
    assert classify_regime(L, r)[0] == "dimensional collapse of the other direction"
    assert classify_regime(L.T, r)[0] == "dimensional collapse"


def test_probes_refuse_normalized_losses_and_loss_weight_decay():
    data = gaussian_data(8, [1.0, 2.0], seed=0)
    mlp = init_mlp(2, (3, 3), 2, "tanh", seed=0)
    with pytest.raises(ValueError, match="flat"):
        scale_probe(mlp, get_loss("infonce", normalize=True), data.x, IsotropicNoise(1.0, 2), [1.0])
    with pytest.raises(ValueError, match="weight_decay"):
        value_and_grad(mlp, get_loss("infonce", weight_decay=0.1), data.x, data.x)
