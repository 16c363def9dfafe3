"""Every marked command output in README.md and docs/*.md is what the command prints now
(docs/regenerate_readme.py).

A stale block fails with a diff; regenerate with ``python docs/regenerate_readme.py`` when the
change of the output is intended. Wall-clock figures are not compared.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("regenerate_readme",
                                               Path(__file__).resolve().parents[1] / "docs" / "regenerate_readme.py")
regen = importlib.util.module_from_spec(_SPEC)
sys.modules["regenerate_readme"] = regen  # dataclasses look their module up
_SPEC.loader.exec_module(regen)

BLOCKS = [(path, b) for path in regen.files() for b in regen.blocks(path.read_text())]


def test_readme_has_its_command_outputs_marked():
    cmds = [b.cmd for path, b in BLOCKS if path == regen.README]
    assert "minissl simulate" in cmds and any(c.startswith("minissl theory phase") for c in cmds), cmds


RUN = [(path, b) for path, b in BLOCKS if not b.pin]
PINNED = [(path, b) for path, b in BLOCKS if b.pin]


@pytest.mark.parametrize("path, block", RUN, ids=[f"{p.name}: {b.cmd}" for p, b in RUN])
def test_readme_block_is_what_the_command_prints(path, block):
    old = path.read_text().split("\n")[block.start:block.end]
    new = regen.run(block)
    assert regen.normalize(old) == regen.normalize(new), "\n".join(
        [f"{path.name} block is stale (python docs/regenerate_readme.py):"] + [f"- {a}\n+ {b}" for a, b in
                                                                            zip(old, new) if a != b])


@pytest.mark.parametrize("path, block", PINNED, ids=[f"{p.name}: {b.cmd}" for p, b in PINNED])
def test_pinned_block_was_written_with_todays_quick_golden_and_settings(path, block):
    """A pinned block (a full run, minutes long) is not rerun here; its numbers come from the code
    that recorded the golden of the same command's quick run and from today's settings files."""
    regen.check_pin(block)
    assert block.sha == regen.pin_digest(block), (
        f"{path.name}: {block.cmd}: tests/golden/{block.pin}.json or a settings file changed after the block was "
        "written; regenerate it with python docs/regenerate_readme.py")


def test_a_pin_goes_stale_when_its_golden_or_a_settings_file_changes(tmp_path, monkeypatch):
    import json

    marker = "<!-- output of: minissl imbalance --out OUT --quiet | lines: ^(?!-> |x) | pinned: g@0123456789ab -->"
    [b] = regen.blocks(marker + "\n```\nold\n```")
    assert (b.cmd, b.lines, b.pin, b.sha) == ("minissl imbalance --out OUT --quiet", "^(?!-> |x)", "g",
                                              "0123456789ab")
    assert b.marker_line("0123456789ab") == marker
    golden, settings = tmp_path / "golden", tmp_path / "settings"
    golden.mkdir()
    settings.mkdir()
    (golden / "g.json").write_text(json.dumps({"argv": ["imbalance", "--quick", "--out", "{out}", "--quiet"]}))
    (settings / "a.toml").write_text("x = 1\n")
    monkeypatch.setattr(regen, "GOLDEN_DIR", golden)
    monkeypatch.setattr(regen, "SETTINGS_DIR", settings)
    regen.check_pin(b)
    first = regen.pin_digest(b)
    (settings / "a.toml").write_text("x = 2\n")
    second = regen.pin_digest(b)
    (golden / "g.json").write_text(json.dumps({"argv": ["imbalance", "--quick", "--out", "{out}", "--quiet"],
                                               "outputs": {}}))
    third = regen.pin_digest(b)
    assert len({first, second, third}) == 3
    (golden / "g.json").write_text(json.dumps({"argv": ["imbalance", "--out", "{out}"]}))
    with pytest.raises(ValueError, match="not the block's command"):
        regen.check_pin(b)


def test_normalize_drops_wall_clock_figures_only():
    lines = ["train: ... seed=0  [0.5 s]", "engine: numba, whole loop compiled (compiled in 31.2 s)",
             "engine: numba, whole loop compiled (loaded from cache in 0.2 s)", "  1   0.5 s"]
    assert regen.normalize(lines) == ["train: ... seed=0  [_ s]", "engine: numba, whole loop compiled (_ s)",
                                      "engine: numba, whole loop compiled (_ s)", "  1   0.5 s"]
