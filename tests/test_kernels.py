"""Numba kernels against the NumPy reference (values and gradients), determinism, and the
kernel source run as Python (NUMBA_DISABLE_JIT=1)."""

import hashlib
import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _helpers import assert_parity

import minissl
from minissl.losses import kernels, reference

CONFIGS = [
    ("infonce", {}),
    ("infonce", {"negatives": "both"}),
    ("weighted", {"alpha": 0.0}),
    ("weighted", {"alpha": 0.3, "negatives": "both"}),
    ("beta", {"beta": 0.5}),
    ("beta", {"beta": 2.0, "alpha": 0.5, "negatives": "both"}),
]
SHAPES = [(7, 4, 3), (2, 3, 1), (2, 1, 1), (37, 5, 6), (65, 3, 3)]  # (N, d0, d1); 65 crosses chunk edges


def _problem(N, d0, d1, dtype, bias, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    W = (scale * rng.normal(size=(d1, d0))).astype(dtype)
    x1 = rng.normal(size=(N, d0)).astype(dtype)
    x2 = (x1 + 0.5 * rng.normal(size=(N, d0))).astype(dtype)
    b = rng.normal(size=d1).astype(dtype) if bias else None
    return W, x1, x2, b


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c[0] + "-" + "-".join(f"{k}{v}" for k, v in c[1].items()))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N%d-d0%d-d1%d" % s)
@pytest.mark.parametrize("variant", list(itertools.product([False, True], [False, True], [0.0, 0.1])),
                         ids=lambda v: f"norm{int(v[0])}-bias{int(v[1])}-wd{v[2]}")
def test_linear_step_parity_float64(cfg, shape, variant):
    name, params = cfg
    normalize, bias, wd = variant
    W, x1, x2, b = _problem(*shape, np.float64, bias)
    fast = minissl.get_loss(name, engine="numba", normalize=normalize, c=2.0, weight_decay=wd, **params)
    ref = minissl.get_loss(name, engine="numpy", normalize=normalize, c=2.0, weight_decay=wd, **params)
    assert fast.accelerated and not ref.accelerated
    v1, g1, b1 = fast.value_and_grad(W, x1, x2, b)
    v0, g0, b0 = ref.value_and_grad(W, x1, x2, b)
    assert_parity(v1, v0, np.float64)
    assert_parity(g1, g0, np.float64)
    if bias:
        assert_parity(b1, b0, np.float64)
    else:
        assert b1 is None


OTHER_CONFIGS = [
    ("scl", {}),
    ("scl", {"negatives": "both"}),
    ("barlow", {}),
    ("barlow", {"standardize": False, "lam": 0.3}),
    ("vicreg", {}),
    ("vicreg", {"inv": 1.0, "var": 2.0, "cov": 0.5}),
]


@pytest.mark.parametrize("cfg", OTHER_CONFIGS, ids=lambda c: c[0] + "-" + "-".join(f"{k}{v}" for k, v in c[1].items()))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N%d-d0%d-d1%d" % s)
@pytest.mark.parametrize("variant", list(itertools.product([False, True], [False, True], [0.0, 0.1])),
                         ids=lambda v: f"norm{int(v[0])}-bias{int(v[1])}-wd{v[2]}")
def test_other_losses_step_parity_float64(cfg, shape, variant):
    name, params = cfg
    normalize, bias, wd = variant
    # scale 0.3: VICReg's hinge sqrt(var + eps) stays away from its kink at gamma = 1
    W, x1, x2, b = _problem(*shape, np.float64, bias, scale=0.3)
    fast = minissl.get_loss(name, engine="numba", normalize=normalize, c=2.0, weight_decay=wd, **params)
    ref = minissl.get_loss(name, engine="numpy", normalize=normalize, c=2.0, weight_decay=wd, **params)
    v1, g1, b1 = fast.value_and_grad(W, x1, x2, b)
    v0, g0, b0 = ref.value_and_grad(W, x1, x2, b)
    assert_parity(v1, v0, np.float64)
    assert_parity(g1, g0, np.float64)
    if bias:
        assert_parity(b1, b0, np.float64)


