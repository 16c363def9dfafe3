"""The linear analogue of Fig. 4 of Ziyin et al. (2023): robustness to class imbalance (Sec. 4.3).

The paper's claim (Sec. 4.3, Table 1, Fig. 4): the learned ``W^T W`` follows the Hessian
``B`` of the loss at the origin; for InfoNCE/SimCLR ``B`` follows the data covariance, which
changes a lot when classes become imbalanced, while for SCL ``B = 2C`` (Eq. 15) "aligns
purely with the augmentation covariance", so SCL should be the more robust of the two. The
derived constants (docs/errata.md, E4) say SCL's ``B = 2 A0`` (the uncentred second moment)
and InfoNCE's ``B = A0c`` (the centred covariance): both follow the data.

The experiment
--------------
* Data: a Gaussian mixture (:func:`minissl.data.gaussian_mixture`) of ``K`` classes in ``d0``
  dimensions, class means drawn per seed and centred (balanced data have zero mean, as the
  paper assumes), isotropic within-class noise, class weights from an imbalance level
  (geometric ``n_max / n_min`` or Dirichlet(alpha) as in Appendix C), stratified counts.
* Model: linear ``f(x) = W x`` with ``d1 < K - 1`` outputs (a bottleneck: which class
  directions the representation keeps decides what a linear probe can read; with ``d1 = d0``
  every linear probe is unchanged by an invertible ``W``), isotropic Gaussian augmentation.
* Training: the exact losses with fresh noise (:func:`minissl.simulate_batch`); a run whose
  convergence diagnostics fail is re-run with twice the steps and replicates up to the caps.
* Per loss, level and seed, for three matrices ``M`` -- the learned ``W^T W``, the derived
  theory's global minimum on the same empirical ``A0`` and ``C`` (Theorem 1 with the derived
  constants, what :func:`minissl.predict` returns) and the same with the paper's printed
  constants (:func:`minissl.paper_B`: ``B = 2C`` for SCL, ``B = A0`` for InfoNCE, ``k = 1``):

  - ``spectrum_change``: ``|p - p_bal| / |p_bal|`` with ``p`` the top-``d1`` eigenvalues of
    ``M`` divided by their sum, relative to the balanced run of the same seed;
  - ``angle``: largest principal angle (degrees) between the top-``k`` eigenspaces of ``M``
    and of the balanced ``M``, ``k = min(d1, K - 1)``;
  - ``stable_rank`` of ``M``;
  - ``probe_accuracy``: balanced accuracy, on a balanced labelled test set, of the
    Bayes-optimal linear read-out of ``z = W x`` (LDA with the population class means and
    within-class covariance; with isotropic within-class noise and equal priors this is
    the nearest class mean after projecting onto the row space of ``W``), and
    ``minority_accuracy``, its accuracy on the rarest training class with at least one
    sample (:func:`minority_class`; ``probe_drop`` and ``minority_drop``: their losses
    against the balanced run);
  - ``minority_separation``: distance of the rarest class's mean to the nearest other class
    mean inside the kept subspace, in within-class standard deviations;
  - ``mean_captured``: the share of the training data's mean ``|m|^2`` inside the kept
    subspace (the direction SCL's uncentred ``A0 = A0c + m m^T`` has and InfoNCE's lacks).

* The theory costs no training, so it is also evaluated over ``theory_seeds`` class-mean
  geometries (the first ``seeds`` of them are the trained ones): its verdict separates the
  losses' difference from the scatter between geometries.
* Verdicts (:func:`_compare`, :func:`_verdicts`): a paired difference counts beyond the
  resolution and ``t_{0.975, n-1}`` standard errors (one seed: undetermined); learned
  verdicts use only seeds whose runs converged; a degenerate representation (rank 0, or a
  balanced probe below 1.5/K) gets "not meaningful". The errata-E4 line says "confirmed" only
  when its numbers do.

Outputs (atomic): ``OUT/imbalance/{data.csv, theory_ensemble.csv, report.json, report.md,
figure.png}``; finished training runs are kept under ``points/`` so an interrupted run
resumes.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np
from scipy import stats as _scipy_stats

from .. import _validation as V
from ..data import dirichlet_weights, gaussian_mixture, imbalance_weights
from ..losses import get_loss
from ..metrics import eigenspace_angle, stable_rank, top_eigenvectors
from ..theory import global_minimum, landscape_for
from .common import load_settings, save_figure, write_csv, write_report
from .runs import RunCache

__all__ = ["run_imbalance", "LOSSES", "SCHEMES", "class_means", "level_weights", "check_levels",
           "representation_metrics", "relative_metrics", "theory_matrices", "probe_test_set",
           "minority_class", "format_level_table", "verdict_lines", "summary_lines", "level_label", "level_key"]

FIGURE = "imbalance"
LOSSES = ("infonce", "weighted", "scl")
SCHEMES = ("geometric", "dirichlet")
SOURCES = ("learned", "derived", "paper")
_INFONCE_FAMILY = ("infonce", "weighted")
_RANK_TOL = 1e-3          # a direction of M is kept above this fraction of its top eigenvalue
_SIGMA_RANGE = 1e3        # sigma within [1/_SIGMA_RANGE, _SIGMA_RANGE] x the data scale sqrt(radius^2 + within^2)
_DEGENERATE_PROBE = 1.5   # a balanced probe accuracy below this x chance (1/K) marks a degenerate representation
_E4_MAX_REL_ERROR = 0.10  # errata E4 counts as confirmed when SCL's learned eigenvalues are this close to B = 2 A0
_E4_MIN_ANGLE = 45.0      # ... and its learned subspace at least this far (deg) from the paper's B = 2C prediction
_VERSION = "imbalance/1"  # bump when a stored run's meaning changes


# --------------------------------------------------------------------------- data

def _seed_int(*parts):
    """A stable 32-bit seed from printable parts (independent of the order of the level list)."""
    return int(hashlib.sha256("/".join(repr(p) for p in parts).encode()).hexdigest()[:8], 16)


def class_means(classes, dim, radius, seed, center=True):
    """Class means ``~ N(0, radius^2 / dim I)``, shape (classes, dim); centred to mean 0 if ``center``."""
    classes = V.check_int("classes", classes, lo=2)
    dim = V.check_int("dim", dim, lo=1)
    radius = V.check_scalar("radius", radius, lo=0.0, lo_open=True)
    rng = np.random.default_rng(_seed_int("means", seed))
    mu = rng.standard_normal((classes, dim)) * radius / math.sqrt(dim)
    return mu - mu.mean(0) if center else mu


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


def level_weights(scheme, level, classes, seed):
    """Class weights of one level (Dirichlet draws are seeded by ``seed`` and the level)."""
    if scheme == "geometric":
        return imbalance_weights(classes, level)
    return dirichlet_weights(classes, level, seed=np.random.default_rng(_seed_int("dirichlet", seed, level)))


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


def minority_class(counts, weights):
    """The rarest class *with at least one sample* (an empty class has no accuracy to measure).

    Ties in the count go to the smaller weight, then to the higher index (with balanced
    weights: the last of the least frequent classes). Returns ``None`` when every class is empty.
    """
    counts = np.asarray(counts)
    weights = np.asarray(weights, dtype=np.float64)
    order = np.lexsort((-np.arange(counts.size), weights, counts))  # by count, then weight, then -index
    nonempty = [int(j) for j in order if counts[j] > 0]
    return nonempty[0] if nonempty else None


def probe_test_set(means, within, per_class, seed):
    """A balanced labelled test set: ``per_class`` samples of every class. Returns (x, y)."""
    per_class = V.check_int("test_per_class", per_class, lo=1)
    rng = np.random.default_rng(_seed_int("test", seed))
    k, d0 = means.shape
    y = np.repeat(np.arange(k), per_class)
    return means[y] + within * rng.standard_normal((y.size, d0)), y


def _seed_setup(s, seed):
    """Class means, test set, one dataset per level and the minority class of each level."""
    K = s["classes"]
    mu = class_means(K, s["dim"], s["radius"], seed, s["center_means"])
    test = probe_test_set(mu, s["within"], s["test_per_class"], seed)
    datasets, minority = [], []
    for level in s["levels"]:
        ds = _level_data(s, mu, level, seed)
        datasets.append(ds)
        minority.append(minority_class(ds.counts, ds.weights))
    return {"means": mu, "test": test, "data": datasets, "minority": minority}


def _level_data(s, mu, level, seed):
    w = level_weights(s["scheme"], level, s["classes"], seed)
    return gaussian_mixture(s["n"], mu, w, within=s["within"], seed=_seed_int("sample", seed, s["scheme"], level),
                            stratified=s["stratified"])


def _check_draws(s):
    """Every seed and level must leave at least 2 non-empty classes (checked before any training).

    Raises ValueError naming ``levels`` (Dirichlet draws that fail, or leave < 2 classes).
    """
    K = s["classes"]
    for level in s["levels"]:
        worst = None
        for seed in range(s["theory_seeds"]):
            try:
                w = level_weights(s["scheme"], level, K, seed)
            except ValueError as exc:
                raise ValueError(f"levels contains {level!r}: {exc}") from None
            if s["stratified"]:  # every class of positive weight gets a sample (n >= K is checked)
                nonempty = int(np.count_nonzero(w > 0))
            else:
                mu = class_means(K, s["dim"], s["radius"], seed, s["center_means"])
                nonempty = int(np.count_nonzero(_level_data(s, mu, level, seed).counts))
            if nonempty < 2:
                worst = (seed, nonempty)
                break
        if worst is not None:
            what = "Dirichlet(alpha) draw" if s["scheme"] == "dirichlet" else "sample"
            raise ValueError(f"levels contains {level!r}: the {what} of seed {worst[0]} leaves only {worst[1]} of "
                             f"{K} classes with samples; every level needs at least 2 non-empty classes (the probe, "
                             "the minority class and the imbalance itself need two). Use a "
                             + ("larger alpha." if s["scheme"] == "dirichlet" else "smaller ratio."))


# --------------------------------------------------------------------------- metrics

def _kept_rank(M, d1):
    ev = np.clip(np.linalg.eigvalsh(0.5 * (M + M.T))[::-1], 0.0, None)
    if ev[0] <= 0:
        return 0
    return int(min(d1, np.sum(ev > _RANK_TOL * ev[0])))


def representation_metrics(M, d1, means, within, test, minority, mean=None):
    """Reference-free metrics of one ``M = W^T W`` (see the module docstring).

    Parameters
    ----------
    M : ndarray (d0, d0)
    d1 : int
        Output dimension (at most ``d1`` directions are kept).
    means : ndarray (K, d0)
        Population class means.
    within : float
        Within-class standard deviation (> 0).
    test : (x, y)
        Balanced labelled test set (:func:`probe_test_set`).
    minority : int
        The class whose accuracy and separation are reported.
    mean : ndarray (d0,), optional
        The training data's mean, for ``mean_captured``.

    Returns
    -------
    dict
        ``eigenvalues`` (top d1), ``stable_rank``, ``rank`` (kept directions),
        ``class_accuracy`` (per class), ``probe_accuracy``, ``minority_accuracy``,
        ``minority_separation``, ``mean_captured`` (None without ``mean``).
    """
    M = 0.5 * (M + M.T)
    ev = np.clip(np.linalg.eigvalsh(M)[::-1], 0.0, None)
    r = _kept_rank(M, d1)
    x, y = test
    k = means.shape[0]
    cap = None
    if r == 0:
        acc = np.full(k, 1.0 / k)
        sep = 0.0
        cap = 0.0 if mean is not None else None
    else:
        U = top_eigenvectors(M, r)
        zx, zm = x @ U, means @ U
        # nearest projected class mean: argmin_j |z - m_j|^2 = argmin_j (|m_j|^2 - 2 z.m_j)
        pred = np.argmin((zm * zm).sum(1)[None, :] - 2.0 * (zx @ zm.T), axis=1)
        acc = np.bincount(y, weights=(pred == y), minlength=k) / np.maximum(np.bincount(y, minlength=k), 1)
        diff = np.linalg.norm(zm - zm[minority], axis=1)
        diff[minority] = np.inf
        sep = float(diff.min() / within)
        if mean is not None:
            m2 = float(mean @ mean)
            cap = float(np.sum((U.T @ mean) ** 2) / m2) if m2 > 0 else None
    return {"eigenvalues": ev[:d1].tolist(), "stable_rank": stable_rank(M) if ev[0] > 0 else 0.0, "rank": r,
            "class_accuracy": acc.tolist(), "probe_accuracy": float(acc.mean()),
            "minority_accuracy": float(acc[minority]), "minority_separation": sep, "mean_captured": cap}


def relative_metrics(rec, ref, k, minority):
    """Changes of one record (with its matrix under ``"M"``) against the balanced one of the same seed.

    ``spectrum_change``, ``angle`` (top-``k`` eigenspaces), ``probe_drop`` and
    ``minority_drop`` (accuracy of class ``minority`` lost against the balanced run).
    """
    p = np.asarray(rec["eigenvalues"], dtype=np.float64)
    q = np.asarray(ref["eigenvalues"], dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    return {"spectrum_change": float(np.linalg.norm(p - q) / max(np.linalg.norm(q), 1e-300)),
            "angle": eigenspace_angle(rec["M"], ref["M"], k),
            "probe_drop": ref["probe_accuracy"] - rec["probe_accuracy"],
            "minority_drop": ref["class_accuracy"][minority] - rec["class_accuracy"][minority]}


def theory_matrices(loss, data, C, d1):
    """``W^T W`` at the global minimum of the effective landscape on this dataset.

    Returns ``{"derived": M, "paper": M}``: the derived constants (the landscape of
    :func:`minissl.predict`, centred ``A0`` for the InfoNCE family) and the paper's printed
    ones (:func:`minissl.paper_B`, ``k = 1``, no centring).
    """
    mean = np.asarray(data.x, dtype=np.float64).mean(0)
    out = {}
    for constants in ("derived", "paper"):
        land = landscape_for(loss, data.A0, C, n=data.n, mean=mean if constants == "derived" else None, d1=d1,
                             constants=constants)
        out[constants] = global_minimum(land, d1).WtW
    return out


def _evaluate(loss, s, C, setup, learned=None):
    """Metrics of every level for one loss and seed: {source: [record per level]}."""
    L = get_loss(loss)
    ksub = min(s["d1"], s["classes"] - 1)
    out = {src: [] for src in (SOURCES if learned is not None else SOURCES[1:])}
    for li, ds in enumerate(setup["data"]):
        mats = theory_matrices(L, ds, C, s["d1"])
        if learned is not None:
            W = np.asarray(learned[li], dtype=np.float64)
            mats["learned"] = W.T @ W
        for src in out:
            r = representation_metrics(mats[src], s["d1"], setup["means"], s["within"], setup["test"],
                                       setup["minority"][li], mean=np.asarray(ds.x, dtype=np.float64).mean(0))
            r["M"] = mats[src]
            out[src].append(r)
    for src, recs in out.items():
        for li, r in enumerate(recs):
            r.update(relative_metrics(r, recs[0], ksub, setup["minority"][li]))
    return out


# --------------------------------------------------------------------------- settings

_FIG_KEYS = ("classes", "dim", "d1", "radius", "within", "center_means", "scheme", "levels", "losses",
             "stratified", "test_per_class", "seeds", "theory_seeds")
_TRAIN_KEYS = ("steps", "lr", "optimizer", "lr_schedule", "noise", "replicates", "init_scale", "init")


def _settings(quick, overrides):
    cfg = load_settings(FIGURE, quick=quick)
    fig, run = dict(cfg["figure"]), dict(cfg["run"])
    missing = [k for k in _FIG_KEYS if k not in fig] + [k for k in ("n", "sigma", "steps") if k not in run]
    if missing:
        raise ValueError(f"settings file {cfg['path']!r}: lacks {missing}.")
    if overrides.get("scheme") not in (None, fig["scheme"]) and overrides.get("levels") is None:
        raise ValueError(f"scheme == {overrides['scheme']!r} differs from the settings file's {fig['scheme']!r}: "
                         "give its levels too (geometric: ratios >= 1; dirichlet: alpha > 0 or inf).")
    for key, val in overrides.items():
        if val is not None:
            (run if key in ("n", "sigma", "steps") else fig)[key] = val
    s = {"path": cfg["path"]}
    s["classes"] = V.check_int("classes", fig["classes"], lo=2)
    s["dim"] = V.check_int("dim", fig["dim"], lo=1)
    s["d1"] = V.check_int("d1", fig["d1"], lo=1, hi=s["dim"])
    s["radius"] = V.check_scalar("radius", fig["radius"], lo=0.0, lo_open=True)
    s["within"] = V.check_scalar("within", fig["within"], lo=0.0, lo_open=True)
    s["center_means"] = V.check_bool("center_means", fig["center_means"])
    s["stratified"] = V.check_bool("stratified", fig["stratified"])
    s["scheme"] = V.check_choice("scheme", fig["scheme"], SCHEMES)
    s["levels"] = check_levels(s["scheme"], fig["levels"])
    losses = fig["losses"]
    if isinstance(losses, (str, bytes)) or not hasattr(losses, "__iter__") or not list(losses):
        raise ValueError(f"losses == {losses!r}, must be a non-empty list of {', '.join(LOSSES)}.")
    s["losses"] = list(dict.fromkeys(V.check_choice("losses", v, LOSSES) for v in losses))
    s["test_per_class"] = V.check_int("test_per_class", fig["test_per_class"], lo=1)
    s["seeds"] = V.check_int("seeds", fig["seeds"], lo=1)
    s["theory_seeds"] = max(V.check_int("theory_seeds", fig["theory_seeds"], lo=1), s["seeds"])
    s["n"] = V.check_int("n", run["n"], lo=2)
    if s["n"] < s["classes"]:
        raise ValueError(f"n == {s['n']}, must be >= {s['classes']} (classes) so that every class can have a sample.")
    s["sigma"] = _check_sigma(run["sigma"], s["radius"], s["within"])
    s["train"] = {k: run[k] for k in _TRAIN_KEYS if k in run}
    s["train"]["steps"] = V.check_int("steps", run["steps"], lo=1)
    s["control_variate"] = V.check_bool("control_variate", run.get("control_variate", False))
    s["max_steps"] = run.get("max_steps")
    s["max_replicates"] = run.get("max_replicates")
    _check_draws(s)
    return s


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


# --------------------------------------------------------------------------- training runs

def _learned_record(res, kwargs):
    """The stored record of a training run: its ``W`` and convergence diagnostics (see :class:`.runs.RunCache`)."""
    W = np.asarray(res.W, dtype=np.float64)
    return {"W": W.tolist(), "spectral_change": res.diagnostics["spectral_change"],
            "grad_pvalue": res.diagnostics["grad_pvalue"], "u": float(2.0 * np.sum((W @ res.Sigma) * W)),
            "train_seconds": float(res.settings["train_seconds"])}


# --------------------------------------------------------------------------- verdicts

_ROBUST = (("spectrum_change", "normalised spectrum change"), ("angle", "top-subspace angle (deg)"),
           ("probe_drop", "probe accuracy drop"), ("minority_drop", "minority accuracy drop"))
# differences below these are within the resolution of the measurement (test-set size, jitter)
_FLOORS = {"spectrum_change": 0.01, "angle": 1.0, "probe_drop": 0.005, "minority_drop": 0.01}


def _compare(a, b, floor0, unit="seed"):
    """SCL's changes ``a`` vs the reference loss's ``b`` (paired by seed or geometry).

    With one pair there is no standard error: the verdict is ``"undetermined (1 seed)"``.
    With ``n >= 2`` pairs a difference counts when its mean exceeds both the resolution
    ``floor0`` and the two-sided 95% Student-t threshold ``t_{0.975, n-1} * SE`` of the
    paired difference; it is "slight" below 20% of the larger of the two mean changes.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 1:
        raise ValueError(f"a and b have shapes {a.shape} and {b.shape}, must be equal 1-d with at least one entry.")
    d = a - b
    n = int(d.size)
    mean = float(d.mean())
    scale = max(abs(float(a.mean())), abs(float(b.mean())), 1e-300)
    out = {"scl": float(a.mean()), "reference": float(b.mean()), "difference": mean, "difference_se": None,
           "t_quantile": None, "threshold": None, "relative": mean / scale, "n": n}
    if n == 1:
        return {**out, "verdict": f"undetermined (1 {unit})"}
    se = float(d.std(ddof=1) / math.sqrt(n))
    tq = float(_scipy_stats.t.ppf(0.975, n - 1))
    threshold = max(float(floor0), tq * se)
    if abs(mean) <= threshold:
        verdict = "no clear difference"
    else:
        verdict = ("SCL " + ("slightly " if abs(mean) < 0.2 * scale else "")
                   + ("more" if mean < 0 else "less") + " robust")
    return {**out, "difference_se": se, "t_quantile": tq, "threshold": threshold, "verdict": verdict}


