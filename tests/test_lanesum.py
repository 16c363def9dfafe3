"""Fixed-order sums (minissl.losses.lanesum) against exact sums and the stated order.

The stated order: element ``i`` to lane ``i % 8`` (in index order), lanes combined as
``((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))``, then the tail in index order, all in
float64. The Python replica below follows that sentence; ``total`` must match it bit for bit
(the products of the others may be fused into their adds).
"""

import math

import numpy as np
import pytest

from minissl.losses import lanesum

LENGTHS = [0, 1, 7, 8, 9, 16, 63, 1000]


def stated_order(terms):
    terms = [float(t) for t in terms]
    m = len(terms) - len(terms) % 8
    lanes = [0.0] * 8
    for i in range(m):
        lanes[i % 8] += terms[i]
    t = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for x in terms[m:]:
        t += x
    return t


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sums_follow_the_stated_order_and_are_accurate(n, dtype):
    rng = np.random.default_rng(n)
    x, y, u, v = (rng.normal(size=n).astype(dtype) for _ in range(4))
    # products and differences are formed in the inputs' dtype, then added in float64
    cases = [
        (lanesum.total(x), [x[i] for i in range(n)]),
        (lanesum.dot(x, y), [x[i] * y[i] for i in range(n)]),
        (lanesum.dot2(x, y, u, v), [float(x[i] * y[i]) + float(u[i] * v[i]) for i in range(n)]),
        (lanesum.sqdist(x, y), [(x[i] - y[i]) * (x[i] - y[i]) for i in range(n)]),
    ]
    assert cases[0][0] == stated_order(cases[0][1])  # a plain sum: the order, bit for bit
    for got, terms in cases:
        # products may be fused into the adds (FMA): within one rounding per term of the order
        assert isinstance(got, float)
        assert abs(got - stated_order(terms)) <= 2 * n * np.finfo(np.float64).eps * math.fsum(abs(float(t)) for t in terms)
        exact = math.fsum(float(t) for t in terms)
        assert abs(got - exact) <= 8 * n * np.finfo(np.float64).eps * math.fsum(abs(float(t)) for t in terms)
