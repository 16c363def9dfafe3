"""The resumable result store of a sweep: one SQLite file, one row per finished point.

SQLite (standard library) gives what a long sweep needs from its store: every finished point is
committed in its own transaction, so an interrupt (Ctrl-C, a killed process, a dead machine)
loses at most the points still being computed, never a stored one, and never leaves a
half-written row. Only the process that drives the sweep writes; workers (threads, processes,
Dask) send their results back to it. Points are found again by their key (the SHA-256 of the
command and its complete option set), so a rerun recomputes exactly the points it does not find.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from .._io import jsonable

__all__ = ["Store", "STORE_NAME"]

STORE_NAME = "sweep.sqlite"
_SCHEMA = 1


class Store:
    """The points of sweeps run into one folder.

    Parameters
    ----------
    folder : path
        Created if missing; the database is ``folder/sweep.sqlite``.

    Notes
    -----
    Table ``points``: ``key`` (primary), ``command``, ``options`` (canonical JSON), ``result``
    (the command's JSON report), ``seconds`` (compute time of the point), ``finished`` (UTC,
    ISO 8601), ``version`` (minissl's). Table ``meta``: ``name -> value`` (the last spec run).
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / STORE_NAME
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._init()
        except sqlite3.Error as exc:  # not a database, locked, read-only, ...
            raise ValueError(f"{self.path}: not usable as a sweep store ({exc}); use another folder.") from None

    def _init(self):
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS points (key TEXT PRIMARY KEY, command TEXT NOT NULL, "
                             "options TEXT NOT NULL, result TEXT NOT NULL, seconds REAL, finished TEXT NOT NULL, "
                             "version TEXT NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(_SCHEMA),))
            elif int(row[0]) != _SCHEMA:
                raise ValueError(f"{self.path}: store schema {row[0]}, this minissl reads schema {_SCHEMA}; "
                                 "use another --out folder.")

    def close(self):
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return self._db.execute("SELECT COUNT(*) FROM points").fetchone()[0]

    def stored(self, keys):
        """The subset of ``keys`` that is stored."""
        keys = list(keys)
        found = set()
        for i in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            part = keys[i:i + 500]
            q = f"SELECT key FROM points WHERE key IN ({','.join('?' * len(part))})"
            found.update(k for (k,) in self._db.execute(q, part))
        return found

    def put(self, key, command, options, result, seconds=None):
        """Store one finished point (one transaction; an existing key is replaced). ``version`` is
        the ``minissl_version`` of the report (the code that computed it, e.g. on a Dask worker),
        else this process's."""
        from .. import __version__

        version = result.get("minissl_version", __version__) if isinstance(result, dict) else __version__
        row = (key, command, json.dumps(jsonable(options), sort_keys=True, default=str),
               json.dumps(jsonable(result), allow_nan=False), seconds,
               time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), str(version))
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def get(self, key):
        """``{"key", "command", "options", "result", "seconds", "finished", "version"}`` or None."""
        row = self._db.execute("SELECT key, command, options, result, seconds, finished, version FROM points "
                               "WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return {"key": row[0], "command": row[1], "options": json.loads(row[2]), "result": json.loads(row[3]),
                "seconds": row[4], "finished": row[5], "version": row[6]}

    def set_meta(self, name, value):
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value)))

    def meta(self, name, default=None):
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])
