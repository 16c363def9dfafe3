"""minissl: exact, fast simulations of self-supervised learning in linear models.

The three ways minissl answers "what does a linear SSL model learn?":

* :func:`simulate` trains on the exact sample-based loss (:func:`get_loss`);
* :mod:`minissl.landscape` descends the effective fourth-order landscape;
* closed forms (Theorems 1-3, Props. 2-4 of Ziyin et al. 2023) via :mod:`minissl.theory`.
"""

__version__ = "0.1.0"

from . import _config  # noqa: F401  (first: the thread policy is set before Numba starts its pool)
from . import data, landscape, metrics, theory
from .data import gaussian_data
from .landscape import Landscape, effective_B, effective_landscape, paper_B, predict
from .losses import ENGINES, LOSS_NAMES, Loss, get_loss
from .train import ConvergenceWarning, SimulationResult, simulate, simulate_batch

__all__ = [
    "__version__",
    "data",
    "landscape",
    "metrics",
    "theory",
    "gaussian_data",
    "get_loss",
    "Loss",
    "LOSS_NAMES",
    "ENGINES",
    "Landscape",
    "effective_B",
    "effective_landscape",
    "paper_B",
    "predict",
    "simulate",
    "simulate_batch",
    "SimulationResult",
    "ConvergenceWarning",
]
