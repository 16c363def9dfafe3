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
* Verdicts (:func:`.verdicts.robustness_verdicts`): a paired difference counts beyond the
  resolution and ``t_{0.975, n-1}`` standard errors (one seed: undetermined); learned
  verdicts use only seeds whose runs converged; a degenerate representation (rank 0, or a
  balanced probe below 1.5/K) gets "not meaningful". The errata-E4 line says "confirmed" only
  when its numbers do.

Outputs (atomic): ``OUT/imbalance/{data.csv, theory_ensemble.csv, report.json, report.md,
figure.png}``; finished training runs are kept under ``points/`` (a
:class:`~minissl.experiments.runs.RunCache`) so an interrupted run resumes.

Modules, from the bottom up: :mod:`.settings` (the settings file, levels), :mod:`.geometry`
(class means, datasets and test sets per seed, on :mod:`minissl.data`), :mod:`.metrics` (what
is measured of each ``W^T W``), :mod:`.verdicts` (SCL vs the reference loss, errata E4),
:mod:`.summary` (tables of the report), :mod:`.report` (text, markdown, figure) and :mod:`.run`
(:func:`run_imbalance`).
"""

from .geometry import minority_class
from .metrics import relative_metrics, representation_metrics, theory_matrices
from .report import agreement_line, format_level_table, summary_lines, verdict_lines
from .run import run_imbalance
from .settings import LOSSES, SCHEMES, check_levels, level_key, level_label, load_settings


__all__ = ["run_imbalance", "load_settings", "LOSSES", "SCHEMES", "check_levels", "representation_metrics",
           "relative_metrics", "theory_matrices", "minority_class", "format_level_table", "verdict_lines",
           "summary_lines", "agreement_line", "level_label", "level_key"]
