"""The report in words: the table that ``minissl imbalance`` prints, the verdict and agreement lines,
``report.md`` and the figure."""

from __future__ import annotations

import math

from .settings import LOSSES, ROBUST_LOSS, level_label
from .verdicts import DEGENERATE_PROBE, pct

__all__ = ["format_level_table", "verdict_lines", "summary_lines", "agreement_line", "markdown", "drawer"]


def _fmt(v, se=None, spec=".3f"):
    if v is None:
        return "-"
    return f"{v:{spec}}" + (f" ± {se:{spec}}" if se is not None else "")


def format_level_table(report, level):
    """Plain-text table of one level, mean over the trained seeds (what ``minissl imbalance`` prints)."""
    seeds = report["settings"]["seeds"]
    head = (f"  {'loss':8s} {'source':8s} {'top eigenvalues of W^T W':26s} {'dspec':>6s} {'angle':>6s} "
            f"{'s.rank':>6s} {'probe':>6s} {'minor.':>6s} {'sep':>5s} {'mean':>5s} {'conv':>5s}")
    lines = [head]
    for e in (e for e in report["table"] if e["level"] == level):
        ev = " ".join(f"{x:.3g}" for x in e["eigenvalues"])
        conv = f"{e['converged']}/{seeds}" if e["source"] == "learned" else ""
        lines.append(f"  {e['loss']:8s} {e['source']:8s} {ev:26s} {_fmt(e['spectrum_change']):>6s} "
                     f"{_fmt(e['angle'], spec='.1f'):>6s} {_fmt(e['stable_rank'], spec='.2f'):>6s} "
                     f"{_fmt(e['probe_accuracy']):>6s} {_fmt(e['minority_accuracy']):>6s} "
                     f"{_fmt(e['minority_separation'], spec='.2f'):>5s} {_fmt(e['mean_captured'], spec='.2f'):>5s} "
                     f"{conv:>5s}")
    return "\n".join(lines)


_SOURCE_NAMES = {"learned": "learned models",
                 "derived": "derived theory (B = 2 A0 for SCL, A0c for InfoNCE)",
                 "paper": "paper's constants (B = 2C for SCL, A0 for InfoNCE, k = 1)"}
_SOURCE_NAMES_WEIGHTED = {"learned": "learned models",
                          "derived": "derived theory (B = 2 A0 for SCL, N/(N-1+alpha) A0c for weighted)",
                          "paper": "paper's constants (B = 2C for SCL, A0 - (1-alpha) C/N for weighted, k = 1)"}


def _source_name(report, src):
    return (_SOURCE_NAMES_WEIGHTED if report["reference_loss"] == "weighted" else _SOURCE_NAMES)[src]


def _what(src, n):
    if src == "learned":
        return f"{n} converged trained seed(s)"
    return f"{n} geometries"


def _excluded_note(vs):
    ex = next(iter(vs.values()))["excluded_seeds"]
    return f"; left out (a run did not converge): seed(s) {', '.join(map(str, ex))}" if ex else ""


def _numbers(v):
    if v[ROBUST_LOSS] is None:
        return v["label"]
    return f"{v['label']} {v[ROBUST_LOSS]:.3g} vs {v['reference']:.3g}"


def verdict_lines(report):
    """One line per source: SCL vs the reference loss at the most imbalanced level, per metric."""
    out = []
    ref = report["reference_loss"]
    for src, vs in report["verdicts"].items():
        first = next(iter(vs.values()))
        n, degenerate = first["n"], first["degenerate"]
        parts = []
        for v in vs.values():
            if v[ROBUST_LOSS] is None:
                parts.append(f"{v['label']}: {v['verdict']}")
                continue
            thr = ("" if v["threshold"] is None
                   else f", difference {v['difference']:+.3g} vs threshold {v['threshold']:.3g}")
            verdict = (v["verdict"] if degenerate is None
                       else f"not meaningful (by the numbers alone: {v['comparison']})")
            parts.append(f"{_numbers(v)} ({v['relative']:+.0%}{thr}): {verdict}")
        head = "" if degenerate is None else f"; degenerate representation: {degenerate}"
        out.append(f"{_source_name(report, src)} [SCL vs {ref}, {_what(src, n)}{_excluded_note(vs)}{head}]: "
                   + "; ".join(parts))
    return out


def summary_lines(report):
    """The answer to "is SCL more robust, as Sec. 4.3 predicts?", one line per source, plus the E4 check."""
    v = report["verdicts"]
    if not v:
        return []
    ref = report["reference_loss"]
    out = []
    for src in ("paper", "derived", "learned"):
        groups = {}
        for key, x in v[src].items():
            groups.setdefault(x["verdict"], []).append(_numbers(x))
        n = next(iter(v[src].values()))["n"]
        out.append(f"{_source_name(report, src)} ({_what(src, n)}{_excluded_note(v[src])}), SCL vs {ref}: "
                   + "; ".join(f"{verdict}: {', '.join(items)}" for verdict, items in groups.items()))
    e4 = report.get("errata_E4")
    if e4 is not None:
        out.append(e4["text"])
    return out


