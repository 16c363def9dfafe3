"""Regression tests for defects found in review (each failed before its fix)."""

import json
import math
import os
import re
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import minissl
from minissl import metrics
from minissl.cli import main
from minissl.metrics import COLLAPSE_SCALE, RANK_RTOL
from minissl.data import IsotropicNoise
from minissl.train import ConvergenceWarning


def _run(args):
    res = CliRunner().invoke(main, args)
    assert "Traceback" not in res.output, res.output
    return res


def test_compiled_and_python_loops_report_the_same_convergence():
    """The compiled path once measured drift against the final spectrum itself (always 0)."""
    kw = dict(loss="infonce", n=32, variances=[0.5, 1.0, 2.0], sigma=1.0, seed=0, lr=0.05, steps=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = minissl.simulate(engine="numba", **kw)
        b = minissl.simulate(engine="numpy", **kw)
    np.testing.assert_allclose(a.diagnostics["spectral_change"], b.diagnostics["spectral_change"], rtol=1e-6)
    assert a.converged == b.converged
    with pytest.raises(ValueError, match="record_every == 100, must be <= 25"):
        minissl.simulate(record_every=100, **kw)


def test_augmentation_dimension_must_match_data():
    with pytest.raises(ValueError, match="augmentation has dimension 3 but the data have d0 == 5"):
        minissl.simulate(n=16, steps=20, augmentation=IsotropicNoise(1.0, 3))


def test_error_column_is_finite_when_everything_collapses():
    """Complete collapse predicted (every predicted eigenvalue 0): each error is the learned value
    over the floor RANK_RTOL x COLLAPSE_SCALE, finite (it once divided by a zero top eigenvalue)."""
    res = _run(["simulate", "--sigma", "3", "--steps", "300", "--n", "64"])
    assert res.exit_code == 0
    rows = re.findall(r"^\s+\d+\s+(\S+)\s+0\s+([+-][\d.e+]+)%$", res.output, flags=re.M)
    assert len(rows) == 5
    floor = RANK_RTOL * COLLAPSE_SCALE
    for learned, err in rows:
        assert math.isfinite(float(err))
        assert float(err) / 100 == pytest.approx(float(learned) / floor, rel=2e-3, abs=1e-3)


@pytest.mark.parametrize("args,option", [
    (["--loss", "infonce", "--kappa", "5"], "--kappa"),
    (["--augmentation", "scale", "--sigma", "2"], "--sigma"),
    (["--theta", "0.3"], "--theta"),
    (["--loss", "vicreg", "--negatives", "both"], "--negatives has no effect with --loss vicreg"),
    (["--loss", "infonce", "--raw"], "--standardize/--raw has no effect with --loss infonce"),
    (["--c", "2"], "--c"),
    (["--model", "effective", "--noise", "fixed"], "--noise"),
])
def test_options_without_effect_are_rejected(args, option):
    res = _run(["simulate", "--n", "16", "--steps", "20", *args])
    assert res.exit_code == 2 and option in res.output and "no effect" in res.output


def test_library_rejects_kappa_without_normalization_and_momentum_with_adam():
    with pytest.raises(ValueError, match="kappa"):
        minissl.simulate("infonce", n=16, steps=5, kappa=5.0)
    with pytest.raises(ValueError, match="momentum"):
        minissl.simulate("infonce", n=16, steps=5, momentum=0.9)
    with pytest.raises(ValueError, match="not both"):
        minissl.simulate("infonce", data=minissl.gaussian_data(8, variances=[1.0]), n=8, steps=5)


def test_json_to_missing_folder_is_a_usage_error_and_creates_nothing(tmp_path):
    target = tmp_path / "missing" / "deeper" / "r.json"
    res = _run(["simulate", "--n", "16", "--steps", "20", "--json", str(target)])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "missing").exists()


def test_json_is_strict(tmp_path):
    out = tmp_path / "r.json"
    res = _run(["simulate", "--loss", "vicreg", "--n", "16", "--steps", "20", "--json", str(out)])
    assert res.exit_code == 0
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))
    assert os.listdir(tmp_path) == ["r.json"]


def test_closed_form_drops_round_off_eigenvalues():
    """B = 0 up to round-off in some directions (scale augmentation): no spurious rank."""
    d = minissl.gaussian_data(16, variances=[0.5, 1.0, 2.0, 3.0, 4.0], seed=0)
    p = minissl.predict(minissl.get_loss("beta"), d.A0, d.A0, n=16, mean=d.x.mean(0))
    assert metrics.numerical_rank(p["eigenvalues"], 1e-3) == np.count_nonzero(p["eigenvalues"])
    assert np.all((p["eigenvalues"] == 0) | (p["eigenvalues"] > 1e-12))


