"""Verification of minissl.theory: every closed form against an independent computation.

Independent sources used here:

* the landscape's analytic gradient (itself tested against finite differences in
  test_gradients.py) -- a stationary point must have zero gradient;
* the analytic Hessian, tested here against finite differences of the gradient, and
  second-order perturbations of the value -- for the type of each point (Prop. 2);
* gradient descent on the effective landscape (``descend_batch``, L-BFGS) from random
  starts -- it must land on an enumerated point that the theory calls a minimum;
* the paper's own formulas written out separately (Eq. 9, Eq. 12, the beta-InfoNCE and
  weighted-InfoNCE conditions) in the commuting case;
* exact-loss simulation where the fourth-order expansion is accurate (small W).

Tolerances: closed-form points are exact up to round-off, so gradients vanish to 1e-10
relative; descent stops at |grad| < 1e-11 and the curvature is O(1), so descended
``W^T W`` agree with the closed form to 1e-7 relative (measured max: see the asserts'
messages).
"""

from __future__ import annotations

import itertools
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from minissl import get_loss, simulate  # noqa: E402
from minissl.landscape import Landscape, descend_batch, effective_B  # noqa: E402
from minissl.theory import (TABLE1, analyze, beta_critical_sigma, classify, collapse_thresholds,  # noqa: E402
                            critical_n_weighted, format_phase_map, format_table1, global_minimum,
                            phase_diagram, stationary_points, survives_normalization, table1, whiten)