def _degenerate(store, losses, seeds, last, src, classes):
    """Why the representations of ``losses`` cannot carry a robustness verdict, or None.

    Degenerate: rank 0 (``W^T W = 0``) at the balanced or the compared level in any used seed, or a
    balanced probe accuracy (mean over the used seeds) below ``_DEGENERATE_PROBE / K``: near chance,
    every change is 0 or measures noise directions.
    """
    reasons = []
    chance = 1.0 / classes
    for loss in losses:
        name = "SCL" if loss == "scl" else loss
        zero = sum(any(store[loss, sd, li, src]["rank"] == 0 for li in (0, last)) for sd in seeds)
        if zero:
            reasons.append(f"{name}'s W^T W has rank 0 in {zero} of {len(seeds)} "
                           + ("seeds" if src == "learned" else "geometries"))
        probe = float(np.mean([store[loss, sd, 0, src]["probe_accuracy"] for sd in seeds]))
        if probe < _DEGENERATE_PROBE * chance:
            reasons.append(f"{name}'s balanced probe accuracy {probe:.3f} < {_DEGENERATE_PROBE:g}/K = "
                           f"{_DEGENERATE_PROBE * chance:.3f}, chance {chance:.3f}")
    return "; ".join(reasons) or None


def _verdicts(s, recs, ens, ref):
    """SCL vs ``ref`` at the most imbalanced level, per source and metric.

    Learned: only seeds whose runs converged for both losses at the balanced and at the compared
    level. Each metric's entry holds the :func:`_compare` numbers, ``comparison`` (its verdict),
    ``degenerate`` (a reason or None) and ``verdict`` (what is reported: ``"not meaningful (...)"``
    for a degenerate representation, ``"undetermined: no converged seeds"`` without seeds).
    """
    last = len(s["levels"]) - 1
    pair = ("scl", ref)
    out = {}
    for src, store, nseed in (("learned", recs, s["seeds"]), ("derived", ens, s["theory_seeds"]),
                              ("paper", ens, s["theory_seeds"])):
        if src == "learned":
            seeds = [sd for sd in range(nseed) if all(bool(store[loss, sd, li, src]["converged"])
                                                      for loss in pair for li in (0, last))]
            excluded = [sd for sd in range(nseed) if sd not in seeds]
        else:
            seeds, excluded = list(range(nseed)), []
        unit = "seed" if src == "learned" else "geometry"
        degenerate = _degenerate(store, pair, seeds, last, src, s["classes"]) if seeds else None
        out[src] = {}
        for key, label in _ROBUST:
            if not seeds:
                e = {"scl": None, "reference": None, "difference": None, "difference_se": None, "t_quantile": None,
                     "threshold": None, "relative": None, "n": 0, "verdict": "undetermined: no converged seeds"}
            else:
                e = _compare([store["scl", sd, last, src][key] for sd in seeds],
                             [store[ref, sd, last, src][key] for sd in seeds], _FLOORS[key], unit)
            e["comparison"] = e["verdict"]
            e["degenerate"] = degenerate
            if degenerate is not None:
                e["verdict"] = f"not meaningful (degenerate representation: {degenerate})"
            out[src][key] = {"label": label, **e, "excluded_seeds": excluded}
    return out


