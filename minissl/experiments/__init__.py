"""One-command reproductions of the paper's figures (``minissl reproduce <figure>``).

Each figure reads its settings from ``data/experiments/<figure>.toml`` (what the paper
states and every choice made where it is silent), runs its points with the resumable
:class:`~minissl.experiments.runs.RunCache`, and writes to ``OUT/<figure>/``:
``data.csv``, ``figure.png`` (with the ``plot`` extra), ``report.json`` and ``report.md``
with the agreement metrics; finished points are kept under ``points/`` so an
interrupted run resumes.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import _validation as V
from .common import PROTOCOLS, load_settings, save_figure, write_report
from .fig1 import fig1_toy
from .fig3 import fig3_phase
from .fig5 import fig5_beta, fig5_infonce, fig5_weighted
from .fig6 import fig6_normalized
from .fig7 import fig7_mlp
from .saddles import saddles
from .slowing import slowing

__all__ = ["FIGURES", "PROTOCOLS", "reproduce", "load_settings"]

FIGURES = {
    "fig5-infonce": fig5_infonce,
    "fig5-weighted": fig5_weighted,
    "fig5-beta": fig5_beta,
    "fig6-normalized": fig6_normalized,
    "fig1": fig1_toy,
    "fig3": fig3_phase,
    "fig7": fig7_mlp,
    "saddles": saddles,
    "slowing": slowing,
}


def reproduce(figure, out="minissl-figures", quick=False, seeds=None, engine="numba", protocol="converged",
              progress=True, executor=None):
    """Reproduce one figure; returns its report (also written to ``out/<figure>/report.json``).

    Parameters
    ----------
    figure : str
        One of :data:`FIGURES`.
    out : path
        Output folder (created).
    quick : bool
        The ``[quick]`` settings of the TOML file (small sizes; what the tests run).
    seeds : int, optional
        Independent runs per point (averaged); default from the settings (1).
    engine : {"numba", "numpy"}
    protocol : {"converged", "paper"}
        ``paper``: Adam, lr 6e-4, constant, full batch, 5000 steps, fresh noise.
        ``converged``: the TOML's protocol, re-running a point with twice the steps and
        replicates until the convergence diagnostics pass (up to ``max_steps``).
    progress : bool
        A progress bar on stderr (when it is a terminal).
    executor : minissl.sweep.Embedded or minissl.sweep.DaskExecutor, optional
        Where the points are trained (``minissl reproduce --scheduler``) [default: this process].
    """
    V.check_choice("figure", figure, tuple(FIGURES))
    V.check_choice("protocol", protocol, PROTOCOLS)
    V.check_choice("engine", engine, ("numba", "numpy"))
    quick = V.check_bool("quick", quick)
    cfg = load_settings(figure, quick=quick, protocol=protocol)  # checked: what each figure reads is there
    seeds = V.check_int("seeds", int(cfg["figure"].get("seeds", 1)) if seeds is None else seeds, lo=1)
    folder = Path(out) / figure
    sub = folder / "points" / (protocol + ("-quick" if quick else "")) if figure != "fig1" else folder
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report, markdown, draw = FIGURES[figure](cfg, _Out(folder, sub, executor), seeds, engine, protocol, progress)
    wall = time.perf_counter() - t0
    msg = save_figure(folder / "figure.png", draw)
    report.update({"wall_seconds": wall, "quick": quick, "seeds": seeds, "engine": engine,
                   "settings_file": cfg["path"], "settings": {"figure": cfg["figure"], "run": cfg["run"]},
                   "figure_png": None if msg else str(folder / "figure.png"), "figure_note": msg})
    markdown += f"\n\nWall time {wall:.1f} s ({'quick' if quick else 'full'} settings, {seeds} seed(s), " \
                f"engine {engine}; finished points are reused when resuming). Settings: `{cfg['path']}`" \
                + (" (quick settings override the protocol's step count)" if quick else "") + ".\n"
    if msg:
        markdown += f"\n{msg}\n"
    write_report(folder, report, markdown)
    return report


class _Out:
    """The figure folder, with ``/ "points"`` mapped to the protocol-specific point cache, and the
    executor its points are trained on."""

    def __init__(self, folder, points, executor=None):
        self.folder = Path(folder)
        self.points = Path(points)
        self.executor = executor

    def __truediv__(self, name):
        return self.points if name == "points" else self.folder / name