@pytest.mark.parametrize("cfg", CONFIGS[:3] + CONFIGS[4:5] + OTHER_CONFIGS[::2])
@pytest.mark.parametrize("normalize", [False, True])
def test_linear_step_parity_float32(cfg, normalize):
    name, params = cfg
    W, x1, x2, b = _problem(37, 5, 6, np.float32, True)
    fast = minissl.get_loss(name, engine="numba", normalize=normalize, **params)
    ref = minissl.get_loss(name, engine="numpy", normalize=normalize, **params)
    v1, g1, b1 = fast.value_and_grad(W, x1, x2, b)
    v0, g0, b0 = ref.value_and_grad(W, x1, x2, b)
    assert g1.dtype == np.float32 and b1.dtype == np.float32
    assert_parity(v1, v0, np.float32)
    assert_parity(g1, g0, np.float32)
    assert_parity(b1, b0, np.float32)


@pytest.mark.parametrize("negatives", ["view1", "both"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.0, 1.0), (0.4, 0.6)])
@pytest.mark.parametrize("N,d", [(2, 1), (9, 4), (130, 7)])
def test_representation_kernel_parity(negatives, alpha, beta, N, d):
    rng = np.random.default_rng(1)
    z1 = rng.normal(size=(N, d))
    z2 = z1 + 0.5 * rng.normal(size=(N, d))
    ref = reference.infonce_core(z1, z2, alpha, beta, negatives)
    for parallel in (True, False):
        out = kernels.infonce_core(z1, z2, alpha, beta, negatives, parallel=parallel)
        for a, r in zip(out, ref):
            assert_parity(a, r, np.float64)


def test_large_distances_do_not_overflow():
    """Far-apart outputs: logits down to ~-1e4 (exp clamps at -700) stay finite and exact."""
    rng = np.random.default_rng(2)
    z1 = 40.0 * rng.normal(size=(20, 3))
    z2 = z1 + rng.normal(size=(20, 3))
    ref = reference.infonce_core(z1, z2, 1.0, 1.0, "both")
    out = kernels.infonce_core(z1, z2, 1.0, 1.0, "both")
    for a, r in zip(out, ref):
        assert np.all(np.isfinite(a))
        assert_parity(a, r, np.float64)


def test_vectorised_exp_is_accurate():
    x = np.concatenate([np.linspace(-700.0, 0.0, 200001), -np.logspace(-300, 2.5, 1000), [0.0, -0.0]])
    rel = np.abs(kernels.exp_row(x) / np.exp(x) - 1.0)
    assert rel.max() < 5e-16  # ~1 ulp; the Cody-Waite split must not be reassociated
    below = kernels.exp_row(np.array([-701.0, -1e300]))
    assert np.all(below == np.exp(-700.0))  # clamped, not NaN


def test_vectorised_float32_exp_is_accurate():
    """minissl.losses.vexp.exp_row32: float64 range reduction, degree-7 float32 polynomial."""
    x = np.concatenate([np.linspace(-87.0, 0.0, 200001), -np.logspace(-30, np.log10(87.0), 1000), [0.0, -0.0]])
    out = kernels.exp_row(x, np.float32)
    assert out.dtype == np.float32
    rel = np.abs(out.astype(np.float64) / np.exp(x) - 1.0)
    assert rel.max() < np.finfo(np.float32).eps  # measured 0.62 eps on this grid
    below = kernels.exp_row(np.array([-88.0, -1e300]), np.float32)
    assert np.all(below == np.float32(np.exp(-87.0))) and np.all(below > np.finfo(np.float32).tiny)


def test_exp_arguments_above_the_range_are_clamped_not_wrapped():
    """The exponent bits of 2^k must not overflow into the sign bit (exp(95) once gave -1.6e-36)."""
    big64 = kernels.exp_row(np.array([709.5, 800.0, 1e300]))
    assert np.allclose(big64, np.exp(709.0), rtol=1e-15)
    big32 = kernels.exp_row(np.array([88.8, 89.2, 95.0]), np.float32)
    assert np.all(np.isfinite(big32)) and np.allclose(big32, np.exp(88.0), rtol=1e-6)


