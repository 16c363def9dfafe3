"""Closed-form theory of the effective landscape (Ziyin et al. 2023, Sec. 3-4, App. D-E).

* :mod:`~minissl.theory.stationary`: Theorem 1 / Eq. (9), Prop. 2 (type of each point from
  the Hessian), Props. 3-4 and Theorem 2 (normalization), Theorem 3 (bias);
* :mod:`~minissl.theory.thresholds`: collapse thresholds along an augmentation ray, the
  critical dataset size of weighted InfoNCE, beta-InfoNCE's critical noise, the phase
  diagram of Fig. 3 (top);
* :mod:`~minissl.theory.table1`: Table 1 as data, with the paper's printed entries;
* :mod:`~minissl.theory.dynamics`: early SGD rates and learning times, critical slowing down;
* :func:`analyze`: everything above for one setting (what ``minissl theory`` prints).

The constants are the derived ones of docs/errata.md; ``constants="paper"`` gives the
printed ones for comparison. Formulas, tests and errata per result: docs/theory.md.
"""

from .dynamics import CRITICAL_EXPONENT, dynamics, learning_times, linear_rates
from .report import analyze
from .stationary import (StationaryPoint, Whitened, classify, count_masks, global_minimum, normalized_gap,
                         stationary_points, survives_normalization, whiten)
from .table1 import TABLE1, format_table1, table1
from .thresholds import (PHASE_LABELS, PhaseDiagram, beta_critical_sigma, collapse_thresholds,
                         critical_n_weighted, format_phase_map, landscape_for, phase_diagram)

__all__ = ["analyze", "dynamics", "learning_times", "linear_rates", "CRITICAL_EXPONENT", "StationaryPoint", "Whitened", "classify", "count_masks", "global_minimum", "normalized_gap",
           "stationary_points", "survives_normalization", "whiten", "TABLE1", "format_table1", "table1",
           "PHASE_LABELS", "PhaseDiagram", "beta_critical_sigma", "collapse_thresholds",
           "critical_n_weighted", "format_phase_map", "landscape_for", "phase_diagram"]
