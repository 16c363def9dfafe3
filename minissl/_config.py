"""One place for the Numba compilation policy of every kernel in minissl.

FASTMATH
    LLVM fast-math flags used by all kernels: contraction (FMA), no signed zeros,
    reciprocal and approximate functions. ``reassoc`` is deliberately absent: with it LLVM
    reorders sums differently depending on where a function is inlined, and the same kernel
    gave different last bits freshly compiled and loaded from the cache (a run's numbers
    depended on whether it was the first). Sums that must vectorise spell out their order
    (:mod:`minissl.losses.lanesum`); ``tests/test_determinism.py`` compiles a kernel in a
    fresh cache and compares it with the cached one.
    ``nnan`` and ``ninf`` are deliberately absent: kernels see ``-inf``-like logits and
    users can pass extreme values, and those flags make LLVM assume they never occur
    (umap removed blanket fastmath for this reason).
CACHE
    ``cache=True`` on every kernel with a stable signature: a second process loads the
    compiled code from ``__pycache__`` instead of compiling again. When this module is
    imported, :func:`minissl._cache.install` makes every cached entry carry a fingerprint
    of the whole package, so code cached from other versions of the sources is recompiled
    (Numba checks only each function's own file; a kernel inlines its callees from other
    files and the constants of this one).
THREAD_SPIN
    How long a GNU OpenMP worker (Numba's default ``omp`` threading layer) spins at a
    barrier before it sleeps (``GOMP_SPINCOUNT``). libgomp's default (300 000 spins, or
    forever with ``OMP_WAIT_POLICY=ACTIVE``) makes a parallel step wait a whole scheduler
    slice whenever another process holds a core: beside two busy processes the default
    ``minissl simulate`` ran 36x its single-thread time. A short spin keeps the idle speed
    and sleeps under load (``benchmarks/bench_threads.py``, 2 cores: 3000 spins gave 0.61x
    the single-thread time idle and 0.88x beside two busy processes; sleeping at once,
    ``OMP_WAIT_POLICY=PASSIVE``, 1.09x and 0.91x). Set when minissl is imported, before
    Numba starts its thread pool, and only if the user set neither ``GOMP_SPINCOUNT`` nor
    ``OMP_WAIT_POLICY``; a pool already started by other code keeps its setting.
N_CHUNKS
    Parallel kernels split the anchors into this many fixed chunks, each with its own
    accumulation buffer, summed serially in chunk order. The split does not depend on the
    number of threads, so results are bit-identical for any ``NUMBA_NUM_THREADS``.
"""

import os

FASTMATH = {"nsz", "arcp", "contract", "afn"}
CACHE = os.environ.get("MINISSL_NUMBA_CACHE", "1") != "0"  # set 0 to inspect assembly
N_CHUNKS = 8
THREAD_SPIN = 3000

if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = str(THREAD_SPIN)

if CACHE:  # before any kernel is decorated: each one's cache is located when it is defined
    from ._cache import install as _install_cache_locators

    _install_cache_locators()
