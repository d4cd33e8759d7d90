"""Reference slots in the generate panel (Recipe.references, through the worker's IP-Adapter).

Drop a picture file, a picture from another program, or a layer dragged from the layers list on a
slot; each filled slot has a weight and a mode (style: colours, materials, mood; composition:
layout). A drop that is not a picture changes nothing and says why in the Messages panel.
"""

from __future__ import annotations

import dataclasses

from brushwork.errors import BrushworkError
from brushwork.recipe import MAX_REFERENCES, REFERENCE_MODES
from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import imaging
from .commands import SetReferences
from .document import CanvasError, Document, ReferenceSlot, reference_image

# The layers list puts a layer's id under this type when a layer is dragged out of it.
LAYER_MIME = "application/x-brushwork-layer"
THUMB = 72
EMPTY_TEXT = "drop a picture or a layer"


def layer_picture(doc: Document, layer_id: str) -> QImage:
    """A layer's own pixels over white, as a reference picture (pose layers have none)."""
    layer = doc.layer(layer_id)
    if layer.image is None:
        raise CanvasError(f"{layer.name}: a {layer.kind} layer has no picture to use as a reference")
    if not imaging.alpha_mask(layer.image).any():
        raise CanvasError(f"{layer.name}: the layer is empty; nothing to use as a reference")
    return imaging.flatten([(layer.image, 1.0)], doc.width, doc.height, QColor(255, 255, 255))


def picture_from_mime(doc: Document, mime: QMimeData) -> tuple[QImage, str]:
    """The picture a drop carries and a name for it; CanvasError/InputImageError saying why not."""
    if mime.hasFormat(LAYER_MIME):
        layer_id = bytes(mime.data(LAYER_MIME).data()).decode("utf-8", "replace")
        return layer_picture(doc, layer_id), doc.layer(layer_id).name
    paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
    if paths:
        from pathlib import Path

        return imaging.image_from_file(paths[0]), Path(paths[0]).stem
    if mime.hasImage():
        image = QImage(mime.imageData())
        if not image.isNull():
            return image, "pasted picture"
    raise CanvasError("drop a picture file, a picture, or a layer from the layers list")


