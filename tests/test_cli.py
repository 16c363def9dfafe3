"""The ``minissl`` command via click's CliRunner."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import minissl
from minissl.cli import main

FAST = ["--n", "24", "--steps", "40", "--variances", "0.5,1,2"]


def _run(args):
    res = CliRunner().invoke(main, args)
    assert "Traceback" not in res.output, res.output
    return res


def test_version_and_help():
    res = _run(["--version"])
    assert res.exit_code == 0 and minissl.__version__ in res.output
    assert _run(["--help"]).exit_code == 0
    h = _run(["simulate", "--help"])
    assert h.exit_code == 0
    for opt in ("--loss", "--alpha", "--beta", "--sigma", "--theta", "--n", "--dim", "--steps", "--lr",
                "--optimizer", "--seed", "--normalize", "--bias", "--weight-decay", "--model", "--json"):
        assert opt in h.output


def test_simulate_prints_learned_and_predicted():
    res = _run(["simulate", "--loss", "beta", "--beta", "0.5", *FAST])
    assert res.exit_code == 0, res.output
    assert "learned eig(W^T W)" in res.output and "predicted" in res.output
    assert "stable rank" in res.output and "converged" in res.output


def test_json_output_matches_library_and_is_atomic(tmp_path):
    out = tmp_path / "res.json"
    res = _run(["simulate", "--loss", "infonce", *FAST, "--seed", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert os.listdir(tmp_path) == ["res.json"]  # no temporary file left behind
    lib = minissl.simulate("infonce", n=24, steps=40, variances=[0.5, 1, 2], sigma=1.8, seed=2,
                           warn=False)
    np.testing.assert_allclose(data["learned_eigenvalues"], lib.eigenvalues, rtol=1e-12)
    assert data["settings"]["loss"] == "infonce" and data["settings"]["seed"] == 2
    assert len(data["predicted_eigenvalues"]) == 3


@pytest.mark.parametrize("extra", [
    ["--loss", "vicreg"],
    ["--loss", "barlow"],
    ["--loss", "barlow", "--raw", "--lam", "1.0"],
    ["--loss", "scl", "--negatives", "both"],
    ["--loss", "weighted", "--alpha", "0.2"],
    ["--loss", "infonce", "--normalize", "--bias"],
    ["--loss", "beta", "--weight-decay", "0.01", "--model", "effective"],
    ["--loss", "beta", "--augmentation", "structured", "--theta", "0.9"],
    ["--loss", "infonce", "--augmentation", "scale", "--scale-b", "0.5"],
    ["--loss", "infonce", "--noise", "fixed", "--optimizer", "sgd", "--replicates", "2"],
])
def test_every_loss_and_variant_runs(extra):
    res = _run(["simulate", *FAST, *extra])
    assert res.exit_code == 0, res.output
    assert "learned eig(W^T W)" in res.output


def test_unavailable_prediction_is_explained():
    res = _run(["simulate", "--loss", "vicreg", *FAST])
    assert "not available" in res.output and "vicreg" in res.output


def test_normalized_run_states_rescaling():
    res = _run(["simulate", "--loss", "infonce", "--normalize", *FAST])
    assert "rescaled" in res.output


def test_divergence_is_a_clean_error():
    res = _run(["simulate", "--loss", "infonce", "--optimizer", "sgd", "--lr", "1e6", *FAST])
    assert res.exit_code == 1
    assert "diverged" in res.output


def test_compile_notice_speaks_only_while_numba_compiles(capsys):
    """The first run's "compiling" line appears when the block holds Numba's compiler lock for longer than
    the delay, with progress lines after; a block that is slow without compiling prints nothing."""
    import time

    from numba.core.compiler_lock import global_compiler_lock

    from minissl.cli.output import compile_notice

    with compile_notice(after=0.05, every=0.1):
        with global_compiler_lock:  # what Numba holds while it compiles
            time.sleep(0.45)
    err = capsys.readouterr().err
    assert "minissl: compiling Numba kernels" in err
    assert "still compiling" in err
    with compile_notice(after=0.05, every=0.1):
        time.sleep(0.3)
    assert capsys.readouterr().err == ""


def test_dtype_float32_trains_in_float32_and_agrees_with_float64(tmp_path):
    """--dtype float32: the run is float32 end to end, in the compiled loop, and its learned
    spectrum matches the float64 run of the same seed to float32 accuracy over a short run."""
    out = {}
    for dt in ("float64", "float32"):
        js = tmp_path / f"{dt}.json"
        res = _run(["simulate", "--n", "64", "--steps", "200", "--dtype", dt, "--json", str(js)])
        assert res.exit_code == 0, res.output
        out[dt] = json.loads(js.read_text())
    s32 = out["float32"]["settings"]
    assert s32["dtype"] == "float32" and s32["compiled_loop"] and out["float64"]["settings"]["compiled_loop"]
    e64 = np.array(out["float64"]["learned_eigenvalues"])
    e32 = np.array(out["float32"]["learned_eigenvalues"])
    assert np.abs(e32 - e64).max() <= 1e-4 * e64.max()


def test_dtype_float32_outside_the_infonce_family_says_why_it_runs_in_python():
    res = _run(["simulate", "--loss", "scl", "--n", "32", "--steps", "20", "--dtype", "float32"])
    assert res.exit_code == 0, res.output
    assert "float32 outside the InfoNCE family" in res.output


def test_dtype_is_refused_for_the_siamese_methods():
    res = _run(["simulate", "--loss", "simsiam", "--dtype", "float32"])
    assert res.exit_code == 2 and "--dtype" in res.output