def _ortho(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def random_problem(seed, d, commuting, beta=0.5, c_scale=1.5):
    """beta-InfoNCE effective landscape (derived constants) on a random (A0, C)."""
    rng = np.random.default_rng(seed)
    Q = _ortho(rng, d)
    a = rng.uniform(0.2, 4.0, d)
    A0 = (Q * a) @ Q.T
    Qc = Q if commuting else _ortho(rng, d)
    C = (Qc * rng.uniform(0.05, c_scale * 2, d)) @ Qc.T
    B = beta * A0 - (1 - beta) * C
    S = A0 + C
    return Landscape(B=B, S=S, k=0.75 * beta), A0, C, Q


def _grad_rel(land, p, kappa=None):
    kap = land.kappa if kappa is None else kappa
    tmp = Landscape(B=land.B, S=land.S, k=land.k, Sigma=land.Sigma,
                    kappa=0.0 if np.isinf(kap) else kap, c=land.c)
    _, gW, gb = tmp.value_and_grad(p.W, p.b)
    if np.isinf(kap):
        # on the constraint: the gradient is parallel to grad rho (Lagrange)
        n = np.concatenate([(2 * p.W @ land.S).ravel()] + ([] if p.b is None else [2 * p.b]))
        g = np.concatenate([gW.ravel()] + ([] if gb is None else [gb]))
        g = g - (g @ n) / (n @ n) * n
    else:
        g = np.concatenate([gW.ravel()] + ([] if gb is None else [gb]))
    scale = max(1.0, float(np.max(np.abs(land.B))) * max(1e-12, float(np.max(np.abs(p.W)))))
    return float(np.max(np.abs(g))) / scale


def _match(WtW, points):
    """Index of the enumerated point closest to WtW and the relative distance."""
    errs = [np.max(np.abs(WtW - p.WtW)) / max(1e-300, float(np.max(np.abs(p.WtW))) or 1.0) for p in points]
    j = int(np.argmin(errs))
    return j, float(errs[j])


# --------------------------------------------------------------------------- Hessian


@pytest.mark.parametrize("kappa,bias,quartic", [(0.0, False, "trace"), (3.0, False, "trace"),
                                                (3.0, True, "trace"), (2.0, True, "barlow")])
def test_hessian_matches_finite_differences(kappa, bias, quartic):
    land, *_ = random_problem(3, 4, commuting=False)
    land = Landscape(B=land.B, S=land.S, k=land.k, kappa=kappa, c=1.0, quartic=quartic, lam=0.3)
    rng = np.random.default_rng(0)
    W = 0.4 * rng.standard_normal((3, 4))
    b = 0.3 * rng.standard_normal(3) if bias else None
    H = land.hessian(W, b)
    x0 = np.concatenate([W.ravel()] + ([b] if bias else []))

    def grad(x):
        g = land.value_and_grad(x[:12].reshape(3, 4), x[12:] if bias else None)
        return np.concatenate([g[1].ravel()] + ([g[2]] if bias else []))

    for j in range(x0.size):
        e = np.zeros(x0.size)
        e[j] = 1e-6
        col = (grad(x0 + e) - grad(x0 - e)) / 2e-6
        assert np.max(np.abs(H[:, j] - col)) <= 1e-6 * max(1.0, np.max(np.abs(col))), j


# --------------------------------------------------------------------------- Theorem 1, Eq. 9, Prop. 2


@pytest.mark.parametrize("d,d1,commuting", [(2, 2, True), (2, 2, False), (5, 5, True), (5, 5, False),
                                            (5, 2, False), (8, 8, True), (8, 8, False), (8, 3, True)])
def test_theorem1_points_are_stationary_and_descent_finds_a_minimum(d, d1, commuting):
    land, *_ = random_problem(10 * d + d1 + commuting, d, commuting)
    pts = stationary_points(land, d1)
    wh = whiten(land)
    m = int(np.sum(wh.lam > 0))
    dstar = min(d, d1)
    # number of admissible masks: subsets of the m positive directions of size <= d*
    assert len(pts) == sum(len(list(itertools.combinations(range(m), j))) for j in range(min(m, dstar) + 1))
    for p in pts:
        assert _grad_rel(land, p) < 1e-10, (p.mask, _grad_rel(land, p))
    minima = [p for p in pts if p.kind == "minimum"]
    # Prop. 2: every local minimum has rank min(m, d*); generically the only one is global
    assert minima and all(p.rank == min(m, dstar) for p in minima)
    assert pts[0].kind == "minimum"
    for p in pts:
        if p.kind != "minimum":
            assert p.rank < min(m, dstar) or p.mask != tuple(range(min(m, dstar)))
    # descent from 48 random starts lands on an enumerated point that is a predicted minimum
    K = 48
    res = descend_batch(np.repeat(land.B[None], K, 0), np.repeat(land.S[None], K, 0), k=land.k, d1=d1,
                        seed=d, tol=1e-11, init_scale=1.0)
    assert res["converged"].all()
    worst = 0.0
    for W in res["W"]:
        j, err = _match(W.T @ W, pts)
        worst = max(worst, err)
        assert pts[j].kind == "minimum", pts[j].mask
        assert err < 1e-6, err
    spec_err = np.max(np.abs(res["eigenvalues"] - pts[0].eigenvalues)) / pts[0].eigenvalues[0]
    assert spec_err < 1e-6, spec_err


def test_eq9_commuting_closed_form():
    """Eq. (9): W^T W = Sigma^{-1} B_M Sigma^{-1} / (2k) in the shared eigenbasis (k = 1: the paper's 1/2)."""
    for seed in range(5):
        land, A0, C, Q = random_problem(seed, 5, commuting=True)
        b = np.diag(Q.T @ land.B @ Q)
        s = np.diag(Q.T @ land.S @ Q)
        pts = stationary_points(land, 5, classify_points=False)
        pos = np.flatnonzero(b > 0)
        seen = 0
        for r in range(len(pos) + 1):
            for keep in itertools.combinations(pos, r):
                M = np.zeros(5)
                M[list(keep)] = 1.0
                WtW = (Q * (M * b / s**2 / (2 * land.k))) @ Q.T
                _, err = _match(WtW, pts)
                assert err < 1e-10 or (not keep and np.max(np.abs(WtW)) == 0)
                seen += 1
        assert seen == len(pts)


def test_classification_agrees_with_perturbations():
    """A 'saddle'/'maximum' decreases along its most negative Hessian direction; a 'minimum'
    does not decrease along 200 random directions (second-order check of the value)."""
    land, *_ = random_problem(7, 4, commuting=False)
    rng = np.random.default_rng(1)
    for p in stationary_points(land, 4):
        f0 = land.value(p.W)
        H = land.hessian(p.W)
        w, U = np.linalg.eigh(H)
        eps = 1e-3
        if p.kind == "minimum":
            for _ in range(200):
                v = rng.standard_normal(p.W.shape)
                v /= np.linalg.norm(v)
                assert land.value(p.W + eps * v) >= f0 - 1e-12
        else:
            v = U[:, 0].reshape(p.W.shape)
            assert land.value(p.W + eps * v) < f0 - 0.25 * abs(w[0]) * eps**2
        if p.kind == "maximum":
            assert w[-1] <= 1e-9 * max(1.0, abs(w[0]))


def test_origin_is_a_maximum_when_B_is_positive_definite():
    rng = np.random.default_rng(2)
    A0 = np.diag(rng.uniform(1, 3, 3))
    land = Landscape(B=A0, S=A0 + 0.1 * np.eye(3), k=0.75)
    pts = stationary_points(land, 3)
    origin = [p for p in pts if p.rank == 0][0]
    assert origin.kind == "maximum"
    assert [p.kind for p in pts].count("minimum") == 1 and pts[0].rank == 3


# --------------------------------------------------------------------------- normalization


@pytest.mark.parametrize("d,commuting", [(2, True), (5, False), (8, True)])
def test_props_3_4_finite_kappa_against_descent(d, commuting):
    land, *_ = random_problem(100 + d, d, commuting)
    kappa = 5.0
    pen = Landscape(B=land.B, S=land.S, k=land.k, kappa=kappa, c=1.0)
    pts = stationary_points(pen, d)
    for p in pts:
        assert _grad_rel(pen, p) < 1e-10
        # Prop. 4 (general k): c - rho = (c - Lambda_M / 2k) / (1 + kappa d_M / k)
        lm = whiten(land).lam[list(p.mask)].sum()
        assert np.isclose(1.0 - p.rho, (1.0 - lm / (2 * land.k)) / (1 + kappa * len(p.mask) / land.k), atol=1e-12)
    res = descend_batch(np.repeat(land.B[None], 24, 0), np.repeat(land.S[None], 24, 0), k=land.k,
                        kappa=kappa, c=1.0, seed=1, tol=1e-11, init_scale=1.0)
    for W in res["W"]:
        j, err = _match(W.T @ W, pts)
        assert err < 1e-6 and pts[j].kind == "minimum", (err, pts[j].kind)


def test_theorem2_limit_matches_eq12_and_large_kappa_descent():
    """Eq. (12) with the mask restored on 2c/d_M (docs/errata.md E9; the printed form is tested in
    test_errata.py), k = 1, commuting, and descent at growing kappa, error ~ 1/kappa."""
    land0, A0, C, Q = random_problem(5, 5, commuting=True)
    land = Landscape(B=land0.B, S=land0.S, k=1.0, c=1.0)
    pts = stationary_points(land, 5, kappa=np.inf)
    b = np.diag(Q.T @ land.B @ Q)
    s = np.diag(Q.T @ land.S @ Q)
    lam = b / s  # eigenvalues of Sigma^{-1} B in the shared basis
    n_checked = 0
    for r in range(1, 6):
        for keep in itertools.combinations(range(5), r):
            keep = list(keep)
            # Eq. (12): W^T W = 1/2 [Sigma^{-1} B_M - Tr[Sigma^{-1} B_M]/d_M M + 2c/d_M M] Sigma^{-1}
            inner = np.zeros(5)
            inner[keep] = lam[keep] - lam[keep].sum() / r + 2.0 / r
            if np.any(inner[keep] <= 0):
                # Eq. (13) violated: not a stationary point
                assert not survives_normalization(lam[keep]).all()
                continue
            assert survives_normalization(lam[keep]).all()
            WtW = (Q * (0.5 * inner / s)) @ Q.T
            _, err = _match(WtW, pts)
            assert err < 1e-10
            n_checked += 1
    assert n_checked == len(pts)
    for p in pts:
        assert abs(p.rho - 1.0) < 1e-12 and _grad_rel(land, p, kappa=np.inf) < 1e-10
    errs = []
    for kappa in (1e2, 1e3, 1e4):
        res = descend_batch(land.B[None], land.S[None], k=1.0, kappa=kappa, c=1.0, seed=0, tol=1e-10,
                            init_scale=1.0)
        errs.append(np.max(np.abs(res["eigenvalues"][0] - pts[0].eigenvalues)) / pts[0].eigenvalues[0])
    assert errs[2] < 1e-3 and errs[1] / errs[2] > 5 and errs[0] / errs[1] > 5, errs
    assert pts[0].kind == "minimum"


def test_normalization_examples_of_appendix_d1():
    """Appendix D.1 (k = 1, B = A0 - C): c_i >= a_i need not collapse; weak augmentation never
    collapses; one very strongly augmented direction collapses."""
    a = np.array([1.0, 1.0, 1.0, 1.0])

    def mask(c):
        land = Landscape(B=np.diag(a - c), S=np.diag(a + c), k=1.0, c=1.0)
        return global_minimum(land, 4, kappa=np.inf).rank

    assert mask(np.array([0.0, 1.0, 1.0, 1.0])) == 4      # Eq. (22): c_j = a_j, no collapse
    assert mask(np.full(4, 1e-3)) == 4                     # Eq. (19)
    assert mask(np.array([1e4, 0.0, 0.0, 0.0])) == 3       # Eq. (21): strongly augmented space collapses
    # without normalization the c_j = a_j directions are lost (B_jj = 0)
    land = Landscape(B=np.diag(a - np.array([0.0, 1.0, 1.0, 1.0])), S=np.diag(a + np.array([0, 1, 1, 1.0])), k=1.0)
    assert global_minimum(land, 4).rank == 1


@pytest.mark.parametrize("sigma,branch", [(1.5, "unnormalized"), (0.5, "normalized")])
def test_theorem3_bias_against_lbfgs(sigma, branch):
    """Theorem 3 plus the b = 0 branch its statement omits (erratum E8)."""
    A0 = np.diag([1.0, 4.0, 2.0])
    C = sigma**2 * np.eye(3)
    loss = get_loss("beta", beta=0.5)
    from minissl.theory import landscape_for

    land = landscape_for(loss, A0, C)
    pts = stationary_points(land, 3, kappa=np.inf, bias=True)
    best = pts[0]
    unnorm = global_minimum(land, 3)
    if branch == "unnormalized":
        assert unnorm.rho < 1.0 and np.allclose(best.WtW, unnorm.WtW) and best.b @ best.b > 0
    else:
        assert unnorm.rho > 1.0 and float(best.b @ best.b) == 0.0 and abs(best.rho - 1) < 1e-12
    pen = Landscape(B=land.B, S=land.S, k=land.k, kappa=1e4, c=1.0)
    W, b, _, gn = pen.minimize(3, bias=True, seed=0, restarts=6, init_scale=0.5)
    err = np.max(np.abs(W.T @ W - best.WtW)) / np.max(best.WtW)
    assert err < 1e-3, err  # kappa = 1e4 vs the kappa -> inf limit
    assert abs(float(b @ b) - float(best.b @ best.b)) < 1e-3
    assert best.kind == "minimum" and classify(land, best.W, best.b, kappa=np.inf)[0] == "minimum"


# --------------------------------------------------------------------------- thresholds


def test_beta_thresholds_generic_equals_closed_form_and_descent():
    rng = np.random.default_rng(4)
    a = np.sort(rng.uniform(0.3, 4.0, 4))
    for beta in (0.25, 0.5, 0.8):
        loss = get_loss("beta", beta=beta)
        thr = collapse_thresholds(loss, np.diag(a))
        closed = beta_critical_sigma(beta, a)
        assert np.allclose([t["sigma"] for t in thr], np.sort(closed), rtol=1e-10)
        assert [t["rank_above"] for t in thr] == [3, 2, 1, 0]
        thr_p = collapse_thresholds(loss, np.diag(a), constants="paper")
        assert np.allclose([t["sigma"] for t in thr_p], np.sort(beta_critical_sigma(beta, a, constants="paper")))
        # descent on the effective landscape changes rank exactly there
        sig = np.array([t["sigma"] for t in thr])
        for i, t in enumerate(thr):
            gaps = np.abs(np.delete(sig, i) / t["sigma"] - 1)
            delta = min(0.02, 0.3 * float(gaps.min())) if gaps.size else 0.02
            ranks = []
            for f in (1 - delta, 1 + delta):
                from minissl.theory import landscape_for

                land = landscape_for(loss, np.diag(a), (f * t["sigma"]) ** 2 * np.eye(4))
                res = descend_batch(land.B[None], land.S[None], k=land.k, tol=1e-12, init_scale=1.0)
                ev = res["eigenvalues"][0]
                ranks.append(int(np.sum(ev > 1e-12)))
            assert ranks == [t["rank_below"], t["rank_above"]], (t, ranks)
    assert np.all(np.isinf(beta_critical_sigma(1.0, a)))
    assert collapse_thresholds(get_loss("beta", beta=1.5), np.diag(a)) == []


def test_weighted_critical_n_directions():
    # main text (Eq. 8): collapse for N <= (1 - alpha) c / a; Appendix (Eq. 17) inverted
    assert critical_n_weighted(0.1, 1.0, 25.0, "main") == {"n_crit": 22.5, "collapse_when": "N <= n_crit"}
    app = critical_n_weighted(0.1, 1.0, 25.0, "appendix")
    assert np.isclose(app["n_crit"], 1 / 22.5) and app["collapse_when"] == "N > n_crit"
    assert critical_n_weighted(0.1, 1.0, 25.0)["collapse_when"] == "never"
    # the paper's B (Eq. 8) along sigma at N = 10 has its threshold where N = N_crit(main)
    loss = get_loss("weighted", alpha=0.1)
    thr = collapse_thresholds(loss, np.eye(2), n=10, constants="paper")
    assert np.isclose(critical_n_weighted(0.1, 1.0, thr[0]["sigma"] ** 2, "main")["n_crit"], 10.0)
    # derived: no threshold at any N
    for n in (3, 10, 1000):
        assert collapse_thresholds(loss, np.eye(2), n=n) == []


def test_exact_loss_collapses_where_the_derived_threshold_says():
    """beta-InfoNCE, beta = 1/2, variances (1, 1.5): the derived threshold of direction 1 is
    sigma^2 = 1, the paper's 2. Exact-loss training (fresh noise, N = 400, Adam) keeps
    direction 1 at sigma^2 = 0.85 and loses it at sigma^2 = 1.15, where the paper predicts it
    alive. Near the thresholds W is small, so the fourth-order expansion is accurate
    (u = 2 Tr[W Sigma W^T] = 0.36 and 0.11)."""
    out = {}
    for s2 in (0.85, 1.15):
        res = simulate("beta", beta=0.5, n=400, variances=(1.0, 1.5), sigma=np.sqrt(s2), steps=4000,
                       lr=3e-3, seed=1, warn=False)
        r = analyze(get_loss("beta", beta=0.5), res.A0_model, res.C, n=400, mean=res.mean_model)
        out[s2] = (res.eigenvalues, r["eigenvalues"], r["paper_eigenvalues"])
    ev, pred, paper = out[0.85]
    assert ev[1] > 0.1 * ev[0] and np.all(np.abs(ev - pred) < 0.35 * np.array(pred)), (ev, pred)
    ev, pred, paper = out[1.15]
    assert pred[1] == 0.0 and paper[1] > 0.1 * paper[0]  # derived: collapsed; paper: alive
    assert ev[1] < 1e-4 * ev[0], ev
    assert abs(ev[0] - pred[0]) < 0.15 * pred[0], (ev, pred)


def test_weighted_infonce_does_not_collapse_below_the_papers_critical_n():
    """alpha = 0.1, sigma = 5, N = 10: the paper's Eq. (8) puts every direction in collapse
    (N <= N_crit = 22.5); the derived B = N/(N-1+alpha) A0c predicts eigenvalues ~1e-3 and
    the exact loss learns them (u ~ 0.1, expansion accurate)."""
    res = simulate("weighted", alpha=0.1, n=10, variances=(1.0, 1.0), sigma=5.0, steps=6000, lr=1e-3,
                   replicates=8, seed=3, warn=False)
    loss = get_loss("weighted", alpha=0.1)
    r = analyze(loss, res.A0_model, res.C, n=10, mean=res.mean_model)
    pred, paper = r["eigenvalues"], r["paper_eigenvalues"]
    assert paper[0] == 0.0  # the paper predicts complete collapse
    assert np.all(res.eigenvalues > 0.5 * np.array(pred)) and np.all(res.eigenvalues < 1.5 * np.array(pred)), (
        res.eigenvalues, pred)


# --------------------------------------------------------------------------- phase diagram


def test_phase_diagram_boundaries_and_descent():
    sig = np.linspace(0.1, 4.0, 40)
    th = np.linspace(0.0, 1.0, 11)
    a = (1.0, 2.0)
    pd = phase_diagram(sig, th, variances=a)
    beta = 0.5
    for t, theta in enumerate(th):
        # closed form (derived): content dies at sigma^2 (1 - theta) = beta a_c / (1 - beta)
        sc = np.sqrt(beta * a[0] / ((1 - beta) * (1 - theta))) if theta < 1 else np.inf
        ss = np.sqrt(beta * a[1] / ((1 - beta) * theta)) if theta > 0 else np.inf
        assert np.isclose(pd.sigma_content[t], sc) and np.isclose(pd.sigma_style[t], ss)
        for s, sigma in enumerate(sig):
            if min(abs(sigma / sc - 1), abs(sigma / ss - 1)) < 0.02:
                continue
            expect = {(False, False): 0, (False, True): 1, (True, False): 2, (True, True): 4}[(sigma > sc, sigma > ss)]
            assert pd.phase[t, s] == expect, (theta, sigma)
    # descent at a few grid points gives the same phase
    from minissl.data import StructuredNoise
    from minissl.theory import landscape_for

    loss = get_loss("beta", beta=0.5)
    for t, s in [(2, 20), (8, 20), (5, 35), (5, 5), (10, 30), (0, 30)]:
        C = StructuredNoise(sig[s], th[t], 2, 1).C
        land = landscape_for(loss, np.diag(a), C)
        res = descend_batch(land.B[None], land.S[None], k=land.k, tol=1e-12, init_scale=1.0)
        alive = np.diag(res["W"][0].T @ res["W"][0]) > 1e-9
        code = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 4}[tuple(alive)]
        assert code == pd.phase[t, s]
    text = format_phase_map(pd)
    assert text.count("\n") == th.size + 1 and "#" in text and "s" in text and "c" in text