def _pct(x):
    """A relative error as a short percentage (no 300-digit numbers)."""
    return f"{x:.1%}" if abs(x) < 10 else f"{100 * x:.3g}%"


def _errata_e4(s, rows):
    """Does this run confirm errata E4 (SCL learns B = 2 A0, not the paper's B = 2C)? Converged runs only."""
    sel = [r for r in rows if r["source"] == "learned" and r["loss"] == "scl"]
    conv = [r for r in sel if r["converged"]]
    out = {"criteria": f"max relative error vs derived <= {_E4_MAX_REL_ERROR:.0%} and subspace angle vs paper "
                       f">= {_E4_MIN_ANGLE:g} deg, over converged SCL runs",
           "converged_runs": len(conv), "runs": len(sel), "max_rel_error_vs_derived": None,
           "min_angle_vs_paper": None, "confirmed": False}
    if not sel:
        return None
    if not conv:
        out["text"] = (f"errata E4: this run does not confirm it: no SCL training run converged (0/{len(sel)}), "
                       "so the learned models say nothing about B")
        return out
    err = max(r["rel_error_vs_derived"] for r in conv)
    ang = min(r["angle_vs_paper"] for r in conv)
    out.update(max_rel_error_vs_derived=err, min_angle_vs_paper=ang)
    note = "" if len(conv) == len(sel) else ", the unconverged ones left out"
    problems = []
    if not err <= _E4_MAX_REL_ERROR:
        problems.append(f"SCL's learned eigenvalues differ from the derived B = 2 A0 prediction by up to {_pct(err)} "
                        f"(more than {_E4_MAX_REL_ERROR:.0%})")
    if not ang >= _E4_MIN_ANGLE:
        problems.append(f"its learned subspace is only {ang:.0f} deg from the paper's B = 2C prediction "
                        f"(less than {_E4_MIN_ANGLE:g} deg)")
    if problems:
        out["text"] = (f"errata E4: this run does not confirm it ({len(conv)}/{len(sel)} SCL runs converged{note}): "
                       + "; ".join(problems))
    else:
        out["confirmed"] = True
        out["text"] = (f"errata E4 confirmed ({len(conv)}/{len(sel)} SCL runs converged{note}): SCL's learned "
                       f"eigenvalues are within {_pct(err)} of the derived B = 2 A0 prediction and its learned "
                       f"subspace is >= {ang:.0f} deg from the paper's B = 2C prediction")
    return out


