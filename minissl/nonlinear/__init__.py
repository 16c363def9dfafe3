"""The nonlinear check (Sec. 4.1, Appendix B, Fig. 7): a small MLP on the exact losses and
its last-layer landscape, next to the linear theory's prediction."""

from .mlp import ACTIVATIONS, MLP, forward, init_mlp
from .probes import LinearModel, classify_regime, linear_regime, plane_probe, scale_probe
from .train import train_mlp, value_and_grad

__all__ = ["ACTIVATIONS", "MLP", "forward", "init_mlp", "value_and_grad", "train_mlp", "scale_probe",
           "plane_probe", "classify_regime", "linear_regime", "LinearModel"]
