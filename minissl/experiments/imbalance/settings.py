"""Settings of the imbalance experiment: ``data/experiments/imbalance.toml`` with overrides, checked
once; the imbalance levels and how they are named."""

from __future__ import annotations

import math

import numpy as np

from ... import _validation as V
from ...data import IMBALANCE_SCHEMES as SCHEMES
from ...losses import registry
from ..common import load_settings as load_figure_settings
from ..common import settings_error
from .geometry import check_draws

__all__ = ["FIGURE", "LOSSES", "ROBUST_LOSS", "SCHEMES", "SOURCES", "INFONCE_FAMILY", "load_settings", "check_levels",
           "level_key", "level_label"]

FIGURE = "imbalance"
# Sec. 4.3: SCL's B = 2C does not depend on the data, so the paper expects it to be the loss robust to
# imbalance; it is compared with InfoNCE (Eq. 1) and the paper's NT-Xent (weighted InfoNCE, alpha = 0)
ROBUST_LOSS = "scl"
LOSSES = ("infonce", "weighted", ROBUST_LOSS)
SOURCES = ("learned", "derived", "paper")
# the reference losses: those of the InfoNCE family (their control variate and expansion parameter u)
INFONCE_FAMILY = tuple(n for n in LOSSES if n in registry.INFONCE_FAMILY)
_SIGMA_RANGE = 1e3        # sigma within [1/_SIGMA_RANGE, _SIGMA_RANGE] x the data scale sqrt(radius^2 + within^2)


def check_levels(scheme, levels):
    """Validated imbalance levels, the balanced reference first, from balanced to most imbalanced.

    ``geometric``: ratios ``n_max / n_min >= 1`` (1 = balanced, added if absent).
    ``dirichlet``: concentrations ``alpha > 0`` (``inf`` = balanced, added if absent).
    """
    V.check_choice("scheme", scheme, SCHEMES)
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
        raise TypeError(f"levels == {levels!r}, must be a list of numbers.")
    levels = list(levels)
    if not levels:
        raise ValueError("levels is empty, must list at least one imbalance level.")
    out = []
    for i, v in enumerate(levels):
        if scheme == "geometric":
            out.append(V.check_scalar(f"levels[{i}]", v, lo=1.0))
        else:
            out.append(V.check_scalar(f"levels[{i}]", v, lo=0.0, lo_open=True, allow_inf=True))
    balanced = 1.0 if scheme == "geometric" else math.inf
    return sorted(set(out) | {balanced}, reverse=(scheme == "dirichlet"))


def level_key(level):
    """The level as a string, as ``report.json`` stores it: ``"1"``, ``"0.3"``, ``"inf"``.

    Exact: ``float(level_key(v)) == v``.
    """
    level = float(level)
    short = f"{level:g}"
    return short if float(short) == level else repr(level)


def level_label(scheme, level):
    """``"ratio 10"`` or ``"alpha 0.3"`` / ``"alpha inf (balanced)"``; ``level`` a number or a :func:`level_key`."""
    level = float(level)
    if scheme == "geometric":
        return f"ratio {level:g}"
    return "alpha inf (balanced)" if math.isinf(level) else f"alpha {level:g}"

_FIG_KEYS = ("classes", "dim", "d1", "radius", "within", "center_means", "scheme", "levels", "losses",
             "stratified", "test_per_class", "seeds", "theory_seeds")
_TRAIN_KEYS = ("steps", "lr", "optimizer", "lr_schedule", "noise", "replicates", "init_scale", "init")
_RUN_OVERRIDES = ("n", "sigma", "steps")  # the overrides that replace [run] settings (the others: [figure])


