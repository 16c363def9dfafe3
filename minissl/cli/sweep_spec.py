"""The sweep specification: which command, which fixed options, which grid (issue 15).

A sweep file is TOML: ``command`` (``"simulate"`` or ``"theory"``, i.e. ``minissl theory
point``), a table ``[fixed]`` of options and a table ``[grid]`` of lists of values, whose
Cartesian product (in the order written, the last axis fastest) are the points; the example is
in ``minissl sweep --help`` and docs/sweeps.md.

Keys are the command's long option names with ``_`` for ``-`` (``scale_b``, ``out_dim``,
``lr_schedule``); flags take ``true``/``false``; ``variances`` takes a list of numbers. Every
key and every value is checked by the command's own option parser (types, ranges, choices),
first one key at a time (so an error names the key and the value), then every point as a whole
with the command's cross-option rules (:func:`minissl.cli.points.check`), all before any work. Errors are ``ValueError`` naming the file, the section, the key and the
value. Options that write files (``json``, ``track_csv``, ``track_plot``) belong to the sweep
and are refused.

Each point has a key (:meth:`SweepSpec.key`): the SHA-256 of its command, minissl's version and
its settings as the command's parser reads them, what a store uses to find finished points
again; changing a fixed setting changes every key, changing one grid value changes only the
points that carry it, and two points of one grid with the same settings are refused.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import points
from .points import COMMANDS

__all__ = ["SweepSpec", "load_spec", "parse_spec", "COMMANDS"]

# options that write files: the sweep stores every point's result itself
_SWEEP_OWNS = {"json", "track_csv", "track_plot"}


def _info_name(command):
    return {"simulate": "simulate", "theory": "theory point"}[command]


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: ``command``, ``fixed`` options, ``grid`` axes (name -> values, in file order)."""

    command: str
    fixed: dict
    grid: dict
    source: str = "<spec>"

    @property
    def size(self):
        """Number of points (the product of the grid's lengths; 1 without a grid)."""
        return math.prod(len(v) for v in self.grid.values())

    def points(self):
        """Every point as ``(grid_values, options)``: the grid's values (a dict in axis order)
        and the complete option set (fixed and grid together), in Cartesian order (the last
        axis fastest)."""
        names = list(self.grid)
        for combo in itertools.product(*(self.grid[k] for k in names)):
            values = dict(zip(names, combo))
            yield values, {**self.fixed, **values}

    def key(self, options):
        """SHA-256 (hex) of the command, minissl's version and the point's complete settings as the
        command reads them (every option, defaults included, after conversion: ``sigma = 1`` and
        ``1.0`` are one point, and so are a default left out and spelled out)."""
        from .. import __version__

        blob = json.dumps({"command": self.command, "minissl": __version__,
                           "settings": points.settings(self.command, options)},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def argv(self, options):
        """The command line of one point (without the program and command names)."""
        return points.argv(self.command, options)


def _is_scalar(v):
    return isinstance(v, (bool, int, float, str)) and not (isinstance(v, float) and not math.isfinite(v))


def _check_value(source, section, key, value, p):
    if p.is_flag:
        if not isinstance(value, bool):
            raise ValueError(f"{source}: [{section}] {key} = {value!r}: a flag, must be true or false.")
        return
    if key == "variances":
        if not (isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          for v in value)):
            raise ValueError(f"{source}: [{section}] {key} = {value!r}: must be a non-empty list of numbers.")
        return
    if not _is_scalar(value):
        raise ValueError(f"{source}: [{section}] {key} = {value!r}: must be a number, a string or true/false.")


def _check(command, options, what, whole=True):
    """The command's own checks of one option set (parser, callbacks, cross-option rules), no work."""
    try:
        points.check(command, options, whole=whole)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def parse_spec(data, source="<spec>"):
    """Check a sweep specification given as a dict (parsed TOML) and return a :class:`SweepSpec`."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: must be a TOML table with command, [fixed] and [grid].")
    extra = sorted(set(data) - {"command", "fixed", "grid"})
    if extra:
        raise ValueError(f"{source}: unknown top-level key(s) {extra}; allowed: command, [fixed], [grid].")
    command = data.get("command")
    if command not in COMMANDS:
        raise ValueError(f"{source}: command = {command!r}, must be one of {list(COMMANDS)}.")
    info_name = _info_name(command)
    options = points.option_map(command)
    fixed, grid = data.get("fixed", {}), data.get("grid", {})
    for section, table in (("fixed", fixed), ("grid", grid)):
        if not isinstance(table, dict):
            raise ValueError(f"{source}: [{section}] must be a table of option = value.")
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ValueError(f"{source}: {both} in both [fixed] and [grid]; give each option once.")
    checked_grid = {}
    for section, table in (("fixed", fixed), ("grid", grid)):
        for key, raw in table.items():
            if key in _SWEEP_OWNS:
                raise ValueError(f"{source}: [{section}] {key}: the sweep stores every point's result itself; "
                                 f"remove it.")
            if key not in options:
                near = difflib.get_close_matches(key, list(options), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ValueError(f"{source}: [{section}] {key} = {raw!r}: not an option of `minissl {info_name}`"
                                 f"{hint}.")
            if section == "grid":
                if not isinstance(raw, list) or not raw:
                    raise ValueError(f"{source}: [grid] {key} = {raw!r}: must be a non-empty list of values.")
                if key == "variances" and not all(isinstance(v, list) for v in raw):
                    raise ValueError(f"{source}: [grid] variances = {raw!r}: must be a list of lists of numbers.")
                if len({json.dumps(v, sort_keys=True) for v in raw}) != len(raw):
                    raise ValueError(f"{source}: [grid] {key} = {raw!r}: repeated values.")
                checked_grid[key] = list(raw)
            for v in (raw if section == "grid" else [raw]):
                _check_value(source, section, key, v, options[key])
                _check(command, {key: v}, f"{source}: [{section}] {key} = {v!r}", whole=False)
    spec = SweepSpec(command=command, fixed=dict(fixed), grid=checked_grid, source=source)
    seen = {}
    for values, opts in spec.points():  # every combination, before any work
        _check(command, opts, f"{source}: point {values}")
        twin = seen.setdefault(spec.key(opts), values)
        if twin is not values:
            raise ValueError(f"{source}: points {twin} and {values} are the same settings (e.g. 1 and 1.0, or a "
                             "default spelled out); give each value once.")
    return spec


def load_spec(path):
    """Read and check a sweep file (TOML); errors name the file, the key and the value."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"sweep file {str(path)!r} cannot be read: {exc.strerror}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}.") from None
    return parse_spec(data, source=str(path))
