"""Atomic file output: write to a temporary file in the target folder, then rename."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one.

    A failure part-way leaves no partial file behind.
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) atomically, as :func:`atomic_write_text`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def jsonable(obj):
    """JSON-ready copy: arrays and NumPy scalars as Python, non-finite floats as None
    (strict JSON has no NaN/Infinity)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def save_png(path, draw, dpi=110):
    """Draw with matplotlib (``draw(plt) -> figure``) and write a PNG atomically.

    Returns None when written, or a message when matplotlib (the ``plot`` extra) is not
    installed; the commands check for it before any work (``minissl.cli.options``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: figure skipped (pip install 'minissl[plot]')."
    import io

    fig = draw(plt)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return None
