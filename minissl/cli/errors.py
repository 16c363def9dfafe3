"""The one place where library errors become CLI errors.

Bad input (``ValueError``, ``TypeError``, ``numpy.linalg.LinAlgError``, an overflow) is a
usage error, exit code 2; when the message starts with the name of one of the command's
options (``content_dims == 7, ...``) it becomes ``click.BadParameter`` for that option and
the name is replaced by the option as the user types it (``--content-dims == 7, ...``). A
diverged run (``FloatingPointError``), a file that cannot be written (``OSError``) or not
enough memory is a plain error, exit code 1. Anything else propagates unchanged.
"""

from __future__ import annotations

import contextlib
import re

import click
import numpy as np

from .options import opt_name

_LEADING_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\b.*)$", re.S)


def _for_option(ctx, message, aliases):
    """``(param, message)`` with the option's spelling when ``message`` starts with a param name."""
    m = _LEADING_NAME.match(message)
    if ctx is None or m is None:
        return None, message
    name = aliases.get(m.group(1), m.group(1))
    for p in ctx.command.params:
        if p.name == name and getattr(p, "opts", None):
            return p, opt_name(p) + m.group(2)
    return None, message


@contextlib.contextmanager
def library_errors(memory_hint="these settings", aliases=None, diverged="{exc}"):
    """Run library code; turn its errors into click errors (see the module docstring).

    Parameters
    ----------
    memory_hint : str
        Completes "not enough memory for ..." (which settings to lower).
    aliases : dict, optional
        Library parameter names that differ from the command's option names, e.g.
        ``{"name": "loss"}``.
    diverged : str
        Message of a diverged run, ``{exc}`` standing for the library's.
    """
    ctx = click.get_current_context(silent=True)
    try:
        yield
    except click.ClickException:
        raise
    except (ValueError, TypeError, np.linalg.LinAlgError) as exc:
        param, msg = _for_option(ctx, str(exc), aliases or {})
        if param is not None:
            raise click.BadParameter(msg, ctx=ctx, param=param) from None
        raise click.UsageError(msg, ctx=ctx) from None
    except FloatingPointError as exc:
        raise click.ClickException(diverged.format(exc=exc)) from None
    except ArithmeticError as exc:  # overflow of sigma^2, c, variances
        raise click.UsageError(f"the values given overflow float64 ({exc}); use smaller --sigma, --c or "
                               "--variances.", ctx=ctx) from None
    except MemoryError:
        raise click.ClickException(f"not enough memory for {memory_hint}.") from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)) from None
