"""Output of tracked collapse diagnostics: a text table, a CSV file and a plot.

The diagnostics themselves are computed by :func:`minissl.metrics.trajectory` (used by
``simulate(track=True)`` and :func:`minissl.siamese.train_siamese`); this module only
formats them. Files are written atomically.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from ._io import atomic_write_bytes, atomic_write_text

__all__ = ["format_track", "track_rows", "write_track_csv", "plot_track"]

_SCALARS = ("rank", "stable_rank", "entropy_rank", "log_eigenvalue_ratio", "wtw_stable_rank", "alignment",
            "uniformity")


def track_rows(track, loss=None):
    """One dict per recorded step: scalars, ``ev1..evd`` (embedding covariance), ``cev1..cevd``
    (its cumulative explained variance) and ``wev1..wevd0`` (eigenvalues of ``W^T W``)."""
    rows = []
    d = np.asarray(track["cov_eigenvalues"]).shape[1]
    for s in range(len(track["step"])):
        row = {"step": int(track["step"][s])}
        if loss is not None:
            row["loss"] = float(loss[s])
        for k in _SCALARS:
            row[k] = int(track[k][s]) if k == "rank" else float(track[k][s])
        for i in range(d):
            row[f"ev{i + 1}"] = float(track["cov_eigenvalues"][s][i])
        for i in range(d):
            row[f"cev{i + 1}"] = float(track["explained_variance"][s][i])
        for i, v in enumerate(track["wtw_eigenvalues"][s]):
            row[f"wev{i + 1}"] = float(v)
        rows.append(row)
    return rows


def format_track(track, loss=None, rows=11):
    """A table of about ``rows`` evenly spaced snapshots (always the first and last)."""
    n = len(track["step"])
    idx = sorted(set(np.linspace(0, n - 1, min(rows, n)).round().astype(int).tolist()))
    lines = ["collapse diagnostics during training (embedding covariance of the clean data; "
             "alignment/uniformity on the unit sphere):",
             "  step      " + ("loss        " if loss is not None else "")
             + "rank  stable  entropy  log(l1/ld)  top-1 var  align   uniform"]
    for s in idx:
        lr = track["log_eigenvalue_ratio"][s]
        lines.append(
            f"  {int(track['step'][s]):<9} " + (f"{float(loss[s]):<11.5g} " if loss is not None else "")
            + f"{int(track['rank'][s]):<5} {track['stable_rank'][s]:<7.3f} {track['entropy_rank'][s]:<8.3f} "
            + (f"{lr:<11.3g} " if np.isfinite(lr) else f"{'inf':<11} ")
            + f"{track['explained_variance'][s][0]:<10.4f} {track['alignment'][s]:<7.4f} "
            + f"{track['uniformity'][s]:<8.4f}")
    return "\n".join(lines)


def write_track_csv(path, track, loss=None):
    """All snapshots as CSV (columns of :func:`track_rows`), atomically."""
    rows = track_rows(track, loss)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def plot_track(path, track, title=""):
    """Four panels: covariance spectrum (log), ranks, alignment/uniformity, explained variance.

    Returns None when written, or a message when matplotlib (the ``plot`` extra) is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written (pip install 'minissl[plot]')."
    step = np.asarray(track["step"])
    ev = np.asarray(track["cov_eigenvalues"])
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
    floor = max(float(ev.max()) * 1e-16, 1e-300)
    for i in range(ev.shape[1]):
        ax[0].semilogy(step, np.maximum(ev[:, i], floor), label=f"$\\lambda_{{{i + 1}}}$")
    ax[0].set(title="embedding covariance spectrum", xlabel="step")
    ax[0].legend(fontsize=7, ncol=2)
    ax[1].plot(step, track["stable_rank"], label="stable rank")
    ax[1].plot(step, track["entropy_rank"], label="entropy rank")
    ax[1].plot(step, track["rank"], ":", label="numerical rank")
    ax[1].plot(step, track["wtw_stable_rank"], "--", label="stable rank of $W^TW$")
    ax[1].set(title="effective rank", xlabel="step")
    ax[1].legend(fontsize=7)
    ax[2].plot(step, track["alignment"], label="alignment")
    ax[2].plot(step, track["uniformity"], label="uniformity")
    ax[2].set(title="alignment / uniformity (unit sphere)", xlabel="step")
    ax[2].legend(fontsize=7)
    cev = np.asarray(track["explained_variance"])
    k = np.arange(1, cev.shape[1] + 1)
    ax[3].plot(k, cev[0], "o-", label=f"step {int(step[0])}")
    ax[3].plot(k, cev[-1], "s-", label=f"step {int(step[-1])}")
    ax[3].set(title="cumulative explained variance", xlabel="k", ylim=(0, 1.02))
    ax[3].legend(fontsize=7)
    if title:
        fig.suptitle(title, y=1.04)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return None