def test_phase_diagram_normalized_runs_and_differs():
    sig = np.linspace(0.1, 3.0, 12)
    th = np.linspace(0.0, 1.0, 5)
    a = (1.0, 2.0)
    loss = get_loss("beta", beta=0.5, normalize=True)
    pd = phase_diagram(sig, th, loss=loss, variances=a)
    plain = phase_diagram(sig, th, variances=a)
    assert not np.any(pd.phase == 4)  # normalization excludes complete collapse (rho = c)
    assert np.any(pd.phase != plain.phase) and pd.settings["normalized_limit"]
    from minissl.data import StructuredNoise
    from minissl.theory import landscape_for

    for t, s in [(0, 11), (2, 6), (4, 11), (1, 3)]:
        land = landscape_for(loss, np.diag(a), StructuredNoise(sig[s], th[t], 2, 1).C)
        res = descend_batch(land.B[None], land.S[None], k=land.k, kappa=1e4, tol=1e-11, init_scale=1.0)
        alive = tuple(np.diag(res["W"][0].T @ res["W"][0]) > 1e-6)
        code = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 4}[alive]
        assert code == pd.phase[t, s], (t, s, code, pd.phase[t, s])


# --------------------------------------------------------------------------- Table 1


def _rand_cov(rng, d):
    Q = _ortho(rng, d)
    return (Q * rng.uniform(0.05, 5.0, d)) @ Q.T


