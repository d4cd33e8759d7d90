"""Work around a PySide6 6.12.0 bug (Python 3.11): ``SignalInstance.emit()`` returns ``True``
without owning a reference, so every emit from Python takes one reference from ``True``; after
a few thousand emits ``True`` is "deallocated" and the interpreter aborts ("Fatal Python error:
bool_dealloc"). A drawing app emits on every mouse move, so this would kill a session within
minutes.

``emit(signal, *args)`` is what the canvas calls instead of ``signal.emit(*args)``: when the bug
is present (measured once at import, not assumed from a version number) it gives back the stolen
reference. Where it is absent this is a plain emit.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal


class _Probe(QObject):
    ping = Signal()


def _steals_true() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.ping.emit()
    return sys.getrefcount(True) < before - 4


_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None
EMIT_STEALS_TRUE = _steals_true()
if EMIT_STEALS_TRUE:
    for _ in range(8):  # the probe's own damage
        _incref(True)


def emit(signal, *args) -> None:
    result = signal.emit(*args)
    if EMIT_STEALS_TRUE and result is True:
        _incref(True)
