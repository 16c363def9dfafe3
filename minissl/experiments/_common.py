"""Old name of :mod:`minissl.experiments.common`, kept only for ``minissl/cli_nonlinear.py``.

Import from :mod:`minissl.experiments.common`; this alias goes once nothing imports it.
"""

from .common import load_settings, save_figure, settings_path, write_csv, write_report  # noqa: F401
