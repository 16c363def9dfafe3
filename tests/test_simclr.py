"""SimCLR's cosine/temperature NT-Xent (``get_loss("simclr")``) and Exercise 6.

* gradients against central finite differences (through ``Loss.value_and_grad`` with
  W, bias and weight decay);
* the value against a plain double loop over the 2N anchors;
* the exact identity with minissl's Gaussian-kernel InfoNCE on the sphere of squared
  radius ``c = 1/tau`` (the factor ``exp(-c)`` of the kernel cancels):
  ``simclr(x1, x2) = [infonce_both(x1, x2) + infonce_both(x2, x1)] / 2``, gradients
  included, and ``decoupled=True`` with ``weighted`` ``alpha=0`` the same way;
* an independent torch autograd implementation (skipped without torch);
* argument checks, refusals (normalize=True, theory) and ``simulate`` end to end;
* Exercise 6 of the companion note: the simplex ETF spans N - 1 dimensions, minimises the
  loss (closed form), and projected gradient descent from random unit vectors in d = 2N
  reaches it -- dimensional collapse to N - 1 dimensions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import minissl
from minissl.losses.simclr import (descend_on_sphere, embedding_loss, etf_loss, simclr_core,
                                   simplex_etf)
from minissl.metrics import numerical_rank, stable_rank
from _helpers import assert_grad_close, central_diff

IDENTITY_RTOL = 1e-12


def _problem(n=6, d0=4, d1=3, seed=0, bias=False):
    rng = np.random.default_rng(seed)
    W = 0.7 * rng.standard_normal((d1, d0))
    x1 = rng.standard_normal((n, d0))
    x2 = x1 + 0.5 * rng.standard_normal((n, d0))
    b = rng.standard_normal(d1) if bias else None
    return W, x1, x2, b


def _loop_ntxent(z1, z2, tau, decoupled):
    """Straightforward NT-Xent: 2N anchors, cosine similarity, positive in the denominator."""
    z = np.concatenate([z1, z2])
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for k in range(n2):
        kp = (k + n) % n2
        uk = z[k] / np.linalg.norm(z[k])
        sim = lambda m: float(uk @ (z[m] / np.linalg.norm(z[m])))  # noqa: E731
        den = 0.0
        for m in range(n2):
            if m == k or (decoupled and m == kp):
                continue
            den += math.exp(sim(m) / tau)
        total += -sim(kp) / tau + math.log(den)
    return total / n2


# --------------------------------------------------------------------------- gradients, value


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("bias,wd", [(False, 0.0), (True, 0.1)])
def test_gradient_matches_finite_differences(decoupled, bias, wd):
    W, x1, x2, b = _problem(bias=bias, seed=1)
    loss = minissl.get_loss("simclr", temperature=0.3, decoupled=decoupled, weight_decay=wd)
    value, dW, db = loss.value_and_grad(W, x1, x2, b)
    assert_grad_close(dW, central_diff(lambda w: loss.value(w, x1, x2, b), W), "dW")
    if bias:
        assert_grad_close(db, central_diff(lambda bb: loss.value(W, x1, x2, bb), b), "db")
    else:
        assert db is None


@pytest.mark.parametrize("decoupled", [False, True])
def test_core_gradient_matches_finite_differences(decoupled):
    rng = np.random.default_rng(2)
    z1, z2 = rng.standard_normal((2, 5, 3)) * rng.uniform(0.2, 3.0, size=(2, 5, 1))
    _, g1, g2 = simclr_core(z1, z2, 0.7, decoupled)
    assert_grad_close(g1, central_diff(lambda z: simclr_core(z, z2, 0.7, decoupled)[0], z1), "g1")
    assert_grad_close(g2, central_diff(lambda z: simclr_core(z1, z, 0.7, decoupled)[0], z2), "g2")


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
def test_value_matches_double_loop(decoupled, tau):
    rng = np.random.default_rng(3)
    z1 = rng.standard_normal((7, 4)) * 3.0
    z2 = z1 + rng.standard_normal((7, 4))
    value, _, _ = simclr_core(z1, z2, tau, decoupled)
    assert value == pytest.approx(_loop_ntxent(z1, z2, tau, decoupled), rel=1e-12, abs=1e-12)


def test_small_temperature_is_stable_and_zero_rows_give_no_nan():
    rng = np.random.default_rng(4)
    z1 = rng.standard_normal((6, 3))
    z2 = z1 + 0.1 * rng.standard_normal((6, 3))
    v, g1, g2 = simclr_core(z1, z2, 1e-4)  # logits up to 1e4: log-sum-exp keeps them finite
    assert np.isfinite(v) and np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
    z1[2] = 0.0
    z2[4] = 0.0
    v, g1, g2 = simclr_core(z1, z2, 0.5)
    assert np.isfinite(v) and np.all(np.isfinite(g1)) and np.all(np.isfinite(g2))
    loss = minissl.get_loss("simclr")
    value, dW, _ = loss.value_and_grad(np.zeros((2, 3)), rng.standard_normal((5, 3)), rng.standard_normal((5, 3)))
    assert np.isfinite(value) and np.all(np.isfinite(dW))
    # all outputs zero: every similarity is 0, the loss is log(2N - 1) (log(2N - 2) decoupled)
    assert value == pytest.approx(math.log(9))
    assert minissl.get_loss("simclr", decoupled=True).value(np.zeros((2, 3)), np.ones((5, 3)),
                                                            np.ones((5, 3))) == pytest.approx(math.log(8))


def test_float32_is_kept():
    W, x1, x2, _ = _problem()
    loss = minissl.get_loss("simclr")
    v64, dW64, _ = loss.value_and_grad(W, x1, x2)
    v32, dW32, _ = loss.value_and_grad(W.astype(np.float32), x1, x2)
    assert dW32.dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(dW32, dW64, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the exact identity


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.7])
@pytest.mark.parametrize("bias,wd", [(False, 0.0), (True, 0.05)])
def test_identity_with_gaussian_kernel_on_the_sphere(decoupled, tau, bias, wd):
    """|y_i - y_j|^2 = 2c - 2c u_i.u_j on the sphere |y|^2 = c, so the Gaussian kernel is
    exp(-c) exp(c u_i.u_j): the exp(-c) cancels between the positive and the denominator and
    c = 1/tau gives cosine/temperature. minissl's InfoNCE averages view-1 anchors only, so
    the symmetric NT-Xent is the mean of the two directions."""
    W, x1, x2, b = _problem(n=7, d0=5, d1=4, seed=5, bias=bias)
    sim = minissl.get_loss("simclr", temperature=tau, decoupled=decoupled, weight_decay=wd)
    if decoupled:
        gauss = minissl.get_loss("weighted", alpha=0.0, negatives="both", normalize=True, c=1.0 / tau,
                                 weight_decay=wd, engine="numpy")
    else:
        gauss = minissl.get_loss("infonce", negatives="both", normalize=True, c=1.0 / tau, weight_decay=wd,
                                 engine="numpy")
    v, dW, db = sim.value_and_grad(W, x1, x2, b)
    va, dWa, dba = gauss.value_and_grad(W, x1, x2, b)
    vb, dWb, dbb = gauss.value_and_grad(W, x2, x1, b)
    scale = max(1.0, abs(v))
    assert abs(v - 0.5 * (va + vb)) <= IDENTITY_RTOL * scale
    np.testing.assert_allclose(dW, 0.5 * (dWa + dWb), rtol=0, atol=IDENTITY_RTOL * max(1.0, np.abs(dW).max()))
    if bias:
        np.testing.assert_allclose(db, 0.5 * (dba + dbb), rtol=0, atol=IDENTITY_RTOL * max(1.0, np.abs(db).max()))
    # the compiled kernel of the Gaussian-kernel loss obeys the same identity (to its parity tolerance)
    gauss_nb = minissl.get_loss(gauss.name, **gauss.params, normalize=True, c=1.0 / tau, weight_decay=wd)
    vn = 0.5 * (gauss_nb.value(W, x1, x2, b) + gauss_nb.value(W, x2, x1, b))
    assert abs(v - vn) <= 1e-11 * scale


def test_identity_at_the_core_level():
    """Per direction: infonce_core on sqrt(c)-normalised outputs, c = 1/tau, equals the view-1
    half of NT-Xent; swapping the views gives the view-2 half."""
    from minissl.losses.reference import infonce_core

    rng = np.random.default_rng(6)
    z1, z2 = rng.standard_normal((2, 6, 3))
    tau = 0.4
    y1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True) / math.sqrt(tau)
    y2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True) / math.sqrt(tau)
    va = infonce_core(y1, y2, negatives="both")[0]
    vb = infonce_core(y2, y1, negatives="both")[0]
    assert simclr_core(z1, z2, tau)[0] == pytest.approx(0.5 * (va + vb), rel=1e-13)
    # and the one-direction value is *not* the symmetric loss (the two halves differ)
    assert abs(va - vb) > 1e-3


# --------------------------------------------------------------------------- torch (optional)


@pytest.mark.parametrize("decoupled", [False, True])
def test_matches_torch_autograd(decoupled):
    torch = pytest.importorskip("torch")
    W, x1, x2, b = _problem(n=8, d0=5, d1=4, seed=7, bias=True)
    tau = 0.2
    Wt = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    z = torch.cat([torch.tensor(x1) @ Wt.T + bt, torch.tensor(x2) @ Wt.T + bt])
    u = torch.nn.functional.normalize(z, dim=1, eps=1e-12)
    logits = u @ u.T / tau
    n2 = z.shape[0]
    pos = (torch.arange(n2) + n2 // 2) % n2
    mask = torch.eye(n2, dtype=torch.bool)
    if decoupled:
        mask[torch.arange(n2), pos] = True
    positive = logits[torch.arange(n2), pos]
    ref = (torch.logsumexp(logits.masked_fill(mask, float("-inf")), dim=1) - positive).mean()
    if not decoupled:  # the textbook form: cross-entropy with the positive as the label
        ce = torch.nn.functional.cross_entropy(logits.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf")), pos)
        assert ce.item() == pytest.approx(ref.item(), rel=1e-14)
    ref.backward()
    v, dW, db = minissl.get_loss("simclr", temperature=tau, decoupled=decoupled).value_and_grad(W, x1, x2, b)
    assert v == pytest.approx(ref.item(), rel=1e-13)
    np.testing.assert_allclose(dW, Wt.grad.numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-11, atol=1e-13)


# --------------------------------------------------------------------------- arguments, refusals


@pytest.mark.parametrize("tau", [0.0, -0.5])
def test_temperature_must_be_positive(tau):
    with pytest.raises(ValueError, match="temperature"):
        minissl.get_loss("simclr", temperature=tau)
    with pytest.raises(ValueError, match="temperature"):
        etf_loss(4, temperature=tau)


def test_refuses_normalize_and_c_and_bad_decoupled():
    with pytest.raises(ValueError, match=r"normalize == True.*simclr.*already normalises"):
        minissl.get_loss("simclr", normalize=True)
    with pytest.raises(ValueError, match=r"c == 2\.0.*temperature"):
        minissl.get_loss("simclr", c=2.0)
    with pytest.raises(TypeError, match="decoupled"):
        minissl.get_loss("simclr", decoupled="yes")
    with pytest.raises(TypeError, match="unknown parameter 'alpha'"):
        minissl.get_loss("simclr", alpha=0.0)


def test_has_no_compiled_kernel_and_no_theory():
    loss = minissl.get_loss("simclr")
    assert "simclr" in minissl.LOSS_NAMES
    assert loss.engine == "numba" and not loss.accelerated
    W, x1, x2, _ = _problem()
    assert loss.value(W, x1, x2) == minissl.get_loss("simclr", engine="numpy").value(W, x1, x2)
    A0, C = np.diag([1.0, 2.0]), np.eye(2)
    for fn in (minissl.effective_B, minissl.paper_B, minissl.effective_landscape, minissl.predict):
        with pytest.raises(ValueError, match="loss 'simclr' has no"):
            fn(loss, A0, C)
    with pytest.raises(ValueError, match="loss 'simclr' has no effective landscape"):
        minissl.simulate("simclr", model="effective", steps=5, n=8)


def test_simulate_end_to_end_is_deterministic():
    kw = dict(temperature=0.5, steps=200, n=64, seed=3, warn=False)
    a = minissl.simulate(loss="simclr", **kw)
    b = minissl.simulate(loss="simclr", **kw)
    assert a.settings["compiled_loop"] is False and a.loss.name == "simclr"
    assert np.all(np.isfinite(a.W)) and np.all(np.isfinite(a.history["loss"]))
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    assert a.history["loss"][-1] < a.history["loss"][0]  # it learned something
    c = minissl.simulate(loss="simclr", **{**kw, "seed": 4})
    assert not np.array_equal(a.W, c.W)


# --------------------------------------------------------------------------- Exercise 6

N_ETF = 8


def test_exercise6_simplex_spans_n_minus_1_dimensions():
    n, d = N_ETF, 50
    E = simplex_etf(n, d, seed=0)
    G = E @ E.T
    np.testing.assert_allclose(np.diag(G), 1.0, atol=1e-14)
    np.testing.assert_allclose(G[~np.eye(n, dtype=bool)], -1.0 / (n - 1), atol=1e-14)
    np.testing.assert_allclose(E.sum(0), 0.0, atol=1e-13)  # centred already: they sum to zero
    Ec = E - E.mean(0)
    cov = Ec.T @ Ec / n  # (d, d) covariance of the N points
    assert numerical_rank(cov, 1e-10) == n - 1
    assert numerical_rank(Ec @ Ec.T, 1e-10) == n - 1  # centred Gram
    # covariance eigenvalues: 1/(n-1) with multiplicity n-1 (tight frame), so stable rank n-1
    assert stable_rank(cov) == pytest.approx(n - 1, rel=1e-12)
    ev = np.linalg.eigvalsh(cov)[::-1]
    np.testing.assert_allclose(ev[: n - 1], 1.0 / (n - 1), rtol=1e-12)


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_exercise6_etf_minimises_the_loss_with_the_closed_form(decoupled, tau):
    n, d = N_ETF, 40
    rng = np.random.default_rng(8)
    E = simplex_etf(n, d, seed=1)
    v_etf = embedding_loss(E, tau, decoupled)[0]
    # closed form: each anchor sees its copy (s = 1) and 2(n-1) copies at s = -1/(n-1)
    a = n / ((n - 1) * tau)
    closed = math.log(2 * (n - 1)) - a if decoupled else math.log1p(2 * (n - 1) * math.exp(-a))
    assert v_etf == pytest.approx(closed, rel=1e-12, abs=1e-13)
    assert etf_loss(n, tau, decoupled) == pytest.approx(closed, rel=1e-15, abs=1e-15)
    assert simclr_core(E, E, tau, decoupled)[0] == v_etf
    # the ETF is a stationary point on the sphere (zero projected gradient) ...
    assert np.abs(embedding_loss(E, tau, decoupled)[1]).max() < 1e-12
    # ... and lower than random unit vectors and than every small perturbation tried
    for _ in range(200):
        R = rng.standard_normal((n, d))
        assert embedding_loss(R, tau, decoupled)[0] > v_etf
    for eps in (1e-3, 1e-2, 1e-1):
        for _ in range(200):
            P = E + eps * rng.standard_normal((n, d))
            P /= np.linalg.norm(P, axis=1, keepdims=True)
            assert embedding_loss(P, tau, decoupled)[0] > v_etf


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_exercise6_descent_collapses_to_n_minus_1_dimensions(decoupled, seed):
    n, tau = N_ETF, 0.5
    d = 2 * n
    u0 = np.random.default_rng(seed).standard_normal((n, d))
    assert numerical_rank(u0.T @ u0, 1e-6) == n  # the start uses n dimensions
    u, values = descend_on_sphere(u0, tau, decoupled, steps=3000, lr=0.5)
    G = u @ u.T
    np.testing.assert_allclose(np.diag(G), 1.0, atol=1e-14)
    np.testing.assert_allclose(G[~np.eye(n, dtype=bool)], -1.0 / (n - 1), atol=1e-8)
    assert values[-1] == pytest.approx(etf_loss(n, tau, decoupled), abs=1e-12)
    assert np.all(np.diff(values) <= 1e-12)  # monotone descent
    assert numerical_rank(u.T @ u, 1e-8) == n - 1  # dimensional collapse: n - 1 of d = 2n
    assert stable_rank(u.T @ u) == pytest.approx(n - 1, rel=1e-7)


def test_exercise6_two_free_views_reach_the_etf_too():
    """With z1 and z2 free (2N unit vectors, no tie), descent aligns the views and reaches the ETF."""
    n, tau = N_ETF, 0.5
    rng = np.random.default_rng(9)

    def unit(z):
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    z1, z2 = unit(rng.standard_normal((n, 2 * n))), unit(rng.standard_normal((n, 2 * n)))
    for _ in range(3000):
        v, g1, g2 = simclr_core(z1, z2, tau)
        if math.sqrt(float((g1**2).sum() + (g2**2).sum())) < 1e-12:
            break
        z1, z2 = unit(z1 - 0.5 * g1), unit(z2 - 0.5 * g2)
    np.testing.assert_allclose(z1, z2, atol=1e-10)
    np.testing.assert_allclose((z1 @ z1.T)[~np.eye(n, dtype=bool)], -1.0 / (n - 1), atol=1e-8)
    assert v == pytest.approx(etf_loss(n, tau), abs=1e-12)
    assert numerical_rank(np.concatenate([z1, z2]).T @ np.concatenate([z1, z2]), 1e-8) == n - 1


def test_simplex_etf_arguments():
    with pytest.raises(ValueError, match="d == 2"):
        simplex_etf(5, 2)
    E = simplex_etf(3)
    assert E.shape == (3, 2)
    np.testing.assert_allclose(E @ E.T, [[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1]], atol=1e-15)


def test_exercise6_helpers_validate_input():
    from minissl.losses import simclr as SC

    with pytest.raises(ValueError, match="u0 has 1 zero row"):
        SC.descend_on_sphere(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="u0 has shape"):
        SC.descend_on_sphere(np.ones(3))
    with pytest.raises(ValueError, match="temperature == 0.0"):
        SC.simclr_core(np.eye(3), np.eye(3), temperature=0.0)
    with pytest.raises(ValueError, match="temperature == -1.0"):
        SC.embedding_loss(np.eye(3), temperature=-1.0)
