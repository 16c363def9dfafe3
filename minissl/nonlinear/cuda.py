"""Numba-CUDA kernels for the MLP (forward/backward) and the landscape grid of Fig. 7.

Importing :mod:`minissl` never touches CUDA: this module imports ``numba.cuda`` only when a
function here is called. Kernels are tested against the NumPy reference with Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, small blocks, sizes that cross block edges; see
``tests/test_nonlinear_cuda.py``).

Design (deterministic: no atomics, every sum is done in a fixed order):

* every kernel loops over its items with a grid-stride loop (item ``i``, then
  ``i + gridsize``, ...), so a launch of any size covers all items: by default one thread per
  item up to ``MAX_BLOCKS`` blocks;
* forward: one thread per sample computes its hidden activations and output;
* backward: one thread per sample writes its own gradient contribution into a per-sample
  buffer, which the host sums in sample order;
* landscape grid: one thread per grid point ``(r1, r2)`` evaluates the loss (value only, the
  unnormalized InfoNCE family, as the probes require) over all noise draws of precomputed
  features.
"""

from __future__ import annotations

import math

import numpy as np

from .mlp import add_weight_decay, check_loss, z_loss
from .probes import check_probe_loss, feature_draws, probe_svd, split_halves

__all__ = ["available", "require", "forward_gpu", "value_and_grad_gpu", "plane_probe_gpu", "THREADS", "MAX_BLOCKS"]

THREADS = 64  # threads per block (the tests use smaller blocks)
MAX_BLOCKS = 1024  # default cap on blocks per launch; grid-stride loops do the rest
_KERNELS = {}
cuda = None  # numba.cuda, imported on first use (the simulator swaps this module-level name)


