"""A small MLP trained on the exact SSL losses (Appendix B of Ziyin et al. 2023).

``f(x) = W3 phi(W2 phi(W1 x + b1) + b2)`` with ``phi`` = tanh or ReLU, hidden widths
``widths`` and output dimension ``d_out`` (2 by default, as in Appendix B). The last layer
is linear without bias, so the loss as a function of ``W3`` at fixed features is exactly the
linear model's loss on the features: that is what the landscape probes rescale (Fig. 7).

Two engines compute the same numbers:

* ``numpy``: the readable reference, forward and hand-written backward
  (tested against central finite differences);
* ``numba``: compiled forward/backward of the three layers and the compiled loss core of
  :mod:`minissl.losses.kernels` (tested against the reference).

The CUDA kernels (:mod:`minissl.nonlinear.cuda`) build on this module;
:func:`minissl.nonlinear.value_and_grad` picks the engine.

The loss on the representations is the :class:`minissl.losses.Loss` core (InfoNCE family,
with the optional projection ``f -> sqrt(c) f/|f|``), averaged over anchors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import _validation as V
from .._config import CACHE, FASTMATH
from ..losses.registry import names as loss_names

__all__ = ["MLP", "init_mlp", "forward", "backward", "features", "value_and_grad_cpu", "check_loss", "z_loss",
           "add_weight_decay", "ACTIVATIONS", "SUPPORTED_LOSSES"]

ACTIVATIONS = ("tanh", "relu")
SUPPORTED_LOSSES = loss_names(lambda s: s.mlp)


@dataclass
class MLP:
    """Parameters of the three-layer network: ``W1 (h1, d0), b1, W2 (h2, h1), b2, W3 (d_out, h2)``."""

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    W3: np.ndarray
    activation: str = "tanh"

    def params(self):
        return [self.W1, self.b1, self.W2, self.b2, self.W3]

    def copy(self):
        return MLP(*(p.copy() for p in self.params()), activation=self.activation)

    def with_last(self, W3):
        """The same network with the last layer replaced (for the landscape probes)."""
        return MLP(self.W1, self.b1, self.W2, self.b2, np.asarray(W3, dtype=np.float64), self.activation)


def init_mlp(d0, widths=(32, 32), d_out=2, activation="tanh", seed=0, scale=1.0):
    """He/Xavier-style initialisation: ``W ~ N(0, scale^2 / fan_in)``, biases 0."""
    d0 = V.check_int("d0", d0, lo=1)
    if len(widths) != 2:
        raise ValueError(f"widths == {widths!r}, must give the two hidden widths (h1, h2).")
    h1 = V.check_int("widths[0]", widths[0], lo=1)
    h2 = V.check_int("widths[1]", widths[1], lo=1)
    d_out = V.check_int("d_out", d_out, lo=1)
    V.check_choice("activation", activation, ACTIVATIONS)
    scale = V.check_scalar("scale", scale, lo=0.0, lo_open=True)
    rng = V.check_rng(seed)
    g = np.sqrt(2.0) if activation == "relu" else 1.0
    return MLP(W1=g * scale * rng.standard_normal((h1, d0)) / np.sqrt(d0), b1=np.zeros(h1),
               W2=g * scale * rng.standard_normal((h2, h1)) / np.sqrt(h1), b2=np.zeros(h2),
               W3=scale * rng.standard_normal((d_out, h2)) / np.sqrt(h2), activation=activation)


def _act(u, activation):
    return np.tanh(u) if activation == "tanh" else np.maximum(u, 0.0)


def features(mlp, x):
    """The input of the last layer, ``phi(W2 phi(W1 x + b1) + b2)`` of shape (N, h2) (NumPy reference).

    The network's output is ``features(mlp, x) @ mlp.W3.T``: the landscape probes rescale ``W3``
    at these fixed features.
    """
    a1 = _act(x @ mlp.W1.T + mlp.b1, mlp.activation)
    return _act(a1 @ mlp.W2.T + mlp.b2, mlp.activation)


def _act_grad(u, a, activation):
    """phi'(u) given u and a = phi(u)."""
    return 1.0 - a * a if activation == "tanh" else (u > 0.0).astype(u.dtype)


