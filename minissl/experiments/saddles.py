"""Minibatch SGD stopping at saddles: the dynamical collapse of the paper's conclusion.

Ziyin et al. (2023, Sec. 6) leave one cause of collapse to future work: "having a large learning
rate and small batch can sometimes cause a convergence towards the saddle points in the
landscape (Ziyin et al., 2022b), which, as we have shown, are the collapsed solutions". This
experiment measures it. Every run trains the exact loss with SGD at a constant learning rate on
fresh minibatches (:mod:`minissl.train.minibatch`) over a grid of learning rate x batch size,
several seeds per cell, and classifies where it stopped:

``minimum``
    the learned rank equals the rank of the landscape's global minimum (Theorem 1, derived
    constants);
``saddle``
    a lower rank, *and* the expected loss curves downwards there: the Hessian of the
    noise-averaged full-batch loss, restricted to the collapsed directions, has an eigenvalue
    below zero by more than three standard errors (:func:`collapsed_curvature`);
``collapsed, not a saddle``
    a lower rank without a significantly negative curvature (the test cannot tell);
``above``
    a higher rank than the minimum (not settled).

The expected loss is the full-batch loss on the N training samples averaged over the
augmentation noise: the landscape the paper analyses, not the minibatch loss (whose
negatives are fewer). Its Hessian in the collapsed subspace is estimated by central differences
of the exact gradient with common random numbers, half of the noise draws choosing the most
negative direction and the other half measuring the curvature along it (an unbiased estimate
with its standard error). The effective landscape's Hessian (Prop. 1, closed form) along the
same subspace is reported beside it.
"""

from __future__ import annotations

import numpy as np

from .common import point_cache, simulate_kwargs, write_csv
from .spectra import spectrum_record

__all__ = ["saddles", "saddle_record", "collapsed_curvature", "CURVATURE_DRAWS", "OUTCOMES"]

CURVATURE_DRAWS = 32  # noise draws of the Monte Carlo Hessian (half to choose the direction, half to measure)
SIGNIFICANCE = 3.0  # a curvature counts as negative below -3 standard errors
OUTCOMES = ("minimum", "saddle", "collapsed, not a saddle", "above")


def _collapsed_basis(W, threshold):
    """Orthonormal perturbation directions ``a v^T`` (Frobenius) with ``v`` spanning the input
    directions where ``W^T W`` is at or below ``threshold`` and ``a`` every output direction."""
    w, U = np.linalg.eigh(W.T @ W)
    null = U[:, w <= threshold]
    d1 = W.shape[0]
    return [np.outer(np.eye(d1)[i], null[:, j]) for j in range(null.shape[1]) for i in range(d1)]


def collapsed_curvature(loss, x, augmentation, W, threshold, draws=CURVATURE_DRAWS, seed=0, eps=None):
    """Curvature of the noise-averaged full-batch loss along the collapsed directions of ``W``.

    Parameters
    ----------
    loss : Loss
    x : ndarray (N, d0)
        The clean training set.
    augmentation : Augmentation
        Draws the views (:meth:`~minissl.data.GaussianNoise.views`).
    W : ndarray (d1, d0)
    threshold : float
        Input directions with an eigenvalue of ``W^T W`` at or below it are collapsed.
    draws : int
        Noise draws (even, >= 4): the first half picks the most negative direction of the mean
        Hessian, the second half measures the curvature along it.
    seed : int
    eps : float, optional
        Finite-difference step (default ``1e-4 max(|W|_F, 1)``).

    Returns
    -------
    dict
        ``dims`` (size of the subspace), ``curvature`` (the estimate ``u^T H u``, None when
        nothing collapsed), ``curvature_se`` (its standard error over the second half's draws),
        ``min_eigenvalue_first_half`` (of the first half's mean Hessian).
    """
    basis = _collapsed_basis(np.asarray(W, dtype=np.float64), threshold)
    if not basis:
        return {"dims": 0, "curvature": None, "curvature_se": None, "min_eigenvalue_first_half": None}
    W = np.asarray(W, dtype=np.float64)
    eps = 1e-4 * max(float(np.linalg.norm(W)), 1.0) if eps is None else eps
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    Hs = []
    for _ in range(draws):
        x1, x2 = augmentation.views(x, rng, 1)
        cols = []
        for D in basis:  # the same views at +eps and -eps: the noise cancels in the difference
            gp = loss.value_and_grad(W + eps * D, x1[0], x2[0])[1]
            gm = loss.value_and_grad(W - eps * D, x1[0], x2[0])[1]
            cols.append((gp - gm).ravel() / (2.0 * eps))
        G = np.array(cols)  # row j: H D_j (flattened)
        H = G @ np.array([D.ravel() for D in basis]).T
        Hs.append(0.5 * (H + H.T))
    half = draws // 2
    w, U = np.linalg.eigh(np.mean(Hs[:half], axis=0))
    u = U[:, 0]
    q = np.array([u @ H @ u for H in Hs[half:]])
    return {"dims": len(basis), "curvature": float(q.mean()), "curvature_se": float(q.std(ddof=1) / np.sqrt(q.size)),
            "min_eigenvalue_first_half": float(w[0])}


