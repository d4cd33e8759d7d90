"""The canvas's view of the worker: a small ``Backend`` protocol, and the real one.

Every method here may block on the network, so the canvas only calls them from ``jobs.JobRunner``
threads, never from the UI thread. ``ClientBackend`` wraps ``brushwork.client`` (stdlib only) and
reconnects once when the worker has gone away (``connect()`` restarts it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

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
    job: str = ""  # the worker's job id, when known
    lost: bool = False  # failed because we lost track of the job, which may still finish on the worker


@dataclass
class FinishedResult:
    """One picture of a finished job, fetched from the worker's history (see ``finished_results``)."""

    job: str
    sha256: str
    png: bytes
    recipe: Recipe  # the recipe that reproduces this picture alone (its seed, batch 1)
    finished: float  # when the worker finished the job (worker clock)


class BackendJob(Protocol):
    id: str

    def cancel(self) -> None: ...

    def updates(self) -> Iterator[JobUpdate]:
        """Blocks; yields until (and including) one final update: result, failed or cancelled."""


class Backend(Protocol):
    def upload(self, data: bytes) -> str: ...

    def submit(self, recipe: Recipe, *, live: bool = False) -> BackendJob: ...

    def models(self) -> list[dict]:
        """``[{"name", "kind", ...}]``; kind "pipeline" for base models, "controlnet" for ControlNets,
        "upscaler" for super-resolution models; a pipeline may carry its ``defaults`` (width,
        height, steps, cfg, sampler, why) and ``default: true`` for the worker's default model."""

    def finished_results(self, since: float, known: set[str]) -> tuple[list[FinishedResult], float]:
        """Our finished (not live) jobs' pictures from ``since`` on, except those whose sha256 is in
        ``known``, oldest first; and the latest finish time seen (``since`` when none)."""


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

    HISTORY_LIMIT = 50  # jobs looked at per sync: more than a session's worth of lost results

    def __init__(self, url: str | None = None, *, token: str | None = None, client_key: str | None = None):
        self.url, self.token, self.client_key = url, token, client_key
        self._client = None
        self._lock = threading.Lock()
        # Called (in the job thread) after each new connection; ``again`` is True for a reconnect,
        # after which the canvas looks for results it missed while the worker was away.
        self.on_connect: Callable[[bool], None] | None = None

    def client(self, *, fresh: bool = False):
        again = None
        with self._lock:
            if self._client is None or fresh:
                from brushwork.client import connect

                again = self._client is not None
                self._client = connect(self.url, token=self.token, client_key=self.client_key or canvas_client_key())
            client = self._client
        if again is not None and self.on_connect is not None:
            self.on_connect(again)
        return client

    def _retry(self, call):
        """Run ``call(client)``; when the worker is gone, reconnect (restarting it) once."""
        try:
            return call(self.client())
        except WorkerError:
            return call(self.client(fresh=True))

    def upload(self, data: bytes) -> str:
        return self._retry(lambda c: c.upload(data))

    def models(self) -> list[dict]:
        return [{**item, "name": str(item["name"]), "kind": str(item.get("kind") or "pipeline")}
                for item in self._retry(lambda c: c.models()) or []
                if isinstance(item, dict) and item.get("name")]

    def submit(self, recipe: Recipe, *, live: bool = False) -> ClientJob:
        return ClientJob(self._retry(lambda c: c.submit(recipe, live=live)))

    def finished_results(self, since: float, known: set[str]) -> tuple[list[FinishedResult], float]:
        jobs = self._retry(lambda c: c.history(self.HISTORY_LIMIT))
        client = self.client()
        out: list[FinishedResult] = []
        latest = since
        for info in sorted(jobs, key=lambda j: j.finished or j.created):  # oldest first
            finished = float(info.finished or info.created)
            if info.state != "done" or info.live or finished < since or not info.recipe:
                continue
            latest = max(latest, finished)
            try:
                recipe = Recipe.from_dict(info.recipe)
            except BrushworkError:
                continue  # a record this canvas cannot read is not worth failing the others for
            results = sorted((r for r in info.results if isinstance(r, dict) and r.get("sha256")),
                             key=lambda r: r.get("index", 0))
            for res in results:
                if res["sha256"] in known:
                    continue
                seed = res.get("seed", recipe.seed)
                one = recipe.replace(seed=seed, batch=1) if recipe.batch > 1 else recipe
                out.append(FinishedResult(job=str(info.id), sha256=res["sha256"],
                                          png=client.fetch_result(res["sha256"]), recipe=one, finished=finished))
        return out, latest


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
        except BrushworkError as exc:  # the stream broke: the job may still finish on the worker
            yield JobUpdate(FAILED, message=str(exc), job=self.id, lost=True)

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
            return JobUpdate(RESULT, images=pngs, recipe=recipe, job=self.id)
        error = info.error or {}
        message = str(error.get("message") or f"the job ended {info.state}")
        if info.state == "cancelled":
            return JobUpdate(CANCELLED, message=message)
        if info.state == "failed":
            return JobUpdate(FAILED, message=message)
        return JobUpdate(FAILED, message=f"the job is still {info.state} but its event stream ended")