# --------------------------------------------------------------------------- the experiment

def run_imbalance(out="minissl-figures", quick=False, seeds=None, levels=None, losses=None, scheme=None,
                  sigma=None, d1=None, n=None, steps=None, theory_seeds=None, engine="numba", progress=True):
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
        Imbalance levels (see :func:`check_levels`); the balanced level is always added.
    losses : sequence of str, optional
        Subset of :data:`LOSSES` (``weighted`` is the paper's NT-Xent, alpha = 0).
    scheme : {"geometric", "dirichlet"}, optional
        With a scheme other than the settings file's, give ``levels`` too.
    sigma, d1, n, steps : optional
        Override the augmentation strength, output dimension, dataset size, training steps.
    theory_seeds : int, optional
        Class-mean geometries over which the theory (no training) is averaged (>= seeds).
    engine : {"numba", "numpy"}
    progress : bool
        Per-run progress lines on stderr.

    Returns
    -------
    dict
        JSON-ready (what report.json holds) plus ``markdown``. Levels are stored as exact
        strings (:func:`level_key`: ``"inf"``, ``"1"``, ``"0.3"``), with ``level_labels``.
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
    s = _settings(quick, overrides)
    folder = Path(out) / FIGURE
    folder.mkdir(parents=True, exist_ok=True)
    cache = RunCache(folder / "points" / ("quick" if quick else "full"), _learned_record, max_steps=s["max_steps"],
                     max_replicates=s["max_replicates"], progress=progress, batch=4, noun="runs")
    t_start = time.perf_counter()
    K, d0, d1_, scheme_, lv = s["classes"], s["dim"], s["d1"], s["scheme"], s["levels"]
    C = s["sigma"] ** 2 * np.eye(d0)

    # training runs: (loss, seed, level)
    setups = {seed: _seed_setup(s, seed) for seed in range(s["seeds"])}
    runs = []
    for loss in s["losses"]:
        for seed in range(s["seeds"]):
            for li, level in enumerate(lv):
                kw = {"loss": loss, "data": setups[seed]["data"][li], "sigma": s["sigma"], "d1": d1_, "seed": seed,
                      **s["train"]}
                if s["control_variate"] and loss in _INFONCE_FAMILY:
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
            ev = _evaluate(loss, s, C, setups[seed], learned=Ws)
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
        setup = setups.get(seed) or _seed_setup(s, seed)
        for li, ds in enumerate(setup["data"]):
            empty[li].append(int(np.count_nonzero(ds.counts == 0)))
        for loss in s["losses"]:
            if seed < s["seeds"]:
                ev = {src: [recs[loss, seed, li, src] for li in range(len(lv))] for src in SOURCES[1:]}
            else:
                ev = _evaluate(loss, s, C, setup)
            for src, per_level in ev.items():
                for li, r in enumerate(per_level):
                    ens[loss, seed, li, src] = {k: v for k, v in r.items() if k != "M"}
    t_theory = time.perf_counter() - t_theory

    rows = _rows(s, recs)
    write_csv(folder / "data.csv", rows)
    ens_rows = _ensemble_rows(s, ens)
    write_csv(folder / "theory_ensemble.csv", ens_rows)
    report = _summarise(s, recs, ens, rows, ens_rows, empty)
    wall = time.perf_counter() - t_start
    report.update({"quick": quick, "engine": engine, "settings_file": s["path"],
                   "settings": {**{k: v for k, v in s.items() if k != "path"},
                                "levels": [level_key(v) for v in s["levels"]]}, "wall_seconds": wall,
                   "train_seconds": t_train, "theory_seconds": t_theory})
    markdown = _markdown(report, s)
    msg = save_figure(folder / "figure.png", _drawer(report, s))
    report["figure_png"] = None if msg else str(folder / "figure.png")
    report["figure_note"] = msg
    markdown += (f"\n\nWall time {wall:.1f} s (training {t_train:.1f} s, theory ensemble {t_theory:.1f} s; "
                 f"{'quick' if quick else 'full'} settings, engine {engine}; finished runs are reused when resuming). "
                 f"Settings: `{s['path']}`.\n")
    if msg:
        markdown += f"\n{msg}\n"
    write_report(folder, report, markdown)
    report["markdown"] = markdown
    return report


_METRICS = ("spectrum_change", "angle", "stable_rank", "probe_accuracy", "minority_accuracy", "minority_separation",
            "probe_drop", "minority_drop", "mean_captured")


def _rows(s, recs):
    rows = []
    ksub = min(s["d1"], s["classes"] - 1)
    for loss in s["losses"]:
        for seed in range(s["seeds"]):
            for li, level in enumerate(s["levels"]):
                for src in SOURCES:
                    r = recs[loss, seed, li, src]
                    row = {"loss": loss, "seed": seed, "level": level, "source": src,
                           **{f"eig{j + 1}": float(r["eigenvalues"][j]) for j in range(s["d1"])},
                           **{k: r[k] for k in _METRICS}}
                    if src == "learned":
                        der, pap = recs[loss, seed, li, "derived"], recs[loss, seed, li, "paper"]
                        pe = np.asarray(der["eigenvalues"])
                        row.update({
                            "rel_error_vs_derived": float(np.max(np.abs(np.asarray(r["eigenvalues"]) - pe))
                                                          / max(pe.max(), 1e-300)),
                            "angle_vs_derived": eigenspace_angle(r["M"], der["M"], ksub),
                            "angle_vs_paper": eigenspace_angle(r["M"], pap["M"], ksub),
                            "u": r["u"] if loss in _INFONCE_FAMILY else None,
                            "converged": r["converged"], "steps": r["steps"], "replicates": r["replicates"]})
                    else:
                        row.update({k: None for k in ("rel_error_vs_derived", "angle_vs_derived", "angle_vs_paper",
                                                      "u", "converged", "steps", "replicates")})
                    rows.append(row)
    return rows


def _ensemble_rows(s, ens):
    rows = []
    for loss in s["losses"]:
        for seed in range(s["theory_seeds"]):
            for li, level in enumerate(s["levels"]):
                for src in SOURCES[1:]:
                    r = ens[loss, seed, li, src]
                    rows.append({"loss": loss, "seed": seed, "level": level, "source": src,
                                 **{f"eig{j + 1}": float(r["eigenvalues"][j]) for j in range(s["d1"])},
                                 **{k: r[k] for k in _METRICS}})
    return rows


def _stats(vals):
    a = np.asarray([v for v in vals if v is not None], dtype=np.float64)
    if a.size == 0:
        return None, None
    return float(a.mean()), (float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else None)


def _summarise(s, recs, ens, rows, ens_rows, empty):
    lv, losses = s["levels"], s["losses"]
    last = len(lv) - 1
    table, ens_table = [], []
    for li, level in enumerate(lv):
        for loss in losses:
            for src in SOURCES:
                sel = [r for r in rows if r["loss"] == loss and r["level"] == level and r["source"] == src]
                e = {"level": level_key(level), "loss": loss, "source": src,
                     "eigenvalues": np.mean([recs[loss, sd, li, src]["eigenvalues"] for sd in range(s["seeds"])],
                                            axis=0).tolist()}
                for key in _METRICS:
                    e[key], e[key + "_se"] = _stats([r[key] for r in sel])
                if src == "learned":
                    e["converged"] = sum(bool(r["converged"]) for r in sel)
                    for key in ("rel_error_vs_derived", "angle_vs_derived", "angle_vs_paper", "u"):
                        e[key], _ = _stats([r[key] for r in sel])
                table.append(e)
            for src in SOURCES[1:]:
                sel = [r for r in ens_rows if r["loss"] == loss and r["level"] == level and r["source"] == src]
                e = {"level": level_key(level), "loss": loss, "source": src}
                for key in _METRICS:
                    e[key], e[key + "_se"] = _stats([r[key] for r in sel])
                ens_table.append(e)
    ref = next((x for x in losses if x in _INFONCE_FAMILY), None)
    verdicts = _verdicts(s, recs, ens, ref) if "scl" in losses and ref is not None and last > 0 else {}
    between = []
    if "scl" in losses and ref is not None:
        ksub = min(s["d1"], s["classes"] - 1)
        for li, level in enumerate(lv):
            entry = {"level": level_key(level)}
            for src in ("learned", "derived"):
                entry[src] = float(np.mean([eigenspace_angle(recs["scl", sd, li, src]["M"], recs[ref, sd, li, src]["M"],
                                                            ksub) for sd in range(s["seeds"])]))
            between.append(entry)
    level_stats = []
    setup0 = _seed_setup(s, 0)
    for li, level in enumerate(lv):
        ds = setup0["data"][li]
        m = np.asarray(ds.x, dtype=np.float64).mean(0)
        level_stats.append({"level": level_key(level), "label": level_label(s["scheme"], level),
                            "class_fractions": (ds.counts / ds.n).tolist(), "minority_class": setup0["minority"][li],
                            "empty_classes": [int(j) for j in np.flatnonzero(ds.counts == 0)],
                            "geometries_with_empty_classes": int(np.count_nonzero(empty[li])),
                            "mean_empty_classes": float(np.mean(empty[li])),
                            "A0_eigenvalues": np.linalg.eigvalsh(ds.A0)[::-1].tolist(),
                            "A0_centered_eigenvalues": np.linalg.eigvalsh(ds.A0_centered)[::-1].tolist(),
                            "mean_norm2": float(m @ m)})
    learned_rows = [r for r in rows if r["source"] == "learned"]
    agreement = {}
    for loss in losses:  # converged runs only: an unconverged W is not a minimum of anything
        lr_all = [r for r in learned_rows if r["loss"] == loss]
        lr = [r for r in lr_all if r["converged"]]
        a = {"runs": len(lr_all), "converged_runs": len(lr)}
        if lr:
            a.update({"max_rel_error_vs_derived": max(r["rel_error_vs_derived"] for r in lr),
                      "median_rel_error_vs_derived": float(np.median([r["rel_error_vs_derived"] for r in lr])),
                      "max_angle_vs_derived": max(r["angle_vs_derived"] for r in lr),
                      "median_angle_vs_derived": float(np.median([r["angle_vs_derived"] for r in lr])),
                      "min_angle_vs_paper": min(r["angle_vs_paper"] for r in lr),
                      "max_u": max((r["u"] for r in lr if r["u"] is not None), default=None)})
        else:
            a.update(dict.fromkeys(("max_rel_error_vs_derived", "median_rel_error_vs_derived", "max_angle_vs_derived",
                                    "median_angle_vs_derived", "min_angle_vs_paper", "max_u")))
        agreement[loss] = a
    n_conv = sum(bool(r["converged"]) for r in learned_rows)
    return {"figure": FIGURE, "levels": [level_key(v) for v in lv],
            "level_labels": [level_label(s["scheme"], v) for v in lv], "reference_loss": ref,
            "level_stats": level_stats, "table": table, "theory_ensemble": ens_table, "verdicts": verdicts,
            "errata_E4": _errata_e4(s, rows) if "scl" in losses else None, "between_losses": between,
            "agreement": agreement, "converged": f"{n_conv}/{len(learned_rows)}",
            "all_converged": n_conv == len(learned_rows)}


# --------------------------------------------------------------------------- report

def _fmt(v, se=None, spec=".3f"):
    if v is None:
        return "-"
    return f"{v:{spec}}" + (f" ± {se:{spec}}" if se is not None else "")


def format_level_table(report, level):
    """Plain-text table of one level, mean over the trained seeds (what ``minissl imbalance`` prints)."""
    seeds = report["settings"]["seeds"]
    head = (f"  {'loss':8s} {'source':8s} {'top eigenvalues of W^T W':26s} {'dspec':>6s} {'angle':>6s} "
            f"{'s.rank':>6s} {'probe':>6s} {'minor.':>6s} {'sep':>5s} {'mean':>5s} {'conv':>5s}")
    lines = [head]
    for e in (e for e in report["table"] if e["level"] == level):
        ev = " ".join(f"{x:.3g}" for x in e["eigenvalues"])
        conv = f"{e['converged']}/{seeds}" if e["source"] == "learned" else ""
        lines.append(f"  {e['loss']:8s} {e['source']:8s} {ev:26s} {_fmt(e['spectrum_change']):>6s} "
                     f"{_fmt(e['angle'], spec='.1f'):>6s} {_fmt(e['stable_rank'], spec='.2f'):>6s} "
                     f"{_fmt(e['probe_accuracy']):>6s} {_fmt(e['minority_accuracy']):>6s} "
                     f"{_fmt(e['minority_separation'], spec='.2f'):>5s} {_fmt(e['mean_captured'], spec='.2f'):>5s} "
                     f"{conv:>5s}")
    return "\n".join(lines)


_SOURCE_NAMES = {"learned": "learned models",
                 "derived": "derived theory (B = 2 A0 for SCL, A0c for InfoNCE)",
                 "paper": "paper's constants (B = 2C for SCL, A0 for InfoNCE, k = 1)"}
_SOURCE_NAMES_WEIGHTED = {"learned": "learned models",
                          "derived": "derived theory (B = 2 A0 for SCL, N/(N-1+alpha) A0c for weighted)",
                          "paper": "paper's constants (B = 2C for SCL, A0 - (1-alpha) C/N for weighted, k = 1)"}


def _source_name(report, src):
    return (_SOURCE_NAMES_WEIGHTED if report["reference_loss"] == "weighted" else _SOURCE_NAMES)[src]


def _what(src, n):
    if src == "learned":
        return f"{n} converged trained seed(s)"
    return f"{n} geometries"


def _excluded_note(vs):
    ex = next(iter(vs.values()))["excluded_seeds"]
    return f"; left out (a run did not converge): seed(s) {', '.join(map(str, ex))}" if ex else ""


def _numbers(v):
    if v["scl"] is None:
        return v["label"]
    return f"{v['label']} {v['scl']:.3g} vs {v['reference']:.3g}"


def verdict_lines(report):
    """One line per source: SCL vs the reference loss at the most imbalanced level, per metric."""
    out = []
    ref = report["reference_loss"]
    for src, vs in report["verdicts"].items():
        first = next(iter(vs.values()))
        n, degenerate = first["n"], first["degenerate"]
        parts = []
        for v in vs.values():
            if v["scl"] is None:
                parts.append(f"{v['label']}: {v['verdict']}")
                continue
            thr = ("" if v["threshold"] is None
                   else f", difference {v['difference']:+.3g} vs threshold {v['threshold']:.3g}")
            verdict = (v["verdict"] if degenerate is None
                       else f"not meaningful (by the numbers alone: {v['comparison']})")
            parts.append(f"{_numbers(v)} ({v['relative']:+.0%}{thr}): {verdict}")
        head = "" if degenerate is None else f"; degenerate representation: {degenerate}"
        out.append(f"{_source_name(report, src)} [SCL vs {ref}, {_what(src, n)}{_excluded_note(vs)}{head}]: "
                   + "; ".join(parts))
    return out


def summary_lines(report):
    """The answer to "is SCL more robust, as Sec. 4.3 predicts?", one line per source, plus the E4 check."""
    v = report["verdicts"]
    if not v:
        return []
    ref = report["reference_loss"]
    out = []
    for src in ("paper", "derived", "learned"):
        groups = {}
        for key, x in v[src].items():
            groups.setdefault(x["verdict"], []).append(_numbers(x))
        n = next(iter(v[src].values()))["n"]
        out.append(f"{_source_name(report, src)} ({_what(src, n)}{_excluded_note(v[src])}), SCL vs {ref}: "
                   + "; ".join(f"{verdict}: {', '.join(items)}" for verdict, items in groups.items()))
    e4 = report.get("errata_E4")
    if e4 is not None:
        out.append(e4["text"])
    return out


def agreement_line(report):
    """Learned vs derived theory, converged runs only (what ``minissl imbalance`` prints)."""
    parts = []
    for loss, a in report["agreement"].items():
        if not a["converged_runs"]:
            parts.append(f"{loss}: no converged runs (0/{a['runs']})")
            continue
        parts.append(f"{loss} eigenvalues within {_pct(a['median_rel_error_vs_derived'])} (median), subspace "
                     f"{a['median_angle_vs_derived']:.1f} deg (median), {a['converged_runs']}/{a['runs']} runs")
    return "learned vs derived theory (converged runs): " + "; ".join(parts)


def _empty_note(st, s):
    own = ("empty classes " + ", ".join(map(str, st["empty_classes"]))) if st["empty_classes"] else "no empty class"
    return (f"{own}; {st['geometries_with_empty_classes']} of {s['theory_seeds']} geometries have an empty class, "
            f"{st['mean_empty_classes']:.2f} on average")


def _markdown(report, s):
    lv = report["levels"]
    ref = report["reference_loss"]
    seeds = s["seeds"]
    centred = "centred" if s["center_means"] else "not centred"
    md = [f"# Class imbalance (Sec. 4.3, Fig. 4): {', '.join(s['losses'])}", "",
          f"K = {s['classes']} Gaussian classes in d0 = {s['dim']} (means of radius {s['radius']:g}, {centred}; "
          f"within-class std {s['within']:g}), linear model d1 = {s['d1']}, N = {s['n']}, isotropic augmentation "
          f"sigma = {s['sigma']:g}; {seeds} trained seed(s), theory over {s['theory_seeds']} geometries; levels "
          f"({s['scheme']}): {', '.join(level_label(s['scheme'], v) for v in lv)}. Changes are relative to the "
          "balanced run of the same seed; the minority class is the rarest class with at least one training sample "
          "at each level (an empty class has no accuracy to measure).", "",
          "Paper (Sec. 4.3): SCL's B = 2C does not depend on the data, so SCL should be more robust to imbalance "
          "than InfoNCE (B = A0). Derived (errata E4): SCL's B = 2 A0, InfoNCE's B = A0c: both follow the data.", ""]
    if report["verdicts"]:
        md += [f"## Verdict at the most imbalanced level ({level_label(s['scheme'], lv[-1])})", ""]
        md += [f"* {line}." for line in summary_lines(report)]
        md += ["", "Per metric (SCL vs reference, relative difference):", ""]
        md += [f"* {line}." for line in verdict_lines(report)]
        md += ["", "(SCL's change vs the reference's, relative difference in parentheses. A difference counts "
               "when it exceeds both the resolution of the measurement and t_0.975(n-1) standard errors of the "
               "seed-paired difference (two-sided 95%); with one seed the verdict is undetermined. 'slightly' "
               "means below 20% of the larger change. Learned verdicts use only seeds whose runs converged for "
               f"both losses at the balanced and the compared level. 'not meaningful' marks a degenerate "
               f"representation: rank 0, or a balanced probe accuracy below {_DEGENERATE_PROBE:g}/K.)", ""]
    md += ["## Trained seeds, per level (mean ± SE over seeds, unconverged runs included; see 'converged')", "",
           "| level | loss | source | top eigenvalues | spectrum change | angle (deg) | stable rank | probe acc. | "
           "minority acc. | minority sep. | mean captured | converged |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["table"]:
        conv = f"{e['converged']}/{seeds}" if e["source"] == "learned" else ""
        md.append(f"| {level_label(s['scheme'], e['level'])} | {e['loss']} | {e['source']} | "
                  f"{', '.join(f'{x:.3g}' for x in e['eigenvalues'])} | "
                  f"{_fmt(e['spectrum_change'], e['spectrum_change_se'])} | {_fmt(e['angle'], e['angle_se'], '.1f')} | "
                  f"{_fmt(e['stable_rank'], spec='.2f')} | {_fmt(e['probe_accuracy'], e['probe_accuracy_se'])} | "
                  f"{_fmt(e['minority_accuracy'], e['minority_accuracy_se'])} | "
                  f"{_fmt(e['minority_separation'], spec='.2f')} | {_fmt(e['mean_captured'], spec='.2f')} | {conv} |")
    md += ["", f"## Theory over {s['theory_seeds']} geometries (mean ± SE)", "",
           "| level | loss | source | spectrum change | angle (deg) | probe acc. | minority acc. | mean captured |",
           "|---|---|---|---|---|---|---|---|"]
    for e in report["theory_ensemble"]:
        md.append(f"| {level_label(s['scheme'], e['level'])} | {e['loss']} | {e['source']} | "
                  f"{_fmt(e['spectrum_change'], e['spectrum_change_se'])} | {_fmt(e['angle'], e['angle_se'], '.1f')} | "
                  f"{_fmt(e['probe_accuracy'], e['probe_accuracy_se'])} | "
                  f"{_fmt(e['minority_accuracy'], e['minority_accuracy_se'])} | "
                  f"{_fmt(e['mean_captured'], e['mean_captured_se'], '.2f')} |")
    md += ["", "## Learned vs theory (converged runs only)", ""]
    for loss, a in report["agreement"].items():
        if not a["converged_runs"]:
            md.append(f"* {loss}: no converged runs (0/{a['runs']}).")
            continue
        md.append(f"* {loss} ({a['converged_runs']}/{a['runs']} runs converged): top-{s['d1']} eigenvalues within "
                  f"{_pct(a['median_rel_error_vs_derived'])} (median; max "
                  f"{_pct(a['max_rel_error_vs_derived'])}) of the derived prediction, relative to its top; subspace "
                  "angle "
                  f"to the derived prediction {a['median_angle_vs_derived']:.1f} deg (median; max "
                  f"{a['max_angle_vs_derived']:.1f}); to the paper's-constants prediction >= "
                  f"{a['min_angle_vs_paper']:.1f} deg"
                  + (f"; u = 2 Tr[W Sigma W^T] <= {a['max_u']:.2f}" if a["max_u"] is not None else "") + ".")
    if report["between_losses"]:
        md += ["", f"Angle (deg) between the SCL and {ref} subspaces, mean over trained seeds: " + "; ".join(
            f"{level_label(s['scheme'], b['level'])}: learned {b['learned']:.1f}, derived {b['derived']:.1f}"
            for b in report["between_losses"]) + "."]
    md += ["", "## Data (seed 0)", ""]
    for st in report["level_stats"]:
        md.append(f"* {st['label']}: class fractions {', '.join(f'{f:.3f}' for f in st['class_fractions'])} "
                  f"(minority class {st['minority_class']}; {_empty_note(st, s)}); A0 eigenvalues "
                  f"{', '.join(f'{v:.3g}' for v in st['A0_eigenvalues'])}; |mean|^2 {st['mean_norm2']:.3g}")
    md += ["", f"Converged training runs: {report['converged']}."]
    return "\n".join(md)


def _drawer(report, s):
    lv = report["levels"]  # keys (strings); s["levels"] the numbers
    geo = s["scheme"] == "geometric"
    xs = list(s["levels"]) if geo else [0.0 if math.isinf(v) else 1.0 / v for v in s["levels"]]  # dirichlet: 1/alpha
    colors = {"infonce": "C0", "weighted": "C2", "scl": "C3"}
    panels = (("spectrum_change", "normalised spectrum change"), ("angle", "top-subspace angle to balanced (deg)"),
              ("probe_accuracy", "linear-probe balanced accuracy"), ("minority_accuracy", "minority-class accuracy"))

    def pick(tab, loss, src, key):
        return [next(e[key] for e in tab if e["level"] == v and e["loss"] == loss and e["source"] == src) for v in lv]

    def draw(plt):
        fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.6))
        for ax, (key, label) in zip(axes.ravel(), panels):
            for loss in s["losses"]:
                c = colors[loss]
                ax.errorbar(xs, pick(report["table"], loss, "learned", key),
                            yerr=[v or 0.0 for v in pick(report["table"], loss, "learned", key + "_se")],
                            fmt="o", color=c, ms=5, capsize=2, label=f"{loss}: learned")
                ax.plot(xs, pick(report["table"], loss, "derived", key), "-", color=c, lw=1.2,
                        label=f"{loss}: derived, same seeds")
                ax.plot(xs, pick(report["theory_ensemble"], loss, "derived", key), "--", color=c, lw=1.0,
                        label=f"{loss}: derived, {s['theory_seeds']} geometries")
                if loss == "scl":  # the paper's InfoNCE (B = A0, uncentred, k = 1) is the derived SCL up to 2x
                    ax.plot(xs, pick(report["theory_ensemble"], loss, "paper", key), ":", color=c, lw=1.6,
                            label=f"scl: paper's B = 2C, {s['theory_seeds']} geometries")
            ax.set_xscale("symlog", linthresh=1.0 if geo else 0.1)
            ax.set_xlabel("imbalance ratio n_max / n_min" if geo else "1 / alpha (Dirichlet)")
            ax.set_ylabel(label, fontsize=8)
        axes[0, 0].legend(fontsize=6)
        fig.suptitle(f"Class imbalance, linear model: K={s['classes']}, d0={s['dim']}, d1={s['d1']}, "
                     f"sigma={s['sigma']:g}, N={s['n']}", fontsize=9)
        fig.tight_layout()
        return fig

    return draw
