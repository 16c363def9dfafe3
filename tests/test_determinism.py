"""The same inputs give the same bits whether a kernel was just compiled or loaded from
Numba's cache (``minissl._config.FASTMATH`` leaves out ``reassoc`` for this reason).

Each kernel runs in two fresh interpreters that share an empty ``NUMBA_CACHE_DIR``: the
first compiles and writes the cache, the second loads it. Before the fix (``reassoc`` and
plain ``s += x[i]`` sums) the InfoNCE gradient differed in the last bits between the two,
and the golden runs changed with whether they were the first run after an install. The
sums now spell out their order (:mod:`minissl.losses.lanesum`), so this guards against a
new kernel bringing back an order LLVM may choose.
"""

import os
import subprocess
import sys


SCRIPT = r"""
import hashlib, sys
import numpy as np
from minissl.losses.kernels import infonce_core, infonce_linear
from minissl.losses.kernels_scl import scl_linear
from minissl.losses.kernels_decorrelation import barlow_linear

rng = np.random.default_rng(7)
n, d = 203, 11          # not multiples of the vector width: tiles and tails both run
z1 = 0.5 * rng.normal(size=(n, d))
z2 = z1 + 0.1 * rng.normal(size=(n, d))
W = 0.3 * rng.normal(size=(d, 9))
x1 = rng.normal(size=(n, 9))
x2 = x1 + 0.1 * rng.normal(size=(n, 9))
outs = [infonce_core(z1, z2, 1.0, 0.5, "both", parallel=False)]
outs.append(infonce_linear(W.astype(np.float32), x1.astype(np.float32), x2.astype(np.float32), None,
                           1.0, 0.5, "view1", True, 1.0, 1e-8, 0.01, parallel=False))
outs.append(scl_linear(W, x1, x2, None, "view1", False, 1.0, 1e-8, 0.0, parallel=False))
outs.append(barlow_linear(W, x1, x2, None, 0.005, True, 1e-5, False, 1.0, 1e-8, 0.0))
h = hashlib.sha256()
for out in outs:
    for a in out:
        if a is not None:
            h.update(np.asarray(a, dtype=np.float64).tobytes())
print(h.hexdigest())
"""


def test_fresh_compile_and_cache_load_give_identical_bits(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), MINISSL_NUMBA_CACHE="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                           timeout=900) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
    assert any((tmp_path / "cache").rglob("*.nbc")), "the first run wrote no cache: nothing was compared"
    first, second = (r.stdout.strip() for r in runs)
    assert len(first) == 64
    assert first == second