def _effective_curvature(res, threshold):
    """Smallest eigenvalue of the effective landscape's Hessian (Prop. 1) on the same subspace."""
    from ..landscape import effective_landscape

    basis = _collapsed_basis(res.W, threshold)
    if not basis:
        return None
    land = effective_landscape(res.loss, res.A0_model, res.C, n=res.dataset.n, mean=res.mean_model, d1=res.W.shape[0])
    H = land.hessian(np.asarray(res.W, dtype=np.float64))
    B = np.array([D.ravel() for D in basis])
    return float(np.linalg.eigvalsh(B @ H @ B.T)[0])


def outcome(rank, predicted_rank, curvature, se):
    """One of :data:`OUTCOMES` for a run (see the module docstring)."""
    if rank == predicted_rank:
        return "minimum"
    if rank > predicted_rank:
        return "above"
    if curvature is not None and curvature + SIGNIFICANCE * se < 0.0:
        return "saddle"
    return "collapsed, not a saddle"


def saddle_record(res, kwargs):
    """The record of one run: :func:`~minissl.experiments.spectra.spectrum_record`, the curvature of
    the expected loss along the collapsed directions (Monte Carlo and effective landscape) and the
    :func:`outcome`."""
    from ..metrics import COLLAPSE_SCALE, RANK_RTOL

    rec = spectrum_record(res, kwargs)
    pred = rec["predicted"]
    if pred is None:
        raise ValueError(f"loss {res.loss.name!r}: the theory predicts no minimum here, so a run cannot be classified "
                         "as a saddle or a minimum.")
    threshold = RANK_RTOL * max(float(pred[0]), COLLAPSE_SCALE)
    seed = int(kwargs.get("seed", 0))
    mc = collapsed_curvature(res.loss, res.dataset.x, _augmentation(res, kwargs), res.W, threshold, seed=seed + 10**6)
    rec.update({"collapsed_dims": mc["dims"], "curvature": mc["curvature"], "curvature_se": mc["curvature_se"],
                "curvature_effective": _effective_curvature(res, threshold),
                "outcome": outcome(rec["rank"], rec["predicted_rank"], mc["curvature"], mc["curvature_se"])})
    return rec


def _augmentation(res, kwargs):
    from ..data import make_augmentation

    return make_augmentation(kwargs.get("augmentation", "isotropic"), res.W.shape[1], sigma=kwargs.get("sigma", 1.0),
                             theta=kwargs.get("theta", 0.5), content_dims=kwargs.get("content_dims"))


