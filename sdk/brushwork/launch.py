"""Finding and starting the local worker process (stdlib only: Blender's client uses it too).

Split from client.py, which speaks the protocol; this module only deals with the worker as a
process: the files it leaves in the state dir, a cross-process lock, and spawning it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from . import paths, protocol
from .errors import WorkerError

T = TypeVar("T")


def read_worker_info() -> dict[str, Any] | None:
    """worker.json of the worker that last started under this state dir (it may be gone)."""
    try:
        data = json.loads((paths.state_dir() / protocol.INFO_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and isinstance(data.get("url"), str) else None
    except (OSError, ValueError):
        return None


def read_token() -> str | None:
    try:
        return (paths.state_dir() / protocol.TOKEN_FILE).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def start_worker(python: str | None, timeout: float, probe: Callable[[dict[str, Any]], T | None]) -> T:
    """Spawn ``<python> -m brushwork.worker`` detached, and wait until ``probe(worker_info)``
    returns something (a healthy client) for the process we started. Falls back to any free
    port when the default one is taken. Call it holding ``FileLock`` on the state dir's lock."""
    info = read_worker_info()
    exe = python or os.environ.get(protocol.ENV_PYTHON) or (info or {}).get("python") or sys.executable
    log_path = paths.state_dir() / protocol.LOG_FILE
    deadline = time.monotonic() + timeout
    port_args: list[str] = []
    while True:
        with _open_private_log(log_path) as log:
            log.write(f"\n--- started by a client (pid {os.getpid()}) at {time.ctime()} ---\n".encode())
            log.flush()
            start_at = log.tell()
            kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": log, "close_fds": True}
            if os.name == "nt":
                kwargs["creationflags"] = 0x00000008 | 0x00000200  # DETACHED_PROCESS | NEW_PROCESS_GROUP
            else:
                kwargs["start_new_session"] = True  # Ctrl-C in the client's terminal leaves the worker be
            try:
                proc = subprocess.Popen([exe, "-m", "brushwork.worker", *port_args], **kwargs)
            except OSError as exc:
                raise WorkerError(f"cannot start the worker with {exe}: {exc.strerror or exc} "
                                  f"(set {protocol.ENV_PYTHON} to a Python that has Brushwork installed)") from None
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                tail = log_tail(log_path, start_at)
                if "already in use" in tail and not port_args:
                    port_args = ["--port", "0"]  # the default port is taken by something else: any free one
                    break
                raise WorkerError(f"the worker exited at start (code {code}) using {exe}: {tail or 'no output'} "
                                  f"(log: {log_path})")
            info = read_worker_info()
            if info and info.get("pid") == proc.pid:
                found = probe(info)
                if found is not None:
                    return found
            time.sleep(0.05)
        else:
            raise WorkerError(f"the worker started with {exe} did not answer within {timeout:g} s (log: {log_path})")


def _open_private_log(path: Path) -> BinaryIO:
    """The worker's log holds prompts and errors: only this user may read it (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    if os.name == "posix":
        try:
            os.fchmod(fd, 0o600)  # made looser by an older version
        except OSError:
            pass
    return os.fdopen(fd, "ab")


def log_tail(path: Path, start: int, limit: int = 400) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-limit:]


class FileLock:
    """An OS-level exclusive lock on a file (released by the OS if the holder dies)."""

    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout = path, timeout
        self._file: BinaryIO | None = None

    def __enter__(self) -> FileLock:
        self._file = open(self.path, "a+b")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if sys.platform == "win32":  # (not os.name: mypy only knows sys.platform checks)
                    import msvcrt

                    self._file.seek(0)
                    msvcrt.locking(self._file.fileno(), msvcrt.LK_NBLCK, 1)
                else:
                    import fcntl

                    fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError:
                if time.monotonic() >= deadline:
                    self._file.close()
                    raise WorkerError(f"another process holds {self.path} (starting a worker?) for over "
                                      f"{self.timeout:g} s") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        assert self._file is not None, "__exit__ without __enter__"
        try:
            if sys.platform == "win32":
                import msvcrt

                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._file.close()