def test_table1_cannot_rows_hold_on_random_settings():
    """Rows marked 'no collapse': B from effective_B (measured against the exact losses in
    test_coefficients.py) is positive definite on 200 random (A0, C, N)."""
    rng = np.random.default_rng(11)
    for row in TABLE1:
        if row["key"] is None or row["dim"]:
            continue
        for _ in range(200):
            d = int(rng.integers(1, 6))
            A0, C = _rand_cov(rng, d), 10 * _rand_cov(rng, d)
            params = {"standardize": False} if row["key"] == "barlow" else {}
            if row["key"] == "weighted":
                params["alpha"] = float(rng.uniform(0, 1))
            B = effective_B(get_loss(row["key"], **params), A0, C, n=int(rng.integers(2, 50)))
            assert np.linalg.eigvalsh(B)[0] > 0, row["loss"]


def test_table1_witnesses_collapse():
    for row in TABLE1:
        if not row["witness"]:
            continue
        for kind, w in row["witness"].items():
            a = np.array(w["variances"])
            A0, C = np.diag(a), w["sigma"] ** 2 * np.eye(a.size)
            if row["key"] == "vicreg":
                loss = get_loss("vicreg", var=w["var"], inv=w["inv"])
                ev = np.linalg.eigvalsh(effective_B(loss, A0, C, n=1000, d1=2))
                rank = int(np.sum(ev > 0))  # Prop. 2: local minima have rank m
            else:
                name = w.get("loss", "beta")
                params = {"beta": w["beta"]} if name == "beta" else {}
                loss = get_loss(name, weight_decay=w.get("weight_decay", 0.0), **params)
                from minissl.theory import landscape_for

                land = landscape_for(loss, A0, C)
                kappa = np.inf if row["variant"] in ("normalize", "bias") else 0.0
                rank = global_minimum(land, a.size, kappa=kappa, bias=row["variant"] == "bias").rank
            if kind == "dim":
                assert 0 < rank < a.size, (row["loss"], rank)
            else:
                assert rank == 0, (row["loss"], rank)


