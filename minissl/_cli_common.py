"""Helpers shared by the ``minissl`` commands: option callbacks, JSON output, titles."""

from __future__ import annotations

import os

import json

import click
import numpy as np

from . import _validation as V
from ._io import atomic_write_text, jsonable

_LOSS_TITLES = {
    "infonce": "InfoNCE (Eq. 1)",
    "weighted": "weighted InfoNCE (Eq. 7)",
    "beta": "beta-InfoNCE (Sec. 4.2)",
    "scl": "spectral contrastive loss (Eq. 14)",
    "barlow": "Barlow Twins",
    "vicreg": "VICReg",
    "simclr": "SimCLR NT-Xent (cosine / temperature)",
}


def _checked(fn):
    """Wrap a _validation check as a click callback raising BadParameter."""

    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            return fn(param.name, value)
        except (ValueError, TypeError) as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def _real(lo=None, lo_open=False, hi=None):
    return _checked(lambda name, v: V.check_scalar(name, v, lo=lo, lo_open=lo_open, hi=hi))


def _integer(lo):
    return _checked(lambda name, v: V.check_int(name, v, lo=lo))


def _json_path(ctx, param, value):
    """The --json target: its folder must exist and be writable (checked before the run)."""
    if value is None:
        return None
    folder = os.path.dirname(os.path.abspath(value)) or "."
    if not os.path.isdir(folder):
        raise click.BadParameter(f"{value!r}: folder {folder!r} does not exist.", ctx=ctx, param=param)
    if not os.access(folder, os.W_OK):
        raise click.BadParameter(f"{value!r}: folder {folder!r} is not writable.", ctx=ctx, param=param)
    if os.path.isdir(value):
        raise click.BadParameter(f"{value!r} is a folder, must be a file path.", ctx=ctx, param=param)
    return value


_finite_json = jsonable


def _float_list(name, text):
    try:
        vals = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{name} == {text!r}, must be comma-separated numbers, e.g. 0.5,1,2.") from None
    arr = V.check_array(name, vals, ndim=1)
    if arr.size == 0:
        raise ValueError(f"{name} == {text!r}, must list at least one variance.")
    if np.any(arr < 0):
        raise ValueError(f"{name} contains {float(arr.min())!r}, all variances must be >= 0.")
    return arr


def write_json(path, payload):
    """Write ``payload`` as strict JSON (non-finite -> null) atomically; click error on failure."""
    try:
        atomic_write_text(path, json.dumps(_finite_json(payload), indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise click.ClickException(f"could not write {path!r}: {exc}") from None
    click.echo(f"wrote {path}")
