"""CLI: simulate --loss simsiam|byol, --track outputs, simclr options, option applicability."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from minissl import metrics as M
from minissl.cli import main


def _run(args):
    return CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)


def test_simsiam_cli_matches_library_and_theory(tmp_path):
    out = tmp_path / "r.json"
    r = _run(["--loss", "simsiam", "--sigma", "1.0", "--steps", "4000", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "principal angles" in r.output and "E-step optimum" in r.output
    rep = json.loads(out.read_text())
    pred = np.array(rep["predicted_eigenvalues"])
    learned = np.array(rep["learned_eigenvalues"])
    alive = int(np.sum(rep["predicted_alive"]))
    assert alive == 4
    assert np.allclose(learned[:alive], pred[:alive], rtol=0.05)
    assert max(rep["checks"]["principal_angles_deg"]) < 3.0
    assert rep["settings"]["optimizer"] == "sgd" and rep["settings"]["weight_decay"] == 0.05


def test_ablations_collapse_on_the_command_line():
    for extra in (["--no-predictor"], ["--no-stop-gradient"]):
        r = _run(["--loss", "simsiam", "--sigma", "1.0", "--steps", "1500", *extra])
        assert r.exit_code == 0, r.output
        assert "COMPLETE COLLAPSE" in r.output
        assert "prediction: complete collapse" in r.output
    r = _run(["--loss", "byol", "--sigma", "1.0", "--steps", "3000"])
    assert r.exit_code == 0 and "no complete collapse" in r.output
    r = _run(["--loss", "simsiam", "--no-predictor", "--batchnorm", "--steps", "1500"])
    assert "dimensional collapse to one direction" in r.output


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_track_outputs(tmp_path):
    csv_path, png, js = tmp_path / "t.csv", tmp_path / "t.png", tmp_path / "r.json"
    plot = ["--track-plot", str(png)] if _has_matplotlib() else []
    r = _run(["--loss", "infonce", "--sigma", "1.0", "--steps", "400", "--track", "--track-csv", str(csv_path),
              *plot, "--json", str(js), "--uniformity-t", "1.5"])
    assert r.exit_code == 0, r.output
    assert "collapse diagnostics during training" in r.output
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 201 and rows[-1]["step"] == "400"
    rep = json.loads(js.read_text())
    assert len(rep["track"]) == 201 and rep["settings"]["uniformity_t"] == 1.5
    # the CSV holds the numbers of the library's trajectory (stable rank of ev columns)
    ev = [float(rows[-1][f"ev{i}"]) for i in range(1, 6)]
    assert float(rows[-1]["stable_rank"]) == pytest.approx(M.stable_rank(np.array(ev)), rel=1e-9)
    if plot:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_track_plot_without_matplotlib_fails_before_any_work(tmp_path, monkeypatch):
    """The plot extra is optional: without it --track-plot is exit 2 before training, and no file."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png, js = tmp_path / "t.png", tmp_path / "r.json"
    r = _run(["--loss", "infonce", "--steps", "400", "--track", "--track-plot", str(png), "--json", str(js)])
    assert r.exit_code == 2 and "--track-plot needs matplotlib" in r.output
    assert "pip install 'minissl[plot]'" in r.output and not png.exists() and not js.exists()


