"""One place for the Numba compilation policy of every kernel in minissl.

FASTMATH
    LLVM fast-math flags used by all kernels: reassociation and contraction (what loop
    vectorisation and FMA need), no signed zeros, reciprocal and approximate functions.
    ``nnan`` and ``ninf`` are deliberately absent: kernels see ``-inf``-like logits and
    users can pass extreme values, and those flags make LLVM assume they never occur
    (umap removed blanket fastmath for this reason).
CACHE
    ``cache=True`` on every kernel with a stable signature: a second process loads the
    compiled code from ``__pycache__`` instead of compiling again.
N_CHUNKS
    Parallel kernels split the anchors into this many fixed chunks, each with its own
    accumulation buffer, summed serially in chunk order. The split does not depend on the
    number of threads, so results are bit-identical for any ``NUMBA_NUM_THREADS``.
"""

import os

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
CACHE = os.environ.get("MINISSL_NUMBA_CACHE", "1") != "0"  # set 0 to inspect assembly
# elementwise loops need no reassociation; Cody-Waite range reduction must not be reassociated
FASTMATH_ELEMENTWISE = FASTMATH - {"reassoc"}
N_CHUNKS = 8
