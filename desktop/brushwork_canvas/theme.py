"""A calm dark theme: artists judge colour, so the chrome stays neutral grey."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

STYLE = """
QWidget { font-size: 10pt; }
QMainWindow, QDockWidget { background: #26272b; }
QDockWidget::title { background: #2f3035; padding: 5px 8px; font-weight: 600; }
QPlainTextEdit, QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox, QListWidget {
    background: #1d1e21; border: 1px solid #3a3b41; border-radius: 4px; padding: 3px; }
QPushButton, QToolButton { background: #3a3c43; border: 1px solid #4a4c55; border-radius: 4px; padding: 5px 10px; }
QPushButton:hover, QToolButton:hover { background: #464952; }
QPushButton:checked { background: #2f6b4f; border-color: #3f9a6f; }
QPushButton#primary { background: #3d6fd9; border-color: #5584e6; font-weight: 600; }
QPushButton#primary:hover { background: #4a7be3; }
QPushButton:disabled { color: #777; background: #303136; }
QGroupBox { border: 1px solid #3a3b41; border-radius: 4px; margin-top: 10px; padding-top: 6px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; }
QProgressBar { border: 1px solid #3a3b41; border-radius: 4px; background: #1d1e21; text-align: center; height: 16px; }
QProgressBar::chunk { background: #3d6fd9; border-radius: 3px; }
QLabel#muted { color: #9a9ca3; }
QListWidget::item:selected { background: #34507f; }
QToolBar QToolButton:checked { background: #34507f; border-color: #5584e6; }
QListWidget#layerList::item { padding: 3px; }
QToolBar { background: #2b2c31; border: none; spacing: 4px; padding: 3px; }
QStatusBar { background: #2b2c31; color: #b8bac0; }
"""


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, color in (
        (QPalette.ColorRole.Window, "#26272b"), (QPalette.ColorRole.WindowText, "#e3e4e8"),
        (QPalette.ColorRole.Base, "#1d1e21"), (QPalette.ColorRole.AlternateBase, "#2a2b30"),
        (QPalette.ColorRole.Text, "#e3e4e8"), (QPalette.ColorRole.Button, "#3a3c43"),
        (QPalette.ColorRole.ButtonText, "#e3e4e8"), (QPalette.ColorRole.Highlight, "#3d6fd9"),
        (QPalette.ColorRole.HighlightedText, "#ffffff"), (QPalette.ColorRole.ToolTipBase, "#2f3035"),
        (QPalette.ColorRole.ToolTipText, "#e3e4e8"), (QPalette.ColorRole.PlaceholderText, "#7d8088"),
    ):
        palette.setColor(role, QColor(color))
    app.setPalette(palette)
    app.setStyleSheet(STYLE)
