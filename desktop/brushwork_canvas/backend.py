"""The canvas's view of the worker: a small ``Backend`` protocol, and the real one.

Every method here may block on the network, so the canvas only calls them from ``jobs.JobRunner``
threads, never from the UI thread. ``ClientBackend`` wraps ``brushwork.client`` (stdlib only) and
reconnects once when the worker has gone away (``connect()`` restarts it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator, Protocol

from brushwork.errors import BrushworkError, WorkerError
from brushwork.recipe import Recipe

QUEUED, PROGRESS, RESULT, FAILED, CANCELLED = "queued", "progress", "result", "failed", "cancelled"
FINAL = (RESULT, FAILED, CANCELLED)


@dataclass
class JobUpdate:
    """One thing that happened to a job, in the canvas's terms."""

    kind: str  # queued | progress | result | failed | cancelled
    step: int = 0
    total: int = 0
    position: int | None = None  # jobs ahead of this one; 0 = running or next
    preview: bytes | None = None  # PNG of the step preview (no VAE decode)
    images: list[bytes] = field(default_factory=list)  # result PNGs as written by the worker
    recipe: Recipe | None = None  # the recipe as run (seed filled in)
    message: str = ""  # why it failed / was cancelled


class BackendJob(Protocol):
    id: str

    def cancel(self) -> None: ...

    def updates(self) -> Iterator[JobUpdate]:
        """Blocks; yields until (and including) one final update: result, failed or cancelled."""


class Backend(Protocol):
    def upload(self, data: bytes) -> str: ...

    def submit(self, recipe: Recipe, *, live: bool = False) -> BackendJob: ...

    def models(self) -> list[str]: ...


class ClientBackend:
    """The real backend: ``brushwork.connect()`` on first use, in the calling (job) thread."""

    def __init__(self, url: str | None = None):
        self.url = url
        self._client = None
        self._lock = threading.Lock()

    def client(self, *, fresh: bool = False):
        with self._lock:
            if self._client is None or fresh:
                from brushwork.client import connect

                self._client = connect(self.url)
            return self._client

    def _retry(self, call):
        """Run ``call(client)``; when the worker is gone, reconnect (restarting it) once."""
        try:
            return call(self.client())
        except WorkerError:
            return call(self.client(fresh=True))

    def upload(self, data: bytes) -> str:
        return self._retry(lambda c: c.upload(data))

    def models(self) -> list[str]:
        listed = self._retry(lambda c: c.models())
        names = []
        for item in listed or []:
            if isinstance(item, str):
                names.append(item)
            elif isinstance(item, dict) and item.get("name"):
                names.append(str(item["name"]))
            elif getattr(item, "name", None):
                names.append(str(item.name))
        return names

    def submit(self, recipe: Recipe, *, live: bool = False) -> "ClientJob":
        return ClientJob(self._retry(lambda c: c.submit(recipe, live=live)))


class ClientJob:
    """Adapts a ``brushwork.client.RemoteJob`` and its protocol events to ``JobUpdate``s."""

    def __init__(self, remote):
        self.remote = remote
        self.id = str(remote.id)

    def cancel(self) -> None:
        self.remote.cancel()

    def updates(self) -> Iterator[JobUpdate]:
        try:
            for event in self.remote.events():
                update = self._translate(event)
                if update is None:
                    continue
                if update.kind == RESULT:
                    update = self._result(update)
                yield update
                if update.kind in FINAL:
                    return
        except BrushworkError as exc:
            yield JobUpdate(FAILED, message=str(exc))
            return
        # The stream ended without a final event: ask for the outcome directly.
        yield self._result(JobUpdate(RESULT))

    def _translate(self, event) -> JobUpdate | None:
        kind, data = event.kind, event.data or {}
        if kind in ("queued", "started"):
            return JobUpdate(QUEUED, position=data.get("position", 0 if kind == "started" else None))
        if kind == "progress":
            return JobUpdate(PROGRESS, step=int(data.get("step", 0)), total=int(data.get("total", 0)),
                             preview=event.preview_png)
        if kind == "failed":
            return JobUpdate(FAILED, message=str((data.get("error") or {}).get("message") or data.get("message") or "the job failed"))
        if kind == "cancelled":
            return JobUpdate(CANCELLED, message="cancelled")
        if kind == "result":
            return JobUpdate(RESULT)
        return None

    def _result(self, update: JobUpdate) -> JobUpdate:
        try:
            result = self.remote.result()
        except BrushworkError as exc:
            kind = CANCELLED if getattr(exc, "code", "") == "cancelled" else FAILED
            return JobUpdate(kind, message=str(exc))
        images = [bytes(b) for b in getattr(result, "pngs", None) or []]
        return JobUpdate(RESULT, images=images, recipe=getattr(result, "recipe", None))
