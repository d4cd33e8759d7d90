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

    def models(self) -> list[dict]:
        """``[{"name", "kind"}]``; kind "pipeline" for base models, "controlnet" for ControlNets."""


def canvas_client_key() -> str:
    """A stable per-user key, so the worker shows this canvas its own jobs again after a restart."""
    import os
    import secrets

    from brushwork import paths

    path = paths.state_dir() / "canvas" / "client.key"
    try:
        key = path.read_text(encoding="ascii").strip()
        if len(key) >= 16:
            return key
    except (OSError, UnicodeDecodeError):
        pass
    key = secrets.token_hex(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key)
    return key


class ClientBackend:
    """The real backend: ``brushwork.connect()`` (which finds or starts the worker) on first use,
    in the calling job thread."""

    def __init__(self, url: str | None = None, *, token: str | None = None, client_key: str | None = None):
        self.url, self.token, self.client_key = url, token, client_key
        self._client = None
        self._lock = threading.Lock()

    def client(self, *, fresh: bool = False):
        with self._lock:
            if self._client is None or fresh:
                from brushwork.client import connect

                self._client = connect(self.url, token=self.token, client_key=self.client_key or canvas_client_key())
            return self._client

    def _retry(self, call):
        """Run ``call(client)``; when the worker is gone, reconnect (restarting it) once."""
        try:
            return call(self.client())
        except WorkerError:
            return call(self.client(fresh=True))

    def upload(self, data: bytes) -> str:
        return self._retry(lambda c: c.upload(data))

    def models(self) -> list[dict]:
        return [{"name": str(item["name"]), "kind": str(item.get("kind") or "pipeline")}
                for item in self._retry(lambda c: c.models()) or []
                if isinstance(item, dict) and item.get("name")]

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
            for event in self.remote.stream():
                update = self._translate(event)
                if update is not None:
                    yield update
                    if update.kind in FINAL:
                        return
            # The stream ended on the job's final state without its event (it fell out of the
            # worker's ring buffer): the job record still says how it ended.
            yield self._outcome()
        except BrushworkError as exc:
            yield JobUpdate(FAILED, message=str(exc))

    def _translate(self, event) -> JobUpdate | None:
        kind, data = event.kind, event.data or {}
        if kind == "queued":
            return JobUpdate(QUEUED, position=data.get("position"))
        if kind == "started":
            return JobUpdate(QUEUED, position=0)
        if kind == "progress":
            return JobUpdate(PROGRESS, step=int(data.get("step", 0)), total=int(data.get("total", 0)),
                             preview=event.preview_png)
        if kind in ("result", "failed", "cancelled"):
            return self._outcome()
        return None

    def _outcome(self) -> JobUpdate:
        """The final update, from the job record: result PNGs fetched by hash, or the error."""
        info = self.remote.client.job(self.id)
        if info.state == "done":
            results = sorted(info.results, key=lambda r: r.get("index", 0))
            pngs = [self.remote.client.fetch_result(r["sha256"]) for r in results]
            recipe = Recipe.from_dict(info.recipe) if info.recipe else None
            return JobUpdate(RESULT, images=pngs, recipe=recipe)
        error = info.error or {}
        message = str(error.get("message") or f"the job ended {info.state}")
        if info.state == "cancelled":
            return JobUpdate(CANCELLED, message=message)
        if info.state == "failed":
            return JobUpdate(FAILED, message=message)
        return JobUpdate(FAILED, message=f"the job is still {info.state} but its event stream ended")