def test_table1_normalization_never_collapses_completely():
    """Even with B negative definite, descent with the penalty (kappa = 1e3) never ends at W = 0:
    the origin's Hessian is -2(B + 2 kappa c Sigma), negative for large kappa."""
    rng = np.random.default_rng(5)
    for t in range(20):
        d = int(rng.integers(1, 5))
        B = -_rand_cov(rng, d) - 0.1 * np.eye(d)
        S = _rand_cov(rng, d) + 0.1 * np.eye(d)
        res = descend_batch(B[None], S[None], k=0.5, kappa=1e3, c=1.0, seed=t, tol=1e-10, init_scale=1.0)
        assert res["converged"][0] and res["eigenvalues"][0][0] > 1e-3
        assert global_minimum(Landscape(B=B, S=S, k=0.5), d, kappa=np.inf).rank >= 1


def test_table1_text_marks_differences():
    rows = table1()
    assert [r["differs"] for r in rows if r["key"] == "infonce"] == [False]
    assert all(r["differs"] for r in rows if r["key"] in ("weighted", "beta", "scl"))
    text = format_table1()
    assert "yes (E2)" in text and "weighted" in text


# --------------------------------------------------------------------------- errors


def test_theory_errors_are_clear():
    land, *_ = random_problem(1, 3, True)
    with pytest.raises(ValueError, match="quartic='trace'"):
        stationary_points(Landscape(B=land.B, S=land.S, quartic="barlow"), 3)
    with pytest.raises(ValueError, match="bias=True"):
        stationary_points(land, 3, bias=True)
    with pytest.raises(ValueError, match="positive definite"):
        stationary_points(Landscape(B=land.B, S=np.diag([1.0, 1.0, 0.0])), 3)
    with pytest.raises(ValueError, match="kappa"):
        stationary_points(land, 3, kappa=-1.0)
    with pytest.raises(ValueError, match="max_masks"):
        stationary_points(land, 3, max_masks=2)
    with pytest.raises(ValueError, match="convention"):
        critical_n_weighted(0.1, 1.0, 1.0, "other")
    with pytest.raises(ValueError, match="thetas"):
        phase_diagram([1.0], [1.5])
    with pytest.raises(ValueError, match="Sigma == S"):
        stationary_points(Landscape(B=land.B, S=land.S, Sigma=land.S + np.eye(3), kappa=1.0), 3)


