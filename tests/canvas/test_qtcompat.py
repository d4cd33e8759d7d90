"""PySide6 6.12.0's SignalInstance.emit() steals a reference to True; the canvas's emit() must not."""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QObject, Signal

from brushwork_canvas.qtcompat import emit


class Source(QObject):
    changed = Signal(str)


def test_many_emits_leave_true_alone(qapp):
    source = Source()
    seen = []
    source.changed.connect(seen.append)
    gc.collect()
    before = sys.getrefcount(True)
    for _ in range(10_000):  # more than True's whole refcount in a fresh interpreter
        emit(source.changed, "x")
    gc.collect()
    assert len(seen) == 10_000
    assert abs(sys.getrefcount(True) - before) < 50