def forward(mlp, x):
    """Representations ``z (N, d_out)`` and the cache for :func:`backward` (NumPy reference)."""
    u1 = x @ mlp.W1.T + mlp.b1
    a1 = _act(u1, mlp.activation)
    u2 = a1 @ mlp.W2.T + mlp.b2
    a2 = _act(u2, mlp.activation)
    return a2 @ mlp.W3.T, (x, u1, a1, u2, a2)


def backward(mlp, cache, gz):
    """Gradients ``[dW1, db1, dW2, db2, dW3]`` of ``sum(gz * z)`` (NumPy reference)."""
    x, u1, a1, u2, a2 = cache
    dW3 = gz.T @ a2
    g2 = (gz @ mlp.W3) * _act_grad(u2, a2, mlp.activation)
    dW2 = g2.T @ a1
    db2 = g2.sum(0)
    g1 = (g2 @ mlp.W2) * _act_grad(u1, a1, mlp.activation)
    dW1 = g1.T @ x
    db1 = g1.sum(0)
    return [dW1, db1, dW2, db2, dW3]


def check_loss(loss):
    """The loss, checked: a :class:`minissl.losses.Loss` of the InfoNCE family without its own weight decay.

    Raises
    ------
    TypeError
        ``loss`` is not a Loss.
    ValueError
        Not in :data:`SUPPORTED_LOSSES`, or ``loss.weight_decay`` is set (the MLP functions take
        ``weight_decay`` themselves and apply it to all three weight matrices).
    """
    from ..losses import Loss

    if not isinstance(loss, Loss):
        raise TypeError(f"loss == {loss!r}, must be a Loss from minissl.get_loss(...).")
    if loss.name not in SUPPORTED_LOSSES:
        raise ValueError(f"loss {loss.name!r}: the MLP supports {SUPPORTED_LOSSES} (with or without normalize).")
    if loss.weight_decay:
        raise ValueError(f"loss weight_decay == {loss.weight_decay!r}: give weight decay to the MLP functions "
                         "(weight_decay=...), which apply it to all three weight matrices.")
    return loss


def z_loss(loss, z1, z2, engine):
    """The loss on the representations of the two views and its gradients (normalization included).

    Parameters
    ----------
    loss : minissl.losses.Loss
        Checked by :func:`check_loss`.
    z1, z2 : ndarray (N, d_out)
        Representations of the two views.
    engine : {"numpy", "numba"}
        The loss core: the NumPy reference or the compiled kernel.

    Returns
    -------
    value : float
    g1, g2 : ndarray (N, d_out)
        Gradients with respect to ``z1`` and ``z2``.
    """
    y1, c1 = loss.project(z1)
    y2, c2 = loss.project(z2)
    if engine == "numba":
        from ..losses.kernels import infonce_core

        # the compiled twin of the loss's reference core takes the same arguments
        value, g1, g2 = infonce_core(y1, y2, **loss.core_kwargs)
    else:
        value, g1, g2 = loss.core(y1, y2)
    return value, loss.project_backward(g1, c1), loss.project_backward(g2, c2)


def value_and_grad_cpu(mlp, loss, x1, x2, engine="numpy", weight_decay=0.0):
    """Loss of one batch of paired views and its gradient with respect to every parameter, on the CPU.

    :func:`minissl.nonlinear.value_and_grad` is the same for every engine (``cuda`` included).

    Parameters
    ----------
    mlp : MLP
    loss : minissl.losses.Loss
        InfoNCE family (``infonce``, ``weighted``, ``beta``), optionally ``normalize=True``.
    x1, x2 : ndarray (N, d0)
    engine : {"numpy", "numba"}
        ``numpy``: the reference forward/backward; ``numba``: the compiled layers and loss core.
    weight_decay : float
        ``+ weight_decay * sum of squared weights`` (biases excluded).

    Returns
    -------
    value : float
    grads : list of ndarray
        ``[dW1, db1, dW2, db2, dW3]``.
    """
    check_loss(loss)
    V.check_choice("engine", engine, ("numpy", "numba"))
    if engine == "numba":
        cache1 = _forward_nb(mlp.W1, mlp.b1, mlp.W2, mlp.b2, mlp.W3, x1, mlp.activation == "relu")
        cache2 = _forward_nb(mlp.W1, mlp.b1, mlp.W2, mlp.b2, mlp.W3, x2, mlp.activation == "relu")
        value, g1, g2 = z_loss(loss, cache1[0], cache2[0], engine)
        relu = mlp.activation == "relu"
        grads = _backward_nb(mlp.W1, mlp.W2, mlp.W3, x1, cache1, g1, relu)
        grads2 = _backward_nb(mlp.W1, mlp.W2, mlp.W3, x2, cache2, g2, relu)
        grads = [a + b for a, b in zip(grads, grads2)]  # tuples from the compiled code
    else:
        z1, c1 = forward(mlp, x1)
        z2, c2 = forward(mlp, x2)
        value, g1, g2 = z_loss(loss, z1, z2, engine)
        grads = [a + b for a, b in zip(backward(mlp, c1, g1), backward(mlp, c2, g2))]
    return add_weight_decay(mlp, value, grads, weight_decay)


