"""CUDA kernels of the MLP and the landscape grid, on a real GPU or in Numba's CUDA simulator.

The kernels run in a subprocess: on a real GPU when ``numba.cuda.is_available()`` says one is
present, otherwise with ``NUMBA_ENABLE_CUDASIM=1`` (the simulator must be enabled before Numba
is imported). Sizes cross block edges (13 samples, a 3 x 3 grid = 9 points, 4 threads per
block), and every kernel also runs as one block of 4 threads so that its grid-stride loop
covers items beyond the launch; both are compared with the NumPy reference. This project's CI
has no GPU, so there the simulator runs.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

SCRIPT = r'''
import json, numpy as np
from minissl import get_loss, gaussian_data
from minissl.data import IsotropicNoise
from minissl.nonlinear import init_mlp, value_and_grad, plane_probe
from minissl.nonlinear import cuda as C
out = {"available": C.available(), "grad": [], "grid": [], "stride": []}
rng = np.random.default_rng(0)
for act in ("tanh", "relu"):
    mlp = init_mlp(3, (5, 4), 2, act, seed=1)
    x1 = rng.standard_normal((13, 3)); x2 = x1 + rng.standard_normal((13, 3))
    for loss in (get_loss("beta", beta=0.5), get_loss("infonce", normalize=True)):
        v0, g0 = value_and_grad(mlp, loss, x1, x2, engine="numpy", weight_decay=0.01)
        v1, g1 = C.value_and_grad_gpu(mlp, loss, x1, x2, weight_decay=0.01, threads=4)
        v2, g2 = value_and_grad(mlp, loss, x1, x2, engine="cuda", weight_decay=0.01)
        v3, g3 = C.value_and_grad_gpu(mlp, loss, x1, x2, weight_decay=0.01, threads=4, blocks=1)
        out["grad"].append([abs(v0 - v1), max(float(np.max(np.abs(a - b))) for a, b in zip(g0, g1)),
                            max(float(np.max(np.abs(a - b))) for a, b in zip(g1, g2))])
        out["stride"].append([abs(v1 - v3), max(float(np.max(np.abs(a - b))) for a, b in zip(g1, g3))])
data = gaussian_data(7, [1.0, 2.0], seed=0)
mlp = init_mlp(2, (4, 3), 2, "tanh", seed=2)
r = np.linspace(-1, 1, 3)
for loss in (get_loss("beta", beta=0.5), get_loss("infonce", negatives="both"),
             get_loss("weighted", alpha=0.0)):
    G0 = plane_probe(mlp, loss, data.x, IsotropicNoise(0.8, 2), r, draws=2)
    G1 = C.plane_probe_gpu(mlp, loss, data.x, IsotropicNoise(0.8, 2), r, draws=2, threads=4)
    G2 = C.plane_probe_gpu(mlp, loss, data.x, IsotropicNoise(0.8, 2), r, draws=2, threads=4, blocks=1)
    out["grid"].append(float(np.max(np.abs(G0 - G1)) / np.max(np.abs(G0))))
    out["stride"].append([float(np.max(np.abs(G1 - G2)))])
print("RESULT" + json.dumps(out))
'''


def _real_gpu():
    """Whether Numba sees a CUDA device (asked in a clean subprocess, without the simulator)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    probe = "from numba import cuda; print('GPU', bool(cuda.is_available()))"
    try:
        res = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0 and "GPU True" in res.stdout


@pytest.fixture(scope="module")
def simulated():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    real = _real_gpu()
    if not real:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    print(f"CUDA kernels run on {'a real GPU' if real else 'the Numba CUDA simulator'}")
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_device_is_used(simulated):
    """The kernels ran (a real GPU, or the simulator standing in for one)."""
    assert simulated["available"]


def test_grid_stride_covers_every_item(simulated):
    """One block of 4 threads over 13 samples / 9 grid points gives the same bits as a full launch."""
    assert len(simulated["stride"]) == 7
    for row in simulated["stride"]:
        assert max(row) == 0.0, simulated["stride"]


def test_mlp_kernels_match_the_reference(simulated):
    """Value and every gradient (tanh/ReLU, beta-InfoNCE and normalized InfoNCE, weight decay)."""
    for dv, dg, dg_engine in simulated["grad"]:
        assert dv <= 1e-12 and dg <= 1e-12 and dg_engine == 0.0, (dv, dg, dg_engine)


def test_grid_kernel_matches_the_reference(simulated):
    """Plane probe: beta-InfoNCE, InfoNCE with both views as negatives, weighted with alpha = 0."""
    assert max(simulated["grid"]) <= 1e-12, simulated["grid"]


@pytest.mark.parametrize("kw", [{"threads": 0}, {"threads": 2.5}, {"blocks": 0}, {"blocks": True},
                                {"blocks": -3}, {"threads": None}, {"threads": 1025}])
def test_bad_launch_sizes_are_clear_errors(kw):
    """Checked before any device work, so this holds with or without a GPU."""
    from minissl import get_loss
    from minissl.nonlinear import cuda, init_mlp

    mlp = init_mlp(2, (3, 3), 2, "tanh", seed=0)
    x = np.zeros((4, 2))
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"{name}="):
        cuda.value_and_grad_gpu(mlp, get_loss("beta", beta=0.5), x, x, **kw)
    with pytest.raises(ValueError, match=f"{name}="):
        cuda.plane_probe_gpu(mlp, get_loss("beta", beta=0.5), x, None, [0.0], **kw)


def test_gpu_request_without_device_is_a_clear_error():
    from minissl.cli import main
    from minissl.nonlinear import cuda

    if cuda.available():  # a real GPU is present: require() must then accept it
        cuda.require()  # pragma: no cover - GPU machines only
        return
    with pytest.raises(RuntimeError, match="minissl\\[gpu\\]"):
        cuda.require()
    res = CliRunner().invoke(main, ["nonlinear", "--device", "gpu"])
    assert res.exit_code == 2 and "NUMBA_ENABLE_CUDASIM" in res.output