def test_theorem3_example_condition_does_not_give_complete_collapse():
    """Sec. 3.2: "if c < (a_i - c_i)/(a_i + c_i) for all i, a complete collapse can happen despite
    normalization". In the paper's own model (k = 1, B = A0 - C) with bias and kappa -> inf,
    W = 0 (|b|^2 = c) is stationary but never a local minimum there (B has positive eigenvalues),
    and the global minimum has rank >= 1 (erratum E8)."""
    a = np.array([2.0, 3.0, 4.0])
    cc = np.array([0.5, 1.0, 0.5])
    c = 0.9 * float(np.min((a - cc) / (a + cc)))
    land = Landscape(B=np.diag(a - cc), S=np.diag(a + cc), k=1.0, c=c)
    pts = stationary_points(land, 3, kappa=np.inf, bias=True)
    origin = [p for p in pts if p.rank == 0]
    assert len(origin) == 1 and origin[0].kind != "minimum"
    assert pts[0].rank >= 1 and pts[0].value < origin[0].value
    assert all(p.kind != "minimum" or p.rank >= 1 for p in pts)


def test_normalized_thresholds_satisfy_eq13_with_equality_and_bracket_descent():
    """At each normalized threshold the collapsing direction sits exactly on Eq. (13):
    lambda_i + 2kc/d_M = mean_M(lambda) for the larger mask; descent at kappa = 1e4 on either
    side (+-3%) has the predicted ranks."""
    from minissl.theory import landscape_for

    loss = get_loss("beta", beta=0.5, normalize=True)
    A0 = np.diag([0.5, 1.0, 2.0, 3.0])
    thr = collapse_thresholds(loss, A0)
    assert len(thr) >= 2
    for t in thr:
        land = landscape_for(loss, A0, t["sigma"] ** 2 * np.eye(4))
        wh = whiten(land)
        lo = landscape_for(loss, A0, (t["sigma"] * (1 - 1e-6)) ** 2 * np.eye(4))
        hi = landscape_for(loss, A0, (t["sigma"] * (1 + 1e-6)) ** 2 * np.eye(4))
        m_lo = global_minimum(lo, 4, kappa=np.inf).mask
        m_hi = global_minimum(hi, 4, kappa=np.inf).mask
        larger = m_lo if len(m_lo) > len(m_hi) else m_hi
        (i,) = set(m_lo) ^ set(m_hi)
        lam = wh.lam[list(larger)]
        gap = wh.lam[i] + 2 * land.k * 1.0 / len(larger) - lam.mean()
        assert abs(gap) < 1e-8, gap
        for f, rank in ((0.97, t["rank_below"]), (1.03, t["rank_above"])):
            land_f = landscape_for(loss, A0, (f * t["sigma"]) ** 2 * np.eye(4))
            res = descend_batch(land_f.B[None], land_f.S[None], k=land_f.k, kappa=1e4, tol=1e-11, init_scale=1.0)
            assert int(np.sum(res["eigenvalues"][0] > 1e-6 * res["eigenvalues"][0][0])) == rank