def load_settings(quick, overrides):
    """The experiment's settings, checked: the settings file (``[quick]`` applied with ``quick``)
    with the non-None ``overrides`` (keys ``seeds``, ``theory_seeds``, ``levels``, ``losses``,
    ``scheme``, ``sigma``, ``d1``, ``n``, ``steps``).

    Returns
    -------
    dict
        ``path`` (of the settings file), the figure keys (``classes``, ``dim``, ``d1``, ``radius``,
        ``within``, ``center_means``, ``stratified``, ``scheme``, ``levels`` (:func:`check_levels`),
        ``losses``, ``test_per_class``, ``seeds``, ``theory_seeds``), ``n``, ``sigma``, ``train``
        (simulate arguments), ``control_variate``, ``max_steps`` and ``max_replicates``.

    Raises
    ------
    ValueError, TypeError
        Naming the setting and the allowed values: as the CLI option when an override gave it,
        else with the settings file and its section (:func:`~minissl.experiments.common.settings_error`);
        also when a level leaves fewer than 2 non-empty classes (:func:`~.geometry.check_draws`).
    """
    cfg = load_figure_settings(FIGURE, quick=quick)
    fig, run = dict(cfg["figure"]), dict(cfg["run"])
    missing = [k for k in _FIG_KEYS if k not in fig] + [k for k in ("n", "sigma", "steps") if k not in run]
    if missing:
        raise ValueError(f"settings file {cfg['path']!r}: lacks {missing}.")
    unknown = sorted(set(fig) - set(_FIG_KEYS))
    if unknown:
        raise settings_error(cfg, "figure", ValueError(
            f"has unknown key(s) {unknown}; allowed: {', '.join(sorted(_FIG_KEYS))}."))
    if overrides.get("scheme") not in (None, fig["scheme"]) and overrides.get("levels") is None:
        raise ValueError(f"scheme == {overrides['scheme']!r} differs from the settings file's {fig['scheme']!r}: "
                         "give its levels too (geometric: ratios >= 1; dirichlet: alpha > 0 or inf).")
    for key, val in overrides.items():
        if val is not None:
            (run if key in _RUN_OVERRIDES else fig)[key] = val

    def check(key, fn, **bounds):
        """``fn(key, value, **bounds)``; an error names the settings file when the value is the file's."""
        part, values = ("run", run) if key in _RUN_OVERRIDES else ("figure", fig)
        try:
            return fn(key, values[key], **bounds)
        except (ValueError, TypeError) as exc:
            if overrides.get(key) is not None:
                raise  # the option's value: the CLI names the option
            raise settings_error(cfg, (part, key), exc) from None

    s = {"path": cfg["path"]}
    s["classes"] = check("classes", V.check_int, lo=2)
    s["dim"] = check("dim", V.check_int, lo=1)
    s["d1"] = check("d1", V.check_int, lo=1, hi=s["dim"])
    s["radius"] = check("radius", V.check_scalar, lo=0.0, lo_open=True)
    s["within"] = check("within", V.check_scalar, lo=0.0, lo_open=True)
    s["center_means"] = check("center_means", V.check_bool)
    s["stratified"] = check("stratified", V.check_bool)
    s["scheme"] = check("scheme", V.check_choice, choices=SCHEMES)
    s["levels"] = check("levels", lambda _, v: check_levels(s["scheme"], v))
    s["losses"] = check("losses", _check_losses)
    s["test_per_class"] = check("test_per_class", V.check_int, lo=1)
    s["seeds"] = check("seeds", V.check_int, lo=1)
    s["theory_seeds"] = max(check("theory_seeds", V.check_int, lo=1), s["seeds"])
    s["n"] = check("n", _check_n, classes=s["classes"])
    s["sigma"] = check("sigma", lambda _, v: _check_sigma(v, s["radius"], s["within"]))
    s["train"] = {k: run[k] for k in _TRAIN_KEYS if k in run}
    s["train"]["steps"] = check("steps", V.check_int, lo=1)
    s["control_variate"] = V.check_bool("control_variate", run.get("control_variate", False))
    s["max_steps"] = run.get("max_steps")
    s["max_replicates"] = run.get("max_replicates")
    check("levels", lambda _, v: check_draws(s))
    return s


def _check_n(name, n, classes):
    n = V.check_int(name, n, lo=2)
    if n < classes:
        raise ValueError(f"{name} == {n}, must be >= {classes} (classes) so that every class can have a sample.")
    return n


def _check_losses(name, losses):
    """A non-empty list of :data:`LOSSES`, each once (in the order given)."""
    if isinstance(losses, (str, bytes)) or not hasattr(losses, "__iter__") or not list(losses):
        raise ValueError(f"{name} == {losses!r}, must be a non-empty list of {', '.join(LOSSES)}.")
    return list(dict.fromkeys(V.check_choice(name, v, LOSSES) for v in losses))


def _check_sigma(sigma, radius, within):
    """sigma > 0 with sigma^2 and sigma^4 (the quartic term) finite and normal in float64, and within a
    factor ``_SIGMA_RANGE`` of the data scale ``sqrt(radius^2 + within^2)`` (the regime the experiment is
    about; far outside it the learned W^T W is orders of magnitude from its initial scale)."""
    sigma = V.check_scalar("sigma", sigma, lo=0.0, lo_open=True)
    with np.errstate(over="ignore", under="ignore"):
        s2, s4 = np.float64(sigma) ** 2, np.float64(sigma) ** 4
    if not (np.isfinite(s4) and s4 >= np.finfo(np.float64).tiny):
        raise ValueError(f"sigma == {sigma!r} gives sigma^2 == {float(s2):.3g} and sigma^4 == {float(s4):.3g} "
                         "in float64; both must be finite and nonzero (C = sigma^2 I; the quartic term needs sigma^4).")
    scale = math.hypot(radius, within)
    lo, hi = scale / _SIGMA_RANGE, scale * _SIGMA_RANGE
    if not lo <= sigma <= hi:
        raise ValueError(f"sigma == {sigma!r}, must be between {lo:.3g} and {hi:.3g} ({1 / _SIGMA_RANGE:g} to "
                         f"{_SIGMA_RANGE:g} times the data scale sqrt(radius^2 + within^2) == {scale:.3g}); far "
                         "outside it the learned eigenvalues ~ a / (a + sigma^2)^2 are orders of magnitude from "
                         "the initial scale, and training cannot be expected to converge in the configured steps.")
    return sigma
