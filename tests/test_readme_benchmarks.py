"""README's performance figures are the benchmark's own output, not retyped numbers.

``python benchmarks/bench_infonce.py --readme README.md`` writes ``benchmarks/results.md`` and
copies it into README between markers; with ``--load 2`` it writes a sentence generated from
``benchmarks/results-load2.md``. These tests fail when README and the result files drift apart
(for example after a benchmark run without ``--readme``, or a hand edit of either).
"""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_infonce", ROOT / "benchmarks" / "bench_infonce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _block(name):
    begin, end = _bench().readme_markers(name)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    i, j = text.index(begin), text.index(end)
    return text[i + len(begin):j].strip("\n")


def test_readme_tables_are_benchmarks_results_md():
    assert _block("results.md") == (ROOT / "benchmarks" / "results.md").read_text(encoding="utf-8").strip("\n")


def test_readme_load_sentence_is_generated_from_results_load2_md():
    bench = _bench()
    text = (ROOT / "benchmarks" / "results-load2.md").read_text(encoding="utf-8")
    assert "--load 2" in text
    assert _block("results-load2.md") == bench.load_summary(text, "results-load2.md", 2)