class SlotWidget(QFrame):
    """One reference slot: a thumbnail that takes drops, the weight, the mode and a remove button."""

    dropped = Signal(int, object)  # slot index, QMimeData
    browse = Signal(int)

    def __init__(self, index: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.index = index
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName(f"referenceSlot{index}")
        self.thumb = QLabel(EMPTY_TEXT, alignment=Qt.AlignmentFlag.AlignCenter)
        self.thumb.setWordWrap(True)
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setObjectName("muted")
        self.weight = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.05, decimals=2)
        self.weight.setToolTip("How strongly the reference steers (0..2)")
        self.mode = QComboBox()
        self.mode.addItems(list(REFERENCE_MODES))
        self.mode.setToolTip("style: colours, materials, mood · composition: layout")
        self.choose = QToolButton(text="…", toolTip="Choose a picture file")
        self.choose.clicked.connect(lambda: self.browse.emit(self.index))
        self.remove = QToolButton(text="✕", toolTip="Empty this slot")
        grid = QGridLayout(self)
        grid.setContentsMargins(3, 3, 3, 3)
        grid.addWidget(self.thumb, 0, 0, 3, 1)
        grid.addWidget(self.weight, 0, 1, 1, 2)
        grid.addWidget(self.mode, 1, 1, 1, 2)
        grid.addWidget(self.choose, 2, 1)
        grid.addWidget(self.remove, 2, 2)

    def show_slot(self, slot: ReferenceSlot | None) -> None:
        filled = slot is not None
        for w in (self.weight, self.mode, self.remove):
            w.setVisible(filled)
        if slot is None:
            self.thumb.setPixmap(QPixmap())
            self.thumb.setText(EMPTY_TEXT)
            self.setToolTip("")
            return
        self.thumb.setPixmap(QPixmap.fromImage(slot.image).scaled(
            THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
        self.weight.setValue(slot.weight)
        self.mode.setCurrentText(slot.mode)
        self.setToolTip(slot.name)

    def dragEnterEvent(self, event) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage() or mime.hasFormat(LAYER_MIME):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.dropped.emit(self.index, event.mimeData())
        event.acceptProposedAction()


class ReferencesBox(QGroupBox):
    """The document's reference slots: the filled ones and one empty slot to drop the next into."""

    message = Signal(str)  # an error, whole (the window keeps it in the Messages panel)

    def __init__(self, doc: Document, parent: QWidget | None = None):
        super().__init__("References", parent)
        self.doc = doc
        self._syncing = False
        self.slots = [SlotWidget(i) for i in range(MAX_REFERENCES)]
        # The IP-Adapter the slots go through (a name in the worker's model folders, or a hub id);
        # empty = the model family's default adapter.
        self.adapter = QComboBox(editable=True)
        self.adapter.setObjectName("referenceAdapter")
        self.adapter.lineEdit().setPlaceholderText("IP-Adapter: the family's default")
        self.adapter.lineEdit().editingFinished.connect(self._adapter_edited)
        self.adapter.activated.connect(lambda _i: self._adapter_edited())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.adapter)
        for slot in self.slots:
            layout.addWidget(slot)
            slot.dropped.connect(self.drop)
            slot.browse.connect(self._browse)
            slot.remove.clicked.connect(lambda _=False, i=slot.index: self.remove(i))
            slot.weight.editingFinished.connect(lambda i=slot.index: self._edited(i))
            slot.mode.activated.connect(lambda _j, i=slot.index: self._edited(i))
        doc.references_changed.connect(self.sync)
        doc.settings_changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        self._syncing = True
        try:
            if self.adapter.currentText() != self.doc.settings.reference_model:
                self.adapter.setCurrentText(self.doc.settings.reference_model)
            refs = self.doc.references
            for i, widget in enumerate(self.slots):
                widget.show_slot(refs[i] if i < len(refs) else None)
                widget.setVisible(i <= len(refs))  # the filled ones, and one empty slot
        finally:
            self._syncing = False

    # ---- what the slots do ------------------------------------------------------------------

    def drop(self, index: int, mime: QMimeData) -> bool:
        """Put the dropped picture into slot ``index`` (replacing what it held). A drop that is
        not a picture changes nothing and is reported."""
        try:
            image, name = picture_from_mime(self.doc, mime)
        except BrushworkError as exc:
            self.message.emit(f"Reference slot {index + 1}: {exc}")
            return False
        self.put(index, image, name)
        return True

    def put(self, index: int, image: QImage, name: str) -> None:
        slots = list(self.doc.references)
        slot = ReferenceSlot(image=reference_image(image), name=name)
        if index < len(slots):  # replacing keeps the slot's weight and mode
            slot.weight, slot.mode = slots[index].weight, slots[index].mode
            slots[index] = slot
        else:
            slots.append(slot)
        self.doc.undo_stack.push(SetReferences(self.doc, slots[:MAX_REFERENCES], f"Reference: {name}"))

    def remove(self, index: int) -> None:
        slots = list(self.doc.references)
        if index < len(slots):
            del slots[index]
            self.doc.undo_stack.push(SetReferences(self.doc, slots, "Remove reference"))

    def _edited(self, index: int) -> None:
        if self._syncing or index >= len(self.doc.references):
            return
        widget, old = self.slots[index], self.doc.references[index]
        new = dataclasses.replace(old, weight=round(widget.weight.value(), 3), mode=widget.mode.currentText())
        if (new.weight, new.mode) != (old.weight, old.mode):
            slots = list(self.doc.references)
            slots[index] = new
            self.doc.undo_stack.push(SetReferences(self.doc, slots, "Reference settings"))

    def _adapter_edited(self) -> None:
        name = self.adapter.currentText().strip()
        if not self._syncing and name != self.doc.settings.reference_model:
            self.doc.update_settings(reference_model=name)

    def set_adapters(self, names: list) -> None:
        """The worker's IP-Adapters, offered in the box (any name can still be typed)."""
        current = self.adapter.currentText()
        self._syncing = True
        try:
            self.adapter.clear()
            self.adapter.addItems([str(n) for n in names])
            self.adapter.setCurrentText(current)
        finally:
            self._syncing = False

    def _browse(self, index: int) -> None:
        from .main_window import IMAGE_FILTER

        path = QFileDialog.getOpenFileName(self, "Reference picture", "", IMAGE_FILTER)[0]
        if not path:
            return
        try:
            image = imaging.image_from_file(path)
        except BrushworkError as exc:
            self.message.emit(f"Reference slot {index + 1}: {exc}")
            return
        from pathlib import Path

        self.put(index, image, Path(path).stem)
