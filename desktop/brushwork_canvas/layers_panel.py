"""The layer list (top layer first) and the active layer's control settings."""

from __future__ import annotations

from brushwork.recipe import CONTROL_KINDS
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .commands import MoveLayer, RemoveLayer, SetLayerProps, SetOpacity, SetRegion
from .document import ControlSettings, Document, RegionSettings

# A coloured tag per layer kind, drawn here so that no icon font is needed.
KIND_TAGS = {"image": ("I", "#4f7fd6"), "sketch": ("S", "#9a6bd1"), "mask": ("M", "#d64f63"),
             "pose": ("P", "#3fa66f"), "depth": ("D", "#c08a3e"), "region": ("R", "#2896ff")}


def kind_icon(kind: str) -> QIcon:
    letter, color = KIND_TAGS.get(kind, ("?", "#777777"))
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(color))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(2, 2, 28, 28, 6, 6)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(17)
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, letter)
    painter.end()
    return QIcon(pixmap)

CONTROL_CHOICES = [k for k in CONTROL_KINDS if k != "inpaint"]


class LayerList(QListWidget):
    """The layer list; a layer dragged out of it carries its id (a reference slot takes it)."""

    def mimeData(self, items):
        from PySide6.QtCore import QMimeData

        from .references_panel import LAYER_MIME

        mime = QMimeData()
        if items:
            mime.setData(LAYER_MIME, str(items[0].data(Qt.ItemDataRole.UserRole)).encode())
        return mime