@pytest.mark.parametrize("negatives", ["both", "view1"])  # the row-wise and the symmetric pair kernel
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_serial_and_parallel_drivers_are_bit_identical(negatives, dtype):
    W, x1, x2, b = _problem(203, 7, 5, dtype, True, scale=0.3)
    outs = [kernels.infonce_linear(W, x1, x2, b, 0.3, 0.7, negatives, True, 2.0, 1e-12, 0.01, parallel=p)
            for p in (True, False)]
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    np.testing.assert_array_equal(outs[0][2], outs[1][2])
    assert outs[0][0] == outs[1][0]


_HASH_SCRIPT = textwrap.dedent("""
    import hashlib, numpy as np
    from minissl.losses import kernels
    rng = np.random.default_rng(0)
    W = 0.3 * rng.normal(size=(5, 7)); x1 = rng.normal(size=(203, 7)); x2 = x1 + 0.4 * rng.normal(size=(203, 7))
    v, dW, db = kernels.infonce_linear(W, x1, x2, rng.normal(size=5), 0.3, 0.7, NEGATIVES, True, 2.0, 1e-12, 0.01)
    print(hashlib.sha1(np.concatenate([[v], dW.ravel(), db]).tobytes()).hexdigest())
""")


@pytest.mark.parametrize("negatives", ["both", "view1"])  # the row-wise and the symmetric pair kernel
def test_results_do_not_depend_on_thread_count(negatives):
    hashes = set()
    script = _HASH_SCRIPT.replace("NEGATIVES", repr(negatives))
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                             check=True)
        hashes.add(out.stdout.strip())
    assert len(hashes) == 1, hashes


_NOJIT_SCRIPT = textwrap.dedent("""
    import numpy as np, minissl, warnings
    from minissl.losses import kernels
    assert not hasattr(kernels._infonce_chunk, "signatures"), "JIT should be disabled"
    rng = np.random.default_rng(0)
    W = 0.5 * rng.normal(size=(3, 4)); x1 = rng.normal(size=(9, 4)); x2 = x1 + 0.3 * rng.normal(size=(9, 4))
    b = rng.normal(size=3)
    for norm, neg in ((False, "both"), (True, "both"), (False, "view1")):
        a = minissl.get_loss("beta", beta=0.5, negatives=neg, normalize=norm).value_and_grad(W, x1, x2, b)
        r = minissl.get_loss("beta", beta=0.5, negatives=neg, normalize=norm, engine="numpy").value_and_grad(W, x1, x2, b)
        assert abs(a[0] - r[0]) < 1e-12 and np.abs(a[1] - r[1]).max() < 1e-12 and np.abs(a[2] - r[2]).max() < 1e-12
    warnings.simplefilter("ignore")
    res = minissl.simulate("infonce", n=12, variances=[1.0, 2.0], steps=20, seed=0)
    assert res.settings["compiled_loop"] and np.all(np.isfinite(res.W))
    print("ok")
""")


def test_kernel_source_runs_with_jit_disabled():
    """NUMBA_DISABLE_JIT=1 runs the same kernel source as Python (what coverage measures)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _NOJIT_SCRIPT], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


@pytest.mark.parametrize("env, expected", [
    ({}, "3000"),                                  # nothing set: minissl's short spin
    ({"GOMP_SPINCOUNT": "7"}, "7"),               # the user's spin count is kept
    ({"OMP_WAIT_POLICY": "ACTIVE"}, None),         # the user's wait policy is kept, no spin count added
])
def test_thread_spin_policy_respects_the_user(env, expected):
    """minissl limits OpenMP spinning (robust under background load) only when the user chose nothing."""
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", "import os, minissl; print(os.environ.get('GOMP_SPINCOUNT'))"],
                         env={**base, **env}, capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(expected)
