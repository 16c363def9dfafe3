"""A long-lived process that runs golden cases one after another, each as ``minissl ARGV``.

``tests/test_golden.py`` starts one per test process (:class:`Runner`) instead of a fresh
interpreter per case: importing NumPy, SciPy, Numba and minissl and loading the compiled
kernels from Numba's cache cost ~3 s per case, most of the suite's golden time. The runner
has the environment of a case subprocess (``cases.subprocess_env``: this checkout on
``PYTHONPATH``, one thread) and the repository root as working directory; it reads one JSON
request per line on stdin, ``{"argv": [...]}``, runs ``minissl.cli.main`` on it as the
console script would (``SystemExit`` gives the exit code) with stdout and stderr captured,
and answers one JSON line ``{"rc", "stdout", "stderr"}``. ``tests/golden/regenerate.py``
still records every case in a fresh subprocess, so a state carried from one case to the next
inside a runner would show up as a golden mismatch.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback


def serve(stdin=sys.stdin, stdout=sys.stdout):
    from minissl.cli import main

    for line in stdin:
        argv = json.loads(line)["argv"]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main.main(args=argv, prog_name="minissl")
                rc = 0
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported to the test like a crashed subprocess
                traceback.print_exc()
                rc = 1
        stdout.write(json.dumps({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