class LayersPanel(QWidget):
    add_requested = Signal(str)  # a layer kind ("image" and "depth" ask for a file first)
    add_person_requested = Signal()

    def __init__(self, doc: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self._syncing = False
        self.list = LayerList()
        self.list.setObjectName("layerList")
        self.list.setDragEnabled(True)
        self.list.setDragDropMode(QListWidget.DragDropMode.DragOnly)  # reorder with ▲/▼: undoable
        self.list.currentRowChanged.connect(self._on_row)
        self.list.itemChanged.connect(self._on_item_changed)

        add = QToolButton(text="Add layer")
        add.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(add)
        for kind, label in (("sketch", "Sketch"), ("mask", "Mask"), ("region", "Region (own prompt)"), ("pose", "Pose"),
                            ("image", "Image from file…"), ("depth", "Depth from file…")):
            menu.addAction(kind_icon(kind), label, lambda k=kind: self.add_requested.emit(k))
        add.setMenu(menu)
        self.delete_button = QPushButton("Delete", clicked=self._delete)
        self.up_button = QPushButton("▲", clicked=lambda: self._move(+1))
        self.down_button = QPushButton("▼", clicked=lambda: self._move(-1))
        for b in (self.up_button, self.down_button):
            b.setFixedWidth(34)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addStretch(1)
        row.addWidget(self.up_button)
        row.addWidget(self.down_button)
        row.addWidget(self.delete_button)
        self.person_button = QPushButton("Add person", clicked=lambda *_: self.add_person_requested.emit())

        # Opacity of the active layer, in percent: the slider for dragging (one undo step per
        # drag), the spin box for an exact number. Both edit the same stored value.
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100)
        self.opacity_slider.setObjectName("opacitySlider")
        self.opacity_spin = QSpinBox(minimum=0, maximum=100, suffix=" %")
        self.opacity_spin.setKeyboardTracking(False)  # typing "50" is one edit, not "5" then "50"
        self._drag_gesture: int | None = None
        self._drags = 0
        self.opacity_slider.sliderPressed.connect(self._drag_started)
        self.opacity_slider.sliderReleased.connect(self._drag_ended)
        self.opacity_slider.valueChanged.connect(self._opacity_edited)
        self.opacity_spin.valueChanged.connect(self._opacity_edited)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        opacity_row.addWidget(self.opacity_slider, 1)
        opacity_row.addWidget(self.opacity_spin)

        self.control_box = QGroupBox("Use as control")
        self.control_box.setCheckable(True)
        self.control_box.toggled.connect(self._control_edited)
        self.kind = QComboBox()
        self.kind.addItems(CONTROL_CHOICES)
        self.strength = _spin(0.0, 2.0, 0.05)
        self.start = _spin(0.0, 1.0, 0.05)
        self.end = _spin(0.0, 1.0, 0.05)
        self.model = QComboBox(editable=True)
        self.model.lineEdit().setPlaceholderText("default for the kind")
        form = QFormLayout(self.control_box)
        form.addRow("Kind", self.kind)
        form.addRow("ControlNet", self.model)
        form.addRow("Strength", self.strength)
        steps = QHBoxLayout()
        steps.addWidget(self.start)
        steps.addWidget(self.end)
        form.addRow("Steps from/to", steps)
        self.kind.currentTextChanged.connect(self._control_edited)
        self.model.lineEdit().editingFinished.connect(self._control_edited)
        self.model.activated.connect(self._control_edited)
        for spin in (self.strength, self.start, self.end):
            spin.editingFinished.connect(self._control_edited)

        # A region layer's prompt box: its painted area shows this (Recipe.regions).
        self.region_box = QGroupBox("Region prompt")
        self.region_prompt = QLineEdit(placeholderText="what this area shows")
        self.region_prompt.setObjectName("regionPrompt")
        self.region_negative = QLineEdit(placeholderText="negative (optional)")
        self.region_weight = _spin(0.0, 2.0, 0.05)
        self.region_start = _spin(0.0, 1.0, 0.05)
        self.region_end = _spin(0.0, 1.0, 0.05)
        region_form = QFormLayout(self.region_box)
        region_form.addRow("Prompt", self.region_prompt)
        region_form.addRow("Negative", self.region_negative)
        region_form.addRow("Weight", self.region_weight)
        region_steps = QHBoxLayout()
        region_steps.addWidget(self.region_start)
        region_steps.addWidget(self.region_end)
        region_form.addRow("Steps from/to", region_steps)
        self.region_prompt.textEdited.connect(lambda _t: self._region_edited("prompt"))
        self.region_negative.textEdited.connect(lambda _t: self._region_edited("negative_prompt"))
        for spin in (self.region_weight, self.region_start, self.region_end):
            spin.editingFinished.connect(self._region_edited)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(row)
        layout.addWidget(self.list, 1)
        layout.addLayout(opacity_row)
        layout.addWidget(self.person_button)
        layout.addWidget(self.region_box)
        layout.addWidget(self.control_box)
        doc.layers_changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        self._syncing = True
        try:
            self.list.clear()
            active = self.doc.active
            for layer in reversed(self.doc.layers):
                control = f"   · {layer.control.kind} control" if layer.can_control and layer.control.enabled else ""
                faded = f"   · {round(layer.opacity * 100)} %" if layer.opacity < 1.0 else ""
                said = f"   · “{layer.region.prompt}”" if layer.kind == "region" and layer.region.prompt else ""
                item = QListWidgetItem(kind_icon(layer.kind), layer.name + faded + control + said)
                item.setData(Qt.ItemDataRole.UserRole, layer.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
                self.list.addItem(item)
                if layer is active:
                    self.list.setCurrentItem(item)
            has = active is not None
            self.delete_button.setEnabled(has)
            for widget in (self.opacity_slider, self.opacity_spin):
                widget.setEnabled(has)
                widget.setValue(round(active.opacity * 100) if has else 100)
            self.person_button.setVisible(has and active.kind == "pose")
            self.region_box.setVisible(has and active.kind == "region")
            if has and active.kind == "region":
                r = active.region
                for edit, text in ((self.region_prompt, r.prompt), (self.region_negative, r.negative_prompt)):
                    if edit.text() != text:  # never while typing: the cursor stays where it is
                        edit.setText(text)
                self.region_weight.setValue(r.weight)
                self.region_start.setValue(r.start)
                self.region_end.setValue(r.end)
            self.control_box.setVisible(has and active.can_control)
            if has and active.can_control:
                c = active.control
                self.control_box.setChecked(c.enabled)
                self.kind.setCurrentText(c.kind)
                self.strength.setValue(c.strength)
                self.start.setValue(c.start)
                self.end.setValue(c.end)
                self.model.setCurrentText(c.model)
        finally:
            self._syncing = False

    def set_controlnets(self, names: list) -> None:
        """The worker's ControlNets, offered in the model box (any name can still be typed)."""
        current = self.model.currentText()
        self._syncing = True
        try:
            self.model.clear()
            self.model.addItems([str(n) for n in names])
            self.model.setCurrentText(current)
        finally:
            self._syncing = False

    def _layer_id(self, row: int) -> str | None:
        item = self.list.item(row)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _on_row(self, row: int) -> None:
        if not self._syncing and (layer_id := self._layer_id(row)):
            self.doc.set_active(layer_id)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        layer_id = item.data(Qt.ItemDataRole.UserRole)
        visible = item.checkState() == Qt.CheckState.Checked
        if self.doc.layer(layer_id).visible != visible:
            text = "Show layer" if visible else "Hide layer"
            self.doc.undo_stack.push(SetLayerProps(self.doc, layer_id, text, visible=visible))

    def _delete(self) -> None:
        if self.doc.active:
            self.doc.undo_stack.push(RemoveLayer(self.doc, self.doc.active.id))

    def _move(self, delta: int) -> None:
        layer = self.doc.active
        if layer:
            index = self.doc.index_of(layer.id) + delta
            if 0 <= index < len(self.doc.layers):
                self.doc.undo_stack.push(MoveLayer(self.doc, layer.id, index))

    def _drag_started(self) -> None:
        self._drags += 1
        self._drag_gesture = self._drags

    def _drag_ended(self) -> None:
        self._drag_gesture = None

    def _opacity_edited(self, percent: int) -> None:
        layer = self.doc.active
        if self._syncing or layer is None:
            return
        opacity = percent / 100.0
        if abs(opacity - layer.opacity) < 1e-9:
            return
        gesture = self._drag_gesture if self.opacity_slider.isSliderDown() else None
        self.doc.undo_stack.push(SetOpacity(self.doc, layer.id, opacity, gesture))

    def _control_edited(self, *_args) -> None:
        layer = self.doc.active
        if self._syncing or layer is None or not layer.can_control:
            return
        start, end = self.start.value(), self.end.value()
        if start >= end:  # keep the range valid instead of refusing the edit
            end = min(1.0, start + 0.05)
            start = end - 0.05
        control = ControlSettings(enabled=self.control_box.isChecked(), kind=self.kind.currentText(),
                                  strength=self.strength.value(), start=round(start, 3), end=round(end, 3),
                                  model=self.model.currentText().strip())
        if control != layer.control:
            self.doc.undo_stack.push(SetLayerProps(self.doc, layer.id, "Control settings", control=control))


    def _region_edited(self, field: str = "") -> None:
        layer = self.doc.active
        if self._syncing or layer is None or layer.kind != "region":
            return
        start, end = self.region_start.value(), self.region_end.value()
        if start >= end:  # keep the range valid instead of refusing the edit
            end = min(1.0, start + 0.05)
            start = end - 0.05
        region = RegionSettings(prompt=self.region_prompt.text(), negative_prompt=self.region_negative.text(),
                                weight=self.region_weight.value(), start=round(start, 3), end=round(end, 3))
        if region != layer.region:
            self.doc.undo_stack.push(SetRegion(self.doc, layer.id, region, field))


def _spin(lo: float, hi: float, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setDecimals(2)
    return spin
