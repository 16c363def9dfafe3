"""The ``minissl`` command (click): one thin module per command.

Commands parse options (shared ones in :mod:`minissl.cli.options`), call the library, and
format what it returns; library errors become CLI errors in one place
(:mod:`minissl.cli.errors`). The console script ``minissl`` is :func:`main`.
"""

from __future__ import annotations

import click

from .. import __version__
from .imbalance import imbalance_cmd
from .nonlinear import nonlinear_cmd
from .reproduce import reproduce_cmd
from .simulate import simulate_cmd
from .sweep import sweep_cmd
from .theory import theory_cmd

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="minissl")
def main():
    """minissl: exact simulations of self-supervised learning in linear models.

    Checks the loss-landscape theory of Ziyin et al. (ICLR 2023) by training on the
    exact loss and comparing with the effective fourth-order landscape.

    \b
    Vocabulary shared by every command:
      --out-dim D    output dimension d1          --json FILE   one result as JSON
      --seed S       a seed value                 --out DIR     a folder of result files
      --n-seeds K    a number of seeds            --engine E    numba | numpy (| cuda)
    """


for _cmd in (simulate_cmd, theory_cmd, sweep_cmd, reproduce_cmd, nonlinear_cmd, imbalance_cmd):
    main.add_command(_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