def available():
    """True when a CUDA device (or the simulator, ``NUMBA_ENABLE_CUDASIM=1``) can run the kernels."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # pragma: no cover - driver errors
        return False


def require():
    """Raise a clear error when no CUDA device is usable."""
    if not available():
        raise RuntimeError(
            "no CUDA device: install the gpu extra (pip install 'minissl[gpu]', i.e. numba-cuda) and run on a "
            "machine with an NVIDIA GPU and driver, or set NUMBA_ENABLE_CUDASIM=1 to run the kernels in "
            "Numba's CUDA simulator (slow; for testing).")


def _kernels():
    global cuda
    if _KERNELS:
        return _KERNELS
    from numba import cuda as _cuda

    cuda = _cuda

    @cuda.jit(device=True)
    def dense_act(W, b, inp, i, relu, u, a):
        """Row i: ``u = W inp_i + b``, ``a = phi(u)``."""
        for j in range(W.shape[0]):
            acc = b[j]
            for k in range(W.shape[1]):
                acc += W[j, k] * inp[i, k]
            u[i, j] = acc
            a[i, j] = max(acc, 0.0) if relu else math.tanh(acc)

    @cuda.jit
    def forward_k(W1, b1, W2, b2, W3, x, relu, u1, a1, u2, a2, z):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):  # grid-stride: any launch size
            dense_act(W1, b1, x, i, relu, u1, a1)
            dense_act(W2, b2, a1, i, relu, u2, a2)
            for o in range(W3.shape[0]):
                acc = 0.0
                for k in range(W3.shape[1]):
                    acc += W3[o, k] * a2[i, k]
                z[i, o] = acc

    @cuda.jit(device=True)
    def back_act(g, W, u, a, i, relu, g_in):
        """Row i: ``g_in = (g W) * phi'(u)`` (one layer back, through the activation)."""
        for k in range(W.shape[1]):
            acc = 0.0
            for j in range(W.shape[0]):
                acc += g[i, j] * W[j, k]
            d = (1.0 if u[i, k] > 0.0 else 0.0) if relu else 1.0 - a[i, k] * a[i, k]
            g_in[i, k] = acc * d

    @cuda.jit(device=True)
    def _backward_row(W2, W3, x, u1, a1, u2, a2, gz, relu, g2, g1, out, i):
        h1, h2, dout, d0 = a1.shape[1], a2.shape[1], gz.shape[1], x.shape[1]
        o_w1 = 0
        o_b1 = h1 * d0
        o_w2 = o_b1 + h1
        o_b2 = o_w2 + h2 * h1
        o_w3 = o_b2 + h2
        back_act(gz, W3, u2, a2, i, relu, g2)
        for o in range(dout):
            for j in range(h2):
                out[i, o_w3 + o * h2 + j] = gz[i, o] * a2[i, j]
        back_act(g2, W2, u1, a1, i, relu, g1)
        for j in range(h2):
            out[i, o_b2 + j] = g2[i, j]
            for k in range(h1):
                out[i, o_w2 + j * h1 + k] = g2[i, j] * a1[i, k]
        for k in range(h1):
            out[i, o_b1 + k] = g1[i, k]
            for q in range(d0):
                out[i, o_w1 + k * d0 + q] = g1[i, k] * x[i, q]

    @cuda.jit
    def backward_k(W2, W3, x, u1, a1, u2, a2, gz, relu, g2, g1, out):
        """``out[i]`` = flattened (dW1, db1, dW2, db2, dW3) of sample i."""
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):  # grid-stride
            _backward_row(W2, W3, x, u1, a1, u2, a2, gz, relu, g2, g1, out, i)

    @cuda.jit(device=True)
    def _z(F, dr, a, U, big, small, Vt, r1, r2, z):
        dout = U.shape[0]
        k = Vt.shape[0]
        for o in range(dout):
            acc = 0.0
            for s_ in range(k):
                sv = r1 * big[s_] + r2 * small[s_]
                proj = 0.0
                for q in range(Vt.shape[1]):
                    proj += Vt[s_, q] * F[dr, a, q]
                acc += U[o, s_] * sv * proj
            z[o] = acc

    @cuda.jit(device=True)
    def _grid_point(F1, F2, U, big, small, Vt, r, alpha, beta, both, t):
        m = r.shape[0]
        r1 = r[t // m]
        r2 = r[t % m]
        draws, n, h = F1.shape
        dout = U.shape[0]
        total = 0.0
        for dr in range(draws):
            val = 0.0
            for a in range(n):
                # z of anchor a (view 1) and its positive (view 2), output dimension <= 8
                za = cuda.local.array(8, dtype=np.float64)
                zp = cuda.local.array(8, dtype=np.float64)
                _z(F1, dr, a, U, big, small, Vt, r1, r2, za)
                _z(F2, dr, a, U, big, small, Vt, r1, r2, zp)
                pos = 0.0
                for o in range(dout):
                    pos += (za[o] - zp[o]) ** 2
                # log-sum-exp over the negatives (and alpha * positive), one pass with a running max
                mx = -1e300
                s = 0.0
                for v in range(2 if both else 1):
                    for b in range(n):
                        if b == a:
                            continue
                        zb = cuda.local.array(8, dtype=np.float64)
                        _z(F1 if v == 0 else F2, dr, b, U, big, small, Vt, r1, r2, zb)
                        d = 0.0
                        for o in range(dout):
                            d += (za[o] - zb[o]) ** 2
                        term = -0.5 * d
                        if term > mx:
                            s = s * math.exp(mx - term) + 1.0
                            mx = term
                        else:
                            s += math.exp(term - mx)
                if alpha > 0:
                    term = -0.5 * pos
                    if term > mx:
                        s = s * math.exp(mx - term) + alpha
                        mx = term
                    else:
                        s += alpha * math.exp(term - mx)
                val += 0.5 * pos + beta * (mx + math.log(s))
            total += val / n
        return total / draws

    @cuda.jit
    def grid_k(F1, F2, U, big, small, Vt, r, alpha, beta, both, out):
        """Loss at grid point t = (i, j): W3 = U diag(r_i big + r_j small) Vt, mean over draws."""
        m = r.shape[0]
        for t in range(cuda.grid(1), m * m, cuda.gridsize(1)):  # grid-stride
            out[t] = _grid_point(F1, F2, U, big, small, Vt, r, alpha, beta, both, t)

    _KERNELS.update(forward=forward_k, backward=backward_k, grid=grid_k)
    return _KERNELS


def _check_launch(threads, blocks):
    """Raise ``ValueError`` unless ``threads`` is an integer in [1, 1024] and ``blocks`` one in
    [1, 2^31 - 1] or None."""
    for name, v, optional, hi in (("threads", threads, False, 1024), ("blocks", blocks, True, 2**31 - 1)):
        if v is None and optional:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= hi:
            raise ValueError(f"{name}={v!r}: expected an integer in [1, {hi}] (CUDA's limit)"
                             + (" or None (one thread per item)." if optional else "."))


def _launch(n, threads, blocks):
    """``(blocks, threads)`` of a launch over ``n`` items: one thread per item, at most
    ``MAX_BLOCKS`` blocks unless ``blocks`` is given (the kernels' grid-stride loops cover any
    remainder, so any positive sizes give the same result)."""
    _check_launch(threads, blocks)
    if blocks is None:
        blocks = min(MAX_BLOCKS, max(1, (n + threads - 1) // threads))
    return int(blocks), int(threads)


def forward_gpu(mlp, x, threads=THREADS, blocks=None):
    """Forward pass on the device; returns ``(z, (u1, a1, u2, a2))`` as host arrays."""
    _check_launch(threads, blocks)
    require()
    k = _kernels()
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[0]
    h1, h2, dout = mlp.W1.shape[0], mlp.W2.shape[0], mlp.W3.shape[0]
    u1, a1 = np.empty((n, h1)), np.empty((n, h1))
    u2, a2 = np.empty((n, h2)), np.empty((n, h2))
    z = np.empty((n, dout))
    k["forward"][_launch(n, threads, blocks)](mlp.W1, mlp.b1, mlp.W2, mlp.b2, mlp.W3, x,
                                               mlp.activation == "relu", u1, a1, u2, a2, z)
    return z, (u1, a1, u2, a2)


def _backward_gpu(mlp, x, cache, gz, threads, blocks):
    k = _kernels()
    u1, a1, u2, a2 = cache
    n, d0 = x.shape
    h1, h2, dout = a1.shape[1], a2.shape[1], gz.shape[1]
    size = h1 * d0 + h1 + h2 * h1 + h2 + dout * h2
    out = np.zeros((n, size))
    k["backward"][_launch(n, threads, blocks)](mlp.W2, mlp.W3, np.ascontiguousarray(x, dtype=np.float64), u1, a1,
                                                u2, a2, np.ascontiguousarray(gz, dtype=np.float64),
                                                mlp.activation == "relu", np.zeros((n, h2)), np.zeros((n, h1)), out)
    tot = np.zeros(size)
    for i in range(n):  # fixed order: deterministic
        tot += out[i]
    o = 0
    grads = []
    for shape in ((h1, d0), (h1,), (h2, h1), (h2,), (dout, h2)):
        m = int(np.prod(shape))
        grads.append(tot[o:o + m].reshape(shape))
        o += m
    return grads


def value_and_grad_gpu(mlp, loss, x1, x2, weight_decay=0.0, threads=THREADS, blocks=None):
    """As :func:`minissl.nonlinear.mlp.value_and_grad_cpu`, the network on the device
    (``threads`` per block, ``blocks`` per launch: see :func:`_launch`)."""
    _check_launch(threads, blocks)
    check_loss(loss)
    z1, c1 = forward_gpu(mlp, x1, threads, blocks)
    z2, c2 = forward_gpu(mlp, x2, threads, blocks)
    value, g1, g2 = z_loss(loss, z1, z2, "numpy")
    grads = [a + b for a, b in zip(_backward_gpu(mlp, x1, c1, g1, threads, blocks), _backward_gpu(mlp, x2, c2, g2, threads, blocks))]
    return add_weight_decay(mlp, value, grads, weight_decay)


def plane_probe_gpu(mlp, loss, x, augmentation, r_values, draws=16, seed=1, threads=THREADS, blocks=None):
    """As :func:`minissl.nonlinear.probes.plane_probe`, one device thread per grid point."""
    _check_launch(threads, blocks)
    require()
    check_probe_loss(loss)
    alpha, beta, both = loss.infonce_numbers()
    if mlp.W3.shape[0] > 8:
        raise ValueError(f"output dimension {mlp.W3.shape[0]}: the grid kernel supports at most 8.")
    r = np.ascontiguousarray(r_values, dtype=np.float64)
    feats = feature_draws(mlp, x, augmentation, draws, seed)
    F1 = np.ascontiguousarray(np.stack([f[0] for f in feats]))
    F2 = np.ascontiguousarray(np.stack([f[1] for f in feats]))
    U, s, Vt = probe_svd(mlp, feats)
    big, small = split_halves(s)
    m = r.size
    out = np.empty(m * m)
    _kernels()["grid"][_launch(m * m, threads, blocks)](F1, F2, np.ascontiguousarray(U), big, small,
                                                         np.ascontiguousarray(Vt), r, alpha, beta, both, out)
    return out.reshape(m, m)
