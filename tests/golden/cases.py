"""Golden-output cases of the ``minissl`` command line: what to run and how to read it back.

Shared by ``tests/golden/regenerate.py`` (records ``tests/golden/<case_id>.json``) and
``tests/test_golden.py`` (reruns every case and compares with the recording).

``CASES`` is a list of ``(case_id, argv, kind)``:

* ``argv`` is the command line after ``minissl``; the placeholders ``{json}`` and ``{out}``
  are replaced by a ``--json`` file / an output folder inside a scratch directory;
* ``kind`` names the files that are read back after the run (``OUTPUT_FILES``): the
  ``--json`` file, or the report.json / CSV files a command writes under ``--out``.

Every command runs in a fresh ``python -c "from minissl.cli import main; main()"``
subprocess (the tests: one after another in a :class:`Runner` process per test process) with
the repository root as working directory and as the only ``PYTHONPATH``
entry, so it exercises the checkout the tests sit in, not an installed copy; with one
thread unless ``MINISSL_GOLDEN_THREADS`` says otherwise (see ``subprocess_env``).

Combinations left out of the ``simulate`` grid (the CLI rejects them with exit code 2):

* ``simclr --normalize`` (both engines): "--normalize/--no-normalize has no effect here; it
  applies with the Gaussian-kernel losses (simclr normalises its outputs itself)".
* ``simsiam`` / ``byol`` with ``--engine numba`` or ``--engine numpy`` (every variant): "--engine
  has no effect here; it applies with the contrastive losses, not --loss simsiam/byol".
  These two losses are therefore recorded once per variant without ``--engine``.
* ``simsiam`` / ``byol`` with ``--normalize`` or ``--bias`` (with or without ``--engine``):
  "... has no effect here; it applies with the contrastive losses, not --loss simsiam/byol".

``theory``: ``--bias`` alone is rejected ("--bias changes nothing without --normalize"), so
the bias case is ``theory --loss beta --normalize --bias``.

All runs use the default seed 0.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = Path(__file__).resolve().parent

# ----------------------------------------------------------------------------- the cases

SIM_CONTRASTIVE = ("infonce", "weighted", "beta", "scl", "barlow", "vicreg", "simclr")
SIM_SIAMESE = ("simsiam", "byol")
SIM_VARIANTS = {
    "plain": (),
    "normalize": ("--normalize",),
    "bias": ("--bias",),
    "wd": ("--weight-decay", "0.01"),
}
SIM_ENGINES = ("numpy", "numba")
SIM_SIZE = ("--steps", "300", "--n", "64")
# Per-loss extra options (e.g. a smaller --lr) should a loss not stay finite with the defaults;
# every loss is finite with the CLI defaults at this size, so none are needed.
SIM_EXTRA: dict[str, tuple[str, ...]] = {}
# (loss, variant, engine) the CLI rejects with exit code 2 -- see the module docstring.
SIM_REJECTED = {("simclr", "normalize", e) for e in SIM_ENGINES}
# --normalize / --bias are rejected for simsiam/byol
SIAMESE_VARIANTS = {
    "plain": (),
    "wd": SIM_VARIANTS["wd"],
    "directpred": ("--directpred", "--lr-schedule", "constant"),
    "directpred-none": ("--directpred", "--directpred-scale", "none"),
}

THEORY_LOSSES = ("infonce", "weighted", "beta", "scl")
FIGURES = ("fig5-infonce", "fig5-weighted", "fig5-beta", "fig6-normalized", "fig1", "fig3", "fig7", "saddles", "slowing")

OUTPUT_FILES = {
    "json": ("{json}",),
    "reproduce": ("{figure}/report.json", "{figure}/data.csv"),
    "imbalance": ("imbalance/report.json", "imbalance/data.csv", "imbalance/theory_ensemble.csv"),
    "nonlinear": ("report.json", "data.csv"),
}


def _build_cases():
    cases = []
    for loss in SIM_CONTRASTIVE:
        for vname, vargs in SIM_VARIANTS.items():
            for engine in SIM_ENGINES:
                if (loss, vname, engine) in SIM_REJECTED:
                    continue
                cases.append((f"simulate-{loss}-{vname}-{engine}",
                              ["simulate", "--loss", loss, *SIM_SIZE, *SIM_EXTRA.get(loss, ()), *vargs,
                               "--engine", engine, "--json", "{json}"], "json"))
    for loss in SIM_SIAMESE:
        for vname, vargs in SIAMESE_VARIANTS.items():
            cases.append((f"simulate-{loss}-{vname}",
                          ["simulate", "--loss", loss, *SIM_SIZE, *SIM_EXTRA.get(loss, ()), *vargs,
                           "--json", "{json}"], "json"))
    for loss in THEORY_LOSSES:
        cases.append((f"theory-{loss}", ["theory", "--loss", loss, "--json", "{json}"], "json"))
    cases += [
        ("theory-beta-normalize", ["theory", "--loss", "beta", "--normalize", "--json", "{json}"], "json"),
        ("theory-beta-normalize-bias", ["theory", "--loss", "beta", "--normalize", "--bias", "--json", "{json}"],
         "json"),
        ("theory-table1", ["theory", "table1", "--json", "{json}"], "json"),
        ("theory-phase", ["theory", "phase", "--sigmas", "0.1:3:6", "--thetas", "0:1:3", "--json", "{json}"],
         "json"),
    ]
    for fig in FIGURES:
        cases.append((f"reproduce-{fig}", ["reproduce", fig, "--quick", "--out", "{out}", "--quiet"], "reproduce"))
    cases.append(("imbalance-quick", ["imbalance", "--quick", "--out", "{out}", "--quiet"], "imbalance"))
    cases.append(("nonlinear-numba", ["nonlinear", "--steps", "300", "--out", "{out}"], "nonlinear"))
    cases.append(("nonlinear-numpy", ["nonlinear", "--steps", "300", "--engine", "numpy", "--out", "{out}"],
                  "nonlinear"))
    ids = [c[0] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


CASES = _build_cases()
CASE_IDS = [c[0] for c in CASES]


def group_of(case_id):
    """``simulate``, ``theory``, ``reproduce``, ``imbalance`` or ``nonlinear``."""
    return case_id.split("-", 1)[0]


# ----------------------------------------------------------------------------- normalisation

# The ONE place that says what is not compared. A dict key is dropped (with its value, at
# any depth) when its lower-cased name
#   * contains one of STRIP_SUBSTRINGS -- wall-clock timings (keys seen today: seconds,
#     wall_seconds, train_seconds, compile_seconds, theory_seconds; also any *elapsed* or
#     *time* key), the Numba compile source (compile_source: "compiled" on a cold cache,
#     "cache" on a warm one) and version strings (minissl_version);
#   * or is in STRIP_KEYS -- absolute paths and what depends on the installed extras:
#     settings_file (path of the TOML read), figure_png (path of the PNG written, None without
#     matplotlib), figure_note (None with matplotlib, a message without). json_path, out,
#     out_dir and path (scratch paths) occur in no output today and are listed defensively.
# run_case also asserts that no scratch or checkout path survives in the stored strings.
STRIP_SUBSTRINGS = ("seconds", "time", "elapsed", "compile_source", "version")
STRIP_KEYS = frozenset({"settings_file", "figure_png", "figure_note", "json_path", "out", "out_dir", "path"})


def _stripped(key):
    k = str(key).lower()
    return k in STRIP_KEYS or any(s in k for s in STRIP_SUBSTRINGS)


def normalize(obj):
    """Copy of ``obj`` (parsed JSON / CSV columns) without the keys listed above."""
    if isinstance(obj, dict):
        return {k: normalize(v) for k, v in obj.items() if not _stripped(k)}
    if isinstance(obj, (list, tuple)):
        return [normalize(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- reading outputs

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf|infinity)$", re.IGNORECASE)


def _cell(text):
    """A CSV cell: numeric strings as floats, anything else (names, True/False, '') unchanged."""
    return float(text) if _NUMBER.match(text.strip()) else text


def read_csv_columns(path):
    """A CSV file as ``{column: [values]}`` in header order (numeric strings -> float)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    assert len(set(header)) == len(header), f"{path}: duplicate column names {header}"
    for i, r in enumerate(body):
        assert len(r) == len(header), f"{path}: row {i + 2} has {len(r)} cells, header {len(header)}"
    return {name: [_cell(r[j]) for r in body] for j, name in enumerate(header)}


