"""Memory: what a loaded model costs, how much we may keep, and turning OOM into a clear error."""

from __future__ import annotations

import gc
import os
import re
from contextlib import contextmanager

import torch

from ..errors import OutOfMemoryError

GIB = 1024**3


def module_bytes(*modules) -> int:
    """Bytes held by the parameters and buffers of these modules (each tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue
        for tensor in list(module.parameters()) + list(module.buffers()):
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def pipeline_bytes(pipe) -> int:
    components = getattr(pipe, "components", {}) or {}
    return module_bytes(*components.values())


def default_budget(device: str) -> int:
    """How many bytes of models the Studio keeps loaded before evicting the least recently used.

    GPUs: 75 % of the card (the rest is activations). CPU/MPS: half the machine's RAM.
    """
    kind = torch.device(device).type
    if kind == "cuda":
        index = torch.device(device).index or 0
        return int(torch.cuda.get_device_properties(index).total_memory * 0.75)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * GIB
    return int(ram * 0.5)


def release_cached_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


_TRIED = re.compile(r"[Tt]ried to allocate\s+([0-9.]+)\s*([KMGT]i?B|bytes)")
_CPU_TRIED = re.compile(r"you tried to allocate\s+([0-9]+)\s*bytes")
_UNITS = {"bytes": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
          "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}


def needed_bytes(message: str) -> int | None:
    """The allocation size torch reported in an out-of-memory message, if any."""
    m = _CPU_TRIED.search(message)
    if m:
        return int(m.group(1))
    m = _TRIED.search(message)
    if m:
        return int(float(m.group(1)) * _UNITS[m.group(2)])
    return None


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc)
        return "out of memory" in text.lower() or "can't allocate memory" in text
    return False


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} bytes"


@contextmanager
def oom_as_error(what: str):
    """Turn torch's OOM into OutOfMemoryError (with the bytes it wanted) and free the cache,
    so the caller stays usable for the next, smaller job."""
    try:
        yield
    except Exception as exc:
        if not is_oom(exc):
            raise
        wanted = needed_bytes(str(exc))
        need = f" (it tried to allocate {_human(wanted)} more)" if wanted else ""
        message = (f"out of memory while {what}{need}: try a smaller size or batch, "
                   "fewer ControlNets, or unload other models")
        del exc  # drop the traceback's frames (and their tensors) before freeing memory
        release_cached_memory()
        raise OutOfMemoryError(message, wanted) from None
