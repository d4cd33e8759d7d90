"""The job history in SQLite (state dir): survives restarts, read by `brushwork history`.

Every job is written when submitted and again on each state change, so a worker killed mid-job
leaves a row saying "running"; the next start marks such rows failed (``mark_interrupted``).
Results are indexed by the sha256 of the written PNG, which is how clients fetch them.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .. import protocol
from ..errors import HistoryError
from ..protocol import JobInfo

# How long one write waits for another program's lock on the file (a backup, a DB browser)
# before it gives up; the caller then retries later (GPU thread) or refuses the job (submit).
BUSY_TIMEOUT_S = 5.0
# Retention: rows beyond the newest HISTORY_KEEP_JOBS are deleted (at start and every
# PRUNE_EVERY writes); ``$BRUSHWORK_HISTORY_KEEP`` overrides it (0 = keep everything).
HISTORY_KEEP_JOBS = 20_000
PRUNE_EVERY = 500
ENV_HISTORY_KEEP = "BRUSHWORK_HISTORY_KEEP"

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
-- One row per (result, job): two jobs of one client that made the same bytes are two records
-- (the older "results" table kept only the last; it is read for databases made before this one).
CREATE TABLE IF NOT EXISTS job_results (
    sha256 TEXT NOT NULL, client TEXT NOT NULL, job TEXT NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (sha256, client, job)
);
"""


class History:
    def __init__(self, path: Path, *, busy_timeout: float | None = None, keep: int | None = None):
        busy_timeout = BUSY_TIMEOUT_S if busy_timeout is None else busy_timeout
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.keep = _keep_setting() if keep is None else keep
        self.last_error: str | None = None  # the last failed write, None once one succeeds again
        self._write_started: float | None = None  # monotonic time the current write began
        self._writes = 0
        self._lock = threading.Lock()
        # One connection shared by the server threads, serialised by the lock; WAL lets
        # `brushwork history` read while the worker writes.
        self._busy_ms = busy_timeout * 1000
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=busy_timeout)
        with self._lock, self._db:
            # Pages freed by retention go back to the file system (takes effect on a new database;
            # an older one keeps its size until `VACUUM`).
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL never corrupts the database (a crash of the worker loses nothing; a power
            # cut can lose the last few commits) and spares an fsync on every job state change.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        self.make_private()
        try:
            self.prune()
        except HistoryError:
            pass  # locked at start: the next prune runs after PRUNE_EVERY writes

    def make_private(self) -> None:
        """Prompts and upload names are the artist's: the database and its WAL are 0600."""
        if os.name != "posix":
            return
        for suffix in ("", "-wal", "-shm"):
            try:
                os.chmod(f"{self.path}{suffix}", 0o600)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writes -------------------------------------------------------------------------------

    def save(self, client: str, info: JobInfo) -> None:
        """Write one job; HistoryError (nothing half-written) when the file is locked or full."""
        self.save_many([(client, info)])

    def save_many(self, jobs: list[tuple[str, JobInfo]]) -> None:
        """Write several jobs in one transaction (cancel-all): one commit instead of one each."""
        rows, results = [], []
        for client, info in jobs:
            rows.append((info.id, client, info.state, int(info.live), info.destination, info.created,
                         info.started, info.finished, json.dumps(info.recipe) if info.recipe is not None else None,
                         json.dumps(info.results), json.dumps(info.error) if info.error else None))
            results += [(res["sha256"], client, info.id, res["path"]) for res in info.results]
        try:
            self._write_started = time.monotonic()
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.executemany("INSERT OR REPLACE INTO job_results VALUES (?,?,?,?)", results)
        except sqlite3.Error as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise HistoryError(f"the job history ({self.path.name}) cannot be written now ({exc}): "
                               "another program may hold it, or the disk is full") from None
        finally:
            self._write_started = None
        self.last_error = None
        self._writes += len(rows)
        if self.keep and self._writes >= PRUNE_EVERY:
            self._writes = 0
            try:
                self.prune()
            except HistoryError:
                pass

    def prune(self) -> int:
        """Delete jobs beyond the newest ``keep`` (finished ones only) and their result rows."""
        if not self.keep:
            return 0
        try:
            with self._lock, self._db:
                cut = self._db.execute("SELECT created FROM jobs ORDER BY created DESC LIMIT 1 OFFSET ?",
                                       (self.keep - 1,)).fetchone()
                if cut is None:
                    return 0
                old = "SELECT id FROM jobs WHERE created < ? AND state IN (?, ?, ?)"
                args = (cut[0], *protocol.FINAL_STATES)
                self._db.execute(f"DELETE FROM results WHERE job IN ({old})", args)
                self._db.execute(f"DELETE FROM job_results WHERE job IN ({old})", args)
                removed = self._db.execute(f"DELETE FROM jobs WHERE id IN ({old})", args).rowcount
            with self._lock:
                self._db.executescript("PRAGMA incremental_vacuum;")  # executescript: all pages, not one
            return removed
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot prune the job history: {exc}") from None

    def writable(self) -> bool:
        """Whether a write would go through now (without waiting for another program's lock).
        Never blocks for long: while a write waits on a lock, that wait is the answer."""
        if not self._lock.acquire(timeout=0.2):
            started = self._write_started
            waiting = started is not None and time.monotonic() - started >= 1.0
            return self.last_error is None and not waiting
        try:
            try:
                self._db.execute("PRAGMA busy_timeout = 0")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("ROLLBACK")
                finally:
                    self._db.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            except sqlite3.Error:
                return False
        finally:
            self._lock.release()
        return os.access(self.path, os.W_OK)

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
        with self._lock, _reading(self.path):
            row = self._db.execute(sql, args).fetchone()
        return _info(row) if row else None

    def list(self, client: str | None = None, limit: int = 50,
             before: float | None = None) -> list[tuple[str, JobInfo]]:
        """Newest first: (client id, job) pairs."""
        where: builtins.list[str] = []
        args: builtins.list[object] = []
        if client:
            where.append("client=?")
            args.append(client)
        if before is not None:
            where.append("created<?")
            args.append(before)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created DESC LIMIT ?"
        args.append(max(1, min(int(limit), 1000)))
        with self._lock, _reading(self.path):
            rows = self._db.execute(sql, args).fetchall()
        return [(row[1], _info(row)) for row in rows]

    def result_path(self, sha256: str, client: str) -> Path | None:
        """The newest job's file with these bytes that still exists (else the newest one named)."""
        with self._lock, _reading(self.path):
            rows = self._db.execute("SELECT path FROM job_results WHERE sha256=? AND client=? ORDER BY rowid DESC",
                                    (sha256, client)).fetchall()
            rows += self._db.execute("SELECT path FROM results WHERE sha256=? AND client=?",
                                     (sha256, client)).fetchall()
        paths = [Path(row[0]) for row in rows]
        return next((p for p in paths if p.is_file()), paths[0] if paths else None)

    def jobs_with_result(self, sha256: str, client: str) -> builtins.list[str]:
        with self._lock, _reading(self.path):
            return [row[0] for row in self._db.execute(
                "SELECT job FROM job_results WHERE sha256=? AND client=? ORDER BY rowid", (sha256, client))]


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise HistoryError(f"the job history ({path.name}) cannot be read now ({exc})") from None


def _keep_setting() -> int:
    raw = os.environ.get(ENV_HISTORY_KEEP, "").strip()
    return int(raw) if raw.isdigit() else HISTORY_KEEP_JOBS


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
