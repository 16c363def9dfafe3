"""Regenerate (or check) every command output shown in README.md and the docs.

A code block of README.md or ``docs/*.md`` whose output comes from minissl is preceded by a
marker line::

    <!-- output of: minissl simulate --loss infonce --seed 1 -->
    <!-- output of: minissl simulate --seed 1 | lines: ^  i |^  \\d|expansion -->
    <!-- output of: $ minissl theory --sigma 1.5 -->
    <!-- output of: minissl imbalance --out OUT --quiet -->

    <!-- output of: minissl imbalance --out OUT --quiet | pinned: imbalance-quick@0123456789ab -->

The command runs in a fresh process (``python -c "from minissl.cli import main; main()" ARGS``)
and the block is replaced by its output; ``| lines: REGEX`` keeps only the lines that match
``REGEX`` (Python ``re.search``), a leading ``$`` also shows the command line in the block, and
an argument ``OUT`` is a fresh temporary output folder, printed back as ``OUT``.
Wall-clock figures (``[0.5 s]``, ``compiled in 31.2 s``, ``loaded from cache in 0.2 s``) are
the only parts that differ between machines and runs; ``--check`` ignores them.

A *pinned* block (``| pinned: GOLDEN@SHA``) is a run too long for the test suite (the full
default runs of ``minissl imbalance``, ``minissl reproduce saddles`` and ``slowing``, minutes
each). It is regenerated like any other block, and the marker then records :func:`pin_digest`:
the first 12 hex digits of a SHA-256 over the block's command, ``tests/golden/GOLDEN.json``
(the golden record of the same command with ``--quick``, which :func:`check_pin` requires) and
every settings file ``data/experiments/*.toml``. ``--check`` does not rerun it; it checks that
the digest is unchanged since the block was written. A change of the command's numbers
changes its quick golden, which must then be re-recorded (``tests/golden/regenerate.py``); a
change of the full run's settings changes a settings file; either way the pinned block fails
the check until it is regenerated. ``--full`` reruns pinned blocks too.

Run from the repository root::

    python docs/regenerate_readme.py                  # rewrite the marked blocks (pinned ones too)
    python docs/regenerate_readme.py --check          # exit 1 and show the differences if any block is stale
    python docs/regenerate_readme.py --check --full   # ... rerunning the pinned blocks as well

``tests/test_readme_outputs.py`` runs the check for every block.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def files():
    """README.md and the docs' Markdown files: the places a marked block may be."""
    return [README] + sorted((ROOT / "docs").glob("*.md"))

_MARKER = re.compile(r"^<!-- output of: (?P<show>\$ )?(?P<cmd>minissl [^|]*?)(?: \| lines: (?P<lines>.*?))?"
                     r"(?: \| pinned: (?P<pin>[\w.-]+)@(?P<sha>[0-9a-f]{12}|new))? -->$")
GOLDEN_DIR = ROOT / "tests" / "golden"
_TIMINGS = [(re.compile(r"\[\d+(\.\d+)? s\]"), "[_ s]"),
            (re.compile(r"(compiled in|loaded from cache in) \d+(\.\d+)? s"), "_ s")]


@dataclass
class Block:
    """A marked code block: the marker's line index, the block's body lines (start, end) and the command."""
    marker: int
    start: int
    end: int
    cmd: str
    show: bool
    lines: str | None
    pin: str | None = None
    sha: str | None = None

    def marker_line(self, sha):
        """The marker with ``sha`` as the pinned golden's digest."""
        return ("<!-- output of: " + ("$ " if self.show else "") + self.cmd
                + (f" | lines: {self.lines}" if self.lines else "") + f" | pinned: {self.pin}@{sha} -->")


SETTINGS_DIR = ROOT / "data" / "experiments"


