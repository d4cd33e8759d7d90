"""Who may talk to the worker: the bearer token, the browser-origin rule, and client ids."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .. import protocol


def load_or_create_token(state_dir: Path) -> tuple[str, Path]:
    """The worker's token, created on first start in a file only this user can read (0600)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / protocol.TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            _tighten(path)
            return token, path
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    # O_EXCL + mode 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token, path


def rotate_token(state_dir: Path) -> tuple[str, Path]:
    """A new token (``brushwork worker --new-token``): the old one stops working at the next start,
    and clients re-read the file when the worker refuses the old one."""
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        (state_dir / protocol.TOKEN_FILE).unlink()
    except FileNotFoundError:
        pass
    return load_or_create_token(state_dir)


def _tighten(path: Path) -> None:
    try:
        if os.name == "posix" and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:
        pass


def bearer_ok(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not header or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer "):].strip().encode("utf-8", "replace")
    return hmac.compare_digest(given, token.encode("ascii"))


def refused_origin(origin: str | None, fetch_site: str | None) -> str | None:
    """Why a request from a web page is refused, or None for a tool's request.

    Native clients (Blender, the canvas, scripts, curl) send no Origin. Browsers add one to
    cross-origin fetches (and ``Sec-Fetch-Site``); a web page has no business driving the GPU,
    and without this rule any site could try its luck against a loopback port.
    """
    if origin is not None:
        return f"requests from web pages are refused (Origin: {origin[:80]!r})"
    if fetch_site is not None and fetch_site.strip().lower() not in ("none", "same-origin"):
        return f"requests from web pages are refused (Sec-Fetch-Site: {fetch_site[:40]!r})"
    return None


def client_id(token: str, key: str | None) -> str:
    """A client's id, derived on the server from the key it sends (``X-Brushwork-Client``).

    Ids are shown in job listings; keys are not. Deriving one from the other with the worker's
    token means knowing an id does not let anyone act as that client.
    """
    key = (key or "anonymous")[:256]
    return hmac.new(token.encode("ascii"), key.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:16]
