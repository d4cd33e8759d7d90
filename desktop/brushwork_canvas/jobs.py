"""Worker calls off the UI thread: a QThreadPool runs them, results come back as Qt signals.

The signals belong to ``JobRunner``, which lives in the UI thread, so emitting them from a pool
thread queues the slot call onto the UI thread (Qt's automatic queued connection).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from brushwork.errors import BrushworkError
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from .backend import CANCELLED, FAILED, FINAL, Backend, JobUpdate
from .recipes import JobSpec


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], None]):
        super().__init__()
        self.fn = fn
        self.setAutoDelete(True)

    def run(self) -> None:
        self.fn()


class JobRunner(QObject):
    update = Signal(int, object)  # (job key, JobUpdate) — ends with exactly one final update per job
    call_done = Signal(int, object)  # (call key, value)
    call_failed = Signal(int, str)  # (call key, one-line message)
    connected = Signal(bool)  # the backend made a new connection; True when it was a reconnect

    def __init__(self, backend: Backend, parent: QObject | None = None):
        super().__init__(parent)
        self.backend = backend
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        self._keys = itertools.count(1)
        self._jobs: dict[int, Any] = {}  # key -> BackendJob once submitted
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        if hasattr(backend, "on_connect"):
            backend.on_connect = lambda again: self._emit(self.connected, again)

    # ---- generation jobs --------------------------------------------------------------------

    def start(self, spec: JobSpec) -> int:
        key = next(self._keys)
        self.pool.start(_Task(lambda: self._run_job(key, spec)))
        return key

    def cancel(self, key: int) -> None:
        """Ask the worker to cancel; returns at once (the request runs in the pool)."""
        with self._lock:
            self._cancelled.add(key)
            job = self._jobs.get(key)
        if job is not None:
            self.pool.start(_Task(lambda: self._quietly(job.cancel)))

    def running(self) -> list[int]:
        with self._lock:
            return list(self._jobs)

    def _run_job(self, key: int, spec: JobSpec) -> None:
        final_sent = False
        try:
            for ref, data in spec.assets.items():
                got = self.backend.upload(data)
                if got != ref:
                    raise BrushworkError(f"the worker stored an upload as {got}, expected {ref}")
            if self._is_cancelled(key):
                self._emit(self.update, key, JobUpdate(CANCELLED, message="cancelled before it started"))
                final_sent = True
                return
            job = self.backend.submit(spec.recipe, live=spec.live)
            with self._lock:
                self._jobs[key] = job
                cancel_now = key in self._cancelled
            if cancel_now:  # Cancel was pressed while we were submitting
                self._quietly(job.cancel)
            for item in job.updates():
                self._emit(self.update, key, item)
                if item.kind in FINAL:
                    final_sent = True
                    return
        except BrushworkError as exc:
            self._emit(self.update, key, JobUpdate(FAILED, message=str(exc)))
            final_sent = True
        except Exception as exc:  # never a dead job thread or a hung UI: report it as a failure
            self._emit(self.update, key, JobUpdate(FAILED, message=f"{type(exc).__name__}: {exc}"))
            final_sent = True
        finally:
            with self._lock:
                self._jobs.pop(key, None)
                self._cancelled.discard(key)
            if not final_sent:
                self._emit(self.update, key, JobUpdate(FAILED, message="the worker stopped reporting on this job"))

    def _emit(self, signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the runner was deleted (the window closed): nobody is listening
            pass

    def shutdown(self, msecs: int = 3000) -> bool:
        """Cancel every job and wait (bounded) for the threads: call before the app exits."""
        for key in self.running():
            self.cancel(key)
        return self.pool.waitForDone(msecs)

    def _is_cancelled(self, key: int) -> bool:
        with self._lock:
            return key in self._cancelled

    @staticmethod
    def _quietly(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # the job's own stream reports how it ended
            pass

    # ---- other calls (model list, connecting) ----------------------------------------------

    def call(self, fn: Callable[[], Any]) -> int:
        key = next(self._keys)

        def run() -> None:
            try:
                value = fn()
            except Exception as exc:
                message = str(exc) if isinstance(exc, BrushworkError) else f"{type(exc).__name__}: {exc}"
                self._emit(self.call_failed, key, message)
                return
            self._emit(self.call_done, key, value)

        self.pool.start(_Task(run))
        return key

    def wait_idle(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)
