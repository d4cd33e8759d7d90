"""Errors every layer shares (stdlib only).

Each error carries a stable ``code`` so that the worker can send it over the wire and the client
can raise the same class again on the other side; the CLI prints ``str(err)`` as its one line.
"""

from __future__ import annotations

from typing import Any


class BrushworkError(Exception):
    """Base of every error Brushwork raises on purpose. ``str()`` is one human line."""

    code = "error"
    http_status = 400

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self)}


class RecipeError(BrushworkError, ValueError):
    """A recipe field is invalid. Names the field and the reason."""

    code = "invalid_recipe"

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "field": self.field}


class PresetError(BrushworkError, ValueError):
    code = "invalid_preset"


class InputImageError(BrushworkError, ValueError):
    """An input image (init, mask, control) is missing, corrupt, too large or the wrong size."""

    code = "bad_image"


class ModelNotFoundError(BrushworkError, LookupError):
    """A model name/path resolves to nothing, or is offline and not cached."""

    code = "model_not_found"
    http_status = 404


class ModelError(ModelNotFoundError):
    """A model exists but cannot be used: corrupt, truncated, or of a family we do not load.
    (A ModelNotFoundError too, so code that handles "no usable model" catches both.)"""

    code = "bad_model"
    http_status = 422


class SettingsError(BrushworkError, ValueError):
    """settings.toml is unreadable or has a wrong key/value (names the file and the key)."""

    code = "invalid_settings"


class UnsafeCheckpointError(BrushworkError):
    """A pickle checkpoint (.ckpt/.pt/.bin) was refused: loading one can run arbitrary code."""

    code = "pickle_refused"


class CancelledError(BrushworkError):
    code = "cancelled"
    http_status = 409


class OutOfMemoryError(BrushworkError, MemoryError):
    """The device ran out of memory. Carries what was asked for when torch tells us."""

    code = "out_of_memory"
    http_status = 507

    def __init__(self, message: str, needed_bytes: int | None = None):
        self.needed_bytes = needed_bytes
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "needed_bytes": self.needed_bytes}


class AdapterError(BrushworkError, ValueError):
    """A LoRA or embedding file cannot be used with this model (wrong family, not a LoRA, corrupt)."""

    code = "bad_adapter"


class MissingDependencyError(BrushworkError):
    """An optional package is needed for this feature and is not installed."""

    code = "missing_dependency"
    http_status = 501


class WorkerError(BrushworkError):
    """The worker could not be reached, refused us, or died while holding our job."""

    code = "worker_error"
    http_status = 503


class AuthError(WorkerError):
    code = "unauthorized"
    http_status = 401


class RequestError(BrushworkError):
    """A request the worker cannot use (malformed HTTP, unknown method or version, bad field)."""

    code = "bad_request"
    http_status = 400


class MethodNotAllowedError(RequestError):
    code = "method_not_allowed"
    http_status = 405


class HTTPVersionError(RequestError):
    code = "bad_http_version"
    http_status = 400


class QueueFullError(BrushworkError):
    """Too many jobs waiting (for this client or in all): wait for some to finish, or cancel."""

    code = "queue_full"
    http_status = 429

    def __init__(self, message: str, limit: int | None = None):
        self.limit = limit
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "limit": self.limit}


class BusyError(BrushworkError):
    """Too many requests of one kind at once (uploads): retry in a moment."""

    code = "busy"
    http_status = 429


class OutputFolderError(BrushworkError):
    """The destination folder cannot take the result: read-only, full, or not a folder."""

    code = "output_unwritable"
    http_status = 409


class HistoryError(WorkerError):
    """The job history (history.sqlite) cannot be written now (locked by another program, disk full)."""

    code = "history_unavailable"
    http_status = 503


_BY_CODE: dict[str, type[BrushworkError]] = {
    cls.code: cls
    for cls in (
        BrushworkError,
        RecipeError,
        PresetError,
        InputImageError,
        ModelNotFoundError,
        ModelError,
        SettingsError,
        UnsafeCheckpointError,
        MissingDependencyError,
        AdapterError,
        CancelledError,
        OutOfMemoryError,
        WorkerError,
        AuthError,
        RequestError,
        MethodNotAllowedError,
        HTTPVersionError,
        QueueFullError,
        BusyError,
        OutputFolderError,
        HistoryError,
    )
}


def error_from_dict(data: dict[str, Any]) -> BrushworkError:
    """Rebuild an error sent by the worker as the same class the engine raised."""
    code = str(data.get("code", "error"))
    message = str(data.get("message", "unknown error"))
    cls = _BY_CODE.get(code, BrushworkError)
    if cls is RecipeError:
        field = str(data.get("field", "recipe"))
        prefix = f"{field}: "
        return RecipeError(field, message[len(prefix):] if message.startswith(prefix) else message)
    if cls is OutOfMemoryError:
        return OutOfMemoryError(message, data.get("needed_bytes"))
    if cls is QueueFullError:
        limit = data.get("limit")
        return QueueFullError(message, limit if isinstance(limit, int) else None)
    err = cls(message)
    return err
