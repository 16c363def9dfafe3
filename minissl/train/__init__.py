"""Training of the linear model ``f(x) = W x (+ b)`` on an exact loss or its effective landscape.

Layers, each reading only those above it in this list:

``optim``
    Adam, SGD and the learning-rate schedule, in Python and compiled form side by side (also
    used by :mod:`minissl.siamese` and :mod:`minissl.nonlinear`).
``config``
    :class:`RunConfig`: every setting of a run, checked once.
``plan``
    :func:`plan`: data, initial weights, random streams and the gradient of one run.
``loop``
    The one compiled training loop (:func:`~minissl.train.loop.run_loop`), taking the loss's
    step kernel (:func:`minissl.losses.step.linear_step`).
``diagnostics``
    Convergence diagnostics.
``simulate``
    :func:`simulate` and :func:`simulate_batch` (thin fronts over :func:`run` and
    :func:`run_batch`), :class:`SimulationResult`.
"""

from .config import RunConfig
from .optim import SGD, Adam, lr_at, make_optimizer
from .plan import Plan, plan
from .simulate import ConvergenceWarning, SimulationResult, run, run_batch, simulate, simulate_batch

__all__ = ["simulate", "simulate_batch", "run", "run_batch", "RunConfig", "Plan", "plan", "SimulationResult",
           "ConvergenceWarning", "Adam", "SGD", "make_optimizer", "lr_at"]
