"""The stdlib client of the local worker: ``connect()``, ``Client``, ``RemoteJob``, ``RemoteResult``.

Standard library only: the Blender add-on carries a copy of this file (with recipe, errors,
assets, paths and protocol) into Blender's Python, which has neither torch nor Pillow.

    client = brushwork.connect()                 # finds the worker, or starts one and waits
    result = client.generate(Recipe(prompt="red brick wall", model="tiny-sd15"))
    result.save("out/bricks.png")

``Client.generate`` has the shape of ``Studio.generate``; ``Client.submit`` returns a
``RemoteJob`` to watch (``.events``, ``.status``, ``.position``), cancel, or wait on.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import importlib
import io
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from . import launch, paths, protocol
from .assets import atomic_write_bytes, content_ref
from .errors import AuthError, BrushworkError, InputImageError, WorkerError, error_from_dict
from .protocol import Event, JobInfo
from .recipe import Recipe, is_content_ref

__all__ = ["connect", "Client", "RemoteJob", "RemoteResult", "RemoteProgress"]

_IDLE_RECONNECT_S = 20.0  # the worker drops idle connections after 60 s; never reuse one that old


class _EventLike(Protocol):
    """What ``cancel`` arguments need (a threading.Event is one)."""

    def is_set(self) -> bool: ...


def _decode_png(data: bytes) -> Any:
    """A PIL image when Pillow is importable (not in Blender), else None."""
    # By name, not an import statement: Pillow is an optional extra here (Blender has none), and
    # the client must stay importable with the standard library alone.
    try:
        image_module = importlib.import_module("PIL.Image")
    except ImportError:
        return None
    img = image_module.open(io.BytesIO(data))
    img.load()
    return img


@dataclass
class RemoteProgress:
    """Same fields as the engine's ``Progress``; ``preview`` is a PIL image when Pillow is there,
    ``preview_png`` always the PNG bytes (or None)."""

    step: int
    total: int
    preview: Any
    image_index: int = 0
    preview_png: bytes | None = None
    job: str = ""


class RemoteResult:
    """What a finished job made: the same reading surface as the engine's ``Result``."""

    def __init__(self, job: str, png_bytes: list[bytes], seeds: list[int], recipe: Recipe,
                 paths: list[str], hashes: list[str]):
        self.job = job
        self.png_bytes = png_bytes
        self.seeds = seeds
        self.recipe = recipe
        self.paths = paths  # where the worker wrote each PNG (on the worker's machine)
        self.hashes = hashes  # sha256 hex of each PNG
        self._images: list[Any] | None = None

    @property
    def images(self) -> list[Any]:
        """PIL images when Pillow is importable, else the PNG bytes."""
        if self._images is None:
            decoded = [_decode_png(b) for b in self.png_bytes]
            self._images = list(self.png_bytes) if any(d is None for d in decoded) else decoded
        return self._images

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the PNGs (recipe metadata included, as the worker wrote them) atomically.
        One image: ``path``; a batch: ``stem-1.png``, ``stem-2.png`` ..."""
        path = Path(path)
        if len(self.png_bytes) == 1:
            targets = [path]
        else:
            targets = [path.with_name(f"{path.stem}-{i + 1}{path.suffix or '.png'}")
                       for i in range(len(self.png_bytes))]
        return [atomic_write_bytes(t, data) for t, data in zip(targets, self.png_bytes, strict=True)]


class Client:
    """A connection to one worker. Thread-safe: each thread uses its own HTTP connection.

    ``client_key`` identifies this client to the worker (which derives the client id from it):
    jobs, events, results and history are visible only under the same key. By default each
    Client gets a fresh random key; pass a stable one to find your jobs again after a restart.
    """

    def __init__(self, url: str, token: str | None, *, client_key: str | None = None, timeout: float = 30.0,
                 token_file: str | os.PathLike[str] | None = None):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise WorkerError(f"worker URL must look like http://127.0.0.1:{protocol.DEFAULT_PORT}, got {url!r}")
        self.url = url.rstrip("/")
        self._host, self._port = parts.hostname, parts.port or 80
        self.token = token
        # Where the token came from: read again when the worker refuses it (`--new-token`).
        self.token_file = Path(token_file) if token_file is not None else None
        self.client_key = client_key or secrets.token_hex(16)
        self.timeout = timeout
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<brushwork Client {self.url}>"

    # ---- HTTP ---------------------------------------------------------------------------------

    def _conn(self, timeout: float, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        idle = time.monotonic() - getattr(self._local, "used", 0.0)
        if conn is None or fresh or idle > _IDLE_RECONNECT_S:
            if conn is not None:
                conn.close()
            conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, path: str, body: bytes | None = None, *, content_type: str = "application/json",
                timeout: float | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange; raises WorkerError when the worker cannot be reached or is not one,
        and the worker's own error (rebuilt by code) for 4xx/5xx answers."""
        try:
            return self._request(method, path, body, content_type, timeout)
        except (AuthError, _NotProven):
            # The token may have been rotated (`brushwork worker --new-token`): read it again once.
            if not self._reread_token():
                raise
            return self._request(method, path, body, content_type, timeout)

    def _reread_token(self) -> bool:
        if self.token_file is None:
            return False
        try:
            fresh = self.token_file.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return False
        if not fresh or fresh == self.token:
            return False
        self.token = fresh
        self.close()
        return True

    def _request(self, method: str, path: str, body: bytes | None, content_type: str,
                 timeout: float | None) -> tuple[int, dict[str, str], bytes]:
        headers = {protocol.H_PROTOCOL: protocol.PROTOCOL_VERSION, protocol.H_CLIENT: self.client_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = content_type
        timeout = self.timeout if timeout is None else timeout
        # GETs are safe to repeat once over a fresh connection if a kept-alive one went stale.
        attempts = 2 if method == "GET" else 1
        for attempt in range(attempts):
            conn = self._conn(timeout, fresh=attempt > 0)
            try:
                if self.token:
                    if conn.sock is None:
                        conn.connect()
                    # Proven per socket: http.client reconnects by itself when a socket closed.
                    if getattr(self._local, "proven", None) is not conn.sock:
                        self._prove(conn)  # before the token goes out on this connection
                        self._local.proven = conn.sock
                conn.request(method, protocol.API_PREFIX + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self._local.used = time.monotonic()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                break
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                if attempt + 1 < attempts and not isinstance(exc, (ConnectionRefusedError, TimeoutError)):
                    continue
                if isinstance(exc, TimeoutError):
                    raise WorkerError(f"the worker at {self.url} did not answer within {timeout:g} s") from None
                raise WorkerError(f"no worker answers at {self.url} ({type(exc).__name__}: {exc}); "
                                  "start one with `brushwork worker` or use brushwork.connect()") from None
        resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        protocol.check_peer_version(resp_headers.get(protocol.H_PROTOCOL.lower()), peer=f"the server at {self.url}")
        if resp.status >= 400:
            raise _error_from_response(resp.status, data)
        return resp.status, resp_headers, data

    def _prove(self, conn: http.client.HTTPConnection) -> None:
        """Make the server on this connection prove it knows the token (an HMAC of a fresh nonce)
        before the token is sent on it: after a crash, another program may be on the port."""
        nonce = secrets.token_hex(protocol.HELLO_NONCE_HEX // 2)
        conn.request("GET", f"{protocol.API_PREFIX}/hello?nonce={nonce}",
                     headers={protocol.H_PROTOCOL: protocol.PROTOCOL_VERSION})
        resp = conn.getresponse()
        data = resp.read(64 * 1024)
        kept_open = resp.getheader("Connection", "").lower() != "close" and conn.sock is not None
        # Another major version says so first (its hello may differ): the clearer error.
        protocol.check_peer_version(resp.getheader(protocol.H_PROTOCOL), peer=f"the server at {self.url}")
        try:
            proof = json.loads(data).get("proof") if resp.status == 200 else None
        except (ValueError, AttributeError):
            proof = None
        expected = protocol.hello_proof(self.token or "", nonce)
        if not kept_open or not isinstance(proof, str) \
                or not hmac.compare_digest(proof.encode("ascii", "replace"), expected.encode()):
            conn.close()
            self._local.conn = None
            raise _NotProven(f"the server at {self.url} did not prove it knows this token (a wrong or old token, "
                             "an older worker, or another program on its port): the token was not sent")

    def _json(self, method: str, path: str, payload: dict[str, Any] | None = None, *,
              timeout: float | None = None) -> dict[str, Any]:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        _, _, data = self.request(method, path, body, timeout=timeout)
        try:
            answer: dict[str, Any] = json.loads(data)  # every endpoint answers a JSON object
        except ValueError:
            raise WorkerError(f"the worker at {self.url} answered {path} with something that is not JSON") from None
        return answer

    # ---- simple endpoints -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"ok", "version", "engine": "loading"|"ready"|"failed", "queue", ...}``"""
        return self._json("GET", "/health")

    def models(self) -> list[dict[str, Any]]:
        models: list[dict[str, Any]] = self._json("GET", "/models")["models"]
        return models

    def destinations(self) -> list[str]:
        destinations: list[str] = self._json("GET", "/destinations")["destinations"]
        return destinations

    def history(self, limit: int = 50) -> list[JobInfo]:
        return [JobInfo.from_dict(j) for j in self._json("GET", f"/history?limit={int(limit)}")["jobs"]]

    def jobs(self) -> list[JobInfo]:
        return [JobInfo.from_dict(j) for j in self._json("GET", "/jobs")["jobs"]]

    def job(self, job_id: str) -> JobInfo:
        return JobInfo.from_dict(self._json("GET", f"/jobs/{quote(job_id)}")["job"])

    def cancel(self, job_id: str) -> JobInfo:
        return JobInfo.from_dict(self._json("POST", f"/jobs/{quote(job_id)}/cancel")["job"])

    def cancel_all(self) -> list[str]:
        """Cancel every waiting and running job of this client in one call; returns their ids."""
        return list(self._json("POST", "/jobs/cancel")["cancelled"])

    def events(self, since: int = 0, *, job: str | None = None, timeout: float = 0.0,
               kinds: Iterable[str] | None = None) -> dict[str, Any]:
        """``{"instance", "events": [Event], "last_seq", "truncated"}``; waits up to ``timeout``.
        ``kinds``: only events of these kinds (e.g. ``protocol.FINAL_EVENTS``)."""
        query = f"/events?since={int(since)}&timeout={float(timeout):g}" + (f"&job={quote(job)}" if job else "")
        if kinds is not None:
            query += "&kinds=" + quote(",".join(kinds), safe=",")
        data = self._json("GET", query, timeout=self.timeout + timeout)
        data["events"] = [Event.from_dict(e) for e in data.get("events", [])]
        return data

    def fetch_result(self, sha256: str) -> bytes:
        _, _, data = self.request("GET", f"/results/{quote(sha256)}")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise WorkerError(f"result {sha256[:12]}... arrived corrupted (hash mismatch)")
        return data

    # ---- uploads ------------------------------------------------------------------------------

    def missing(self, refs: list[str]) -> list[str]:
        missing: list[str] = self._json("POST", "/assets/check", {"refs": list(refs)})["missing"]
        return missing

    def upload(self, data: bytes) -> str:
        """Make ``data`` available to the worker (sent only if it lacks it); returns its ``sha256:`` ref."""
        ref = content_ref(data)
        if self.missing([ref]):
            self.request("PUT", f"/assets/{ref.split(':', 1)[1]}", data, content_type="application/octet-stream",
                         timeout=max(self.timeout, 120.0))
        return ref

    def prepare(self, recipe: Recipe | dict[str, Any]) -> Recipe:
        """The recipe with every image as a ``sha256:`` ref the worker has: local paths are read,
        hashed, and uploaded only when the worker lacks them."""
        recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
        local: dict[str, bytes] = {}

        def to_ref(ref: str) -> str:
            if is_content_ref(ref):
                return ref
            try:
                data = Path(ref).expanduser().read_bytes()
            except OSError as exc:
                raise InputImageError(f"{ref}: cannot read it ({exc.strerror or exc})") from None
            sha = content_ref(data)
            local[sha] = data
            return sha

        prepared = recipe.map_refs(to_ref)
        refs = sorted(set(prepared.image_refs().values()))
        if refs:
            for ref in self.missing(refs):
                if ref in local:
                    self.request("PUT", f"/assets/{ref.split(':', 1)[1]}", local[ref],
                                 content_type="application/octet-stream", timeout=max(self.timeout, 120.0))
        return prepared

    # ---- jobs ---------------------------------------------------------------------------------

    def submit(self, recipe: Recipe | dict[str, Any], *, live: bool = False,
               destination: str | None = None) -> RemoteJob:
        """Queue a job; returns at once. ``live`` jobs replace this client's waiting live job."""
        prepared = self.prepare(recipe)
        payload = {"recipe": prepared.to_dict(), "live": bool(live)}
        if destination:
            payload["destination"] = destination
        data = self._json("POST", "/jobs", payload)
        return RemoteJob(self, JobInfo.from_dict(data["job"]))

    def generate(self, recipe: Recipe | dict[str, Any], on_progress: Callable[[RemoteProgress], Any] | None = None,
                 cancel: _EventLike | None = None, *, destination: str | None = None,
                 timeout: float | None = None) -> RemoteResult:
        """Run a recipe on the worker and wait: the same call as ``Studio.generate``."""
        job = self.submit(recipe, destination=destination)
        return job.result(timeout=timeout, on_progress=on_progress, cancel=cancel)


class RemoteJob:
    """A submitted job. ``events`` holds what arrived so far; ``result()`` waits for the end."""

    def __init__(self, client: Client, info: JobInfo):
        self.client = client
        self.id = info.id
        self._info = info
        self._events: list[Event] = []
        self._cursor = 0
        self._instance: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RemoteJob {self.id} {self._info.state}>"

    @property
    def info(self) -> JobInfo:
        if self._info.state not in protocol.FINAL_STATES:
            self._info = self.client.job(self.id)
        return self._info

    @property
    def status(self) -> str:
        return self.info.state

    @property
    def position(self) -> int | None:
        return self.info.position

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def cancel(self) -> JobInfo:
        self._info = self.client.cancel(self.id)
        return self._info

    def poll(self, timeout: float = 0.0, *, kinds: Iterable[str] | None = None) -> list[Event]:
        """New events of this job (waiting up to ``timeout`` s for the first; ``kinds``: only
        those, the others are skipped for good). Raises WorkerError when the worker restarted:
        its events are gone and the job ended with it."""
        data = self.client.events(self._cursor, job=self.id, timeout=timeout, kinds=kinds)
        with self._lock:
            if self._instance is None:
                self._instance = data["instance"]
            elif data["instance"] != self._instance:
                raise WorkerError(f"the worker restarted while job {self.id} was {self._info.state}; submit it again")
            fresh = [e for e in data["events"] if e.seq > self._cursor]
            if fresh:
                self._cursor = fresh[-1].seq
            self._events.extend(fresh)
        for event in fresh:
            if event.kind in protocol.FINAL_EVENTS:
                self._info = self.client.job(self.id)
        if data.get("truncated") and self._info.state not in protocol.FINAL_STATES:
            self._info = self.client.job(self.id)  # some events fell out of the ring: ask for the state
        return fresh

    def stream(self, timeout: float | None = None, *, poll_s: float = 10.0) -> Iterator[Event]:
        """Yield events as they come until the job ends (or ``timeout`` s pass: WorkerError)."""
        box: list[Event] = []
        for _ in self._until_final(timeout, poll_s, box.append):
            yield from box
            box.clear()

    def _until_final(self, timeout: float | None, poll_s: float, on_event: Callable[[Event], object],
                     tick: Callable[[], None] | None = None,
                     kinds: Iterable[str] | None = None) -> Iterator[None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if tick is not None:
                tick()
            wait = poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic()))
            fresh = self.poll(wait, kinds=kinds)
            for event in fresh:
                on_event(event)
            yield None
            if self._info.state in protocol.FINAL_STATES:
                return
            if not fresh:
                self._info = self.client.job(self.id)  # a final event may have fallen out of the ring
                if self._info.state in protocol.FINAL_STATES:
                    return
            if deadline is not None and time.monotonic() >= deadline:
                raise WorkerError(f"job {self.id} did not finish within {timeout:g} s (it is {self._info.state})")

    def result(self, timeout: float | None = None, *, on_progress: Callable[[RemoteProgress], Any] | None = None,
               cancel: _EventLike | None = None) -> RemoteResult:
        """Wait for the end: the images, or the job's error raised as the engine's class
        (CancelledError, RecipeError, OutOfMemoryError ...). ``cancel``: an Event-like object
        checked while waiting; when set, the job is cancelled."""
        cancel_sent = [False]

        def tick() -> None:
            if cancel is not None and not cancel_sent[0] and cancel.is_set():
                cancel_sent[0] = True
                self.cancel()

        def on_event(event: Event) -> None:
            if event.kind == protocol.EV_PROGRESS and on_progress is not None:
                png = event.preview_png
                on_progress(RemoteProgress(step=event.data.get("step", 0), total=event.data.get("total", 0),
                                           preview=_decode_png(png) if png else None,
                                           image_index=event.data.get("image_index", 0), preview_png=png, job=self.id))

        # Nobody watches progress: sleep until the end instead of waking on every step.
        kinds = None if on_progress is not None else protocol.FINAL_EVENTS
        for _ in self._until_final(timeout, 0.25 if cancel is not None else 10.0, on_event, tick, kinds):
            pass
        info = self._info
        if info.state != protocol.DONE:
            raise error_from_dict(info.error or {"code": "error", "message": f"job {self.id} ended {info.state}"})
        results = sorted(info.results, key=lambda r: r.get("index", 0))
        pngs = [self.client.fetch_result(r["sha256"]) for r in results]
        return RemoteResult(self.id, pngs, [int(r["seed"]) for r in results], Recipe.from_dict(info.recipe),
                            [r["path"] for r in results], [r["sha256"] for r in results])


class _NotProven(AuthError):
    """The peer did not answer the hello challenge with our token: a wrong token, or not the
    worker at all (a squatter on the port). Either way it never gets the token."""


def _error_from_response(status: int, body: bytes) -> BrushworkError:
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return WorkerError(f"the worker answered HTTP {status} without a readable error")
    if status == 401 or code == "unauthorized":
        return AuthError(message)
    if code == "protocol_mismatch":
        return WorkerError(message)
    rebuilt = error_from_dict(err)
    if type(rebuilt) is BrushworkError:
        rebuilt.code = code  # keep the worker's code (not_found, bad_request, ...) for callers
    return rebuilt


# --------------------------------------------------------------------------------------------
# finding or starting the worker


# re-exported for callers that used them from here
read_worker_info = launch.read_worker_info
read_token = launch.read_token


def connect(url: str | None = None, *, token: str | None = None, start: bool = True, timeout: float = 60.0,
            client_key: str | None = None, python: str | None = None, request_timeout: float = 30.0) -> Client:
    """A Client of a healthy worker.

    ``url`` (or ``$BRUSHWORK_WORKER_URL``): that worker, which must answer. Without one: the worker
    named in ``worker.json`` under the state dir; if none answers and ``start`` is true, start one
    (``<python> -m brushwork.worker``; python = the ``python`` argument, ``$BRUSHWORK_PYTHON``, the
    one in worker.json, or this interpreter) under a file lock so two clients never start two,
    and wait up to ``timeout`` s until it answers.
    """
    url = url or os.environ.get(protocol.ENV_URL) or None
    if url:
        client = Client(url, token or launch.read_token(), client_key=client_key, token_file=_token_file(token),
                        timeout=request_timeout)
        client.health()
        return client
    found = _answering(token, client_key, request_timeout)
    if found is not None:
        return found
    if not start:
        raise WorkerError("no worker is running: start one with `brushwork worker` (or connect(start=True))")
    state = paths.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    with launch.FileLock(state / protocol.LOCK_FILE, timeout):
        found = _answering(token, client_key, request_timeout)  # another client may have started it
        if found is not None:
            return found

        def probe(info: dict[str, Any]) -> Client | None:
            client = Client(info["url"], token or launch.read_token(), client_key=client_key,
                            token_file=_token_file(token), timeout=request_timeout)
            try:
                client.health()
                return client
            except _NotProven:
                return None  # not the worker we started (yet): keep waiting
            except AuthError:
                raise
            except WorkerError:
                return None

        return launch.start_worker(python, timeout, probe)


def _token_file(token: str | None) -> Path | None:
    """The token file a client re-reads after a rotation (none when the caller gave the token)."""
    return None if token else paths.state_dir() / protocol.TOKEN_FILE


def _answering(token: str | None, client_key: str | None, request_timeout: float) -> Client | None:
    info = launch.read_worker_info()
    if info is None:
        return None
    client = Client(info["url"], token or launch.read_token(), client_key=client_key, token_file=_token_file(token),
                    timeout=min(request_timeout, 5.0))
    try:
        client.health()
    except _NotProven:
        return None  # not our worker (a squatter on a dead worker's port): start one
    except AuthError:
        raise
    except WorkerError:
        return None
    client.timeout = request_timeout
    return client