@pytest.mark.parametrize("args, opt", [
    (["--loss", "simsiam", "--alpha", "1"], "--alpha"),
    (["--loss", "simsiam", "--normalize"], "--normalize"),
    (["--loss", "infonce", "--no-predictor"], "--predictor"),
    (["--loss", "byol", "--no-stop-gradient"], "--stop-gradient"),
    (["--loss", "simsiam", "--ema", "0.5"], "--ema"),
    (["--loss", "infonce", "--temperature", "0.5"], "--temperature"),
    (["--loss", "infonce", "--track-plot", "x.png"], "--track-plot"),
    (["--loss", "simclr", "--normalize"], "--normalize"),
    (["--loss", "simclr", "--model", "effective"], "--model"),
    (["--loss", "simsiam", "--augmentation", "scale"], "--augmentation"),
    (["--loss", "simclr", "--temperature", "0"], "--temperature"),
    (["--loss", "byol", "--ema", "1"], "ema"),
    (["--loss", "infonce", "--directpred"], "--directpred"),
    (["--loss", "simsiam", "--directpred-eps", "0.2"], "--directpred-eps"),
    (["--loss", "simsiam", "--directpred", "--predictor-lr", "2"], "--predictor-lr"),
    (["--loss", "simsiam", "--directpred", "--predictor-init", "identity"], "--predictor-init"),
    (["--loss", "simsiam", "--directpred", "--no-predictor"], "--directpred"),
    (["--loss", "simsiam", "--directpred", "--directpred-rho", "1"], "--directpred-rho"),
    (["--loss", "byol", "--directpred", "--directpred-eps", "-0.1"], "--directpred-eps"),
    (["--loss", "byol", "--directpred", "--directpred-scale", "sum"], "--directpred-scale"),
])
def test_inapplicable_or_bad_options_exit_2(args, opt):
    r = _run(args)
    assert r.exit_code == 2, r.output
    assert opt in r.output


def test_simclr_on_the_command_line():
    r = _run(["--loss", "simclr", "--temperature", "0.3", "--n", "32", "--steps", "60", "--decoupled"])
    assert r.exit_code == 0, r.output
    assert "temperature=0.3" in r.output and "decoupled=True" in r.output


def test_collapsed_run_writes_inf_as_strict_json_and_csv(tmp_path):
    """log(l1/ld) = inf after exact zeros: CSV keeps 'inf', JSON turns it into null."""
    csv_path, js = tmp_path / "t.csv", tmp_path / "r.json"
    r = _run(["--loss", "simsiam", "--no-predictor", "--batchnorm", "--steps", "1500", "--track",
              "--track-csv", str(csv_path), "--json", str(js)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(csv_path.open()))
    assert rows[-1]["log_eigenvalue_ratio"] == "inf"
    text = js.read_text()
    assert "Infinity" not in text and "NaN" not in text
    rep = json.loads(text)
    assert rep["track"][-1]["log_eigenvalue_ratio"] is None


def test_structured_settings_recorded(tmp_path):
    js = tmp_path / "r.json"
    r = _run(["--loss", "simsiam", "--augmentation", "structured", "--theta", "0.3", "--steps", "200",
              "--json", str(js)])
    assert r.exit_code == 0, r.output
    assert json.loads(js.read_text())["settings"]["theta"] == 0.3


def test_directpred_on_the_command_line_matches_the_library(tmp_path):
    """--directpred: the JSON report is the library's run, compared per eigendirection of F."""
    from minissl.siamese import train_siamese

    out = tmp_path / "dp.json"
    args = ["--loss", "simsiam", "--directpred", "--directpred-scale", "max", "--sigma", "1.0", "--steps", "800",
            "--lr-schedule", "constant", "--json", str(out)]
    r = _run(args)
    assert r.exit_code == 0, r.output
    assert "DirectPred predictor (eps=0.1, rho=0.3, scale max)" in r.output and "|W| shrinks per step" in r.output
    rep = json.loads(out.read_text())
    s = rep["settings"]
    assert s["directpred"] and s["directpred_scale"] == "max" and s["directpred_rho"] == 0.3
    lib = train_siamese("simsiam", directpred=True, sigma=1.0, steps=800, lr=0.05, weight_decay=0.05,
                        lr_schedule="constant")
    assert np.allclose(rep["learned_along_F"], lib.checks["shape_along_F"], rtol=1e-12)
    assert rep["predicted_decay_per_step"] == pytest.approx(lib.theory["decay_per_step"], rel=1e-12)
    assert 1 - rep["measured_decay_per_step"] == pytest.approx(1 - rep["predicted_decay_per_step"], rel=0.1)
    assert rep["max_eig_error"] < 0.1
    # without a constant lr the decay per step is not predicted, and the output says why
    r = _run(args[:-6] + ["--steps", "200"])
    assert r.exit_code == 0 and "constant-lr SGD (--lr-schedule constant)" in r.output
