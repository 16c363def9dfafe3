"""Bad input to the public API fails early, with a message naming the parameter and value.

The library raises ValueError / TypeError (``_validation`` convention: ``"sigma == -1.0,
must be >= 0."``); the CLI turns them into usage errors (exit code 2, no traceback).
User arrays are never modified.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import minissl
from minissl import metrics
from minissl.cli import main
from minissl.data import IsotropicNoise, ScaleAugmentation, StructuredNoise

# ---------------------------------------------------------------- gaussian_data


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        pytest.param(dict(n=-1, variances=[1.0]), ValueError, r"n == -1, must be >= 2", id="n=-1"),
        pytest.param(dict(n=1, variances=[1.0]), ValueError, r"n == 1, must be >= 2", id="n=1"),
        pytest.param(dict(n=2.5, variances=[1.0]), TypeError, r"n == 2\.5, must be an integer", id="n=2.5"),
        pytest.param(dict(n=5, variances=[1.0, -2.0]), ValueError, r"variances contains .*-2\.0.*>= 0",
                     id="variances-negative"),
        pytest.param(dict(n=5, variances=[1.0, np.nan]), ValueError, r"variances contains 1 NaN",
                     id="variances-nan"),
        pytest.param(dict(n=5, variances=[[1.0, 2.0]]), ValueError, r"variances has shape \(1, 2\)",
                     id="variances-2d"),
        pytest.param(dict(n=5, cov=[[1.0, 0.5], [0.0, 1.0]]), ValueError, r"cov is not symmetric.*0\.5",
                     id="cov-non-symmetric"),
        pytest.param(dict(n=5, cov=[[1.0, 2.0], [2.0, 1.0]]), ValueError,
                     r"cov is not positive semi-definite \(smallest eigenvalue == -1", id="cov-non-psd"),
        pytest.param(dict(n=5, cov=np.ones((2, 3))), ValueError, r"cov has shape \(2, 3\), must be square",
                     id="cov-non-square"),
        pytest.param(dict(n=5, variances=[1.0], cov=[[1.0]]), ValueError, r"exactly one of variances= and cov=",
                     id="both"),
        pytest.param(dict(n=5), ValueError, r"exactly one of variances= and cov=", id="neither"),
        pytest.param(dict(n=5, variances=[]), ValueError, r"variances is empty.*dim >= 1", id="dim0-variances"),
        pytest.param(dict(n=5, variances=[1.0], dtype=np.int64), TypeError, r"dtype == 'int64'", id="dtype"),
        pytest.param(dict(n=5, variances=[1.0], seed=-3), ValueError, r"seed == -3", id="seed"),
    ],
)
def test_gaussian_data_bad_input(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        minissl.gaussian_data(**kwargs)


def test_gaussian_data_empty_cov_rejected():
    """A 0 x 0 covariance is dimension 0, exactly like variances=[] (rejected above)
    (regression test: the cov= branch once returned a Dataset with x of shape (5, 0))."""
    with pytest.raises(ValueError, match=r"cov"):
        minissl.gaussian_data(5, cov=np.zeros((0, 0)))


def test_gaussian_data_negative_variance_message_prints_plain_number():
    """The message follows the library convention ("... contains -2.0 ..."), whatever the
    NumPy version (regression test: ``repr`` of a NumPy scalar prints ``np.float64(-2.0)``)."""
    with pytest.raises(ValueError) as info:
        minissl.gaussian_data(5, variances=[1.0, -2.0])
    assert "variances contains -2.0," in str(info.value)


# -------------------------------------------------------------- augmentations


@pytest.mark.parametrize(
    "factory, exc, pattern",
    [
        pytest.param(lambda: IsotropicNoise(sigma=-1, dim=3), ValueError, r"sigma == -1\.0, must be >= 0",
                     id="iso-sigma"),
        pytest.param(lambda: IsotropicNoise(1.0, dim=0), ValueError, r"dim == 0, must be >= 1", id="iso-dim"),
        pytest.param(lambda: IsotropicNoise(np.nan, dim=2), ValueError, r"sigma == nan, must be finite",
                     id="iso-nan"),
        pytest.param(lambda: IsotropicNoise("1", dim=2), TypeError, r"sigma == '1'", id="iso-str"),
        pytest.param(lambda: StructuredNoise(sigma=1, theta=1.5, dim=2), ValueError, r"theta == 1\.5, must be <= 1",
                     id="struct-theta-high"),
        pytest.param(lambda: StructuredNoise(sigma=1, theta=-0.1, dim=2), ValueError,
                     r"theta == -0\.1, must be >= 0", id="struct-theta-low"),
        pytest.param(lambda: StructuredNoise(sigma=1, theta=0.5, dim=2, content_dims=3), ValueError,
                     r"content_dims == 3, must be <= 2", id="struct-content"),
        pytest.param(lambda: ScaleAugmentation(b=0), ValueError, r"b == 0\.0, must be > 0", id="scale-b0"),
        pytest.param(lambda: minissl.data.make_augmentation("bogus", 2), ValueError, r"augmentation == 'bogus'",
                     id="make-bogus"),
    ],
)
def test_augmentation_bad_input(factory, exc, pattern):
    with pytest.raises(exc, match=pattern):
        factory()


# --------------------------------------------------------------------- get_loss


@pytest.mark.parametrize(
    "name, params, exc, pattern",
    [
        pytest.param("nope", {}, ValueError, r"name == 'nope', must be one of 'infonce'", id="name"),
        pytest.param("weighted", dict(alpha=-1), ValueError, r"alpha == -1\.0, must be >= 0", id="alpha"),
        pytest.param("beta", dict(beta=0), ValueError, r"beta == 0\.0, must be > 0", id="beta0"),
        pytest.param("beta", dict(beta=-1), ValueError, r"beta == -1\.0, must be > 0", id="beta-neg"),
        pytest.param("infonce", dict(bogus=1), TypeError, r"unknown parameter 'bogus'", id="unknown"),
        pytest.param("infonce", dict(alpha=0.5), TypeError, r"unknown parameter 'alpha'", id="alpha-on-infonce"),
        # README once said every loss takes "a bias b": the bias is an argument of value_and_grad
        pytest.param("beta", dict(bias=True), TypeError, r"unknown parameter 'bias'; allowed: .* \(a bias is not "
                     r"part of the loss: pass b= to Loss.value_and_grad\(W, x1, x2, b\), or bias=True to "
                     r"minissl.simulate to train one\)\.", id="bias"),
        pytest.param("infonce", dict(normalize="yes"), TypeError, r"normalize == 'yes', must be True or False",
                     id="normalize-str"),
        pytest.param("infonce", dict(c=0), ValueError, r"c == 0\.0, must be > 0", id="c0"),
        pytest.param("infonce", dict(weight_decay=-1), ValueError, r"weight_decay == -1\.0, must be >= 0",
                     id="wd"),
        pytest.param("infonce", dict(negatives="all"), ValueError, r"negatives == 'all'", id="negatives"),
        pytest.param("barlow", dict(standardize=1), TypeError, r"standardize == 1", id="standardize"),
        pytest.param("vicreg", dict(gamma=0), ValueError, r"gamma == 0\.0", id="gamma"),
        pytest.param("beta", dict(beta=np.inf), ValueError, r"beta == inf, must be finite", id="beta-inf"),
    ],
)
def test_get_loss_bad_input(name, params, exc, pattern):
    with pytest.raises(exc, match=pattern):
        minissl.get_loss(name, **params)


# ----------------------------------------------------------------- value_and_grad


def _problem(d1=2, d0=3, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d1, d0)), rng.standard_normal((n, d0)), rng.standard_normal((n, d0))


def _with(a, idx, v):
    a = a.copy()
    a[idx] = v
    return a


W0, X1, X2 = _problem()


@pytest.mark.parametrize(
    "args, exc, pattern",
    [
        pytest.param((W0, X1[:, :2], X2[:, :2]), ValueError, r"x1 has shape \(5, 2\) but W expects d0 == 3",
                     id="x1-d0"),
        pytest.param((W0, X1, X2[:4]), ValueError, r"x2 has shape \(4, 3\), must match x1's shape \(5, 3\)",
                     id="x2-shape"),
        pytest.param((W0, X1, X2, np.zeros(3)), ValueError, r"b has shape \(3,\) but W has d1 == 2",
                     id="b-length"),
        pytest.param((W0[0], X1, X2), ValueError, r"W has shape \(3,\), must be 2-dimensional", id="W-1d"),
        pytest.param((W0, X1[:1], X2[:1]), ValueError, r"x1 has 1 rows, must have at least 2", id="N=1"),
        pytest.param((W0, _with(X1, (1, 1), np.nan), X2), ValueError, r"x1 contains 1 NaN", id="x1-nan"),
        pytest.param((_with(W0, (0, 0), np.inf), X1, X2), ValueError, r"W contains 1 NaN or infinite",
                     id="W-inf"),
        pytest.param((W0, X1, _with(X2, (0, 2), -np.inf)), ValueError, r"x2 contains 1 NaN or infinite",
                     id="x2-inf"),
        pytest.param((W0, X1, X2, np.array([np.nan, 0.0])), ValueError, r"b contains 1 NaN", id="b-nan"),
        pytest.param((W0, "abc", X2), TypeError, r"x1 == 'abc'", id="x1-str"),
        pytest.param((W0, X1.astype(complex), X2), TypeError, r"x1 has dtype complex128", id="x1-complex"),
        pytest.param((np.zeros((0, 3)), X1, X2), ValueError, r"W has shape \(0, 3\)", id="W-empty"),
    ],
)
@pytest.mark.parametrize("name", ["infonce", "scl", "barlow", "vicreg"])
def test_value_and_grad_bad_input(name, args, exc, pattern):
    loss = minissl.get_loss(name)
    with pytest.raises(exc, match=pattern):
        loss.value_and_grad(*args)
    with pytest.raises(exc, match=pattern):
        loss.value(*args)


# ---------------------------------------------------------------------- simulate


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        pytest.param(dict(sigma=-1), ValueError, r"sigma == -1\.0, must be >= 0", id="sigma"),
        pytest.param(dict(theta=2, augmentation="structured"), ValueError, r"theta == 2\.0, must be <= 1",
                     id="theta"),
        pytest.param(dict(n=-5), ValueError, r"n == -5, must be >= 2", id="n"),
        pytest.param(dict(steps=0), ValueError, r"steps == 0, must be >= 1", id="steps"),
        pytest.param(dict(lr=0), ValueError, r"lr == 0\.0, must be > 0", id="lr"),
        pytest.param(dict(noise="bogus"), ValueError, r"noise == 'bogus', must be one of 'fresh', 'fixed'",
                     id="noise"),
        pytest.param(dict(optimizer="bogus"), ValueError, r"optimizer == 'bogus', must be one of 'adam', 'sgd'",
                     id="optimizer"),
        pytest.param(dict(replicates=0), ValueError, r"replicates == 0, must be >= 1", id="replicates"),
        pytest.param(dict(augmentation="bogus"), ValueError, r"augmentation == 'bogus'", id="augmentation"),
        pytest.param(dict(d1=0), ValueError, r"d1 == 0, must be >= 1", id="d1"),
        pytest.param(dict(momentum=1.0, optimizer="sgd"), ValueError, r"momentum == 1\.0, must be < 1",
                     id="momentum"),
        pytest.param(dict(model="bogus"), ValueError, r"model == 'bogus'", id="model"),
        pytest.param(dict(steps=2.5), TypeError, r"steps == 2\.5, must be an integer", id="steps-float"),
        pytest.param(dict(loss="beta", beta=0), ValueError, r"beta == 0\.0", id="beta"),
        pytest.param(dict(loss=3), TypeError, r"loss == 3", id="loss-type"),
        pytest.param(dict(loss="infonce", bogus=1), TypeError, r"unknown parameter 'bogus'", id="loss-param"),
        pytest.param(dict(data=np.zeros((4, 2))), TypeError, r"data == ndarray", id="data-type"),
        pytest.param(dict(variances=(1.0, -1.0)), ValueError, r"variances contains", id="variances"),
    ],
)
def test_simulate_bad_input(kwargs, exc, pattern):
    kwargs = {"n": 8, "steps": 2, **kwargs}  # keep the run tiny should a check be missing
    with pytest.raises(exc, match=pattern):
        minissl.simulate(**kwargs)


def test_simulate_unknown_loss_name_names_the_loss_parameter():
    """simulate's parameter is ``loss``: the message must name it (not get_loss's ``name``)."""
    with pytest.raises(ValueError, match=r"loss == 'bogus'.*must be one of") as info:
        minissl.simulate(loss="bogus", n=8, steps=2)
    assert "'infonce'" in str(info.value)


# ----------------------------------------------------------- landscape / effective_B


def test_effective_B_non_psd_C():
    loss = minissl.get_loss("infonce")
    with pytest.raises(ValueError, match=r"C is not positive semi-definite \(smallest eigenvalue == -1"):
        minissl.effective_B(loss, np.eye(2), np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"A0 is not symmetric"):
        minissl.effective_B(loss, [[1.0, 0.3], [0.0, 1.0]], np.eye(2))
    with pytest.raises(ValueError, match=r"C has shape \(3, 3\), must be \(2, 2\)"):
        minissl.effective_B(loss, np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match=r"n == 1, must be >= 2"):
        minissl.effective_B(loss, np.eye(2), np.eye(2), n=1)


def test_landscape_bad_input():
    S = np.eye(3)
    with pytest.raises(ValueError, match=r"B .*symmetric"):
        minissl.Landscape(B=[[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], S=S)
    with pytest.raises(ValueError, match=r"B has shape \(3, 2\)"):
        minissl.Landscape(B=np.ones((3, 2)), S=S)
    with pytest.raises(ValueError, match=r"S is not positive semi-definite"):
        minissl.Landscape(B=np.eye(3), S=-S)
    with pytest.raises(ValueError, match=r"k == 0\.0, must be > 0"):
        minissl.Landscape(B=np.eye(3), S=S, k=0)
    with pytest.raises(ValueError, match=r"kappa == -1\.0"):
        minissl.Landscape(B=np.eye(3), S=S, kappa=-1)
    with pytest.raises(ValueError, match=r"quartic == 'cubic'"):
        minissl.Landscape(B=np.eye(3), S=S, quartic="cubic")
    land = minissl.Landscape(B=np.eye(3), S=S)
    with pytest.raises(ValueError, match=r"W has shape \(2, 4\) but the landscape expects d0 == 3"):
        land.value_and_grad(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"b has shape \(3,\), must have shape \(2\)"):
        land.value_and_grad(np.ones((2, 3)), np.ones(3))


# ------------------------------------------------------------------ no mutation


@pytest.mark.parametrize("name", ["infonce", "scl", "barlow", "vicreg"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("normalize", [False, True])
def test_user_arrays_not_mutated(name, dtype, normalize):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((2, 3)).astype(dtype)
    x1 = rng.standard_normal((6, 3)).astype(dtype)
    x2 = rng.standard_normal((6, 3)).astype(dtype)
    b = rng.standard_normal(2).astype(dtype)
    copies = [a.copy() for a in (W, x1, x2, b)]
    loss = minissl.get_loss(name, normalize=normalize, weight_decay=0.1)
    _, dW, db = loss.value_and_grad(W, x1, x2, b)
    for a, c in zip((W, x1, x2, b), copies):
        np.testing.assert_array_equal(a, c)
        assert a.dtype == c.dtype
    # the returned gradients are not views of the inputs
    for a in (W, x1, x2, b):
        assert not np.shares_memory(dW, a) and not np.shares_memory(db, a)


def test_other_entry_points_do_not_mutate():
    rng = np.random.default_rng(2)
    B = rng.standard_normal((3, 3))
    B = B + B.T
    S = np.eye(3) * 2.0
    W = rng.standard_normal((2, 3))
    b = rng.standard_normal(2)
    cov = S.copy()
    saved = [a.copy() for a in (B, S, W, b, cov)]
    land = minissl.Landscape(B=B, S=S, kappa=1.0)
    land.value_and_grad(W, b)
    land.B[0, 0] += 1.0  # the landscape holds its own copies
    minissl.gaussian_data(4, cov=cov)
    metrics.spectrum(W)
    metrics.summary(S)
    for a, c in zip((B, S, W, b, cov), saved):
        np.testing.assert_array_equal(a, c)


# -------------------------------------------------------------------------- CLI

CLI_CASES = [
    (["simulate", "--sigma", "-1"], "--sigma"),
    (["simulate", "--theta", "2"], "--theta"),
    (["simulate", "--n", "-5"], "--n"),
    (["simulate", "--beta", "0"], "--beta"),
    (["simulate", "--alpha", "-1", "--loss", "weighted"], "--alpha"),
    (["simulate", "--variances", "1,abc"], "--variances"),
    (["simulate", "--variances", "1,-2"], "--variances"),
    (["simulate", "--dim", "0"], "--dim"),
    (["simulate", "--sigma", "nan"], "--sigma"),
    (["simulate", "--loss", "bogus"], "--loss"),
    (["simulate", "--dim", "3", "--variances", "1,2"], "--dim"),
    (["simulate", "--beta", "0.5", "--loss", "infonce"], "--beta"),
    (["simulate", "--steps", "0"], "--steps"),
    (["simulate", "--lr", "0"], "--lr"),
    (["simulate", "--replicates", "0"], "--replicates"),
    (["simulate", "--lam", "0.1", "--loss", "scl"], "--lam"),
]


@pytest.mark.parametrize("args, option", CLI_CASES, ids=[" ".join(a[1:]) for a, _ in CLI_CASES])
def test_cli_bad_option_is_usage_error(args, option):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert option in result.output
    assert "Traceback" not in result.output
    assert "Error" in result.output


@pytest.mark.parametrize(
    "args, value",
    [
        (["simulate", "--sigma", "-1"], "-1.0"),
        (["simulate", "--n", "-5"], "-5"),
        (["simulate", "--theta", "2"], "2.0"),
        (["simulate", "--variances", "1,abc"], "1,abc"),
    ],
)
def test_cli_message_names_the_value(args, value):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert value in result.output


def test_cli_negative_variance_message_prints_plain_number():
    """Regression test: ``repr`` of a NumPy scalar printed ``np.float64(-2.0)`` under NumPy >= 2."""
    result = CliRunner().invoke(main, ["simulate", "--variances", "1,-2"])
    assert result.exit_code == 2
    assert "variances contains -2.0," in result.output