def pin_digest(block):
    """First 12 hex digits of the SHA-256 over the block's command, its pinned golden record and
    every ``data/experiments/*.toml`` (``FileNotFoundError`` without the golden)."""
    import hashlib

    h = hashlib.sha256(block.cmd.encode() + b"\0" + (GOLDEN_DIR / f"{block.pin}.json").read_bytes())
    for path in sorted(SETTINGS_DIR.glob("*.toml")):
        h.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def check_pin(block):
    """``ValueError`` unless the pinned golden records the block's command with ``--quick`` added."""
    import json

    argv = json.loads((GOLDEN_DIR / f"{block.pin}.json").read_text())["argv"]
    mine = ["{out}" if a == "OUT" else a for a in shlex.split(block.cmd)[1:]]
    if "--quick" not in argv or [a for a in argv if a != "--quick"] != mine:
        raise ValueError(f"pinned golden {block.pin!r} records minissl {' '.join(argv)}, not the block's command "
                         f"{block.cmd!r} with --quick")


def blocks(text):
    """The marked code blocks of README text (``ValueError`` for a marker not followed by a block)."""
    rows = text.split("\n")
    out = []
    for i, row in enumerate(rows):
        m = _MARKER.match(row)
        if not m:
            continue
        if i + 1 >= len(rows) or not rows[i + 1].startswith("```"):
            raise ValueError(f"line {i + 1}: the marker must be followed by a code block")
        end = next(j for j in range(i + 2, len(rows)) if rows[j].startswith("```"))
        out.append(Block(i, i + 2, end, m["cmd"].strip(), bool(m["show"]), m["lines"], m["pin"], m["sha"]))
    return out


def run(block):
    """The block's body as the command prints it now (a list of lines).

    An argument ``OUT`` stands for an output folder: the command gets a fresh temporary
    folder there, and its path is printed back as ``OUT``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "out")
        args = [folder if a == "OUT" else a for a in shlex.split(block.cmd)[1:]]
        env = dict(os.environ, COLUMNS="100")
        r = subprocess.run([sys.executable, "-c", "from minissl.cli import main; main()", *args], cwd=ROOT,
                           env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{block.cmd!r} exited with {r.returncode}:\n{r.stderr[-2000:]}")
    out = [ln.rstrip().replace(folder, "OUT") for ln in r.stdout.rstrip("\n").split("\n")]
    if block.lines:
        pat = re.compile(block.lines)
        out = [ln for ln in out if pat.search(ln)]
    return ([f"$ {block.cmd}"] if block.show else []) + out


def normalize(lines):
    """Lines with their wall-clock figures replaced (what ``--check`` compares)."""
    out = []
    for ln in lines:
        for pat, rep in _TIMINGS:
            ln = pat.sub(rep, ln)
        out.append(ln)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of rewriting; exit 1 if any block is stale")
    ap.add_argument("--full", action="store_true", help="with --check: rerun the pinned blocks too")
    args = ap.parse_args(argv)
    stale = total = 0
    for path in files():
        text = path.read_text()
        rows = text.split("\n")
        found = blocks(text)
        total += len(found)
        for b in reversed(found):  # from the end: earlier line numbers stay valid
            if b.pin:
                check_pin(b)
            if b.pin and args.check:
                if b.sha != pin_digest(b):
                    stale += 1
                    print(f"{path.name}: {b.cmd}: its quick golden or a settings file changed since the block was "
                          f"written (marker {b.sha}, now {pin_digest(b)}); regenerate the block")
                if not args.full:
                    continue
            new = run(b)
            old = rows[b.start:b.end]
            if args.check:
                if normalize(old) != normalize(new):
                    stale += 1
                    sys.stdout.writelines(difflib.unified_diff([ln + "\n" for ln in old], [ln + "\n" for ln in new],
                                                               f"{path.name}: {b.cmd}", "now"))
            else:
                rows[b.start:b.end] = new
                if b.pin:
                    rows[b.marker] = b.marker_line(pin_digest(b))
        if found and not args.check:
            path.write_text("\n".join(rows))
    if args.check:
        print(f"{stale} stale block(s)" if stale else f"all {total} marked outputs are current")
        return 1 if stale else 0
    print(f"rewrote {total} block(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
