"""Collapse thresholds and phase diagrams (Sec. 3.1, 4.2, Appendix A Eq. 17, Fig. 3 top).

Every threshold here is computed two ways where it can be: from the closed-form
condition (a formula in one line) and from the generic machinery (sign changes of the
eigenvalues of ``B`` along an augmentation ray, or rank changes of the global minimum of
:mod:`minissl.theory.stationary`); the tests compare the two and check both against
descent and exact-loss simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validation as V
from ..landscape import Landscape, effective_B, paper_B
from ..losses import check_loss_object
from ..losses.registry import PAPER_LOSS, QUARTIC_TRACE
from .stationary import global_minimum, normalized_gap, whiten

__all__ = ["collapse_thresholds", "critical_n_weighted", "beta_critical_sigma", "PhaseDiagram",
           "phase_diagram", "format_phase_map", "landscape_for", "PHASE_LABELS"]

PHASE_LABELS = ("no collapse", "style collapsed", "content collapsed", "content and style partly",
                "complete collapse")
_PHASE_CHARS = ".sc+#"


def landscape_for(loss, A0, C, n=None, mean=None, d1=None, constants="derived", scale=False):
    """The "trace" landscape used by the closed forms, with derived or paper constants.

    ``constants="paper"`` uses the paper's printed ``B`` (:func:`minissl.paper_B`) with
    ``S = A0 + C`` and ``k = 1`` (Prop. 1 as printed); ``"derived"`` uses
    :func:`minissl.effective_landscape` of the unnormalized loss (normalization enters
    through ``kappa`` in :func:`~minissl.theory.stationary_points`). ``scale``: the scale
    augmentation of App. F.1 (derived constants only); the InfoNCE family's landscape then
    carries its own ``kappa`` and ``c = 0`` (Eq. 10's form), which the caller passes on.
    """
    check_loss_object(loss)
    V.check_choice("constants", constants, ("derived", "paper"))
    base = loss.unnormalized()
    if constants == "paper":
        if scale:
            raise ValueError("the paper prints no B for the scale augmentation (App. F.1 leaves it open).")
        A0c = np.asarray(A0, dtype=np.float64)
        B = paper_B(base, A0, C, n=n)
        return Landscape(B=B, S=A0c + np.asarray(C, dtype=np.float64), k=1.0, c=loss.c)
    from ..landscape import effective_landscape

    land = effective_landscape(base, A0, C, n=n, mean=mean, d1=d1, scale=scale)
    if land.quartic != QUARTIC_TRACE:
        raise ValueError(f"{loss.name}: its quartic term is not of the trace form; the closed forms "
                         "do not apply (use Landscape.minimize).")
    if land.kappa:  # the scale augmentation's squared trace (App. F.1)
        return land
    return Landscape(B=land.B, S=land.S, k=land.k, Sigma=land.Sigma, c=loss.c)


def _B_ray(loss, A0, C_unit, n, mean, d1, constants):
    base = loss.unnormalized()

    def B_of(s2):
        C = s2 * C_unit
        if constants == "paper":
            return paper_B(base, A0, C, n=n)
        return effective_B(base, A0, C, n=n, mean=mean, d1=d1)

    return B_of


def collapse_thresholds(loss, A0, C_unit=None, n=None, mean=None, d1=None, constants="derived",
                        kappa=None, bias=False, sigma_max=None, grid=200):
    """Augmentation strengths at which the learned rank changes along ``C = sigma^2 C_unit``.

    Without normalization the rank of every local minimum is ``min(m, d*)`` with ``m`` the
    number of positive eigenvalues of ``B`` (Prop. 2), and ``B(sigma^2) = B_0 + sigma^2 B_1``
    is linear in ``C`` for every loss; the thresholds are the positive roots of
    ``det(B_0 + s B_1) = 0`` (a generalised eigenvalue problem), exact. With normalization
    (``loss.normalize`` or ``kappa``) the rank of the ``kappa -> inf`` global minimum
    (Theorem 2) is scanned on a grid up to ``sigma_max`` and each change located by bisection.

    Parameters
    ----------
    loss : Loss
    A0 : array_like (d0, d0)
    C_unit : array_like (d0, d0), optional
        Shape of the augmentation (default the identity: isotropic noise of variance sigma^2).
    n, mean, d1 :
        As for :func:`minissl.effective_B`; ``d1`` defaults to ``d0``.
    constants : {"derived", "paper"}
    kappa : float, optional
        Normalization strength; default ``inf`` for a normalized loss, else 0.
    bias : bool
        With a bias (Theorem 3; needs ``kappa > 0``).
    sigma_max : float, optional
        Scan range for the normalized case (default ``10 sqrt(max eig A0 / c_min)`` with
        ``c_min`` the smallest nonzero eigenvalue of ``C_unit``); the scan starts at
        ``0.01 sqrt(a_min / c_max)`` (smallest positive data variance, largest augmentation
        eigenvalue).
    grid : int
        Points of the geometric scan grid (intervals whose end masks differ are subdivided).

    Returns
    -------
    list of dict
        Sorted by ``sigma``: ``sigma``, ``rank_below``, ``rank_above`` and ``direction``
        (unit input-space vector of the direction that collapses or revives).
    """
    check_loss_object(loss)
    A0 = V.check_covariance("A0", A0)
    d0 = A0.shape[0]
    C_unit = np.eye(d0) if C_unit is None else V.check_covariance("C_unit", C_unit, dim=d0)
    d1 = V.check_int("d1", d0 if d1 is None else d1, lo=1)
    V.check_choice("constants", constants, ("derived", "paper"))
    kappa = V.check_scalar("kappa", np.inf if (kappa is None and loss.normalize) else (kappa or 0.0),
                           lo=0.0, allow_inf=True)
    bias = V.check_bool("bias", bias)
    if bias and kappa == 0:
        raise ValueError("bias=True: without normalization the bias drops out; give kappa > 0 or a normalized loss.")
    dstar = min(d0, d1)
    B_of = _B_ray(loss, A0, C_unit, n, mean, d1, constants)
    if kappa == 0:
        return _linear_thresholds(B_of, dstar)
    return _scan_thresholds(loss, A0, C_unit, n, mean, d1, constants, kappa, bias, sigma_max, grid)


def _linear_thresholds(B_of, dstar):
    """Roots of det(B_0 + s B_1) = 0, merged within round-off; ranks between distinct roots."""
    B0 = B_of(0.0)
    B1 = B_of(1.0) - B0
    scale = max(1.0, float(np.max(np.abs(B0))), float(np.max(np.abs(B1))))
    if np.max(np.abs(B1)) <= 1e-14 * scale:
        return []
    from scipy import linalg  # imported on use: `import minissl` stays light

    roots = linalg.eigvals(B0, -B1)
    ok = np.isfinite(roots) & (np.abs(np.imag(roots)) <= 1e-9 * np.abs(roots))
    s = np.sort(np.real(roots[ok]))
    s = s[s > 0]
    distinct = []
    for v in s:  # merge roots equal up to round-off (repeated eigenvalues)
        if distinct and v <= distinct[-1] * (1 + 1e-9):
            continue
        distinct.append(float(v))
    if not distinct:
        return []

    def m(s2):
        return min(int(np.sum(np.linalg.eigvalsh(B0 + s2 * B1) > 0)), dstar)

    edges = [0.0] + distinct + [2.0 * distinct[-1] + 1.0]
    out = []
    for j, s2 in enumerate(distinct):
        below, above = m(0.5 * (edges[j] + s2)), m(0.5 * (s2 + edges[j + 2]))
        if below == above:
            continue
        w, U = np.linalg.eigh(B0 + s2 * B1)
        u = U[:, int(np.argmin(np.abs(w)))]
        out.append({"sigma": float(np.sqrt(s2)), "rank_below": below, "rank_above": above,
                    "direction": u * np.sign(u[np.argmax(np.abs(u))])})
    return out


def _scan_thresholds(loss, A0, C_unit, n, mean, d1, constants, kappa, bias, sigma_max, grid):
    """Normalized case: events of the global minimum's mask along sigma.

    A geometric grid from ``0.01 sqrt(a_min / c_max)`` to ``sigma_max``; every grid interval whose
    end masks differ is subdivided until the masks differ in one direction, whose vanishing
    ``h_i`` (Theorem 2 / Prop. 4 with the larger mask) is then found by root-finding. Two
    events inside one grid interval that restore the same mask are not seen.
    """
    d0 = A0.shape[0]
    ev_c = np.linalg.eigvalsh(C_unit)
    ev_a = np.linalg.eigvalsh(A0)
    a_pos = ev_a[ev_a > 1e-12 * max(ev_a[-1], 1e-300)]
    c_pos = ev_c[ev_c > 1e-12 * max(ev_c[-1], 1e-300)]
    if sigma_max is None:
        sigma_max = 10.0 * np.sqrt(max(float(ev_a[-1]), 1e-12) / float(c_pos[0]))
    sigma_max = V.check_scalar("sigma_max", sigma_max, lo=0.0, lo_open=True)
    sigma_min = min(0.01 * np.sqrt(float(a_pos[0]) / float(c_pos[-1])) if a_pos.size else 1e-4 * sigma_max,
                    1e-2 * sigma_max)
    grid = V.check_int("grid", grid, lo=2)
    base = loss.unnormalized()

    def land_at(sig):
        land = landscape_for(base, A0, sig**2 * C_unit, n=n, mean=mean, d1=d1, constants=constants)
        return Landscape(B=land.B, S=land.S, k=land.k, c=loss.c)

    def point_at(sig):
        return global_minimum(land_at(sig), d1, kappa=kappa, bias=bias)

    def branch(p):
        return (p.mask, p.b is not None and float(p.b @ p.b) > 0)

    def h_root(lo, hi, p_lo, p_hi):
        changed = sorted(set(p_lo.mask) ^ set(p_hi.mask))
        big = p_lo if len(p_lo.mask) > len(p_hi.mask) else p_hi
        if len(changed) != 1 or branch(p_lo)[1] or branch(p_hi)[1]:
            return None
        i, idx = changed[0], list(big.mask)

        def h_i(sg):
            land = land_at(sg)
            lam = whiten(land).lam
            if np.isinf(kappa):
                shift = (2.0 * land.k * land.c - lam[idx].sum()) / len(idx)
            else:
                shift = 2.0 * kappa * normalized_gap(lam[idx].sum(), len(idx), kappa, land.c, land.k)
            return lam[i] + shift

        try:
            from scipy import optimize

            return optimize.brentq(h_i, lo, hi, xtol=1e-15 * hi, rtol=1e-15)
        except ValueError:
            return None

    out = []

    def refine(lo, hi, p_lo, p_hi, depth):
        if branch(p_lo) == branch(p_hi):
            return
        root = h_root(lo, hi, p_lo, p_hi)
        if root is None and depth < 60 and hi > lo * (1 + 1e-13):
            mid = np.sqrt(lo * hi)
            p_mid = point_at(mid)
            refine(lo, mid, p_lo, p_mid, depth + 1)
            refine(mid, hi, p_mid, p_hi, depth + 1)
            return
        if root is None:
            root = np.sqrt(lo * hi)
        if p_lo.rank == p_hi.rank:
            return
        changed = sorted(set(p_lo.mask) ^ set(p_hi.mask))
        u = whiten(land_at(root)).directions()[:, changed[0]] if changed else np.zeros(d0)
        out.append({"sigma": float(root), "rank_below": p_lo.rank, "rank_above": p_hi.rank,
                    "direction": u * np.sign(u[np.argmax(np.abs(u))]) if changed else u})

    sig = np.geomspace(sigma_min, sigma_max, grid)
    pts = [point_at(s_) for s_ in sig]
    for j in range(grid - 1):
        refine(sig[j], sig[j + 1], pts[j], pts[j + 1], 0)
    out.sort(key=lambda o: o["sigma"])
    return out


def beta_critical_sigma(beta, variances, weight_decay=0.0, constants="derived"):
    """Isotropic noise level at which each data direction collapses for beta-InfoNCE.

    Derived (docs/errata.md, E3): ``B = beta A0 - (1 - beta) C - gamma I``, so direction i
    collapses at ``sigma_i^2 = (beta a_i - gamma) / (1 - beta)``; the paper (Sec. 4.2)
    has ``B = A0 - (1 - beta) C``, i.e. ``sigma_i^2 = (a_i - gamma) / (1 - beta)``.
    For ``beta >= 1`` no direction collapses (``inf``); a direction already collapsed
    at ``sigma = 0`` gives 0.

    Returns
    -------
    ndarray
        ``sigma_i`` per entry of ``variances``.
    """
    beta = V.check_scalar("beta", beta, lo=0.0, lo_open=True)
    a = V.check_array("variances", variances, ndim=1, dtype=np.float64)
    gamma = V.check_scalar("weight_decay", weight_decay, lo=0.0)
    V.check_choice("constants", constants, ("derived", "paper"))
    if beta >= 1.0:
        return np.full(a.shape, np.inf)
    top = (beta * a if constants == "derived" else a) - gamma
    return np.sqrt(np.clip(top, 0.0, None) / (1.0 - beta))


def critical_n_weighted(alpha, a, c, convention="derived"):
    """Critical dataset size of weighted InfoNCE (Eq. 7) for a direction with data variance
    ``a`` and augmentation variance ``c``.

    Conventions
    -----------
    ``"main"``: Sec. 3.1 / Eq. (8), ``B = A0 - (1 - alpha) C / N``: the direction collapses
    when ``N <= (1 - alpha) c / a`` (small datasets collapse).
    ``"appendix"``: Appendix A, Eq. (17): collapse when ``N > a / (c (1 - alpha))`` --
    the inequality *and* the ratio are inverted with respect to Eq. (8).
    ``"derived"``: the expansion of Eq. (7) gives ``B = N / (N - 1 + alpha) A0c`` with no
    ``C`` term (docs/errata.md, E2): no collapse for any N.

    Returns
    -------
    dict
        ``n_crit`` (float, ``inf`` when there is none) and ``collapse_when`` (str).
    """
    alpha = V.check_scalar("alpha", alpha, lo=0.0)
    a = V.check_scalar("a", a, lo=0.0, lo_open=True)
    c = V.check_scalar("c", c, lo=0.0)
    V.check_choice("convention", convention, ("derived", "main", "appendix"))
    if convention == "derived" or alpha >= 1.0 or c == 0.0:
        return {"n_crit": np.inf, "collapse_when": "never"}
    if convention == "main":
        return {"n_crit": (1.0 - alpha) * c / a, "collapse_when": "N <= n_crit"}
    return {"n_crit": a / (c * (1.0 - alpha)), "collapse_when": "N > n_crit"}


@dataclass(frozen=True)
class PhaseDiagram:
    """Phases of the global minimum over (sigma, theta) for structured augmentation (Fig. 3 top).

    ``phase[t, s]`` indexes :data:`PHASE_LABELS`; ``content_rank``/``style_rank`` count the
    surviving directions of each block; ``sigma_content``/``sigma_style`` are the closed-form
    boundaries per theta (``inf`` where the block never collapses; unnormalized only).
    """

    sigmas: np.ndarray
    thetas: np.ndarray
    phase: np.ndarray
    content_rank: np.ndarray
    style_rank: np.ndarray
    sigma_content: np.ndarray
    sigma_style: np.ndarray
    settings: dict

    def as_dict(self):
        return {"sigmas": self.sigmas.tolist(), "thetas": self.thetas.tolist(),
                "phase": self.phase.tolist(), "labels": list(PHASE_LABELS),
                "content_rank": self.content_rank.tolist(), "style_rank": self.style_rank.tolist(),
                "sigma_content": [None if not np.isfinite(v) else float(v) for v in self.sigma_content],
                "sigma_style": [None if not np.isfinite(v) else float(v) for v in self.sigma_style],
                "settings": self.settings}


def phase_diagram(sigmas, thetas, loss=None, variances=(1.0, 1.0), content_dims=None, d1=None,
                  n=None, kappa=None, constants="derived"):
    """Phase diagram of the learned representation under structured augmentation (Fig. 3 top).

    Data ``N(0, diag(variances))`` whose first ``content_dims`` coordinates are the content;
    augmentation ``sigma R xi`` with ``R = diag(sqrt(1 - theta) content, sqrt(theta) style)``
    (:class:`minissl.data.StructuredNoise`). Each grid point's phase is read from the global
    minimum of the effective landscape (closed form, Theorem 1, or Theorem 2 when normalized).

    Parameters
    ----------
    sigmas, thetas : array_like
        Grid (sigma >= 0, theta in [0, 1]).
    loss : Loss, optional
        Default ``get_loss(PAPER_LOSS)``: beta-InfoNCE with its default beta = 1/2 (the
        paper's choice; :data:`minissl.losses.registry.PAPER_LOSS`).
    variances : sequence of float
        Clean-data variances; the paper is silent, default ``(1, 1)``.
    content_dims : int, optional
        Default ``d0 // 2``.
    d1, n, kappa, constants :
        As for :func:`collapse_thresholds`.
    """
    from ..data import StructuredNoise
    from ..losses import get_loss

    loss = get_loss(PAPER_LOSS) if loss is None else check_loss_object(loss)
    sig = V.check_array("sigmas", sigmas, ndim=1, dtype=np.float64)
    th = V.check_array("thetas", thetas, ndim=1, dtype=np.float64)
    if sig.size == 0 or th.size == 0 or np.any(sig < 0) or np.any((th < 0) | (th > 1)):
        raise ValueError("sigmas must be a non-empty array of values >= 0 and thetas of values in [0, 1].")
    a = V.check_array("variances", variances, ndim=1, dtype=np.float64)
    if np.any(a <= 0):
        raise ValueError(f"variances == {a.tolist()}, must all be > 0.")
    d0 = a.size
    content_dims = V.check_int("content_dims", d0 // 2 if content_dims is None else content_dims, lo=0, hi=d0)
    d1 = V.check_int("d1", d0 if d1 is None else d1, lo=1)
    kappa = V.check_scalar("kappa", np.inf if (kappa is None and loss.normalize) else (kappa or 0.0),
                           lo=0.0, allow_inf=True)
    A0 = np.diag(a)
    phase = np.zeros((th.size, sig.size), dtype=np.int64)
    crank = np.zeros_like(phase)
    srank = np.zeros_like(phase)
    n_style = d0 - content_dims
    for t, theta in enumerate(th):
        for s, sigma in enumerate(sig):
            C = StructuredNoise(sigma, theta, d0, content_dims).C
            land = landscape_for(loss, A0, C, n=n, d1=d1, constants=constants)
            p = global_minimum(land, d1, kappa=kappa)
            alive = np.diag(p.WtW) > 1e-12 * max(1.0, float(np.max(np.diag(p.WtW))))
            crank[t, s] = int(np.sum(alive[:content_dims]))
            srank[t, s] = int(np.sum(alive[content_dims:]))
            c_lost = crank[t, s] < content_dims
            s_lost = srank[t, s] < n_style
            if crank[t, s] + srank[t, s] == 0:
                phase[t, s] = 4
            elif c_lost and s_lost:
                phase[t, s] = 3
            elif c_lost:
                phase[t, s] = 2
            elif s_lost:
                phase[t, s] = 1
    sc = np.full(th.size, np.inf)
    ss = np.full(th.size, np.inf)
    if kappa == 0:
        for t, theta in enumerate(th):
            r2 = np.where(np.arange(d0) < content_dims, 1.0 - theta, theta)
            for thr in collapse_thresholds(loss, A0, np.diag(r2), n=n, d1=d1, constants=constants):
                block = int(np.argmax(np.abs(thr["direction"]))) < content_dims
                if thr["rank_above"] < thr["rank_below"]:
                    if block:
                        sc[t] = min(sc[t], thr["sigma"])
                    else:
                        ss[t] = min(ss[t], thr["sigma"])
    settings = {"loss": loss.name, "params": {k_: v for k_, v in loss.params.items()},
                "variances": a.tolist(), "content_dims": content_dims, "d1": d1, "n": n,
                "kappa": None if np.isinf(kappa) else kappa, "normalized_limit": bool(np.isinf(kappa)),
                "constants": constants}
    return PhaseDiagram(sigmas=sig, thetas=th, phase=phase, content_rank=crank, style_rank=srank,
                        sigma_content=sc, sigma_style=ss, settings=settings)


def format_phase_map(pd):
    """The phase diagram as text: rows theta (top = 1), columns sigma, one character per point."""
    lines = ["theta \\ sigma  " + f"{pd.sigmas[0]:.3g} ... {pd.sigmas[-1]:.3g} (left to right)"]
    for t in range(pd.thetas.size - 1, -1, -1):
        lines.append(f"{pd.thetas[t]:5.2f}  " + "".join(_PHASE_CHARS[p] for p in pd.phase[t]))
    lines.append("legend: " + ", ".join(f"'{c}' {lab}" for c, lab in zip(_PHASE_CHARS, PHASE_LABELS)))
    return "\n".join(lines)
