"""HTTP/1.1 routes under /v1/ (stdlib http.server; one thread per connection).

Every request passes, in order: the browser-origin rule (403), the Host rule when bound to
loopback (403), the bearer token (401), the protocol major (400); then its route. Bodies are
read only after those checks and only up to a limit (413 beyond). Anything a client sends that we
cannot use is a 4xx with ``{"error": {"code", "message"}}``; a 5xx means a bug in the worker.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .. import __version__, protocol
from ..errors import (
    BrushworkError,
    BusyError,
    HTTPVersionError,
    InputImageError,
    MethodNotAllowedError,
    RecipeError,
    RequestError,
)
from ..recipe import Recipe, is_content_ref
from . import auth, model_paths
from .hub import NotFound

log = logging.getLogger("brushwork.worker")

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
MAX_NAME_CHARS = 200  # a model, VAE, LoRA, embedding or ControlNet name (no file name is longer)
MAX_PATH_CHARS = 4096  # the same as a path (where model_paths allows one): Linux's PATH_MAX
# A raw control signal's JSON, by kind: an OpenPose person with face and hands is ~3 KiB, so a
# pose signal holds ~20 such people (a parsed one weighs ~4x its JSON in memory, and up to
# MAX_QUEUED_TOTAL of them wait); a depth signal is a reference and a few numbers (its pixels are
# an upload). Larger is a 400 invalid_recipe.
MAX_SIGNAL_BYTES = {"pose": 64 * 1024, "depth": 4 * 1024}
MAX_CONCURRENT_UPLOADS = 4  # uploads read at once (each up to MAX_UPLOAD_BYTES); more is 429 busy
RETRY_AFTER_S = 2  # what a 429 (queue full, uploads busy) or 503 (history locked) asks a client to wait


class Problem(BrushworkError):
    """A request we refuse: an HTTP status, a code and a one-line message."""

    def __init__(self, status: int, code: str, message: str):
        self.http_status = status
        self.code = code
        super().__init__(message)


class WorkerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, worker, *, loopback_only: bool):
        self.worker = worker  # brushwork.worker.app.Worker: token, hub, history, assets, runner
        self.loopback_only = loopback_only
        self.uploads = threading.BoundedSemaphore(MAX_CONCURRENT_UPLOADS)
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):  # a dropped socket is not worth a traceback
        log.debug("connection error from %s:\n%s", client_address, traceback.format_exc())


class Handler(BaseHTTPRequestHandler):
    server: WorkerHTTPServer  # the server that made this handler (typeshed only knows BaseServer)
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # garbage request lines still get a status line (not HTTP/0.9)
    server_version = f"brushwork-worker/{__version__}"
    sys_version = ""
    timeout = 60  # seconds a connection may sit idle or dribble a body

    # ---- plumbing -----------------------------------------------------------------------------

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code, message=None, explain=None):
        """Malformed requests (caught by http.server itself) get our JSON error shape too, and a
        4xx: an unknown method or HTTP version is the client's mistake, not the worker's (5xx)."""
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        error: BrushworkError
        if code == HTTPStatus.NOT_IMPLEMENTED:
            error = MethodNotAllowedError(f"method {self.command[:20]!r} is not supported "
                                          "(the API uses GET, POST and PUT)")
        elif code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            error = HTTPVersionError(f"{text}: speak HTTP/1.1 (or 1.0)")
        else:
            error = RequestError(f"malformed HTTP request: {text}")
            error.http_status = code if 400 <= code < 500 else 400
        extra = {"Allow": "GET, POST, PUT"} if error.http_status == 405 else None
        self._send_json(error.http_status, {"error": error.to_dict()}, extra)

    def _send_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send_bytes(status, protocol.encode_json(payload), "application/json", headers)

    def _send_bytes(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(protocol.H_PROTOCOL, protocol.PROTOCOL_VERSION)
        self.send_header(protocol.H_INSTANCE, self.server.worker.instance)
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _fail(self, exc: BrushworkError) -> None:
        status = int(getattr(exc, "http_status", 400) or 400)
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status in (429, 503):
            extra = {"Retry-After": str(RETRY_AFTER_S)}
        self._send_json(status, {"error": exc.to_dict()}, extra)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_OPTIONS(self):  # CORS preflights come from browsers: refused like the rest
        self._dispatch("OPTIONS")

    # ---- checks -------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        try:
            try:
                self._check_caller()
            except _Hello:
                return self._hello()
            url = urlsplit(self.path)
            if not url.path.startswith(protocol.API_PREFIX + "/"):
                raise Problem(404, "not_found",
                              f"no such endpoint {url.path[:100]!r} (the API is under {protocol.API_PREFIX}/)")
            route = [unquote(p) for p in url.path[len(protocol.API_PREFIX) + 1:].split("/") if p]
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=20)
            self._route(method, route, query)
        except (BrushworkError, ValueError) as exc:
            if not isinstance(exc, BrushworkError):
                exc = Problem(400, "bad_request", str(exc)[:300])
            if not self._body_read and (self.headers.get("Content-Length") not in (None, "0")
                                        or self.headers.get("Transfer-Encoding")):
                self.close_connection = True  # the unread body would be taken for the next request
            self._fail(exc)
        except (ConnectionError, TimeoutError) as exc:  # the client went away (a long-poll it gave up on)
            log.debug("%s %s: the client disconnected (%s)", method, self.path[:100], type(exc).__name__)
            self.close_connection = True
        except Exception:  # a bug: say so without dying, and log the traceback
            log.error("internal error on %s %s:\n%s", method, self.path[:200], traceback.format_exc())
            self.close_connection = True
            self._send_json(500, {"error": {"code": "internal_error",
                                            "message": "internal error in the worker (see its log)"}})

    def _check_caller(self) -> None:
        why = auth.refused_origin(self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site"))
        if why:
            raise Problem(403, "forbidden_origin", why)
        if self.server.loopback_only:
            host = (self.headers.get("Host") or "").strip()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host and name not in _LOOPBACK_HOSTS:
                raise Problem(403, "forbidden_host",
                              f"Host {host[:80]!r} is not loopback (the worker serves this machine only)")
        worker = self.server.worker
        if self.path.startswith(protocol.API_PREFIX + "/hello?") and self.command == "GET":
            raise _Hello()  # the one request answered without the token: the worker proves itself
        if not auth.bearer_ok(self.headers.get("Authorization"), worker.token):
            raise Problem(401, "unauthorized",
                          "missing or wrong token: send 'Authorization: Bearer <token>' "
                          f"(the token is in {worker.token_path})")
        version = self.headers.get(protocol.H_PROTOCOL)
        if version is not None and protocol.major_of(version) != protocol.PROTOCOL_MAJOR:
            raise Problem(400, "protocol_mismatch",
                          f"this worker speaks Brushwork protocol {protocol.PROTOCOL_VERSION}, "
                          f"the client {version[:20]!r}: "
                          "update Brushwork so both have the same major version")
        self.client_id = auth.client_id(worker.token, self.headers.get(protocol.H_CLIENT))

    def _hello(self) -> None:
        """``GET /v1/hello?nonce=<hex>`` → ``{"proof": HMAC(token-derived key, nonce)}``: a client
        checks it before it sends the token to whatever listens on the port."""
        self._discard_body()
        nonce = parse_qs(urlsplit(self.path).query).get("nonce", [""])[0]
        if len(nonce) != protocol.HELLO_NONCE_HEX or not all(c in "0123456789abcdef" for c in nonce):
            raise Problem(400, "bad_request", f"nonce: {protocol.HELLO_NONCE_HEX} lowercase hex digits")
        w = self.server.worker
        self._send_json(200, {"proof": protocol.hello_proof(w.token, nonce), "instance": w.instance})

    def _read_body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise Problem(411, "length_required", "send the body with a Content-Length (no chunked bodies)")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise Problem(411, "length_required", "a Content-Length header is required")
        if not _digits(raw):
            raise Problem(400, "bad_request", f"Content-Length must be a whole number, got {raw[:40]!r}")
        length = int(raw)
        if length > limit:
            raise Problem(413, "too_large", f"body of {length} bytes is over the limit of {limit} bytes")
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            self.close_connection = True
            raise Problem(400, "bad_request", f"body ended after {len(body)} of {length} bytes")
        return body

    def _read_json(self) -> dict:
        body = self._read_body(protocol.MAX_JSON_BYTES)
        try:
            data = protocol.decode_json(body)
        except ValueError as exc:
            raise Problem(400, "bad_json", str(exc)) from None
        if not isinstance(data, dict):
            raise Problem(400, "bad_json", f"the body must be a JSON object, got {type(data).__name__}")
        return data

    # ---- routes -------------------------------------------------------------------------------

    def _route(self, method: str, route: list[str], query: dict) -> None:
        w = self.server.worker
        key = (method, route[0] if route else "", len(route))
        if key == ("GET", "health", 1):
            return self._send_json(200, w.health())
        if key == ("POST", "assets", 2) and route[1] == "check":
            return self._assets_check()
        if key == ("PUT", "assets", 2):
            return self._asset_put(route[1])
        if key == ("POST", "jobs", 1):
            return self._submit()
        if key == ("GET", "jobs", 1):
            return self._send_json(200, {"jobs": [j.to_dict() for j in w.hub.list(self.client_id)]})
        if key == ("GET", "jobs", 2):
            return self._send_json(200, {"job": w.job_info(self.client_id, _job_id(route[1])).to_dict()})
        if key == ("POST", "jobs", 2) and route[1] == "cancel":  # cancel all of this client's jobs
            self._discard_body()
            return self._send_json(200, {"cancelled": w.hub.cancel_all(self.client_id)})
        if key == ("POST", "jobs", 3) and route[2] == "cancel":
            self._discard_body()
            return self._send_json(200, {"job": w.hub.cancel(self.client_id, _job_id(route[1])).to_dict()})
        if key == ("GET", "events", 1):
            return self._events(query)
        if key == ("GET", "results", 2):
            return self._result(route[1])
        if key == ("GET", "models", 1):
            return self._send_json(200, {"models": w.list_models()})
        if key == ("GET", "destinations", 1):
            return self._send_json(200, {"destinations": sorted(w.outputs.folders)})
        if key == ("GET", "history", 1):
            limit = _int_param(query, "limit", 50, 1, 1000)
            rows = w.history.list(self.client_id, limit=limit)
            return self._send_json(200, {"jobs": [info.to_dict() for _client, info in rows]})
        known = {"health", "assets", "jobs", "events", "results", "models", "destinations", "history"}
        if route and route[0] in known:
            raise Problem(405 if method not in ("GET", "POST", "PUT") else 404, "no_route",
                          f"{method} {self.path[:100]} is not an endpoint (see docs/protocol.md)")
        raise Problem(404, "not_found", f"no such endpoint {self.path[:100]!r}")

    def _discard_body(self) -> None:
        if self.headers.get("Content-Length") not in (None, "0"):
            self._read_body(protocol.MAX_JSON_BYTES)

    def _assets_check(self) -> None:
        data = self._read_json()
        refs = data.get("refs")
        if not isinstance(refs, list) or len(refs) > 1000 or not all(isinstance(r, str) for r in refs):
            raise Problem(400, "bad_request", "'refs' must be a list of at most 1000 'sha256:<hex>' strings")
        bad = [r[:80] for r in refs if not is_content_ref(r)]
        if bad:
            raise Problem(400, "bad_request", f"not sha256 references: {bad[:3]}")
        store = self.server.worker.assets
        self._send_json(200, {"missing": [r for r in refs if not store.has(r)]})

    def _asset_put(self, digest: str) -> None:
        digest = digest.removeprefix("sha256:")
        if not protocol.is_sha256_hex(digest):
            raise Problem(400, "bad_request", "PUT /v1/assets/<64 lowercase hex digits of the sha256>")
        uploads = self.server.uploads
        if not uploads.acquire(blocking=False):
            raise BusyError(f"{MAX_CONCURRENT_UPLOADS} uploads are already being received: retry in a moment")
        try:
            body = self._read_body(protocol.MAX_UPLOAD_BYTES)
            ref = self.server.worker.put_asset(body, digest)
        finally:
            uploads.release()
        self._send_json(201, {"ref": ref, "size": len(body)})

    def _submit(self) -> None:
        data = self._read_json()
        unknown = sorted(set(data) - {"recipe", "destination", "live", "protocol"})
        if unknown:
            raise Problem(400, "bad_request", f"unknown fields {unknown[:5]} (known: recipe, destination, live)")
        live = data.get("live", False)
        if not isinstance(live, bool):
            raise Problem(400, "bad_request", f"'live' must be true or false, got {type(live).__name__}")
        w = self.server.worker
        destination = w.outputs.check(data.get("destination"))
        recipe = parse_recipe(data.get("recipe"), w.assets, peer=self.client_address[0])
        w.outputs.check_writable(destination)
        job, position = w.hub.submit(self.client_id, recipe, destination, live)
        self._send_json(201, {"job": job.info(position).to_dict(), "position": position})

    def _events(self, query: dict) -> None:
        since = _int_param(query, "since", 0, 0, 2**62)
        timeout = _float_param(query, "timeout", 0.0, 0.0, protocol.MAX_LONG_POLL_S)
        job = query.get("job", [None])[0]
        if job is not None:
            job = _job_id(job)
        kinds = _kinds_param(query)
        w = self.server.worker
        events, truncated = w.events.read(self.client_id, since, job=job, timeout=timeout, kinds=kinds)
        self._send_json(200, {"instance": w.instance, "events": [e.to_dict() for e in events],
                              "last_seq": w.events.last_seq, "truncated": truncated})

    def _result(self, digest: str) -> None:
        digest = digest.removeprefix("sha256:").removesuffix(".png")
        if not protocol.is_sha256_hex(digest):
            raise Problem(400, "bad_request", "GET /v1/results/<64 lowercase hex digits>")
        w = self.server.worker
        path = w.history.result_path(digest, self.client_id)
        if path is None:  # a job still in memory whose history write is pending
            in_memory = w.hub.result_path(self.client_id, digest)
            path = Path(in_memory) if in_memory else None
        if path is None:
            raise NotFound(f"no result {digest[:12]}... of this client")
        try:
            body = path.read_bytes()
        except OSError:
            raise NotFound(f"result {digest[:12]}... was written to {path} but is no longer there") from None
        self._send_bytes(200, body, "image/png", {"X-Brushwork-Path": json.dumps(str(path))})


class _Hello(Exception):
    """Raised by the caller check for the hello challenge (answered without the token)."""


def parse_recipe(data, assets, peer: str = "") -> Recipe:
    """A recipe from the network: valid, images by sha256 only (and uploaded), models by name, or
    by path where model_paths allows it for this ``peer`` (the client's address)."""
    if data is None:
        raise RecipeError("recipe", "is missing")
    try:
        recipe = Recipe.from_dict(data).validate()
    except BrushworkError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        raise RecipeError("recipe", f"has the wrong shape ({type(exc).__name__}: {str(exc)[:200]})") from None
    for i, control in enumerate(recipe.controls):
        if control.signal is not None:
            size = len(json.dumps(control.signal, separators=(",", ":")))
            limit = MAX_SIGNAL_BYTES.get(control.kind, 0)
            if size > limit:
                raise RecipeError(f"controls[{i}].signal", f"a {control.kind} signal of {size} bytes is over "
                                                           f"the limit of {limit} bytes")
    for where, ref in recipe.image_refs().items():
        if not is_content_ref(ref):
            raise InputImageError(f"{where}: the worker takes uploaded images only: PUT the bytes to "
                                  "/v1/assets/<sha256> and send 'sha256:<hex>' (never a path)")
        if not assets.has(ref):
            raise InputImageError(f"{where}: {ref[:19]}... is not uploaded yet (PUT /v1/assets/<hex> first)")
    names = [("model", recipe.model), ("vae", recipe.vae)]
    names += [(f"controls[{i}].model", c.model) for i, c in enumerate(recipe.controls)]
    names += [(f"loras[{i}].name", lora.name) for i, lora in enumerate(recipe.loras)]
    names += [(f"embeddings[{i}].name", e.name) for i, e in enumerate(recipe.embeddings)]
    names += [(f"regions[{i}].loras[{j}].name", lora.name)  # a region's own LoRAs (engine/regions.py)
              for i, r in enumerate(recipe.regions) for j, lora in enumerate(r.loras)]
    names += [("upscale.model", recipe.upscale.model)] if recipe.upscale is not None else []  # an SR model
    names += [(f"references[{i}].model", r.model) for i, r in enumerate(recipe.references)]  # IP-Adapters
    for where, name in names:
        limit = MAX_PATH_CHARS if name and looks_like_path(name) else MAX_NAME_CHARS
        if name and len(name) > limit:
            raise RecipeError(where, f"a model name of {len(name)} characters is too long (at most {limit})")
        if name and looks_like_path(name):
            model_paths.check_model_path(where, name, peer)
    return recipe


def looks_like_path(name: str) -> bool:
    """Paths and URLs, which the worker never opens for a client. Hub ids (``org/name``) pass."""
    return (name.startswith(("/", "\\", "~", ".")) or "\\" in name or ":" in name or ".." in name
            or name.count("/") > 1)


def _job_id(text: str) -> str:
    if not protocol.is_job_id(text):
        raise Problem(400, "bad_request", f"{text[:40]!r} is not a job id (16 hex digits)")
    return text


def _digits(text: str | None) -> bool:
    return bool(text and text.isascii() and text.isdigit() and len(text) < 19)


def _int_param(query: dict, name: str, default: int, lo: int, hi: int) -> int:
    values = query.get(name)
    if not values:
        return default
    text = values[0].strip()
    if not (text.isascii() and text.lstrip("-").isdigit() and len(text) < 20):
        raise Problem(400, "bad_request", f"'{name}' must be a whole number, got {text[:30]!r}")
    return max(lo, min(hi, int(text)))


def _kinds_param(query: dict) -> frozenset[str] | None:
    """``kinds=result,failed,cancelled``: only these event kinds (absent = all)."""
    raw = query.get("kinds", [None])[0]
    if raw is None:
        return None
    kinds = frozenset(k for k in raw.split(",") if k)
    unknown = sorted(kinds - set(protocol.EVENT_KINDS))
    if unknown or not kinds:
        shown = ", ".join(repr(k[:20]) for k in unknown[:5]) or "(none given)"
        raise Problem(400, "bad_request", f"kinds: unknown event kind(s) {shown} "
                                          f"(known: {', '.join(protocol.EVENT_KINDS)})")
    return kinds


def _float_param(query: dict, name: str, default: float, lo: float, hi: float) -> float:
    values = query.get(name)
    if not values:
        return default
    try:
        value = float(values[0])
    except ValueError:
        raise Problem(400, "bad_request", f"'{name}' must be a number, got {values[0][:30]!r}") from None
    if value != value:  # NaN
        raise Problem(400, "bad_request", f"'{name}' must be a number, got NaN")
    return max(lo, min(hi, value))
