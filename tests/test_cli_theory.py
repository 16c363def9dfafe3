"""``minissl theory`` via click's CliRunner: output agrees with the library and closed forms."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from minissl.cli import main
from minissl.theory import beta_critical_sigma


def _run(args):
    res = CliRunner().invoke(main, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def test_issue_example_prints_spectrum_rank_collapses_and_thresholds(tmp_path):
    out = tmp_path / "t.json"
    res = _run(["theory", "--loss", "beta", "--beta", "0.5", "--sigma", "1.5", "--variances", "0.5,1,2,3,4",
                "--json", str(out)])
    assert res.exit_code == 0, res.output
    for text in ("global minimum", "rank 2", "collapsed directions: axis 3", "thresholds along sigma",
                 "paper's thresholds", "Prop. 2"):
        assert text in res.output, text
    r = json.loads(out.read_text())
    a = np.array([0.5, 1, 2, 3, 4])
    # closed form (derived, E3): W^T W eigenvalues (beta a - (1-beta) s^2) / (2k (a + s^2)^2), k = 3 beta/4
    b = 0.5 * a - 0.5 * 2.25
    expect = np.sort(np.where(b > 0, b / (2 * 0.375 * (a + 2.25) ** 2), 0.0))[::-1]
    assert np.allclose(r["eigenvalues"], expect, rtol=1e-12, atol=1e-15)
    assert np.allclose([t["sigma"] for t in r["thresholds"]["derived"]], beta_critical_sigma(0.5, a))
    assert np.allclose([t["sigma"] for t in r["thresholds"]["paper"]], beta_critical_sigma(0.5, a, constants="paper"))
    assert r["rank"] == 2 and len(r["collapsed"]) == 3


def test_table1_and_phase(tmp_path):
    res = _run(["theory", "table1"])
    assert res.exit_code == 0 and "yes (E2)" in res.output and "beta-InfoNCE" in res.output
    out = tmp_path / "p.json"
    res = _run(["theory", "phase", "--sigmas", "0.1:3:12", "--thetas", "0:1:5", "--json", str(out)])
    assert res.exit_code == 0, res.output
    p = json.loads(out.read_text())
    assert np.array(p["phase"]).shape == (5, 12) and p["labels"][4] == "complete collapse"
    assert "legend" in res.output


def test_weighted_reports_critical_n_conventions():
    res = _run(["theory", "--loss", "weighted", "--alpha", "0.1", "--sigma", "5", "--variances", "1,1", "--n", "10"])
    assert res.exit_code == 0, res.output
    assert "N <= 22.5" in res.output and "derived none" in res.output


def test_weighted_without_threshold_says_never():
    res = _run(["theory", "--loss", "weighted", "--alpha", "1.5", "--variances", "1,1", "--n", "10"])
    assert res.exit_code == 0 and "main text collapse for never" in res.output and "N <= inf" not in res.output


def test_classification_is_stable_at_huge_kappa():
    for kappa in ("1e8", "1e300"):
        res = _run(["theory", "--normalize", "--kappa", kappa])
        assert res.exit_code == 0 and "(1 minima," in res.output, res.output


def test_normalized_and_bias():
    res = _run(["theory", "--normalize", "--sigma", "1.5"])
    assert res.exit_code == 0 and "Theorem 2" in res.output
    res = _run(["theory", "--normalize", "--bias", "--kappa", "inf", "--sigma", "1.5"])
    assert res.exit_code == 0 and "Theorem 3" in res.output


@pytest.mark.parametrize("args,needle", [
    (["theory", "table1", "--sigma", "2"], "No such option '--sigma'"),  # a real subcommand: table1 has none
    (["theory", "--theta", "0.3"], "--theta"),
    (["theory", "--kappa", "3"], "--normalize"),
    (["theory", "--bias"], "--normalize"),
    (["theory", "--variances", "1,-1"], "variances"),
    (["theory", "phase", "--sigmas", "3:1:5"], "LO:HI:NUM"),
    (["theory", "--loss", "scl", "--beta", "0.5"], "--beta has no effect with --loss scl"),
    (["theory", "--kappa", "nan", "--normalize"], "kappa"),
    (["theory", "nonsense"], "nonsense"),
    (["theory", "--sigma", "1e200"], "--sigma == 1e+200, must be <= 1000000.0"),  # bound checked first
    (["theory", "--normalize", "--c", "1e300"], "overflow"),
    (["theory", "--variances", "1e300,1"], "--variances contains 1e+300, every variance must be <= 1e+12"),
    (["theory", "--c", "2"], "--c applies with --normalize"),
    (["theory", "--content-dims", "1"], "--content-dims has no effect"),
])
def test_bad_input_is_a_usage_error(args, needle):
    res = _run(args)
    assert res.exit_code == 2 and needle in res.output, res.output


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    target = tmp_path / "p.png"
    res = _run(["theory", "phase", "--sigmas", "0.1:3:4", "--thetas", "0:1:3", "--plot", str(target)])
    # decided before any work, exit 2 like every bad option (and simulate --track-plot)
    assert res.exit_code == 2 and "--plot needs matplotlib" in res.output and "pip install 'minissl[plot]'" in res.output
    assert not target.exists()