def agreement_line(report):
    """Learned vs derived theory, converged runs only (what ``minissl imbalance`` prints)."""
    parts = []
    for loss, a in report["agreement"].items():
        if not a["converged_runs"]:
            parts.append(f"{loss}: no converged runs (0/{a['runs']})")
            continue
        parts.append(f"{loss} eigenvalues within {pct(a['median_eig_error_vs_derived'])} (median of the largest "
                     f"per-eigenvalue error), subspace "
                     f"{a['median_angle_vs_derived']:.1f} deg (median), {a['converged_runs']}/{a['runs']} runs")
    return "learned vs derived theory (converged runs): " + "; ".join(parts)


def _empty_note(st, s):
    own = ("empty classes " + ", ".join(map(str, st["empty_classes"]))) if st["empty_classes"] else "no empty class"
    return (f"{own}; {st['geometries_with_empty_classes']} of {s['theory_seeds']} geometries have an empty class, "
            f"{st['mean_empty_classes']:.2f} on average")


def markdown(report, s):
    """``report.md`` (without the wall-time line) from the report and the settings."""
    lv = report["levels"]
    ref = report["reference_loss"]
    seeds = s["seeds"]
    centred = "centred" if s["center_means"] else "not centred"
    md = [f"# Class imbalance (Sec. 4.3, Fig. 4): {', '.join(s['losses'])}", "",
          f"K = {s['classes']} Gaussian classes in d0 = {s['dim']} (means of radius {s['radius']:g}, {centred}; "
          f"within-class std {s['within']:g}), linear model d1 = {s['d1']}, N = {s['n']}, isotropic augmentation "
          f"sigma = {s['sigma']:g}; {seeds} trained seed(s), theory over {s['theory_seeds']} geometries; levels "
          f"({s['scheme']}): {', '.join(level_label(s['scheme'], v) for v in lv)}. Changes are relative to the "
          "balanced run of the same seed; the minority class is the rarest class with at least one training sample "
          "at each level (an empty class has no accuracy to measure).", "",
          "Paper (Sec. 4.3): SCL's B = 2C does not depend on the data, so SCL should be more robust to imbalance "
          "than InfoNCE (B = A0). Derived (errata E4): SCL's B = 2 A0, InfoNCE's B = A0c: both follow the data.", ""]
    if report["verdicts"]:
        md += [f"## Verdict at the most imbalanced level ({level_label(s['scheme'], lv[-1])})", ""]
        md += [f"* {line}." for line in summary_lines(report)]
        md += ["", "Per metric (SCL vs reference, relative difference):", ""]
        md += [f"* {line}." for line in verdict_lines(report)]
        md += ["", "(SCL's change vs the reference's, relative difference in parentheses. A difference counts "
               "when it exceeds both the resolution of the measurement and t_0.975(n-1) standard errors of the "
               "seed-paired difference (two-sided 95%); with one seed the verdict is undetermined. 'slightly' "
               "means below 20% of the larger change. Learned verdicts use only seeds whose runs converged for "
               f"both losses at the balanced and the compared level. 'not meaningful' marks a degenerate "
               f"representation: rank 0, or a balanced probe accuracy below {DEGENERATE_PROBE:g}/K.)", ""]
    md += ["## Trained seeds, per level (mean ± SE over seeds, unconverged runs included; see 'converged')", "",
           "| level | loss | source | top eigenvalues | spectrum change | angle (deg) | stable rank | probe acc. | "
           "minority acc. | minority sep. | mean captured | converged |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["table"]:
        conv = f"{e['converged']}/{seeds}" if e["source"] == "learned" else ""
        md.append(f"| {level_label(s['scheme'], e['level'])} | {e['loss']} | {e['source']} | "
                  f"{', '.join(f'{x:.3g}' for x in e['eigenvalues'])} | "
                  f"{_fmt(e['spectrum_change'], e['spectrum_change_se'])} | {_fmt(e['angle'], e['angle_se'], '.1f')} | "
                  f"{_fmt(e['stable_rank'], spec='.2f')} | {_fmt(e['probe_accuracy'], e['probe_accuracy_se'])} | "
                  f"{_fmt(e['minority_accuracy'], e['minority_accuracy_se'])} | "
                  f"{_fmt(e['minority_separation'], spec='.2f')} | {_fmt(e['mean_captured'], spec='.2f')} | {conv} |")
    md += ["", f"## Theory over {s['theory_seeds']} geometries (mean ± SE)", "",
           "| level | loss | source | spectrum change | angle (deg) | probe acc. | minority acc. | mean captured |",
           "|---|---|---|---|---|---|---|---|"]
    for e in report["theory_ensemble"]:
        md.append(f"| {level_label(s['scheme'], e['level'])} | {e['loss']} | {e['source']} | "
                  f"{_fmt(e['spectrum_change'], e['spectrum_change_se'])} | {_fmt(e['angle'], e['angle_se'], '.1f')} | "
                  f"{_fmt(e['probe_accuracy'], e['probe_accuracy_se'])} | "
                  f"{_fmt(e['minority_accuracy'], e['minority_accuracy_se'])} | "
                  f"{_fmt(e['mean_captured'], e['mean_captured_se'], '.2f')} |")
    md += ["", "## Learned vs theory (converged runs only)", ""]
    for loss, a in report["agreement"].items():
        if not a["converged_runs"]:
            md.append(f"* {loss}: no converged runs (0/{a['runs']}).")
            continue
        md.append(f"* {loss} ({a['converged_runs']}/{a['runs']} runs converged): top-{s['d1']} eigenvalues within "
                  f"{pct(a['median_eig_error_vs_derived'])} (median; max "
                  f"{pct(a['max_eig_error_vs_derived'])}) of the derived prediction, each against its own "
                  "(minissl.metrics.eigenvalue_agreement); subspace "
                  "angle "
                  f"to the derived prediction {a['median_angle_vs_derived']:.1f} deg (median; max "
                  f"{a['max_angle_vs_derived']:.1f}); to the paper's-constants prediction >= "
                  f"{a['min_angle_vs_paper']:.1f} deg"
                  + (f"; u = 2 Tr[W Sigma W^T] <= {a['max_u']:.2f}" if a["max_u"] is not None else "") + ".")
    if report["between_losses"]:
        md += ["", f"Angle (deg) between the SCL and {ref} subspaces, mean over trained seeds: " + "; ".join(
            f"{level_label(s['scheme'], b['level'])}: learned {b['learned']:.1f}, derived {b['derived']:.1f}"
            for b in report["between_losses"]) + "."]
    md += ["", "## Data (seed 0)", ""]
    for st in report["level_stats"]:
        md.append(f"* {st['label']}: class fractions {', '.join(f'{f:.3f}' for f in st['class_fractions'])} "
                  f"(minority class {st['minority_class']}; {_empty_note(st, s)}); A0 eigenvalues "
                  f"{', '.join(f'{v:.3g}' for v in st['A0_eigenvalues'])}; |mean|^2 {st['mean_norm2']:.3g}")
    md += ["", f"Converged training runs: {report['converged']}."]
    return "\n".join(md)


def drawer(report, s):
    """The figure: ``draw(plt) -> fig`` for :func:`~minissl.experiments.common.save_figure`."""
    lv = report["levels"]  # keys (strings); s["levels"] the numbers
    geo = s["scheme"] == "geometric"
    xs = list(s["levels"]) if geo else [0.0 if math.isinf(v) else 1.0 / v for v in s["levels"]]  # dirichlet: 1/alpha
    colors = dict(zip(LOSSES, ("C0", "C2", "C3")))
    panels = (("spectrum_change", "normalised spectrum change"), ("angle", "top-subspace angle to balanced (deg)"),
              ("probe_accuracy", "linear-probe balanced accuracy"), ("minority_accuracy", "minority-class accuracy"))

    def pick(tab, loss, src, key):
        return [next(e[key] for e in tab if e["level"] == v and e["loss"] == loss and e["source"] == src) for v in lv]

    def draw(plt):
        fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.6))
        for ax, (key, label) in zip(axes.ravel(), panels):
            for loss in s["losses"]:
                c = colors[loss]
                ax.errorbar(xs, pick(report["table"], loss, "learned", key),
                            yerr=[v or 0.0 for v in pick(report["table"], loss, "learned", key + "_se")],
                            fmt="o", color=c, ms=5, capsize=2, label=f"{loss}: learned")
                ax.plot(xs, pick(report["table"], loss, "derived", key), "-", color=c, lw=1.2,
                        label=f"{loss}: derived, same seeds")
                ax.plot(xs, pick(report["theory_ensemble"], loss, "derived", key), "--", color=c, lw=1.0,
                        label=f"{loss}: derived, {s['theory_seeds']} geometries")
                if loss == ROBUST_LOSS:  # the paper's InfoNCE (B = A0, uncentred, k = 1) is the derived SCL up to 2x
                    ax.plot(xs, pick(report["theory_ensemble"], loss, "paper", key), ":", color=c, lw=1.6,
                            label=f"{loss}: paper's B = 2C, {s['theory_seeds']} geometries")
            ax.set_xscale("symlog", linthresh=1.0 if geo else 0.1)
            ax.set_xlabel("imbalance ratio n_max / n_min" if geo else "1 / alpha (Dirichlet)")
            ax.set_ylabel(label, fontsize=8)
        axes[0, 0].legend(fontsize=6)
        fig.suptitle(f"Class imbalance, linear model: K={s['classes']}, d0={s['dim']}, d1={s['d1']}, "
                     f"sigma={s['sigma']:g}, N={s['n']}", fontsize=9)
        fig.tight_layout()
        return fig

    return draw