def read_output(path):
    path = Path(path)
    if path.suffix == ".csv":
        return read_csv_columns(path)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# ----------------------------------------------------------------------------- running a case

def _expand(arg, paths):
    return arg.replace("{json}", paths["json"]).replace("{out}", paths["out"])


def command(argv):
    """The subprocess command line of a case's ``argv`` (placeholders already expanded)."""
    return [sys.executable, "-c", "from minissl.cli import main; main()", *argv]


# Thread count of the subprocesses (Numba's parallel kernels and OpenBLAS). Pinned to 1 by
# default: on this 2-core machine the parallel kernels slow down ~10x whenever another process
# competes for the cores (many tiny parallel launches), and the recorded numbers were checked to
# be bit-identical with 1 and 2 threads (minissl splits work into fixed chunks, _config.N_CHUNKS).
# Set MINISSL_GOLDEN_THREADS=2 (or any count) to run the cases with that many threads, or
# MINISSL_GOLDEN_THREADS=inherit to leave NUMBA_NUM_THREADS / OPENBLAS_NUM_THREADS as they are.
THREAD_VARS = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.pop("MINISSL_DATA", None)  # read data/experiments/*.toml of this checkout
    threads = os.environ.get("MINISSL_GOLDEN_THREADS", "1").strip()
    if threads != "inherit":
        for var in THREAD_VARS:
            env[var] = threads
    return env


