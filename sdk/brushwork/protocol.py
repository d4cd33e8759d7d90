"""The worker protocol as plain data (stdlib only: it travels into Blender with the client).

Everything both sides must agree on lives here: the version, the URL prefix, header names, job
states, event kinds, limits, and the small records that cross the wire. ``docs/protocol.md``
describes the HTTP endpoints with examples.

Versioning: ``PROTOCOL_VERSION`` is ``"MAJOR.MINOR"``. Every response carries it (header
``X-Brushwork-Protocol`` and a ``"protocol"`` field in JSON bodies); every request sends it too.
Minor versions only add fields, so any two peers with the same major understand each other; a
different major is refused with a clear error on both sides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import WorkerError

PROTOCOL_VERSION = "1.0"
PROTOCOL_MAJOR = 1
API_PREFIX = "/v1"
DEFAULT_PORT = 7861
DEFAULT_HOST = "127.0.0.1"

# Environment variables both sides read.
ENV_PORT = "BRUSHWORK_WORKER_PORT"  # the port `brushwork worker` uses when --port is not given
ENV_PYTHON = "BRUSHWORK_PYTHON"  # the interpreter connect() starts the worker with
ENV_URL = "BRUSHWORK_WORKER_URL"  # connect() talks to this worker instead of reading worker.json

# Headers.
H_PROTOCOL = "X-Brushwork-Protocol"
H_CLIENT = "X-Brushwork-Client"  # a per-client secret key; the worker derives the client id from it
H_INSTANCE = "X-Brushwork-Instance"  # changes every time the worker starts (events restart at 1)

# Files under paths.state_dir().
TOKEN_FILE = "worker.token"
INFO_FILE = "worker.json"
LOCK_FILE = "worker.lock"
LOG_FILE = "worker.log"
HISTORY_FILE = "history.sqlite"

# The challenge a client sends before it sends the token (``GET /v1/hello?nonce=``): hex, this long.
HELLO_NONCE_HEX = 32

# Limits. Anything larger is refused with 413 before it is read.
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096 * 2  # an input image with more pixels is refused when used
MAX_LONG_POLL_S = 30.0
EVENT_RING_SIZE = 512  # events kept per client for replay (final states are also in history)

# Job states and event kinds.
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
JOB_STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINAL_STATES = (DONE, FAILED, CANCELLED)

EV_QUEUED, EV_STARTED, EV_PROGRESS, EV_RESULT, EV_FAILED, EV_CANCELLED = (
    "queued", "started", "progress", "result", "failed", "cancelled")
EVENT_KINDS = (EV_QUEUED, EV_STARTED, EV_PROGRESS, EV_RESULT, EV_FAILED, EV_CANCELLED)
FINAL_EVENTS = (EV_RESULT, EV_FAILED, EV_CANCELLED)

DEFAULT_DESTINATION = "default"

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")


def is_sha256_hex(text: str) -> bool:
    return bool(_SHA256_HEX.match(text))


def is_job_id(text: str) -> bool:
    return bool(_JOB_ID.match(text))


def major_of(version: Any) -> int | None:
    """The major number of ``"1.0"``-style versions; None when it is not one."""
    if not isinstance(version, str):
        return None
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() and len(head) < 6 else None


def check_peer_version(version: Any, *, peer: str) -> None:
    """Raise WorkerError when ``peer`` speaks another major version of the protocol."""
    major = major_of(version)
    if major is None:
        raise WorkerError(f"{peer} did not say which Brushwork protocol it speaks (is it a Brushwork worker?)")
    if major != PROTOCOL_MAJOR:
        raise WorkerError(
            f"{peer} speaks Brushwork protocol {version}, this side speaks {PROTOCOL_VERSION}: "
            "update Brushwork so that both are the same major version")


# --------------------------------------------------------------------------------------------
# records that cross the wire


@dataclass
class Event:
    """One numbered event of a client's stream. ``seq`` grows by one per event of the worker
    instance; a client resumes with ``GET /v1/events?since=<last seq seen>``."""

    seq: int
    kind: str
    job: str
    time: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def preview_png(self) -> bytes | None:
        """The step preview of a progress event as PNG bytes (None when it has none)."""
        text = self.data.get("preview_png")
        return base64.b64decode(text) if isinstance(text, str) else None

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "job": self.job, "time": self.time, "data": self.data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(seq=int(data["seq"]), kind=str(data["kind"]), job=str(data["job"]),
                   time=float(data.get("time", 0.0)), data=dict(data.get("data") or {}))


@dataclass
class JobInfo:
    """What ``GET /v1/jobs/<id>`` says about a job."""

    id: str
    state: str
    position: int | None = None  # jobs ahead of it (0: running or next); None once finished
    live: bool = False
    destination: str = DEFAULT_DESTINATION
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    recipe: dict[str, Any] | None = None  # the recipe as submitted, or as run once done
    results: list[dict[str, Any]] = field(default_factory=list)  # [{"sha256", "path", "seed", "index"}]
    error: dict[str, Any] | None = None  # {"code", "message", ...} when failed or cancelled

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobInfo:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def encode_json(payload: dict[str, Any]) -> bytes:
    """A JSON body with the protocol version in it."""
    return json.dumps({"protocol": PROTOCOL_VERSION, **payload}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; ValueError (with a short reason) when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:
        raise ValueError("body is nested too deeply") from None


def hello_proof(token: str, nonce: str) -> str:
    """The worker's answer to a client's ``/v1/hello`` challenge: it proves the worker knows the
    token without the client sending it (a process squatting the port after a crash cannot answer).
    The key is derived from the token for this one use, so the answer is no other value the worker
    computes. Here, in the shared protocol module, so the worker and the client use one derivation."""
    key = hmac.new(token.encode("ascii", "replace"), b"brushwork-hello-v1", hashlib.sha256).digest()
    return hmac.new(key, nonce.encode("ascii"), hashlib.sha256).hexdigest()
