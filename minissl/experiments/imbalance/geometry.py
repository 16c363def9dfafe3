"""The data of one seed: class means, a balanced labelled test set, and one training set per level
(built from :mod:`minissl.data`'s mixture functions, seeded per piece by :func:`minissl.data.stable_seed`)."""

from __future__ import annotations

import numpy as np

from ...data import class_means, gaussian_mixture, level_weights, probe_test_set, stable_seed

__all__ = ["seed_setup", "level_data", "check_draws", "minority_class"]


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


def seed_setup(s, seed):
    """Class means, test set, one dataset per level and the minority class of each level.

    ``s``: the settings (:func:`~.settings.load_settings`). Returns a dict with ``means``, ``test``
    (x, y), ``data`` (a :class:`~minissl.data.MixtureDataset` per level) and ``minority``.
    """
    K = s["classes"]
    mu = class_means(K, s["dim"], s["radius"], seed, s["center_means"])
    test = probe_test_set(mu, s["within"], s["test_per_class"], seed)
    datasets, minority = [], []
    for level in s["levels"]:
        ds = level_data(s, mu, level, seed)
        datasets.append(ds)
        minority.append(minority_class(ds.counts, ds.weights))
    return {"means": mu, "test": test, "data": datasets, "minority": minority}


def level_data(s, mu, level, seed):
    """The training set of one level: ``s["n"]`` samples of the mixture with means ``mu`` and the level's weights."""
    w = level_weights(s["scheme"], level, s["classes"], seed)
    return gaussian_mixture(s["n"], mu, w, within=s["within"], seed=stable_seed("sample", seed, s["scheme"], level),
                            stratified=s["stratified"])


def check_draws(s):
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
                nonempty = int(np.count_nonzero(level_data(s, mu, level, seed).counts))
            if nonempty < 2:
                worst = (seed, nonempty)
                break
        if worst is not None:
            what = "Dirichlet(alpha) draw" if s["scheme"] == "dirichlet" else "sample"
            raise ValueError(f"levels contains {level!r}: the {what} of seed {worst[0]} leaves only {worst[1]} of "
                             f"{K} classes with samples; every level needs at least 2 non-empty classes (the probe, "
                             "the minority class and the imbalance itself need two). Use a "
                             + ("larger alpha." if s["scheme"] == "dirichlet" else "smaller ratio."))
