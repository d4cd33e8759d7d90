"""The job history in SQLite (state dir): survives restarts, read by `brushwork history`.

Every job is written when submitted and again on each state change, so a worker killed mid-job
leaves a row saying "running"; the next start marks such rows failed (``mark_interrupted``).
Results are indexed by the sha256 of the written PNG, which is how clients fetch them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from .. import protocol
from ..protocol import JobInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, client TEXT NOT NULL, state TEXT NOT NULL, live INTEGER NOT NULL,
    destination TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
    recipe TEXT, results TEXT NOT NULL DEFAULT '[]', error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_client_created ON jobs (client, created);
CREATE TABLE IF NOT EXISTS results (
    sha256 TEXT NOT NULL, client TEXT NOT NULL, job TEXT NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (sha256, client)
);
"""


class History:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # One connection shared by the server threads, serialised by the lock; WAL lets
        # `brushwork history` read while the worker writes.
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL never corrupts the database (a crash of the worker loses nothing; a power
            # cut can lose the last few commits) and spares an fsync on every job state change.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writes -------------------------------------------------------------------------------

    def save(self, client: str, info: JobInfo) -> None:
        row = (info.id, client, info.state, int(info.live), info.destination, info.created,
               info.started, info.finished, json.dumps(info.recipe) if info.recipe is not None else None,
               json.dumps(info.results), json.dumps(info.error) if info.error else None)
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)", row)
            for res in info.results:
                self._db.execute("INSERT OR REPLACE INTO results VALUES (?,?,?,?)",
                                 (res["sha256"], client, info.id, res["path"]))

    def mark_interrupted(self) -> int:
        """Jobs a previous worker left queued or running failed with it: say so, once."""
        error = json.dumps({"code": "worker_error",
                            "message": "the worker stopped while this job was queued or running"})
        with self._lock, self._db:
            cur = self._db.execute(
                "UPDATE jobs SET state=?, error=?, finished=? WHERE state IN (?, ?)",
                (protocol.FAILED, error, time.time(), protocol.QUEUED, protocol.RUNNING))
            return cur.rowcount

    # ---- reads --------------------------------------------------------------------------------

    def get(self, job_id: str, client: str | None = None) -> JobInfo | None:
        sql = "SELECT * FROM jobs WHERE id=?" + (" AND client=?" if client else "")
        args = (job_id, client) if client else (job_id,)
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return _info(row) if row else None

    def list(self, client: str | None = None, limit: int = 50, before: float | None = None) -> list[tuple[str, JobInfo]]:
        """Newest first: (client id, job) pairs."""
        where, args = [], []
        if client:
            where.append("client=?")
            args.append(client)
        if before is not None:
            where.append("created<?")
            args.append(before)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created DESC LIMIT ?"
        args.append(max(1, min(int(limit), 1000)))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [(row[1], _info(row)) for row in rows]

    def result_path(self, sha256: str, client: str) -> Path | None:
        with self._lock:
            row = self._db.execute("SELECT path FROM results WHERE sha256=? AND client=?",
                                   (sha256, client)).fetchone()
        return Path(row[0]) if row else None


def _info(row: tuple) -> JobInfo:
    (job_id, _client, state, live, destination, created, started, finished,
     recipe, results, error) = row
    return JobInfo(id=job_id, state=state, position=None, live=bool(live), destination=destination,
                   created=created, started=started, finished=finished,
                   recipe=json.loads(recipe) if recipe else None, results=json.loads(results or "[]"),
                   error=json.loads(error) if error else None)


def open_readonly(path: Path) -> sqlite3.Connection:
    """For `brushwork history`: read without creating anything."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