@pytest.mark.parametrize("scale", [1e-200, 1.0, 1e200, 1e308])
def test_metrics_are_scale_free(scale):
    ev = np.array([1.0, 1.0]) * scale
    assert metrics.stable_rank(ev) == pytest.approx(2.0)
    assert metrics.entropy_rank(ev) == pytest.approx(2.0)
    np.testing.assert_allclose(metrics.explained_variance(ev), [0.5, 1.0])


def test_overflowing_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="sigma\\^2 overflows"):
        IsotropicNoise(1e200, 2)
    with pytest.raises(ValueError, match="overflows float64"):
        minissl.gaussian_data(10, variances=[1e308, 1.0])
    res = _run(["simulate", "--sigma", "1e308"])  # the CLI's bound is checked before the library's
    assert res.exit_code == 2 and "--sigma == 1e+308, must be <= 1000000.0" in res.output


def test_landscape_api_validates_its_arguments():
    with pytest.raises(TypeError, match="must be a Loss"):
        minissl.effective_B("infonce", np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match="d1 == 0"):
        minissl.effective_B(minissl.get_loss("vicreg"), np.eye(2), np.eye(2), n=10, d1=0)
    B = np.zeros((4, 2, 2))
    S = np.tile(np.eye(2), (4, 1, 1))
    with pytest.raises(ValueError, match="k has shape"):
        minissl.landscape.descend_batch(B, S, k=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="init_scale"):
        minissl.landscape.descend_batch(B, S, init_scale=0.0)
    with pytest.raises(ValueError, match="S is not symmetric"):
        minissl.landscape.descend_batch(B[:1], np.array([[[1.0, 0.5], [0.0, 1.0]]]))


# ------------------------------------------------- output paths that cannot be written (found by a fuzz)

def _tripwire(monkeypatch):
    """Make every entry point that does the work fail the test if it is called."""
    import minissl.experiments
    import minissl.experiments.fig7
    import minissl.experiments.imbalance
    import minissl.siamese
    import minissl.theory
    import minissl.train

    def boom(*args, **kwargs):
        raise AssertionError("the work started before the output path was checked")

    for module, name in ((minissl.train, "simulate"), (minissl.siamese, "train_siamese"),
                         (minissl.experiments.fig7, "run_nonlinear"), (minissl.theory, "phase_diagram"),
                         (minissl.theory, "analyze"), (minissl.theory, "table1"), (minissl.theory, "format_table1"),
                         (minissl.experiments, "reproduce"), (minissl.experiments.imbalance, "run_imbalance")):
        monkeypatch.setattr(module, name, boom)


@pytest.mark.parametrize("args, option", [
    (["simulate", "--steps", "50", "--json", "/proc/x.json"], "--json"),
    (["simulate", "--loss", "simsiam", "--steps", "50", "--json", "/proc/x.json"], "--json"),
    (["simulate", "--steps", "50", "--track", "--track-csv", "/proc/x.csv"], "--track-csv"),
    (["simulate", "--steps", "50", "--track", "--track-plot", "/proc/x.png"], "--track-plot"),
    (["nonlinear", "--steps", "50", "--out", "/proc/x/y"], "--out"),
    (["theory", "phase", "--plot", "/proc/x.png"], "--plot"),
    (["theory", "phase", "--json", "/proc/x.json"], "--json"),
    (["theory", "--json", "/proc/x.json"], "--json"),
    (["theory", "table1", "--json", "/proc/x.json"], "--json"),
    (["reproduce", "fig1", "--quick", "--out", "/proc/x"], "--out"),
    (["imbalance", "--quick", "--out", "/proc/x"], "--out"),
])
def test_unwritable_output_is_a_usage_error_before_any_work(monkeypatch, args, option):
    """An output path under /proc (no file can be created there) is exit code 2 with a message naming
    the option and the path, and nothing runs: the work's entry points are trip-wired and the output has
    none of the run's lines (its header, a table, a progress line)."""
    _tripwire(monkeypatch)
    res = _run(args)
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}'" in res.output and "/proc" in res.output, res.output
    for line in ("minissl simulate:", "learned eig", "data: N=", "== fig1 (", "minissl imbalance (", "B eigenvalues"):
        assert line not in res.output, (line, res.output)


def test_import_minissl_leaves_scipy_and_plotting_for_later():
    """`import minissl` does not load SciPy's optimize/stats/linalg or matplotlib (they load on use):
    the import stays light (issue 13; timed in benchmarks, not here)."""
    import subprocess
    import sys

    code = ("import sys, minissl; print(sorted(m for m in ('scipy.optimize', 'scipy.stats', 'scipy.linalg', "
            "'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