def saddles(cfg, out, seeds, engine, protocol, progress):
    """Grid of learning rate x batch size: where minibatch SGD stops (minimum or saddle)."""
    fig, run = cfg["figure"], cfg["run"]
    if protocol != "converged":
        raise ValueError(f"protocol == {protocol!r}: the saddles experiment has its own training protocol (SGD, "
                         "constant learning rate, the grid of its settings file); use protocol 'converged'.")
    base = {**simulate_kwargs(run, engine), "sigma": float(run["sigma"]), "optimizer": "sgd",
            "lr_schedule": "constant"}
    n = int(base["n"])
    lrs = sorted(float(v) for v in fig["lrs"])
    sizes = sorted(int(v) for v in fig["batch_sizes"])
    if max(sizes) > n:
        raise ValueError(f"settings file {cfg['path']!r}: [figure] batch_sizes == {sizes} has sizes above n == {n}.")
    specs = [(f"lr{lr!r}-B{b}-seed{k}", {**base, "lr": lr, "batch_size": None if b == n else b, "seed": k})
             for lr in lrs for b in sizes for k in range(seeds)]
    recs = point_cache(out / "points", run, progress, protocol, evaluate=saddle_record,
                       context={"curvature_draws": CURVATURE_DRAWS}, executor=out.executor).run(specs)
    rows, cells = [], {}
    it = iter(recs)
    for lr in lrs:
        for b in sizes:
            rs = [next(it) for _ in range(seeds)]
            counts = {o: sum(r["outcome"] == o for r in rs) for o in OUTCOMES}
            cells[(lr, b)] = counts
            curv = [r["curvature"] for r in rs if r["outcome"] == "saddle"]
            rows.append({"lr": lr, "batch_size": b, "runs": seeds, **{o.replace(", ", "_").replace(" ", "_"): c
                                                                     for o, c in counts.items()},
                         "mean_rank": float(np.mean([r["rank"] for r in rs])),
                         "predicted_rank": rs[0]["predicted_rank"],
                         "mean_saddle_curvature": float(np.mean(curv)) if curv else None,
                         "mean_saddle_curvature_effective": (float(np.mean([r["curvature_effective"] for r in rs
                                                                             if r["outcome"] == "saddle"]))
                                                             if curv else None)})
    write_csv(out / "data.csv", rows)
    report, md = _summary(cfg, rows, lrs, sizes, n, seeds)

    def draw(plt):
        f, ax = plt.subplots(figsize=(5.2, 3.8))
        frac = np.array([[cells[(lr, b)]["saddle"] / seeds for lr in lrs] for b in sizes])
        im = ax.imshow(frac, origin="lower", cmap="magma_r", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
        ax.set_yticks(range(len(sizes)), [str(b) for b in sizes])
        for i, b in enumerate(sizes):
            for j, lr in enumerate(lrs):
                c = cells[(lr, b)]
                ax.text(j, i, f"{c['saddle']}/{seeds}", ha="center", va="center", fontsize=7,
                        color="white" if c["saddle"] > seeds / 2 else "black")
        ax.set_xlabel("learning rate (SGD, constant)")
        ax.set_ylabel("batch size B")
        ax.set_title(f"runs stopped at a saddle (predicted minimum: rank {rows[0]['predicted_rank']})", fontsize=9)
        f.colorbar(im, ax=ax, label="fraction of seeds")
        return f

    return report, md, draw


def _boundary(rows, lrs, sizes, seeds):
    """Per learning rate, the largest batch size at which most seeds stopped at a saddle (None: none)."""
    cell = {(r["lr"], r["batch_size"]): r for r in rows}
    return {lr: max([b for b in sizes if 2 * cell[(lr, b)]["saddle"] > seeds], default=None) for lr in lrs}


def _summary(cfg, rows, lrs, sizes, n, seeds):
    run = cfg["run"]
    total = sum(r["saddle"] for r in rows)
    runs = sum(r["runs"] for r in rows)
    full = [r for r in rows if r["batch_size"] == n]
    corner = next(r for r in rows if r["lr"] == max(lrs) and r["batch_size"] == min(sizes))
    boundary = _boundary(rows, lrs, sizes, seeds)
    pairs = [(r["mean_saddle_curvature"], r["mean_saddle_curvature_effective"]) for r in rows
             if r["mean_saddle_curvature"] is not None]
    curv_gap = (float(np.mean([abs(a - b) / abs(a) for a, b in pairs])) if pairs else None)
    report = {"figure": "saddles", "protocol": "sgd-constant", "runs": runs, "saddle_runs": total,
              "collapsed_not_saddle_runs": sum(r["collapsed_not_a_saddle"] for r in rows),
              "above_runs": sum(r["above"] for r in rows),
              "saddles_at_full_batch": sum(r["saddle"] for r in full) if full else None,
              "saddles_at_largest_lr_smallest_batch": corner["saddle"], "seeds": seeds,
              "largest_batch_with_most_runs_at_a_saddle": {f"{lr:g}": b for lr, b in boundary.items()},
              "mean_relative_gap_mc_vs_effective_curvature": curv_gap, "points": rows}
    md = [f"# Minibatch SGD and saddles: {run.get('loss')} (beta = {run.get('beta')}), sigma = {run['sigma']}, "
          f"N = {n}", "",
          f"{total} of {runs} runs stopped at a saddle (learned rank below the minimum's "
          f"{rows[0]['predicted_rank']}, the expected loss curving down there by more than {SIGNIFICANCE:g} "
          "standard errors).", "",
          "| lr | B | minimum | saddle | collapsed, not a saddle | above | mean rank | saddle curvature (MC) "
          "| (effective) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mc = "" if r["mean_saddle_curvature"] is None else f"{r['mean_saddle_curvature']:.3g}"
        ef = "" if r["mean_saddle_curvature_effective"] is None else f"{r['mean_saddle_curvature_effective']:.3g}"
        md.append(f"| {r['lr']:g} | {r['batch_size']} | {r['minimum']} | {r['saddle']} | "
                  f"{r['collapsed_not_a_saddle']} | {r['above']} | {r['mean_rank']:.2f} | {mc} | {ef} |")
    md += ["", "**Verdict.** " + _verdict(total, corner, full, boundary, lrs, seeds, curv_gap)]
    return report, "\n".join(md)


def _verdict(total, corner, full, boundary, lrs, seeds, curv_gap):
    """The sentence of report.md, conditioned on the numbers."""
    if total == 0:
        return ("no run stopped at a saddle in this grid: the dynamical collapse of the paper's conclusion does "
                "not occur at these learning rates and batch sizes.")
    parts = [f"runs do stop at saddles: {corner['saddle']} of {seeds} at the largest learning rate with the "
             f"smallest batch (lr = {corner['lr']:g}, B = {corner['batch_size']})"]
    if full:
        n_full = sum(r["saddle"] for r in full)
        parts[0] += f", {n_full} of {seeds * len(full)} with the full batch"
    parts[0] += "."
    known = [(lr, b) for lr, b in boundary.items() if b is not None]
    if len(known) >= 2:
        grows = all(b2 >= b1 for (_, b1), (_, b2) in zip(known, known[1:]))
        text = ", ".join(f"B = {b} at lr = {lr:g}" for lr, b in known)
        ratio = ", ".join(f"{lr / b:.2g}" for lr, b in known)
        parts.append(f"The largest batch at which most runs end at a saddle is {text}: it "
                     + ("grows" if grows else "does not grow monotonically")
                     + f" with the learning rate (lr/B there: {ratio}), as expected if the collapse is driven by "
                     "the gradient noise, whose size per step scales with lr/B.")
    if curv_gap is not None:
        parts.append(f"At the saddles the expected loss's curvature (Monte Carlo) and the effective landscape's "
                     f"differ by {curv_gap:.0%} on average" + (": the collapsed directions are those the landscape "
                                                               "says are unstable." if curv_gap < 0.25 else "."))
    return " ".join(parts)
