"""Guard against PySide6 6.12.0's reference-count bug on Python 3.11.

In PySide6 6.12.0 (measured here with Python 3.11.7), every binding call that returns ``None``
(``QWidget.update``, ``QTimer.start``, ``QPainter.drawLine``, ``processEvents`` ...) or ``True``
(``SignalInstance.emit``) gives back a reference it never took. ``None`` and ``True`` start with
some thousands of references, so a drawing session — a few calls per mouse move — aborts within
minutes with "Fatal Python error: none_dealloc / bool_dealloc". PySide6 6.11.3 does not do this,
and Python 3.12+ makes these objects immortal, so neither needs anything.

The canvas cannot wrap every Qt call, so when (and only when) the bug is *measured* at import,
``None``, ``True`` and ``False`` get a large reserve of references. These three objects are never
freed while the interpreter runs, so extra references cost nothing; missing ones crash the app.
The real fix is a PySide6 that does not have the bug (see docs/canvas.md).
"""

from __future__ import annotations

import ctypes
import gc
import sys

from PySide6.QtCore import QObject, Signal

RESERVE = 1 << 40  # ~10^12 stolen references before trouble: more than any session makes


class _Probe(QObject):
    ping = Signal()


def _drop(obj, call, n: int = 64) -> int:
    gc.collect()
    before = sys.getrefcount(obj)
    for _ in range(n):
        call()
    gc.collect()
    return before - sys.getrefcount(obj)


def _measure() -> dict[str, bool]:
    probe = _Probe()
    return {
        "None": _drop(None, lambda: probe.setObjectName("probe")) >= 48,
        "True": _drop(True, probe.ping.emit) >= 48,
    }


def _add_reserve(obj) -> None:
    # CPython < 3.12: ob_refcnt is the first field of every object, at id(obj).
    ctypes.c_ssize_t.from_address(id(obj)).value += RESERVE


STEALS = {"None": False, "True": False}
if sys.implementation.name == "cpython" and sys.version_info < (3, 12):
    STEALS = _measure()
    if STEALS["None"]:
        _add_reserve(None)
    if STEALS["True"]:
        _add_reserve(True)
        _add_reserve(False)