@pytest.mark.parametrize("kappa,bias", [(0.0, False), (3.0, False), (np.inf, False), (np.inf, True), (2.0, True)])
def test_global_minimum_prefix_masks_equal_full_enumeration(kappa, bias):
    """global_minimum only tries masks of the top-j whitened eigenvalues (convexity in H);
    the full enumeration of stationary_points must find nothing lower."""
    for seed in range(12):
        d = 2 + seed % 5
        d1 = d if seed % 3 else max(1, d - 2)
        land, *_ = random_problem(200 + seed, d, commuting=bool(seed % 2))
        g = global_minimum(land, d1, kappa=kappa, bias=bias)
        full = stationary_points(land, d1, kappa=kappa, bias=bias, classify_points=False)[0]
        assert abs(g.value - full.value) <= 1e-12 * max(1.0, abs(full.value)), (seed, g.value, full.value)
        assert np.allclose(g.WtW, full.WtW, atol=1e-12)


def test_analyze_large_d_uses_the_closed_form_minimum_only():
    A0 = np.diag(np.linspace(0.5, 2.0, 32))
    r = analyze(get_loss("infonce"), A0, 4.0 * np.eye(32))
    assert r["stationary_points"] is None and r["rank"] == 32
    # commuting closed form: a / (2k (a + sigma^2)^2), k = 3/4
    a = np.diag(A0)[::-1]
    assert np.allclose(r["eigenvalues"], a / (1.5 * (a + 4.0) ** 2), rtol=1e-10)


def test_infinite_kappa_classification_matches_large_finite_kappa():
    """The Lagrangian classification at kappa = inf agrees, mask by mask, with the full
    Hessian at kappa = 1e6 (a different code path: the penalised Hessian)."""
    for seed in range(6):
        land, *_ = random_problem(300 + seed, 2 + seed % 3, commuting=bool(seed % 2))
        d = land.dim
        inf_pts = {p.mask: p.kind for p in stationary_points(land, d, kappa=np.inf)}
        fin = Landscape(B=land.B, S=land.S, k=land.k, kappa=1e6, c=1.0)
        fin_pts = {p.mask: p.kind for p in stationary_points(fin, d) if p.mask}
        common = set(inf_pts) & set(fin_pts)
        assert len(common) >= len(inf_pts) - 1
        # a maximum on the constraint surface is a saddle of the penalised landscape (the
        # normal direction has curvature ~ 2 kappa |grad rho|^2 > 0)
        expect = {"minimum": "minimum", "saddle": "saddle", "maximum": "saddle"}
        assert all(expect[inf_pts[m]] == fin_pts[m] for m in common), (inf_pts, fin_pts)


