"""Measuring a row's time and peak memory, and the memory a device has (what the estimate uses).

On CUDA the figures are torch's allocator (peak allocated since a reset); elsewhere the process's
resident memory from /proc (VmHWM, reset through /proc/self/clear_refs, as benchmarks do). A
worker on this machine is read through /proc/<pid> (its lifetime peak: it cannot be reset from
outside). Where nothing can be read, the figure is None and the estimate says so.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

GIB = 1024**3


@dataclass
class Measure:
    seconds: float = 0.0
    peak_bytes: int | None = None  # the highest memory use while the row ran
    resident_bytes: int | None = None  # what stayed in use after it (models kept warm)


@contextlib.contextmanager
def measured(device: str) -> Iterator[Measure]:
    """Time and peak memory of the block, in this process, on ``device``."""
    m = Measure()
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak()
    start = time.perf_counter()
    yield m
    m.seconds = time.perf_counter() - start
    if cuda:
        import torch

        m.peak_bytes, m.resident_bytes = torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()
    else:
        status = proc_status(os.getpid())
        m.peak_bytes, m.resident_bytes = status.get("VmHWM"), status.get("VmRSS")


def device_memory(device: str) -> int | None:
    """Bytes the device has in all: the GPU's memory, or this machine's RAM."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return int(torch.cuda.get_device_properties(index).total_memory)
    return machine_memory()


def machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM / VmRSS ... of a process on this machine, in bytes ({} where /proc is not there)."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                    found[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return found


def _reset_peak() -> None:
    # "5" resets the peak resident size (VmHWM) to the current one (Linux 4.0+).
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / 1024**2:.0f} MiB"


def parse_size(text: str) -> int:
    """'24GiB', '512 MiB', '8g', '1000000' → bytes (ValueError otherwise)."""
    units = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
             "g": GIB, "gb": 1000**3, "gib": GIB, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (e.g. 24GiB, 512MiB)") from None
    if unit not in units or value <= 0:
        raise ValueError(f"not a size: {text!r} (e.g. 24GiB, 512MiB)")
    return int(value * units[unit])
