"""The sweep specification (issue 15, step 1): parsing, checking before any work, point keys."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from minissl.cli import main
from minissl.cli.sweep_spec import load_spec, parse_spec

EXAMPLE = """
command = "simulate"
[fixed]
loss = "beta"
steps = 400
variances = [1.0, 2.0]
normalize = false
[grid]
sigma = [0.5, 1.5, 2.5]
beta = [0.5, 1.0]
seed = [0, 1]
"""


def test_example_spec_gives_the_cartesian_product_in_file_order(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(EXAMPLE)
    spec = load_spec(path)
    assert spec.command == "simulate" and spec.size == 12
    pts = list(spec.points())
    assert len(pts) == 12
    assert [p[0] for p in pts[:3]] == [{"sigma": 0.5, "beta": 0.5, "seed": 0}, {"sigma": 0.5, "beta": 0.5, "seed": 1},
                                       {"sigma": 0.5, "beta": 1.0, "seed": 0}]
    assert pts[-1][0] == {"sigma": 2.5, "beta": 1.0, "seed": 1}
    assert all(opts["loss"] == "beta" and opts["steps"] == 400 for _, opts in pts)
    assert spec.argv(pts[0][1]) == ["--loss", "beta", "--steps", "400", "--variances", "1.0,2.0", "--no-normalize",
                                    "--sigma", "0.5", "--beta", "0.5", "--seed", "0"]


def test_a_point_runs_as_its_command_line():
    """The argv of a point is what the command accepts: the same run as typing it."""
    spec = parse_spec({"command": "theory", "fixed": {"loss": "beta", "beta": 0.5, "variances": [1.0, 2.0, 3.0]},
                       "grid": {"sigma": [0.5, 2.0]}})
    outs = [CliRunner().invoke(main, ["theory", "point", *spec.argv(opts)]) for _, opts in spec.points()]
    assert all(r.exit_code == 0 for r in outs), [r.output for r in outs]
    direct = CliRunner().invoke(main, ["theory", "point", "--loss", "beta", "--beta", "0.5", "--variances", "1,2,3",
                                       "--sigma", "2.0"])
    assert outs[1].output == direct.output


def test_keys_depend_on_the_complete_settings():
    spec = parse_spec({"command": "simulate", "fixed": {"steps": 100}, "grid": {"sigma": [0.5, 1.0]}})
    other = parse_spec({"command": "simulate", "fixed": {"steps": 200}, "grid": {"sigma": [0.5, 1.0]}})
    more = parse_spec({"command": "simulate", "fixed": {"steps": 100}, "grid": {"sigma": [0.5, 1.0, 2.0]}})
    k = [spec.key(o) for _, o in spec.points()]
    assert len(set(k)) == 2 and all(len(x) == 64 for x in k)
    assert not set(k) & {other.key(o) for _, o in other.points()}  # a changed fixed setting: every key changes
    assert set(k) < {more.key(o) for _, o in more.points()}  # a new grid value: the old points keep their keys
    assert spec.key({"sigma": 0.5, "steps": 100}) == spec.key({"steps": 100, "sigma": 0.5})  # order-free


@pytest.mark.parametrize("data, fragment", [
    ({"command": "sim"}, "command = 'sim', must be one of ['simulate', 'theory']"),
    ({"command": "simulate", "grids": {}}, "unknown top-level key(s) ['grids']"),
    ({"command": "simulate", "fixed": {"sigmaa": 1.0}}, "[fixed] sigmaa = 1.0: not an option of `minissl simulate` "
                                                        "(did you mean 'sigma'?)"),
    ({"command": "simulate", "grid": {"sigma": ["abc"]}}, "[grid] sigma = 'abc': Invalid value for '--sigma'"),
    ({"command": "simulate", "fixed": {"steps": -3}}, "[fixed] steps = -3: Invalid value for '--steps': --steps == -3, "
                                                      "must be >= 1"),
    ({"command": "simulate", "fixed": {"loss": "nope"}}, "[fixed] loss = 'nope': Invalid value for '--loss'"),
    ({"command": "simulate", "fixed": {"normalize": "yes"}}, "[fixed] normalize = 'yes': a flag, must be true or false"),
    ({"command": "simulate", "fixed": {"json": "x.json"}}, "[fixed] json: the sweep stores every point's result"),
    ({"command": "simulate", "grid": {"sigma": 1.0}}, "[grid] sigma = 1.0: must be a non-empty list of values"),
    ({"command": "simulate", "grid": {"sigma": []}}, "[grid] sigma = []: must be a non-empty list of values"),
    ({"command": "simulate", "grid": {"sigma": [1.0, 1.0]}}, "[grid] sigma = [1.0, 1.0]: repeated values"),
    ({"command": "simulate", "grid": {"variances": [1.0, 2.0]}}, "[grid] variances = [1.0, 2.0]: must be a list of "
                                                                 "lists of numbers"),
    ({"command": "simulate", "fixed": {"variances": [1.0, "a"]}}, "[fixed] variances = [1.0, 'a']: must be a non-empty "
                                                                  "list of numbers"),
    ({"command": "simulate", "fixed": {"steps": 3}, "grid": {"steps": [1]}}, "['steps'] in both [fixed] and [grid]"),
    ({"command": "simulate", "fixed": {"sigma": float("nan")}}, "[fixed] sigma = nan: must be a number"),
    # the commands' cross-option rules (inside the command body, not click's parser) run per point
    ({"command": "theory", "fixed": {"augmentation": "scale"}, "grid": {"sigma": [1.0, 2.0]}},
     "point {'sigma': 1.0}: Invalid value for '--sigma': --sigma has no effect with --augmentation scale"),
    ({"command": "simulate", "fixed": {"loss": "infonce"}, "grid": {"beta": [0.5]}},
     "point {'beta': 0.5}: Invalid value for '--beta'"),
    ({"command": "simulate", "grid": {"dim": [3], "variances": [[1.0, 2.0]]}},
     "point {'dim': 3, 'variances': [1.0, 2.0]}: Invalid value for '--dim': --dim == 3 but --variances lists 2"),
])
def test_bad_specs_are_refused_naming_file_key_and_value(data, fragment):
    with pytest.raises(ValueError) as info:
        parse_spec(data, source="sweep.toml")
    msg = str(info.value)
    assert msg.startswith("sweep.toml") and fragment in msg, msg


def test_options_valid_only_together_pass_per_key_and_are_checked_per_point():
    # --theta alone is refused with the default isotropic augmentation; with structured it is fine
    spec = parse_spec({"command": "simulate", "fixed": {"augmentation": "structured"}, "grid": {"theta": [0.0, 1.0]}})
    assert spec.size == 2
    spec = parse_spec({"command": "simulate", "grid": {"augmentation": ["isotropic", "structured"],
                                                       "sigma": [1.0]}})
    assert spec.size == 2
    with pytest.raises(ValueError, match=r"point \{'augmentation': 'isotropic', 'theta': 0.5\}: .*--theta has no "
                                         r"effect here; it applies with --augmentation structured"):
        parse_spec({"command": "simulate", "grid": {"augmentation": ["isotropic", "structured"], "theta": [0.5]}})


def test_unreadable_and_invalid_toml_files(tmp_path):
    with pytest.raises(ValueError, match="cannot be read"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("command = \n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_spec(bad)