def test_bias_and_infinite_kappa_saddles_decrease_along_a_feasible_curve():
    """A point classified 'saddle' at kappa = inf (with bias) loses value along a curve on the
    constraint rho + |b|^2 = c: the tangent direction of most negative curvature of the
    Lagrangian, from a finite-difference Hessian, retracted by rescaling; a 'minimum' does not."""
    from minissl.theory import landscape_for

    loss = get_loss("beta", beta=0.5)
    land = landscape_for(loss, np.diag([1.0, 4.0, 2.0]), 0.8 * np.eye(3))
    flat = Landscape(B=land.B, S=land.S, k=land.k, c=1.0)
    d1, d0 = 3, 3
    nW = d1 * d0

    def unpack(x):
        return x[:nW].reshape(d1, d0), x[nW:]

    def grad(x):
        _, gW, _ = flat.value_and_grad(*unpack(x))
        return np.concatenate([gW.ravel(), np.zeros(d1)])

    def retract(x):
        W, b = unpack(x)
        sc = np.sqrt(1.0 / (np.sum((W @ land.S) * W) + b @ b))
        return W * sc, b * sc

    kinds = set()
    for p in stationary_points(land, 3, kappa=np.inf, bias=True):
        x0 = np.concatenate([p.W.ravel(), p.b])
        H = np.empty((x0.size, x0.size))
        for j in range(x0.size):
            e = np.zeros(x0.size)
            e[j] = 1e-6
            H[:, j] = (grad(x0 + e) - grad(x0 - e)) / 2e-6
        gr = np.concatenate([(2 * p.W @ land.S).ravel(), 2 * p.b])
        mu = -grad(x0) @ gr / (gr @ gr)
        Hg = np.zeros_like(H)
        Hg[:nW, :nW] = 2 * np.kron(np.eye(d1), land.S)
        Hg[nW:, nW:] = 2 * np.eye(d1)
        Q, _ = np.linalg.qr(np.column_stack([gr / np.linalg.norm(gr), np.eye(x0.size)]))
        T = Q[:, 1:]
        w, U = np.linalg.eigh(T.T @ (0.5 * (H + H.T) + mu * Hg) @ T)
        f0 = flat.value(p.W, p.b)
        drop = min(flat.value(*retract(x0 + t * (T @ U[:, 0]))) - f0 for t in (1e-3, -1e-3))
        if p.kind == "saddle":
            assert drop < -0.1 * abs(w[0]) * 1e-6, (p.mask, drop, w[0])
        elif p.kind == "minimum":
            assert w[0] > -1e-6 and drop > -1e-12
        kinds.add(p.kind)
    assert {"saddle", "minimum"} <= kinds


def test_repeated_roots_are_merged():
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = np.array([1, 1, 1, 3.0]) * rng.uniform(0.5, 300)
    A0 = (Q * a) @ Q.T
    thr = collapse_thresholds(get_loss("beta", beta=0.5), (A0 + A0.T) / 2)
    assert [(t["rank_below"], t["rank_above"]) for t in thr] == [(4, 1), (1, 0)]
    assert np.allclose([t["sigma"] for t in thr], np.sqrt(0.5 * np.array([a[0], a[3]]) / 0.5))


@pytest.mark.parametrize("C_unit", [np.diag([1.0, 1.0, 0.0]), np.diag([0.01, 1.0, 100.0]),
                                    np.diag([1e-3, 1e-2, 1e3])])
def test_normalized_thresholds_match_a_dense_scan(C_unit):
    """Singular and very anisotropic augmentation shapes, events near sigma -> 0: the scan with
    refinement finds every rank change a dense geometric grid (3000 points) sees."""
    from minissl.theory import landscape_for

    loss = get_loss("beta", beta=0.5, normalize=True)
    A0 = np.diag([1.0, 2.0, 0.5])
    thr = collapse_thresholds(loss, A0, C_unit)
    sig = np.geomspace(1e-3, 100, 3000)
    r = [global_minimum(landscape_for(loss, A0, s**2 * C_unit), 3, kappa=np.inf).rank for s in sig]
    dense = [(sig[i - 1], sig[i], r[i - 1], r[i]) for i in range(1, len(sig)) if r[i] != r[i - 1]]
    assert len(thr) == len(dense), (thr, dense)
    for t, (lo, hi, rb, ra) in zip(thr, dense):
        assert lo <= t["sigma"] <= hi and (t["rank_below"], t["rank_above"]) == (rb, ra)


def test_minimize_polishes_to_round_off(monkeypatch):
    """L-BFGS alone stops with |grad| ~ 1e-5 on a normalized landscape (its spectrum then
    depends on round-off of the path: 1e-6 relative between two CPUs); the Newton polish takes
    |grad| to round-off, and the spectrum moves by about what L-BFGS left."""
    import minissl.landscape as L

    rng = np.random.default_rng(3)
    d = 12
    Mx = rng.standard_normal((d, d))
    A0 = Mx @ Mx.T / d + 0.1 * np.eye(d)
    land = L.Landscape(B=A0 - 0.25 * np.eye(d), S=A0 + 0.5 * np.eye(d), k=0.375, Sigma=A0 + 0.5 * np.eye(d),
                       kappa=100.0, c=1.0)
    W, _, _, gn = land.minimize(d, seed=0)
    monkeypatch.setattr(L, "POLISH_MAX_SIZE", 0)
    W0, _, _, gn0 = land.minimize(d, seed=0)
    assert gn < 1e-12 < 1e-7 < gn0, (gn, gn0)
    ev, ev0 = np.linalg.svd(W, compute_uv=False) ** 2, np.linalg.svd(W0, compute_uv=False) ** 2
    assert np.max(np.abs(ev - ev0)) < 1e-4 * ev[0]
