"""Autosave: the open document is written to the state folder shortly after every change and at
once when a result arrives, so closing the app, a crash or a dead worker loses nothing. The next
start reopens it."""

from __future__ import annotations

from pathlib import Path

from brushwork import paths
from brushwork.errors import BrushworkError
from PySide6.QtCore import QObject, QTimer, Signal

from .docfile import SUFFIX, save_document
from .document import Document

DELAY_MS = 2000


def autosave_path() -> Path:
    return paths.state_dir() / "canvas" / f"autosave{SUFFIX}"


class Autosaver(QObject):
    failed = Signal(str)

    def __init__(self, doc: Document, path: Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.doc = doc
        self.path = path or autosave_path()
        self.saves = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        doc.edited.connect(self._timer.start)
        doc.settings_changed.connect(self._timer.start)
        doc.history_changed.connect(self.save_now)  # results are precious: no delay

    def save_now(self) -> bool:
        self._timer.stop()
        try:
            save_document(self.doc, self.path)
        except (OSError, BrushworkError) as exc:
            self.failed.emit(f"Autosave to {self.path} failed: {exc}")
            return False
        self.saves += 1
        return True

    def flush(self) -> bool:
        """Save now if a save is pending (on close)."""
        return self.save_now() if self._timer.isActive() or self.doc.dirty else True
