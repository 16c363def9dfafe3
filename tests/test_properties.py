"""Property tests (Hypothesis): bad input gives a clear error naming the parameter, never a
traceback from NumPy/Numba and never a non-finite result.

The invalid values are stated here, independently of the validators: every numeric
parameter of a loss must be a finite number >= 0 (NaN, infinities, negative numbers,
strings and None are refused); the flags must be booleans; ``c`` and ``norm_eps`` must be
> 0. For :func:`minissl.simulate` the same holds for its counts (>= 1), step sizes (> 0)
and probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minissl
from minissl.cli import main
from minissl.losses.registry import REGISTRY

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

not_a_number = st.one_of(st.text(max_size=5), st.none(), st.lists(st.floats(), max_size=2))
# simulate() reads None as "the default" for several parameters
not_a_number_or_none = st.one_of(st.text(max_size=5), st.lists(st.floats(), max_size=2))
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
negative = st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False)
non_positive = st.one_of(negative, st.just(0.0))
not_a_bool = st.one_of(st.integers(min_value=2), st.text(max_size=3), st.none(), st.floats())

NUMERIC = [(name, p.name) for name, s in REGISTRY.items() for p in s.params
           if isinstance(p.default, float) and not isinstance(p.default, bool)]
FLAGS = [(name, p.name) for name, s in REGISTRY.items() for p in s.params if isinstance(p.default, bool)]


def _raises_naming(fn, name):
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    assert name in str(info.value), (name, str(info.value))


@pytest.mark.parametrize("loss,param", NUMERIC)
@SETTINGS
@given(value=st.one_of(not_a_number, non_finite, negative))
def test_numeric_loss_parameter_rejects_invalid(loss, param, value):
    _raises_naming(lambda: minissl.get_loss(loss, **{param: value}), param)


@pytest.mark.parametrize("loss,param", FLAGS)
@SETTINGS
@given(value=not_a_bool)
def test_flag_loss_parameter_rejects_invalid(loss, param, value):
    _raises_naming(lambda: minissl.get_loss(loss, **{param: value}), param)


@pytest.mark.parametrize("param,values", [
    ("c", st.one_of(not_a_number, non_finite, non_positive)),
    ("norm_eps", st.one_of(not_a_number, non_finite, non_positive)),
    ("weight_decay", st.one_of(not_a_number, non_finite, negative)),
    ("normalize", not_a_bool),
    ("engine", st.text(max_size=6).filter(lambda s: s not in ("numba", "numpy"))),
])
@SETTINGS
@given(data=st.data())
def test_common_loss_parameter_rejects_invalid(param, values, data):
    value = data.draw(values)
    _raises_naming(lambda: minissl.get_loss("infonce", **{param: value}), param)


@SETTINGS
@given(name=st.text(max_size=8).filter(lambda s: s not in REGISTRY))
def test_unknown_loss_name_is_named(name):
    _raises_naming(lambda: minissl.get_loss(name), "name")


COUNTS = ["steps", "n", "replicates", "d1", "check_draws"]
POSITIVE = ["lr", "init_scale", "spectral_tol", "uniformity_t", "alignment_alpha"]


@pytest.mark.parametrize("param", COUNTS)
@SETTINGS
@given(value=st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), not_a_number_or_none))
def test_simulate_counts_reject_invalid(param, value):
    _raises_naming(lambda: minissl.simulate("infonce", steps=5, **{param: value}), param)


@pytest.mark.parametrize("param", POSITIVE)
@SETTINGS
@given(value=st.one_of(not_a_number_or_none, non_finite, non_positive))
def test_simulate_positive_reals_reject_invalid(param, value):
    _raises_naming(lambda: minissl.simulate("infonce", steps=5, **{param: value}), param)


@pytest.mark.parametrize("param,values", [
    ("sigma", st.one_of(not_a_number_or_none, non_finite, negative)),
    ("theta", st.one_of(not_a_number_or_none, non_finite, negative, st.floats(min_value=1.0001, max_value=1e300))),
    ("seed", st.one_of(st.integers(max_value=-1), not_a_number_or_none, st.floats(allow_nan=True))),
    ("momentum", st.one_of(not_a_number_or_none, non_finite, negative, st.floats(min_value=1.0, max_value=1e300))),
    ("grad_alpha", st.one_of(not_a_number_or_none, non_finite, negative,
                             st.floats(min_value=1.0001, max_value=1e300))),
])
@SETTINGS
@given(data=st.data())
def test_simulate_bounded_reals_reject_invalid(param, values, data):
    value = data.draw(values)
    kw = {"optimizer": "sgd"} if param == "momentum" else {}
    kw.update({"augmentation": "structured"} if param == "theta" else {})
    _raises_naming(lambda: minissl.simulate("infonce", steps=5, **kw, **{param: value}), param)


@pytest.mark.parametrize("loss", [n for n in REGISTRY])
@SETTINGS
@given(log_scale=st.floats(min_value=-300, max_value=300), seed=st.integers(0, 2**16))
def test_value_and_grad_is_finite_or_names_the_inputs(loss, log_scale, seed):
    """Any finite W: a finite value and gradient, or a ValueError naming W (never a silent inf/NaN)."""
    rng = np.random.default_rng(seed)
    W = 10.0 ** log_scale * rng.standard_normal((2, 3))
    x1 = rng.standard_normal((6, 3))
    x2 = x1 + 0.1 * rng.standard_normal((6, 3))
    for engine in ("numpy", "numba"):
        L = minissl.get_loss(loss, engine=engine)
        try:
            value, dW, db = L.value_and_grad(W, x1, x2)
        except ValueError as exc:
            assert str(exc).startswith("W, x1, x2: the loss") and "not finite" in str(exc)
            continue
        assert np.isfinite(value) and np.all(np.isfinite(dW))


CLI_BAD = [
    ("--sigma", st.one_of(negative, st.floats(min_value=1.0001e6, max_value=1e300), non_finite)),
    ("--n", st.integers(max_value=1)),
    ("--steps", st.integers(max_value=0)),
    ("--seed", st.integers(max_value=-1)),
    ("--out-dim", st.integers(max_value=0)),
    ("--lr", st.one_of(non_positive, non_finite)),
    ("--replicates", st.integers(max_value=0)),
]


@pytest.mark.parametrize("option,values", CLI_BAD)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_cli_rejects_invalid_options_before_any_work(option, values, data):
    value = data.draw(values)
    res = CliRunner().invoke(main, ["simulate", option, repr(value) if isinstance(value, float) else str(value)])
    assert res.exit_code == 2, res.output
    assert option in res.output and "Traceback" not in res.output
    assert "learned eig" not in res.output  # no training happened


@settings(max_examples=15, deadline=None)
@given(text=st.lists(st.one_of(st.just(""), st.just("1"), st.just("x"), st.just("1e300"), st.just("-1"),
                               st.just("nan")), min_size=1, max_size=4).map(",".join))
def test_cli_variances_parse_or_name_the_option(text):
    """--variances: every entry a finite number in [0, 1e12], no empty entry; else exit 2 naming it."""
    parts = text.split(",")
    valid = all(p in ("1",) for p in parts)
    res = CliRunner().invoke(main, ["theory", "--variances", text])
    if valid:
        assert res.exit_code == 0, res.output
    else:
        assert res.exit_code == 2 and "--variances" in res.output, res.output
