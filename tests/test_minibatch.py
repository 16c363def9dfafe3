"""Minibatch training (``batch_size``): the batches, the compiled loop against the NumPy loop,
a step reconstructed by hand, the full batch unchanged, and bad input."""

import numpy as np
import pytest

from minissl import get_loss, simulate
from minissl.data import make_augmentation
from minissl.train.minibatch import choose_batch, choose_batch_compiled


@pytest.mark.parametrize("n, b", [(10, 10), (10, 3), (257, 16), (5, 2)])
def test_compiled_and_numpy_batches_are_the_same_distinct_indices(n, b):
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    perm, idx = np.empty(n, np.int64), np.empty(b, np.int64)
    for _ in range(20):
        a = choose_batch(r1, n, b)
        choose_batch_compiled(r2, perm, idx)
        assert np.array_equal(a, idx)
        assert len(set(a.tolist())) == b and a.min() >= 0 and a.max() < n
    assert r1.random() == r2.random()  # both consumed exactly b uniforms per batch


def test_batches_are_uniform():
    """Each sample is in a batch with probability B/N, each ordered pair with B(B-1)/(N(N-1))."""
    n, b, reps = 12, 4, 60000
    rng = np.random.default_rng(0)
    hits = np.zeros(n)
    pair = np.zeros((n, n))
    for _ in range(reps):
        a = choose_batch(rng, n, b)
        hits[a] += 1
        pair[a[0], a[1]] += 1
    p = b / n
    z = (hits - reps * p) / np.sqrt(reps * p * (1 - p))
    assert np.max(np.abs(z)) < 4.5, z
    # the first two positions: a uniform ordered pair of distinct samples
    off = pair[~np.eye(n, dtype=bool)]
    q = 1.0 / (n * (n - 1))
    z2 = (off - reps * q) / np.sqrt(reps * q * (1 - q))
    assert np.max(np.abs(z2)) < 5.0 and np.trace(pair) == 0


SETTINGS = dict(n=40, variances=(0.5, 1.0, 2.0), sigma=1.0, steps=30, lr=0.05, optimizer="sgd", seed=4, warn=False,
                check_draws=4)


@pytest.mark.parametrize("loss, params", [("beta", {"beta": 0.5}), ("infonce", {"normalize": True}), ("scl", {}),
                                          ("barlow", {})])
@pytest.mark.parametrize("noise", ["fresh", "fixed"])
def test_compiled_minibatch_run_equals_the_numpy_loop(loss, params, noise):
    kw = dict(SETTINGS, batch_size=12, noise=noise, replicates=2, **params)
    a = simulate(loss, engine="numba", **kw)
    b = simulate(loss, engine="numpy", **kw)
    assert a.settings["compiled_loop"] and not b.settings["compiled_loop"]
    assert a.settings["batch_size"] == 12
    np.testing.assert_allclose(a.history["W"], b.history["W"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-9)


def test_one_sgd_step_is_the_gradient_of_the_drawn_batch():
    """Rebuild step 0 by hand: the batch from the noise stream, views of those rows, the loss's
    gradient on them (its negatives: the batch only), one SGD step."""
    kw = dict(n=30, variances=(1.0, 2.0), sigma=0.7, steps=1, lr=0.1, optimizer="sgd", lr_schedule="constant",
              seed=2, warn=False, check_draws=2, record_every=1, window=1)
    res = simulate("beta", beta=0.5, batch_size=7, **kw)
    data_ss, init_ss, noise_ss, _ = np.random.SeedSequence(2).spawn(4)
    full = simulate("beta", beta=0.5, **{**kw, "steps": 1})  # same data and initial W
    W0 = full.history["W"][0]
    x = full.dataset.x
    rng = np.random.default_rng(noise_ss)
    rows = choose_batch(rng, 30, 7)
    x1, x2 = make_augmentation("isotropic", 2, sigma=0.7).views(x[rows], rng, 1)
    _, gW, _ = get_loss("beta", beta=0.5, engine="numpy").value_and_grad(W0, x1[0], x2[0])
    np.testing.assert_allclose(res.W, W0 - 0.1 * gW, rtol=1e-10, atol=1e-14)
    assert not np.allclose(res.W, full.W)  # the minibatch step differs from the full-batch one


def test_batch_size_n_is_the_full_batch_bit_for_bit():
    a = simulate("beta", beta=0.5, **SETTINGS)
    b = simulate("beta", beta=0.5, batch_size=40, **SETTINGS)
    assert np.array_equal(a.W, b.W) and a.settings["batch_size"] == b.settings["batch_size"] == 40


@pytest.mark.parametrize("extra, fragment", [
    ({"batch_size": 1}, "batch_size == 1"),
    ({"batch_size": 41}, "batch_size == 41 exceeds the 40 training samples"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": 8, "model": "effective"}, "applies to model='exact'"),
    ({"batch_size": 8, "control_variate": True}, "control_variate"),
])
def test_bad_batch_size_is_refused_before_any_work(extra, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        simulate("beta", beta=0.5, **{**SETTINGS, **extra})


def test_cli_batch_size_is_reported_and_recorded(tmp_path):
    import json

    from click.testing import CliRunner

    from minissl.cli import main

    path = tmp_path / "r.json"
    r = CliRunner().invoke(main, ["simulate", "--loss", "beta", "--beta", "0.5", "--n", "40", "--steps", "30",
                                  "--batch-size", "8", "--json", str(path)])
    assert r.exit_code == 0, r.output
    assert "minibatch 8 of 40" in r.output
    rep = json.loads(path.read_text())
    assert rep["settings"]["batch_size"] == 8
    ref = simulate("beta", beta=0.5, n=40, steps=30, batch_size=8, sigma=1.8, warn=False)
    np.testing.assert_allclose(rep["learned_eigenvalues"], ref.eigenvalues, rtol=1e-10)


@pytest.mark.parametrize("args, fragment", [
    (["--batch-size", "1"], "--batch-size"),
    (["--batch-size", "300"], "exceeds --n == 256"),
    (["--batch-size", "8", "--model", "effective"], "--batch-size"),
    (["--loss", "simsiam", "--batch-size", "8"], "--batch-size"),
])
def test_cli_bad_batch_size_exits_2(args, fragment):
    from click.testing import CliRunner

    from minissl.cli import main

    r = CliRunner().invoke(main, ["simulate", *args])
    assert r.exit_code == 2 and fragment in r.output, r.output