def add_weight_decay(mlp, value, grads, weight_decay):
    """Add ``weight_decay * |W|^2`` of the three weight matrices (biases excluded) to a loss and its gradients.

    Parameters
    ----------
    mlp : MLP
    value : float
        The loss without weight decay.
    grads : list of ndarray
        ``[dW1, db1, dW2, db2, dW3]`` without weight decay (the list is updated in place).
    weight_decay : float

    Returns
    -------
    value : float
    grads : list of ndarray
    """
    if weight_decay:
        for i in (0, 2, 4):
            W = mlp.params()[i]
            value += weight_decay * float((W * W).sum())
            grads[i] = grads[i] + 2.0 * weight_decay * W
    return float(value), grads


# --------------------------------------------------------------------------- compiled path


@njit(fastmath=FASTMATH, cache=CACHE)
def _dense(x, W, b, out):
    """``out = x W^T + b`` with loops (no BLAS threads inside the step)."""
    n, d = x.shape
    h = W.shape[0]
    for i in range(n):
        for j in range(h):
            acc = b[j]
            for k in range(d):
                acc += x[i, k] * W[j, k]
            out[i, j] = acc


@njit(fastmath=FASTMATH, cache=CACHE)
def _forward_nb(W1, b1, W2, b2, W3, x, relu):
    n = x.shape[0]
    h1, h2, dout = W1.shape[0], W2.shape[0], W3.shape[0]
    u1 = np.empty((n, h1))
    _dense(x, W1, b1, u1)
    a1 = np.maximum(u1, 0.0) if relu else np.tanh(u1)
    u2 = np.empty((n, h2))
    _dense(a1, W2, b2, u2)
    a2 = np.maximum(u2, 0.0) if relu else np.tanh(u2)
    z = np.empty((n, dout))
    _dense(a2, W3, np.zeros(dout), z)
    return z, u1, a1, u2, a2


@njit(fastmath=FASTMATH, cache=CACHE)
def _layer_back(g, a_in, W, dW, db, g_in):
    """One dense layer ``out = a_in W^T (+ b)``: accumulate ``dW, db`` and ``g_in = g W``."""
    n, h = g.shape
    k = a_in.shape[1]
    for i in range(n):
        for j in range(h):
            gij = g[i, j]
            db[j] += gij
            for q in range(k):
                dW[j, q] += gij * a_in[i, q]
                g_in[i, q] += gij * W[j, q]


@njit(fastmath=FASTMATH, cache=CACHE)
def _act_back(g, u, a, relu):
    """``g *= phi'(u)`` in place."""
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            g[i, j] *= (1.0 if u[i, j] > 0.0 else 0.0) if relu else 1.0 - a[i, j] * a[i, j]


@njit(fastmath=FASTMATH, cache=CACHE)
def _backward_nb(W1, W2, W3, x, cache, gz, relu):
    _, u1, a1, u2, a2 = cache
    n = x.shape[0]
    h1, h2, dout = a1.shape[1], a2.shape[1], gz.shape[1]
    dW3, db3 = np.zeros((dout, h2)), np.zeros(dout)
    g2 = np.zeros((n, h2))
    _layer_back(gz, a2, W3, dW3, db3, g2)
    _act_back(g2, u2, a2, relu)
    dW2, db2 = np.zeros((h2, h1)), np.zeros(h2)
    g1 = np.zeros((n, h1))
    _layer_back(g2, a1, W2, dW2, db2, g1)
    _act_back(g1, u1, a1, relu)
    dW1, db1 = np.zeros((h1, x.shape[1])), np.zeros(h1)
    gx = np.zeros_like(x)
    _layer_back(g1, x, W1, dW1, db1, gx)
    return dW1, db1, dW2, db2, dW3
