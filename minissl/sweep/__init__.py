"""Sweeps at any scale: a resumable store, an embedded executor and a Dask one (issue 15).

* :class:`Store` — one SQLite file per output folder, a row per finished point;
* :func:`run_sweep` — computes the points a store lacks on an executor, storing each at once;
* :func:`make_executor` — :class:`Embedded` (this process) or :class:`DaskExecutor` (a cluster);
* :func:`results_table` — the store's reports as CSV rows (grid columns, then scalar results).

What a point *is* (a command and its options) is the caller's business: :mod:`minissl.cli.points`
for ``minissl sweep``.
"""

from .executors import DaskExecutor, Embedded, make_executor
from .runner import SweepOutcome, run_sweep
from .store import STORE_NAME, Store
from .table import results_table, write_csv

__all__ = ["Store", "STORE_NAME", "run_sweep", "SweepOutcome", "Embedded", "DaskExecutor", "make_executor",
           "results_table", "write_csv"]