def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


class Runner:
    """One ``tests/golden/runner.py`` process: runs cases one after another (``run(argv, timeout)``).

    Used as a context manager; ``run`` returns a ``subprocess.CompletedProcess``-like object
    (``returncode``, ``stdout``, ``stderr``). A case that runs past ``timeout`` seconds kills the
    runner (``RuntimeError``); a dead runner is restarted for the next case.
    """

    def __init__(self):
        self.proc = None
        self.count = 0

    def _start(self):
        self.proc = subprocess.Popen([sys.executable, str(GOLDEN_DIR / "runner.py")], cwd=REPO_ROOT,
                                     env=subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def run(self, argv, timeout=900):
        import select

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.count += 1
        self.proc.stdin.write(json.dumps({"id": self.count, "argv": list(argv)}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close(kill=True)
            raise RuntimeError(f"minissl {' '.join(argv)} ran past {timeout} s in the golden runner (killed)")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            raise RuntimeError(f"the golden runner died (exit code {code}) running minissl {' '.join(argv)}")
        reply = json.loads(line)
        if reply.get("id") != self.count:
            self.close(kill=True)
            raise RuntimeError(f"the golden runner answered request {reply.get('id')} for request {self.count}")
        return subprocess.CompletedProcess(argv, reply["rc"], reply["stdout"], reply["stderr"])

    def close(self, kill=False):
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_case(case, workdir, timeout=900, runner=None):
    """Run one case in ``workdir`` (an empty scratch folder) and return its record.

    ``runner``: a :class:`Runner` to run it in (default: a fresh subprocess, as
    ``regenerate.py`` records). The record is ``{"case_id", "argv", "kind", "outputs": {file
    label: normalized content}}`` where ``argv`` keeps the placeholders and the file label is the
    ``OUTPUT_FILES`` entry with ``{figure}`` filled in. Raises ``RuntimeError`` with the
    command's output when it exits non-zero or a file is missing, and ``AssertionError`` if a
    scratch or checkout path survives normalisation (then ``normalize`` needs another key).
    """
    case_id, argv, kind = case
    workdir = Path(workdir).resolve()
    paths = {"json": str(workdir / "result.json"), "out": str(workdir / "out")}
    full = [_expand(a, paths) for a in argv]
    if runner is None:
        proc = subprocess.run(command(full), cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True,
                              timeout=timeout)
    else:
        proc = runner.run(full, timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{case_id}: `minissl {' '.join(full)}` exited {proc.returncode}\n"
                           f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")
    outputs = collect_outputs(case_id, kind, argv[1] if kind == "reproduce" else "", paths, workdir, proc.stdout)
    return {"case_id": case_id, "argv": list(argv), "kind": kind, "outputs": outputs}


def collect_outputs(case_id, kind, figure, paths, workdir, stdout=""):
    """The normalized output files of a finished case: ``{file label: content}``.

    ``paths``: ``{"json": the --json file, "out": the --out folder}``; ``figure`` fills the
    ``{figure}`` of a reproduce case's labels. Raises ``RuntimeError`` for a missing file and
    ``AssertionError`` when a scratch (``workdir``) or checkout path survives normalisation.
    """
    outputs = {}
    for label in OUTPUT_FILES[kind]:
        label = label.replace("{figure}", figure)
        path = paths["json"] if label == "{json}" else os.path.join(paths["out"], label)
        if not os.path.isfile(path):
            raise RuntimeError(f"{case_id}: expected output {path} is missing\n--- stdout ---\n{stdout[-4000:]}")
        outputs["result.json" if label == "{json}" else label] = normalize(read_output(path))
    for s in _strings(outputs):
        for where in (str(workdir), str(REPO_ROOT)):
            assert where not in s, (f"{case_id}: the path {where!r} survives normalisation in {s!r}; "
                                    "add its key to STRIP_KEYS in tests/golden/cases.py")
    return outputs


def golden_path(case_id):
    return GOLDEN_DIR / f"{case_id}.json"


def dump_record(record, path):
    """Write a record as JSON (non-finite CSV values as NaN / Infinity, which ``json`` reads back)."""
    text = json.dumps(record, indent=1, allow_nan=True) + "\n"
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_record(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
