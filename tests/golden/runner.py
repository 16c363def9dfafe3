"""A long-lived process that runs golden cases one after another, each as ``minissl ARGV``.

``tests/test_golden.py`` starts one per test process (``cases.Runner``) instead of a fresh
interpreter per case: importing NumPy, SciPy, Numba and minissl and loading the compiled
kernels from Numba's cache cost ~3 s per case, most of the suite's golden time. The runner
has the environment of a case subprocess (``cases.subprocess_env``: this checkout on
``PYTHONPATH``, one thread) and the repository root as working directory.

Protocol: one JSON request per line on stdin, ``{"id": k, "argv": [...]}``; it runs
``minissl.cli.main`` on ``argv`` as the console script would (``SystemExit`` gives the exit
code; its message goes to stderr) with stdout and stderr captured and an empty stdin, and
answers one JSON line ``{"id": k, "rc", "stdout", "stderr"}`` on the stdout it was started
with. File descriptor 1 is pointed at stderr while it runs, so that output bypassing
``sys.stdout`` (a C library, a child process) cannot corrupt the replies.
``tests/golden/regenerate.py`` records every case in a fresh subprocess, and
``tests/test_golden.py`` also reruns a few cases that way, so a state carried from one case
to the next inside a runner shows up as a mismatch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback


def serve():
    requests = sys.stdin
    replies = os.fdopen(os.dup(1), "w")  # the pipe the test reads
    os.dup2(2, 1)  # stray writes to fd 1 go to stderr
    sys.stdin = io.StringIO("")
    from minissl.cli import main

    for line in requests:
        req = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main.main(args=req["argv"], prog_name="minissl")
                rc = 0
            except SystemExit as exc:
                if isinstance(exc.code, int) or exc.code is None:
                    rc = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    rc = 1
            except BaseException:  # noqa: BLE001 - reported to the test like a crashed subprocess
                traceback.print_exc()
                rc = 1
        replies.write(json.dumps({"id": req["id"], "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
                      + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
