"""The experiment: train every (loss, seed, level), evaluate learned and theory, write the outputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ... import _validation as V
from ..common import save_figure, write_csv, write_report
from ..runs import RunCache
from .geometry import seed_setup
from .metrics import evaluate_seed
from .report import drawer, markdown
from ...losses.registry import spec as loss_spec
from .settings import FIGURE, SOURCES, level_key, load_settings
from .summary import ensemble_rows, learned_rows, summarise

__all__ = ["run_imbalance"]

_VERSION = "imbalance/1"  # bump when a stored run's meaning changes


def _learned_record(res, kwargs):
    """The stored record of a training run: its ``W`` and convergence diagnostics.

    The ``evaluate`` of the :class:`~minissl.experiments.runs.RunCache` (which adds ``converged``,
    ``steps`` and ``replicates``).
    """
    W = np.asarray(res.W, dtype=np.float64)
    return {"W": W.tolist(), "spectral_change": res.diagnostics["spectral_change"],
            "grad_pvalue": res.diagnostics["grad_pvalue"], "u": float(2.0 * np.sum((W @ res.Sigma) * W)),
            "train_seconds": float(res.settings["train_seconds"])}


def run_imbalance(out="minissl-figures", quick=False, seeds=None, levels=None, losses=None, scheme=None,
                  sigma=None, d1=None, n=None, steps=None, theory_seeds=None, engine="numba", progress=True,
                  executor=None):
    """Run the imbalance experiment; returns its report (also ``OUT/imbalance/report.json``).

    Parameters
    ----------
    out : path
        Output folder; results go to ``out/imbalance/``.
    quick : bool
        The ``[quick]`` settings of ``data/experiments/imbalance.toml`` (what the tests run).
    seeds : int, optional
        Trained repetitions (each: new class means, sample, init and noise; paired across
        levels and losses).
    levels : sequence of float, optional
        Imbalance levels (see :func:`~.settings.check_levels`); the balanced level is always added.
    losses : sequence of str, optional
        Subset of :data:`~.settings.LOSSES` (``weighted`` is the paper's NT-Xent, alpha = 0).
    scheme : {"geometric", "dirichlet"}, optional
        With a scheme other than the settings file's, give ``levels`` too.
    sigma, d1, n, steps : optional
        Override the augmentation strength, output dimension, dataset size, training steps.
    theory_seeds : int, optional
        Class-mean geometries over which the theory (no training) is averaged (>= seeds).
    engine : {"numba", "numpy"}
    progress : bool
        A progress bar on stderr (when it is a terminal).
    executor : minissl.sweep.Embedded or minissl.sweep.DaskExecutor, optional
        Where the runs are trained (``minissl imbalance --scheduler``) [default: this process].

    Returns
    -------
    dict
        JSON-ready (what report.json holds) plus ``markdown``. Levels are stored as exact
        strings (:func:`~.settings.level_key`: ``"inf"``, ``"1"``, ``"0.3"``), with ``level_labels``.
    """
    V.check_choice("engine", engine, ("numba", "numpy"))
    quick = V.check_bool("quick", quick)
    progress = V.check_bool("progress", progress)
    for name, val in (("levels", levels), ("losses", losses)):
        if val is not None and (isinstance(val, (str, bytes)) or not hasattr(val, "__iter__")):
            raise TypeError(f"{name} == {val!r}, must be a list.")
    overrides = {"seeds": seeds, "levels": None if levels is None else list(levels),
                 "losses": None if losses is None else list(losses), "scheme": scheme, "sigma": sigma, "d1": d1,
                 "n": n, "steps": steps, "theory_seeds": theory_seeds}
    s = load_settings(quick, overrides)
    folder = Path(out) / FIGURE
    folder.mkdir(parents=True, exist_ok=True)
    cache = RunCache(folder / "points" / ("quick" if quick else "full"), _learned_record, max_steps=s["max_steps"],
                     max_replicates=s["max_replicates"], progress=progress, batch=4, noun="runs",
                     executor=executor)
    t_start = time.perf_counter()
    K, d0, d1_, scheme_, lv = s["classes"], s["dim"], s["d1"], s["scheme"], s["levels"]
    C = s["sigma"] ** 2 * np.eye(d0)

    # training runs: (loss, seed, level)
    setups = {seed: seed_setup(s, seed) for seed in range(s["seeds"])}
    runs = []
    for loss in s["losses"]:
        for seed in range(s["seeds"]):
            for li, level in enumerate(lv):
                kw = {"loss": loss, "data": setups[seed]["data"][li], "sigma": s["sigma"], "d1": d1_, "seed": seed,
                      **s["train"]}
                if s["control_variate"] and loss_spec(loss).control_variate:
                    kw["control_variate"] = True
                kw["engine"] = engine
                spec = {"version": _VERSION, "loss": loss, "seed": seed, "level": level, "scheme": scheme_,
                        "classes": K, "dim": d0, "d1": d1_, "radius": s["radius"], "within": s["within"],
                        "center_means": s["center_means"], "stratified": s["stratified"], "n": s["n"],
                        "sigma": s["sigma"], "train": s["train"], "control_variate": kw.get("control_variate", False),
                        "max_steps": s["max_steps"], "max_replicates": s["max_replicates"], "engine": engine}
                runs.append((f"{loss}-seed{seed}-{scheme_}{level!r}", kw, spec))
    t_train = time.perf_counter()
    learned = dict(zip((key for key, *_ in runs), cache.run(runs)))
    t_train = time.perf_counter() - t_train

    # trained seeds: learned, derived and paper matrices, paired
    recs = {}
    for loss in s["losses"]:
        for seed in range(s["seeds"]):
            Ws = [learned[f"{loss}-seed{seed}-{scheme_}{level!r}"]["W"] for level in lv]
            ev = evaluate_seed(loss, s, C, setups[seed], learned=Ws)
            for src, per_level in ev.items():
                for li, r in enumerate(per_level):
                    if src == "learned":
                        lr = learned[f"{loss}-seed{seed}-{scheme_}{lv[li]!r}"]
                        r.update({k: lr[k] for k in ("converged", "steps", "replicates", "u")})
                    recs[loss, seed, li, src] = r
    # the theory over many geometries (the trained seeds first)
    t_theory = time.perf_counter()
    ens = {}
    empty = [[] for _ in lv]  # number of empty classes, per level and geometry
    for seed in range(s["theory_seeds"]):
        setup = setups.get(seed) or seed_setup(s, seed)
        for li, ds in enumerate(setup["data"]):
            empty[li].append(int(np.count_nonzero(ds.counts == 0)))
        for loss in s["losses"]:
            if seed < s["seeds"]:
                ev = {src: [recs[loss, seed, li, src] for li in range(len(lv))] for src in SOURCES[1:]}
            else:
                ev = evaluate_seed(loss, s, C, setup)
            for src, per_level in ev.items():
                for li, r in enumerate(per_level):
                    ens[loss, seed, li, src] = {k: v for k, v in r.items() if k != "M"}
    t_theory = time.perf_counter() - t_theory

    rows = learned_rows(s, recs)
    write_csv(folder / "data.csv", rows)
    ens_rows = ensemble_rows(s, ens)
    write_csv(folder / "theory_ensemble.csv", ens_rows)
    report = summarise(s, recs, ens, rows, ens_rows, empty)
    wall = time.perf_counter() - t_start
    report.update({"quick": quick, "engine": engine, "settings_file": s["path"],
                   "settings": {**{k: v for k, v in s.items() if k != "path"},
                                "levels": [level_key(v) for v in s["levels"]]}, "wall_seconds": wall,
                   "train_seconds": t_train, "theory_seconds": t_theory})
    text = markdown(report, s)
    msg = save_figure(folder / "figure.png", drawer(report, s))
    report["figure_png"] = None if msg else str(folder / "figure.png")
    report["figure_note"] = msg
    text += (f"\n\nWall time {wall:.1f} s (training {t_train:.1f} s, theory ensemble {t_theory:.1f} s; "
             f"{'quick' if quick else 'full'} settings, engine {engine}; finished runs are reused when resuming). "
             f"Settings: `{s['path']}`.\n")
    if msg:
        text += f"\n{msg}\n"
    write_report(folder, report, text)
    report["markdown"] = text
    return report
