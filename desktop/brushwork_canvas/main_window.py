"""The main window: canvas in the middle, generate and layer panels on the right, history below."""

from __future__ import annotations

import json
import time
from pathlib import Path

from brushwork.assets import atomic_write_bytes
from brushwork.errors import BrushworkError
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QSpinBox,
    QToolButton,
    QWidget,
)

from . import imaging
from .autosave import Autosaver
from .canvas_view import CanvasView
from .commands import AddLayer, SetPeople
from .docfile import SUFFIX, load_document, save_document
from .document import CanvasError, Document
from .generate_panel import GeneratePanel
from .history_panel import HistoryPanel, export_png
from .layers_panel import LayersPanel
from .messages_panel import MessagesPanel
from .pose import from_openpose, new_person, to_openpose
from .session import Session

IMAGE_FILTER = "Pictures (*.png *.jpg *.jpeg *.webp *.bmp)"
DOC_FILTER = f"Brushwork canvas (*{SUFFIX})"


class MainWindow(QMainWindow):
    def __init__(self, doc: Document, session: Session, autosaver: Autosaver | None = None):
        super().__init__()
        self.doc, self.session, self.autosaver = doc, session, autosaver
        self.path: Path | None = None
        self.setWindowTitle("Brushwork Canvas")
        self.resize(1440, 900)

        self.canvas = CanvasView(doc)
        self.setCentralWidget(self.canvas)
        self.generate_panel = GeneratePanel(doc, session)
        self.layers_panel = LayersPanel(doc)
        self.history_panel = HistoryPanel(doc)
        self.live_view = QLabel("Live results appear here", alignment=Qt.AlignmentFlag.AlignCenter)
        self.live_view.setObjectName("muted")
        self.live_view.setMinimumSize(200, 200)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.generate_dock = self._dock("Generate", self.generate_panel, right)
        self.layers_dock = self._dock("Layers", self.layers_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.history_dock = self._dock("History", self.history_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.live_dock = self._dock("Live", self.live_view, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.live_dock.hide()
        self.messages_panel = MessagesPanel()
        self.messages_dock = self._dock("Messages", self.messages_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.messages_dock.hide()  # opens with the first error, closes when dismissed
        self.messages_panel.dismissed.connect(self.messages_dock.hide)
        self.resizeDocks([self.generate_dock, self.layers_dock], [380, 290], Qt.Orientation.Horizontal)
        self.resizeDocks([self.history_dock], [170], Qt.Orientation.Vertical)
        self._build_menus()
        self._build_toolbar()

        self.generate_panel.references.message.connect(self._error)
        self.generate_panel.upscale_button.clicked.connect(self.open_upscale)
        session.upscalers_loaded.connect(self._set_upscalers)
        session.adapters_loaded.connect(self.generate_panel.references.set_adapters)
        self.upscalers: list[str] = []
        self.layers_panel.add_requested.connect(self.add_layer)
        self.layers_panel.add_person_requested.connect(self.add_person)
        self.history_panel.export_requested.connect(self.export_result)
        self.history_panel.message.connect(self._error)
        self.canvas.files_dropped.connect(self.import_images)
        self.canvas.status.connect(self.statusBar().showMessage)
        session.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        session.error.connect(self._keep_error)
        session.preview.connect(self.canvas.set_preview)
        session.live_result.connect(self._show_live)
        session.controlnets_loaded.connect(self.layers_panel.set_controlnets)
        self.generate_panel.live_button.toggled.connect(self.live_dock.setVisible)
        if autosaver:
            autosaver.failed.connect(self.statusBar().showMessage)
        doc.layers_changed.connect(self._update_title)
        self.statusBar().showMessage("Ready")
        self._update_title()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        features = QDockWidget.DockWidgetFeature
        dock.setFeatures(features.DockWidgetMovable | features.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction("&New…", QKeySequence.StandardKey.New, self.new_document)
        file_menu.addAction("&Open…", QKeySequence.StandardKey.Open, self.open_document)
        file_menu.addAction("&Save", QKeySequence.StandardKey.Save, self.save_document)
        file_menu.addAction("Save &As…", QKeySequence.StandardKey.SaveAs, lambda: self.save_document(ask=True))
        file_menu.addSeparator()
        file_menu.addAction("Import picture as layer…", lambda: self.add_layer("image"))
        file_menu.addAction("Export visible picture…", self.export_visible)
        edit = bar.addMenu("&Edit")
        undo = self.doc.undo_stack.createUndoAction(self, "Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.doc.undo_stack.createRedoAction(self, "Redo")
        redo.setShortcut(QKeySequence.StandardKey.Redo)
        edit.addAction(undo)
        edit.addAction(redo)
        edit.addAction("Paste picture as layer", QKeySequence.StandardKey.Paste, self.paste)
        layer = bar.addMenu("&Layer")
        for kind in ("sketch", "mask", "region", "pose", "image", "depth"):
            label = f"New {kind} layer" + ("…" if kind in ("image", "depth") else "")
            layer.addAction(label, lambda k=kind: self.add_layer(k))
        layer.addSeparator()
        layer.addAction("Add person to pose", self.add_person)
        layer.addAction("Import OpenPose JSON…", self.import_pose)
        layer.addAction("Export OpenPose JSON…", self.export_pose)
        image = bar.addMenu("&Image")
        self.upscale_action = image.addAction("&Upscale…", self.open_upscale)

    def _build_toolbar(self) -> None:
        tools = self.addToolBar("Tools")
        tools.setObjectName("tools")
        self.brush_action = QAction("Brush", self, checkable=True, checked=True, shortcut="B")
        self.eraser_action = QAction("Eraser", self, checkable=True, shortcut="E")
        self.brush_action.triggered.connect(lambda: self._set_erase(False))
        self.eraser_action.triggered.connect(lambda: self._set_erase(True))
        tools.addAction(self.brush_action)
        tools.addAction(self.eraser_action)
        tools.addAction(self.upscale_action)
        tools.addSeparator()
        tools.addWidget(QLabel(" Size "))
        self.size_slider = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=120, value=int(self.canvas.brush_size))
        self.size_slider.setFixedWidth(160)
        self.size_slider.valueChanged.connect(lambda v: setattr(self.canvas, "brush_size", float(v)))
        tools.addWidget(self.size_slider)
        # [ and ] change the brush size, as in most painting programs (a step of about a fifth).
        for key, factor in (("[", 1 / 1.25), ("]", 1.25)):
            action = QAction(self, shortcut=key)
            action.triggered.connect(lambda _=False, f=factor: self._scale_brush(f))
            self.addAction(action)
        # Ctrl+Enter generates from anywhere, the prompt box included (as in other SD tools).
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            action = QAction(self, shortcut=keys)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda: self.session.run("generate"))
            self.addAction(action)
        self.color_button = QToolButton(text="  Colour  ")
        self.color_button.clicked.connect(self._pick_color)
        tools.addWidget(self.color_button)
        self._show_color()
        tools.addSeparator()
        # Fixed labels here (the Edit menu says what will be undone): the toolbar must not jump.
        stack = self.doc.undo_stack
        for label, slot, can, changed in (("Undo", stack.undo, stack.canUndo, stack.canUndoChanged),
                                          ("Redo", stack.redo, stack.canRedo, stack.canRedoChanged)):
            action = QAction(label, self)
            action.triggered.connect(slot)
            action.setEnabled(can())
            changed.connect(action.setEnabled)
            tools.addAction(action)

    # ---- tools ------------------------------------------------------------------------------

    def _set_erase(self, erase: bool) -> None:
        self.canvas.erase = erase
        self.brush_action.setChecked(not erase)
        self.eraser_action.setChecked(erase)

    def _scale_brush(self, factor: float) -> None:
        value = self.size_slider.value()
        scaled = round(value * factor)
        if scaled == value:  # small brushes still move by one
            scaled = value + (1 if factor > 1 else -1)
        self.size_slider.setValue(scaled)  # the slider keeps it within 1..120

    def _pick_color(self) -> None:
        color = QColorDialog.getColor(self.canvas.color, self, "Brush colour")
        if color.isValid():
            self.canvas.color = color
            self._show_color()

    def _show_color(self) -> None:
        c = self.canvas.color
        text = "#fff" if c.lightness() < 128 else "#000"
        self.color_button.setStyleSheet(f"background: {c.name()}; color: {text};")

    # ---- layers -----------------------------------------------------------------------------

    def add_layer(self, kind: str, path: str | None = None) -> None:
        try:
            image = None
            if kind in ("image", "depth"):
                path = path or QFileDialog.getOpenFileName(self, f"Open {kind} picture", "", IMAGE_FILTER)[0]
                if not path:
                    return
                image = imaging.image_from_file(path)
                if kind == "depth":  # depth is a grey picture: near = bright
                    image = image.convertToFormat(QImage.Format.Format_Grayscale8)
            layer = self.doc.new_layer(kind, Path(path).stem if path else None, image)
            if kind == "pose":
                layer.people = [new_person(self.doc.width, self.doc.height)]
            self.doc.undo_stack.push(AddLayer(self.doc, layer))
        except BrushworkError as exc:
            self._error(str(exc))

    def import_images(self, paths: list[str]) -> None:
        for path in paths:
            self.add_layer("image", path)

    def paste(self) -> None:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self._error("The clipboard holds no picture")
            return
        self.doc.undo_stack.push(AddLayer(self.doc, self.doc.new_layer("image", "Pasted", image)))

    def _pose_layer(self):
        layer = self.doc.active
        if layer is None or layer.kind != "pose":
            raise CanvasError("select a pose layer first")
        return layer

    def add_person(self) -> None:
        try:
            layer = self._pose_layer()
        except CanvasError as exc:
            self._error(str(exc))
            return
        people = layer.people + [new_person(self.doc.width, self.doc.height, len(layer.people))]
        self.doc.undo_stack.push(SetPeople(self.doc, layer.id, people, "Add person"))

    def import_pose(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Import OpenPose JSON", "", "OpenPose JSON (*.json)")[0]
        if not path:
            return
        try:
            people = from_openpose(Path(path).read_bytes(), self.doc.width, self.doc.height)
            layer = self.doc.active if self.doc.active and self.doc.active.kind == "pose" else None
            if layer is None:
                layer = self.doc.new_layer("pose", Path(path).stem)
                self.doc.undo_stack.push(AddLayer(self.doc, layer))
            self.doc.undo_stack.push(SetPeople(self.doc, layer.id, people, "Import pose"))
        except (OSError, BrushworkError) as exc:
            self._error(f"{path}: {exc}")

    def export_pose(self) -> None:
        try:
            layer = self._pose_layer()
        except CanvasError as exc:
            self._error(str(exc))
            return
        path = QFileDialog.getSaveFileName(self, "Export OpenPose JSON", f"{layer.name}.json",
                                           "OpenPose JSON (*.json)")[0]
        if path:
            data = json.dumps(to_openpose(layer.people, self.doc.width, self.doc.height), indent=1)
            atomic_write_bytes(path, data.encode())

    # ---- documents --------------------------------------------------------------------------

    def new_document(self) -> None:
        dialog = SizeDialog(self.doc.width, self.doc.height, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        if self.autosaver and self.autosaver.save_now():
            # The previous document stays recoverable even when it was never saved by name.
            backup = self.autosaver.path.with_name("previous" + SUFFIX)
            backup.write_bytes(self.autosaver.path.read_bytes())
        try:
            self.doc.reset(*dialog.size())
        except BrushworkError as exc:
            self._error(str(exc))
        self.path = None
        self._update_title()

    def open_document(self) -> None:
        path = QFileDialog.getOpenFileName(self, "Open document", "", DOC_FILTER)[0]
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path) -> bool:
        """Open a document by name (File > Open, or the command line)."""
        if not self._load(path):
            return False
        self.path = path
        # Results the worker finishes from now on belong here; earlier ones were the open
        # document's when they arrived (they are in its file or the autosave).
        self.doc.results_since = max(self.doc.results_since, time.time())
        self._update_title()
        return True

    def _load(self, path: Path) -> bool:
        try:
            load_document(path, self.doc)
            return True
        except BrushworkError as exc:
            self._error(str(exc))
            return False
        finally:
            self._update_title()
            self.canvas.update()

    def save_document(self, ask: bool = False) -> None:
        if ask or self.path is None:
            name = QFileDialog.getSaveFileName(self, "Save document", f"untitled{SUFFIX}", DOC_FILTER)[0]
            if not name:
                return
            self.path = Path(name if name.endswith(SUFFIX) else name + SUFFIX)
        try:
            save_document(self.doc, self.path)
            self.doc.dirty = False
            self.statusBar().showMessage(f"Saved {self.path}", 5000)
        except (OSError, BrushworkError) as exc:
            self._error(f"Could not save {self.path}: {exc}")
        self._update_title()

    def export_result(self, entry_id: str) -> None:
        path = QFileDialog.getSaveFileName(self, "Export PNG", f"brushwork-{entry_id}.png", "PNG (*.png)")[0]
        if path:
            try:
                export_png(self.doc, entry_id, path)
                self.statusBar().showMessage(f"Exported {path}", 5000)
            except (OSError, BrushworkError) as exc:
                self._error(f"Could not export {path}: {exc}")

    def export_visible(self) -> None:
        from .recipes import visible_picture

        path = QFileDialog.getSaveFileName(self, "Export visible picture", "canvas.png", "PNG (*.png)")[0]
        if path:
            atomic_write_bytes(path, visible_picture(self.doc))

    # ---- upscale ----------------------------------------------------------------------------

    def _set_upscalers(self, names: list) -> None:
        self.upscalers = [str(n) for n in names]

    def open_upscale(self) -> None:
        from .upscale_dialog import UpscaleDialog

        dialog = UpscaleDialog(self.doc, self.upscalers, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.upscale(**dialog.choices())

    def upscale(self, **choices) -> int | None:
        """Upscale the visible picture with these settings (GenSettings' upscale_* fields)."""
        if choices:
            self.doc.update_settings(**choices)
        return self.session.run("upscale")

    # ---- misc -------------------------------------------------------------------------------

    def _show_live(self, image: QImage) -> None:
        pixmap = QPixmap.fromImage(image).scaled(self.live_view.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation)
        self.live_view.setPixmap(pixmap)

    def _update_title(self) -> None:
        name = self.path.name if self.path else "untitled"
        self.setWindowTitle(f"{name} ({self.doc.width}×{self.doc.height}) — Brushwork Canvas")

    def _error(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)
        self._keep_error(text)
        if QGuiApplication.platformName() != "offscreen":
            QMessageBox.warning(self, "Brushwork", text)

    def _keep_error(self, text: str) -> None:
        """Errors stay in the Messages panel, whole, until the artist dismisses them."""
        self.messages_panel.add_error(text)
        self.messages_dock.show()

    def closeEvent(self, event) -> None:
        if self.autosaver:
            self.autosaver.save_now()  # nothing is lost, whatever happens next
        self.session.set_live(False)
        self.session.runner.shutdown(3000)  # cancel our jobs; results already made stay in the worker
        super().closeEvent(event)


class SizeDialog(QDialog):
    def __init__(self, width: int, height: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("New document")
        self.w = QSpinBox(minimum=64, maximum=4096, singleStep=64, value=width)
        self.h = QSpinBox(minimum=64, maximum=4096, singleStep=64, value=height)
        form = QFormLayout(self)
        form.addRow("Width", self.w)
        form.addRow("Height", self.h)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def size(self) -> tuple[int, int]:
        return self.w.value() // 8 * 8, self.h.value() // 8 * 8
