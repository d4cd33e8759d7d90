"""Errors stay visible until the artist dismisses them: a log of full messages (issue 19).

The status bar shows one line for a few seconds and cuts long text; an error there was easy to
miss ("idle" a moment later). Every error goes here too, whole and timestamped, and the dock
that holds this panel opens when one arrives and stays open until Dismiss.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget


class MessagesPanel(QWidget):
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setObjectName("messages")
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.summary = QLabel("")
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.clicked.connect(self.dismiss)
        row = QHBoxLayout()
        row.addWidget(self.summary, 1)
        row.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.log, 1)
        layout.addLayout(row)
        self.errors: list[str] = []  # unseen errors, oldest first (tests and the summary read it)

    def add_error(self, text: str) -> None:
        self.errors.append(text)
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")
        self.summary.setText(f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}")

    def text(self) -> str:
        return self.log.toPlainText()

    def dismiss(self) -> None:
        self.errors.clear()
        self.log.clear()
        self.summary.setText("")
        self.dismissed.emit()
