"""``minissl sweep`` (issue 15): the store, the results table, resume, interrupts, the engines.

Independent sources: every point's numbers are checked against the command run on its own
(``minissl simulate --json`` / ``minissl theory point --json``); the Dask engine's numbers against
the embedded engine's; resume and interrupt by what the store holds and what a rerun computes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from minissl.cli import main
from minissl.cli.points import run_points
from minissl.sweep import Embedded, Store, run_sweep
from minissl.sweep.table import flatten, results_table, write_csv

# timing fields differ between runs; every other field must be equal
TIMING = {"seconds", "train_seconds", "compile_seconds", "compile_source"}

# NumPy-engine points: no compilation anywhere (fast to start in fresh worker processes)
NUMPY_SPEC = """
command = "simulate"
[fixed]
loss = "infonce"
engine = "numpy"
n = 48
steps = {steps}
[grid]
sigma = [0.5, 1.5]
seed = [0, 1, 2]
"""


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _sweep(args):
    return CliRunner().invoke(main, ["sweep", *args], catch_exceptions=False)


def test_store_keeps_points_across_connections(tmp_path):
    with Store(tmp_path) as s:
        assert len(s) == 0 and s.stored(["a", "b"]) == set()
        s.put("a", "theory", {"sigma": 1.0}, {"rank": 2, "x": [1.5, None]}, 0.25)
        s.set_meta("spec", {"grid": {"sigma": [1.0]}})
    with Store(tmp_path) as s:
        assert s.stored(["a", "b"]) == {"a"} and len(s) == 1
        rec = s.get("a")
        assert rec["options"] == {"sigma": 1.0} and rec["result"] == {"rank": 2, "x": [1.5, None]}
        assert rec["seconds"] == 0.25 and rec["command"] == "theory" and s.get("b") is None
        assert s.meta("spec") == {"grid": {"sigma": [1.0]}} and s.meta("nope", 3) == 3
    db = sqlite3.connect(tmp_path / "sweep.sqlite")
    db.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="store schema 99"):
        Store(tmp_path)


def test_flatten_and_csv_columns(tmp_path):
    report = {"minissl_version": "x", "settings": {"n": 3}, "rank": 2, "ok": True, "name": "a",
              "eig": [3.0, 1.0], "diagnostics": {"p": 0.5, "nested": [1]}, "items": [{"a": 1}], "none": None}
    assert flatten(report) == {"rank": 2, "ok": True, "name": "a", "eig_1": 3.0, "eig_2": 1.0,
                               "diagnostics.p": 0.5, "none": None}
    header, recs = results_table(["sigma"], [({"sigma": 0.5}, "k1", report, "ok"),
                                             ({"sigma": 1.0}, "k2", None, "not run")])
    assert header == ["sigma", "rank", "ok", "name", "eig_1", "eig_2", "diagnostics.p", "none", "status", "key"]
    write_csv(tmp_path / "r.csv", header, recs)
    rows = _rows(tmp_path / "r.csv")
    assert rows[0]["ok"] == "true" and rows[0]["eig_1"] == "3.0" and rows[0]["none"] == ""
    assert rows[1] == {**{c: "" for c in header}, "sigma": "1.0", "status": "not run", "key": "k2"}


def test_theory_sweep_matches_the_command_point_by_point(tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[fixed]\nloss = "beta"\n[grid]\nbeta = [0.25, 0.75]\nsigma = [0.5, 2.0]\n')
    res = _sweep([str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "4 points: 0 stored before, 4 computed, 0 failed" in res.output
    rows = _rows(tmp_path / "o" / "results.csv")
    assert [(r["beta"], r["sigma"]) for r in rows] == [("0.25", "0.5"), ("0.25", "2.0"), ("0.75", "0.5"),
                                                        ("0.75", "2.0")]
    store = Store(tmp_path / "o")
    for r in rows:
        out = tmp_path / f"p{r['beta']}-{r['sigma']}.json"
        single = CliRunner().invoke(main, ["theory", "point", "--loss", "beta", "--beta", r["beta"], "--sigma",
                                           r["sigma"], "--json", str(out)])
        assert single.exit_code == 0, single.output
        expected = json.loads(out.read_text())
        assert store.get(r["key"])["result"] == expected
        assert int(r["rank"]) == expected["rank"] and float(r["eigenvalues_1"]) == expected["eigenvalues"][0]
        assert r["status"] == "ok"
    store.close()


def test_simulate_sweep_batched_equals_single_runs_and_resumes(tmp_path):
    """Compiled points trained together (run_batch) give each point's `minissl simulate --json`;
    a rerun computes nothing, a new grid value only its points, a changed fixed setting all."""
    spec = tmp_path / "s.toml"
    body = ('command = "simulate"\n[fixed]\nloss = "infonce"\nn = 32\nsteps = {steps}\n'
            '[grid]\nsigma = [0.5, 1.5]\nseed = [0, 1]\n')
    spec.write_text(body.format(steps=150))
    out = tmp_path / "o"
    res = _sweep([str(spec), "--out", str(out), "--workers", "2"])
    assert res.exit_code == 0 and "4 points: 0 stored before, 4 computed" in res.output, res.output
    rows = _rows(out / "results.csv")
    assert list(rows[0])[:3] == ["sigma", "seed", "learned_eigenvalues_1"]
    with Store(out) as store:
        for r in rows[:2]:  # two of the four, each alone through the command (single-run path)
            js = tmp_path / "one.json"
            single = CliRunner().invoke(main, ["simulate", "--loss", "infonce", "--n", "32", "--steps", "150",
                                               "--sigma", r["sigma"], "--seed", r["seed"], "--json", str(js)])
            assert single.exit_code == 0, single.output
            assert _strip(store.get(r["key"])["result"]) == _strip(json.loads(js.read_text()))
    res = _sweep([str(spec), "--out", str(out)])
    assert "4 points: 4 stored before, 0 computed" in res.output, res.output
    spec.write_text(body.format(steps=150).replace("seed = [0, 1]", "seed = [0, 1, 2]"))
    res = _sweep([str(spec), "--out", str(out)])
    assert "6 points: 4 stored before, 2 computed" in res.output, res.output
    spec.write_text(body.format(steps=160))
    res = _sweep([str(spec), "--out", str(out)])
    assert "4 points: 0 stored before, 4 computed" in res.output, res.output
    assert len(_rows(out / "results.csv")) == 4


def test_failed_points_are_reported_and_the_others_stored(tmp_path):
    # lr 10 diverges (an error of that point); lr 1e-3 is fine
    spec = tmp_path / "f.toml"
    spec.write_text('command = "simulate"\n[fixed]\nloss = "infonce"\nengine = "numpy"\nn = 16\nsteps = 60\n'
                    'lr_schedule = "constant"\noptimizer = "sgd"\n[grid]\nlr = [1e-3, 1e6]\n')
    res = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1, res.output
    assert "2 points: 0 stored before, 1 computed, 1 failed" in res.output
    assert "1 point(s) failed" in res.output
    rows = _rows(tmp_path / "o" / "results.csv")
    assert rows[0]["status"] == "ok" and rows[1]["status"].startswith("failed: ")
    assert rows[1]["learned_rank"] == ""


@pytest.mark.parametrize("args, fragment", [
    (["--out", "{o}", "--scheduler", "localhost:8786"], "--scheduler == 'localhost:8786', must be 'local'"),
    (["--out", "{o}", "--scheduler", "tcp://1.2.3.4:1", "--workers", "2"], "--workers applies to this process"),
    (["--out", "{o}", "--workers", "0"], "--workers == 0, must be >= 1"),
    ([], "--out"),
])
def test_bad_sweep_options_exit_2(tmp_path, args, fragment):
    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[grid]\nsigma = [1.0]\n')
    res = CliRunner().invoke(main, ["sweep", str(spec), *[a.format(o=tmp_path / "o") for a in args]])
    assert res.exit_code == 2 and fragment in res.output, res.output
    assert not (tmp_path / "o" / "results.csv").exists()


def test_bad_spec_exits_2_before_any_work(tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[grid]\nsigmaa = [1.0]\n')
    res = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "[grid] sigmaa = [1.0]: not an option of `minissl theory point`" in res.output
    assert not (tmp_path / "o" / "sweep.sqlite").exists()


def test_ctrl_c_loses_nothing_finished_and_the_rerun_completes(tmp_path):
    spec = tmp_path / "n.toml"
    spec.write_text(NUMPY_SPEC.format(steps=400))
    out = tmp_path / "o"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from minissl.cli import main; main()", "sweep", str(spec), "--out", str(out),
                             "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    db = out / "sweep.sqlite"
    t0 = time.time()
    stored = 0
    while time.time() - t0 < 120 and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db) as con:
                    stored = con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
            except sqlite3.OperationalError:  # the table is being created
                stored = 0
            if stored >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stdout and "run the same command again" in stderr
    with Store(out) as s:
        kept = len(s)
    assert 2 <= kept < 6
    res = _sweep([str(spec), "--out", str(out)])
    assert f"6 points: {kept} stored before, {6 - kept} computed, 0 failed" in res.output, res.output
    # the same numbers as an uninterrupted sweep
    res = _sweep([str(spec), "--out", str(tmp_path / "ref")])
    a, b = _rows(out / "results.csv"), _rows(tmp_path / "ref" / "results.csv")
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in b]


class _KillOnFirstPut(Store):
    """A store that kills a Dask worker busy with a task as soon as the first point is stored."""

    def __init__(self, folder, client):
        super().__init__(folder)
        self.client = client
        self.killed = None

    def put(self, *args, **kw):
        super().put(*args, **kw)
        if self.killed is None:
            pids = self.client.run(os.getpid)
            busy = {w: ts for w, ts in self.client.processing().items() if ts}
            assert busy, "no worker was busy: the points are too short for this test"
            worker, tasks = next(iter(busy.items()))
            os.kill(pids[worker], signal.SIGKILL)
            self.killed = (worker, list(tasks))


def test_dask_local_cluster_survives_a_killed_worker_with_the_same_numbers(tmp_path):
    distributed = pytest.importorskip("distributed")  # in the test extra: runs in CI
    from minissl.cli.sweep_spec import parse_spec
    from minissl.sweep import DaskExecutor

    import tomllib

    spec = parse_spec(tomllib.loads(NUMPY_SPEC.format(steps=600)))
    pts = [(spec.key(o), o) for _, o in spec.points()]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        store = _KillOnFirstPut(tmp_path / "d", client)
        engine = DaskExecutor(client=client)
        engine.threads = 1
        assert engine.chunk(len(pts)) == 1  # 6 points on 2 workers: one per task
        outcome = run_sweep("simulate", pts, store, engine, run_points)
    assert store.killed is not None and store.killed[1]  # a worker died holding a task
    assert outcome.computed == 6 and not outcome.failed and not outcome.interrupted
    # the same numbers as in this process (the embedded engine)
    ref = Store(tmp_path / "e")
    run_sweep("simulate", pts, ref, Embedded(1), run_points)
    for key, _ in pts:
        assert _strip(store.get(key)["result"]) == _strip(ref.get(key)["result"])
    store.close()
    ref.close()


def test_embedded_engine_stores_each_job_as_it_finishes(tmp_path):
    calls, seen = [], []
    store = Store(tmp_path)

    def fn(command, options_list):
        seen.append(len(store))  # what is stored when this job starts
        calls.append(len(options_list))
        if options_list[0]["x"] == 4:
            raise RuntimeError("boom")  # a job that raises: its points fail, the others are stored
        return [("ok", {"v": o["x"] ** 2}) if o["x"] != 1 else ("again", {**o, "x": 10}) for o in options_list]

    pts = [(f"k{i}", {"x": i, "g": i % 2}) for i in range(6)]
    out = run_sweep("theory", pts, store, Embedded(1), fn, group=lambda o: o["g"])
    # jobs of at most 2 points (one thread), never mixing groups: [0, 2] [4] [1, 3] [5]
    assert calls == [2, 1, 2, 1] and seen == [0, 2, 2, 3]
    assert out.computed == 4 and set(out.failed) == {"k4"} and "RuntimeError: boom" in out.failed["k4"]
    assert out.again == {"k1": {"x": 10, "g": 1}} and out.missing == 2
    assert [store.get(f"k{i}") is not None for i in range(6)] == [True, False, True, True, False, True]
    with pytest.raises(RuntimeError, match="boom"):
        run_sweep("theory", pts, store, Embedded(1), fn, group=lambda o: o["g"], raise_errors=True)
    store.close()


def test_grid_axes_keep_their_column_and_bad_stores_are_named(tmp_path):
    spec = tmp_path / "k.toml"
    spec.write_text('command = "theory"\n[fixed]\nloss = "infonce"\nnormalize = true\n[grid]\nkappa = [2.0, "inf"]\n')
    res = _sweep([str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    rows = _rows(tmp_path / "o" / "results.csv")
    assert [r["kappa"] for r in rows] == ["2.0", "inf"]  # theory's report has its own kappa (None = limit)
    assert [r["result.kappa"] for r in rows] == ["2.0", ""]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "sweep.sqlite").write_text("not a database")
    (bad / "results.csv").write_text("kappa,rank,status,key\n")
    for args in ([str(spec), "--out", str(bad)], [str(bad), "--plot", "x=kappa,y=rank"]):
        res = CliRunner().invoke(main, ["sweep", *args])
        assert res.exit_code == 2 and "sweep.sqlite: not usable as a sweep store" in res.output, res.output


def test_plot_axes_are_checked_before_the_sweep(tmp_path):
    pytest.importorskip("matplotlib")
    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[grid]\nsigma = [1.0, 2.0]\n')
    res = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--plot", "x=beta,y=rank"])
    assert res.exit_code == 2 and "x == 'beta' must be a grid axis" in res.output, res.output
    assert not (tmp_path / "o" / "sweep.sqlite").exists()


def test_cli_scheduler_local_gives_the_embedded_numbers(tmp_path):
    pytest.importorskip("distributed")  # in the test extra: runs in CI
    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[fixed]\nloss = "infonce"\nnormalize = true\n[grid]\nsigma = [0.5, 2.0]\n'
                    'n = [16, 64]\n')
    emb = _sweep([str(spec), "--out", str(tmp_path / "e")])
    dask = _sweep([str(spec), "--out", str(tmp_path / "d"), "--scheduler", "local", "--workers", "2"])
    assert emb.exit_code == 0 and dask.exit_code == 0, (emb.output, dask.output)
    assert "4 points: 0 stored before, 4 computed, 0 failed" in dask.output
    a, b = _rows(tmp_path / "e" / "results.csv"), _rows(tmp_path / "d" / "results.csv")
    assert a == b and len(a) == 4


def test_plot_averages_over_the_other_axes_and_draws(tmp_path):
    pytest.importorskip("matplotlib")  # the plot extra: installed by the README's command and in CI
    from minissl.sweep.plot import parse_plot_spec, plot_data

    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[fixed]\nloss = "beta"\n[grid]\nbeta = [0.25, 0.75]\n'
                    'sigma = [0.5, 1.0, 2.0]\nn = [16, 64]\n')
    out = tmp_path / "o"
    res = _sweep([str(spec), "--out", str(out), "--plot", "x=sigma,y=value,hue=beta"])
    assert res.exit_code == 0, res.output
    png = out / "value_vs_sigma_by_beta.png"
    assert f"wrote {png}" in res.output and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data, left_out = plot_data(out, "sigma", "value", "beta")
    assert left_out == 0 and set(data) == {"0.25", "0.75"}
    with Store(out) as store:  # the average over n, from the stored reports
        for beta in (0.25, 0.75):
            xs, means, stds, counts = data[repr(beta)]
            assert xs == [0.5, 1.0, 2.0] and counts == [2, 2, 2]
            for sigma, m, sd in zip(xs, means, stds):
                vals = []
                for n in (16, 64):
                    key = next(r["key"] for r in _rows(out / "results.csv")
                               if (r["beta"], r["sigma"], r["n"]) == (repr(beta), repr(sigma), str(n)))
                    vals.append(store.get(key)["result"]["value"])
                assert m == pytest.approx(sum(vals) / 2, rel=1e-12)
                assert sd == pytest.approx(abs(vals[0] - vals[1]) / 2 ** 0.5, rel=1e-9, abs=1e-15)
    # drawing again from the folder alone
    res = _sweep([str(out), "--plot", "x=beta,y=rank"])
    assert res.exit_code == 0 and "rank_vs_beta.png" in res.output, res.output
    assert parse_plot_spec("y=a, x=b") == {"x": "b", "y": "a", "hue": None}


@pytest.mark.parametrize("plot, fragment", [
    ("x=sigma", "needs x=COLUMN and y=COLUMN"),
    ("x=sigma,y=rank,z=1", "each part must be x=COLUMN"),
    ("x=sigma,x=beta,y=rank", "x is given twice"),
    ("x=rank,y=value", "x == 'rank' is not a grid axis of this sweep; the axes are ['sigma']"),
    ("x=sigma,y=nope", "y == 'nope' is not a result column"),
    ("x=sigma,y=value,hue=sigma", "hue == 'sigma' must be another grid axis"),
])
def test_bad_plot_requests_exit_2(tmp_path, plot, fragment):
    pytest.importorskip("matplotlib")
    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[grid]\nsigma = [1.0, 2.0]\n')
    out = tmp_path / "o"
    assert _sweep([str(spec), "--out", str(out)]).exit_code == 0
    res = CliRunner().invoke(main, ["sweep", str(out), "--plot", plot])
    assert res.exit_code == 2 and fragment in res.output, res.output
    res = CliRunner().invoke(main, ["sweep", str(out)])
    assert res.exit_code == 2 and "is a folder" in res.output


def test_training_reports_its_steps_to_a_listener():
    """Compiled loop (a thread watching the history fill), Python loop and the MLP report their
    steps; the last report is the whole run; the numbers do not depend on listening."""
    import numpy as np

    import minissl
    from minissl import _progress
    from minissl.data import IsotropicNoise, gaussian_data
    from minissl.nonlinear import train_mlp

    for engine, steps in (("numba", 4000), ("numpy", 60)):
        calls = []
        with _progress.reporting(lambda d, t: calls.append((d, t))):
            a = minissl.simulate(minissl.get_loss("infonce", engine=engine), n=64, steps=steps, warn=False)
        b = minissl.simulate(minissl.get_loss("infonce", engine=engine), n=64, steps=steps, warn=False)
        assert np.array_equal(a.W, b.W)
        assert calls and calls[-1] == (steps, steps), (engine, calls[-3:])
        assert all(t == steps for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    calls = []
    with _progress.reporting(lambda d, t: calls.append((d, t))):
        train_mlp(minissl.get_loss("infonce"), gaussian_data(32, [1.0, 2.0], seed=0), IsotropicNoise(0.5, 2), steps=25)
    assert [d for d, _ in calls] == list(range(1, 26)) and {t for _, t in calls} == {25}
    _progress.report(3, 5)  # nobody listening: nothing happens


def test_progress_bars_write_stderr_only(capsys):
    from minissl.sweep.progress import progress_bar, steps_bar
    from minissl import _progress

    bar = progress_bar(4, initial=1, desc="sweep", enabled=True)
    bar.update(3)
    bar.close()
    with steps_bar(enabled=True, delay=0.0, desc="simulate"):
        for t in range(1, 11):
            _progress.report(t, 10)
    out, err = capsys.readouterr()
    assert out == "" and "sweep" in err and "4/4" in err and "simulate" in err and "/10" in err
    with steps_bar(enabled=False):
        _progress.report(1, 10)
    assert capsys.readouterr() == ("", "")


def test_cli_running_scheduler_address_gives_the_embedded_numbers(tmp_path):
    """`--scheduler tcp://HOST:PORT`: a scheduler started beforehand (here a LocalCluster's, with
    one worker process), as on a real cluster."""
    distributed = pytest.importorskip("distributed")  # in the test extra: runs in CI
    spec = tmp_path / "t.toml"
    spec.write_text('command = "theory"\n[fixed]\nloss = "beta"\n[grid]\nsigma = [0.5, 2.0]\nbeta = [0.3, 0.7]\n')
    emb = _sweep([str(spec), "--out", str(tmp_path / "e")])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        res = _sweep([str(spec), "--out", str(tmp_path / "d"), "--scheduler", address])
        assert res.exit_code == 0 and "4 points: 0 stored before, 4 computed, 0 failed" in res.output, res.output
        with distributed.Client(address) as client:  # the sweep's client has gone; the cluster has not
            assert len(client.scheduler_info()["workers"]) == 1
    assert _rows(tmp_path / "e" / "results.csv") == _rows(tmp_path / "d" / "results.csv")
    assert emb.exit_code == 0
