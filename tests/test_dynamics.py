"""minissl.theory.dynamics and ``minissl theory dynamics``: early SGD rates and learning times,
checked against iterating the recurrence, integrating the logistic ODE, Theorem 1's stationary
eigenvalue, and gradient descent on the effective landscape."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.integrate import solve_ivp

from minissl import simulate
from minissl.cli import main
from minissl.landscape import Landscape
from minissl.theory import dynamics, learning_times, linear_rates


@pytest.mark.parametrize("mu", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("b", [0.7, 0.05, -0.3, -2.0])
def test_linear_rate_is_the_growth_of_the_heavy_ball_recurrence(b, mu):
    lr = 0.05
    w = np.empty(400)
    w[0], buf = 1.0, 0.0
    for t in range(399):  # minissl's SGD: buf = mu buf + g, w -= lr buf, with g = -2 b w
        buf = mu * buf - 2.0 * b * w[t]
        w[t + 1] = w[t] - lr * buf
    got = (np.log(np.abs(w[399])) - np.log(np.abs(w[299]))) / 100.0
    rate = linear_rates([b], lr, mu)[0]
    if 1.0 + mu + 2 * lr * b > 0 and (1.0 + mu + 2 * lr * b) ** 2 >= 4 * mu:  # real roots: geometric growth
        assert got == pytest.approx(rate, rel=1e-3, abs=1e-6)
    else:  # complex roots: |w| oscillates with envelope |z| = sqrt(mu)
        assert abs(rate - 0.5 * np.log(mu)) < 1e-12


@pytest.mark.parametrize("b, u0", [(0.4, 1e-4), (0.02, 1e-4), (0.4, 0.5), (-0.3, 1e-3)])
def test_learning_time_solves_the_logistic_equation(b, u0):
    s, k, lr, eps = 2.0, 0.75, 0.01, 0.1
    r = learning_times([b], [s], k, lr, u0, eps=eps)
    a, ustar = r["rate"][0], r["u_star"][0]
    c = 2 * k * s**2 * a / b
    if b > 0:
        assert ustar == pytest.approx(b / (2 * k * s**2))
        target = ustar * (1 - eps if u0 < ustar else 1 + eps)
    else:
        target = eps * u0
    sol = solve_ivp(lambda t, u: a * u - c * u**2, (0, 10 * r["steps"][0]), [u0], rtol=1e-10, atol=1e-14,
                    events=lambda t, u: u[0] - target, dense_output=True)
    assert sol.t_events[0][0] == pytest.approx(r["steps"][0], rel=1e-6)


def test_times_diverge_as_one_over_b_at_the_threshold_and_saturate_at_the_quartic_decay():
    b = np.array([-1e-2, -1e-3, -1e-4])
    t = learning_times(b, np.ones(3), 1.0, 0.05, 1e-10)["steps"]  # |b| >> 2 k s^2 u0
    assert np.polyfit(np.log(-b), np.log(t), 1)[0] == pytest.approx(-1.0, abs=1e-3)
    # at b = 0 only the quartic acts: du/dt = -8 lr k s^2 u^2, so u0 / (1 + c u0 t) = eps u0
    t0 = learning_times([0.0], [2.0], 0.5, 0.05, 1e-3, eps=0.1)["steps"][0]
    assert t0 == pytest.approx(9.0 / (8 * 0.05 * 0.5 * 4.0 * 1e-3))
    near = learning_times([-1e-9], [2.0], 0.5, 0.05, 1e-3, eps=0.1)["steps"][0]
    assert near == pytest.approx(t0, rel=1e-4)  # continuous at b = 0


def test_momentum_time_is_continuous_at_b_zero():
    """With momentum the small-b rate is 4 lr b / (1 - mu): the b = 0 limit carries the same factor."""
    t0 = learning_times([0.0], [2.0], 0.5, 0.01, 1e-3, momentum=0.9)["steps"][0]
    near = learning_times([-1e-9], [2.0], 0.5, 0.01, 1e-3, momentum=0.9)["steps"][0]
    assert near == pytest.approx(t0, rel=1e-4)


def test_overshooting_learning_rate_is_refused_and_z_zero_takes_one_step():
    with pytest.raises(ValueError, match="lr == 2.0"):
        learning_times([-1.0], [1.0], 1.0, 2.0, 1e-3)  # z = 1 + 2 lr b = -3: grows while flipping sign
    with pytest.raises(ValueError, match="lr == 0.5"):
        learning_times([-2.0], [1.0], 1.0, 0.5, 1e-3)  # z = -1: never decays
    assert learning_times([-1.0], [1.0], 1.0, 0.5, 1e-3)["steps"][0] == 1.0  # z = 0
    with pytest.raises(ValueError, match="u0"):
        learning_times([0.1, 0.2], [1.0, 1.0], 1.0, 0.1, [1e-3, 1e-3, 1e-3])


def test_stationary_eigenvalue_is_theorem_1s_minimum():
    A = np.diag([0.5, 1.0, 2.0, 3.0])
    land = Landscape(B=np.diag([-0.4, 0.1, 0.6, 1.2]), S=A + np.eye(4), k=0.75)
    d = dynamics(land, 0.05)
    np.testing.assert_allclose(sorted(d["u_star"], reverse=True), land.stationary_spectrum(4), rtol=1e-12)


def test_early_rates_match_gradient_descent_on_the_effective_landscape():
    """Descent on the effective model from a small orthogonal W: the slope of ln |W e_i|^2 is the
    predicted rate (deterministic: no sampling noise)."""
    from minissl.experiments.slowing import _directions, _fit_rate

    res = simulate("beta", beta=0.5, model="effective", variances=(0.5, 1.0, 2.0, 3.0), sigma=1.3, n=400,
                   optimizer="sgd", lr=0.02, lr_schedule="constant", steps=1500, init="orthogonal", init_scale=1e-3,
                   record_every=2, warn=False)
    land, b, U, s = _directions(res)
    pred = dynamics(land, 0.02, u0=1e-6)
    Ws = np.asarray(res.history["W"])
    u = np.einsum("tpq,qi->tip", Ws, U)
    u = np.einsum("tip,tip->ti", u, u)
    steps = np.asarray(res.history["step"], float)
    for i in range(4):
        got = _fit_rate(steps, u[:, i], b[i] > 0)
        assert got == pytest.approx(pred["rate"][i], rel=0.01), (i, b[i])


def test_adam_and_normalized_landscapes_are_refused():
    land = Landscape(B=np.eye(2), S=np.eye(2))
    with pytest.raises(ValueError, match="only 'sgd'"):
        dynamics(land, 0.1, optimizer="adam")
    with pytest.raises(ValueError, match="kappa"):
        dynamics(Landscape(B=np.eye(2), S=np.eye(2), kappa=1.0), 0.1)
    with pytest.raises(ValueError, match="u0"):
        learning_times([0.1], [1.0], 1.0, 0.1, 0.0)


def test_cli_prints_and_writes_the_prediction(tmp_path):
    path = tmp_path / "d.json"
    r = CliRunner().invoke(main, ["theory", "dynamics", "--loss", "beta", "--beta", "0.5", "--sigma", "1.4",
                                  "--json", str(path)])
    assert r.exit_code == 0, r.output
    d = json.loads(path.read_text())
    # B = beta A0 - (1 - beta) sigma^2 I (derived): b = 0.5 a - 0.98 for a = 4, 3, 2, 1, 0.5
    np.testing.assert_allclose(d["b"], 0.5 * np.array([4.0, 3.0, 2.0, 1.0, 0.5]) - 0.98, atol=1e-12)
    np.testing.assert_allclose(d["rate"], 2 * np.log1p(2 * 0.05 * np.array(d["b"])), rtol=1e-12)
    assert "1244" in r.output  # steps of the direction with b = +0.02


@pytest.mark.parametrize("args, fragment", [
    (["--normalize"], "--normalize"),
    (["--theta", "0.3"], "--theta"),
    (["--content-dims", "2"], "--content-dims"),
    (["--lr", "5", "--sigma", "3"], "lr"),
    (["--lr", "0"], "--lr"),
    (["--momentum", "1"], "--momentum"),
    (["--eps", "1"], "--eps"),
])
def test_cli_bad_options_exit_2(args, fragment):
    r = CliRunner().invoke(main, ["theory", "dynamics", "--loss", "beta", *args])
    assert r.exit_code == 2 and fragment in r.output, r.output
