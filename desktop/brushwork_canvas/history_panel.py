"""Results with their recipes: apply as a layer, reuse settings, export PNG with metadata."""

from __future__ import annotations

from pathlib import Path

from brushwork.assets import atomic_write_bytes
from brushwork.errors import BrushworkError
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from . import imaging
from .commands import AddLayer
from .document import Document, HistoryEntry
from .png_meta import with_metadata


def apply_as_layer(doc: Document, entry_id: str) -> str:
    entry = doc.history_entry(entry_id)
    layer = doc.new_layer("image", f"Result {entry.recipe.seed}", imaging.image_from_bytes(entry.png, "result"))
    doc.undo_stack.push(AddLayer(doc, layer, text=f"Apply {layer.name}"))
    return layer.id


def reuse_settings(doc: Document, entry_id: str) -> None:
    """Prompt, model, sampler, steps, CFG, strength, seamless axes and the seed (locked) of a result."""
    r = doc.history_entry(entry_id).recipe
    prompt, negative = _as_typed(r)
    changes = dict(prompt=prompt, negative_prompt=negative, model=r.model, preset=r.preset, tiling=r.tiling)
    # The sampling fields the result ran with become the artist's choice (a field the recipe left
    # to the model stays the model's).
    ran = {"steps": r.steps, "cfg": r.cfg, "sampler": r.sampler}  # DEFAULTED_SETTINGS
    chosen = {name: value for name, value in ran.items() if value is not None}
    changes.update(chosen)
    changes["explicit"] = list(chosen)  # in DEFAULTED_SETTINGS' order
    if r.init_image is not None:  # a txt2img recipe's strength is a default nobody chose
        changes["strength"] = float(r.strength)
    if r.seed is not None:
        changes.update(seed=int(r.seed), seed_locked=True)
    doc.update_settings(**changes)


def _as_typed(recipe) -> tuple[str, str]:
    """The prompt and negative prompt as the artist typed them: a recipe as run carries its preset's
    prompt suffix (and its negative prompt when none was typed), which the preset adds again."""
    prompt, negative = recipe.prompt, recipe.negative_prompt
    if not recipe.preset:
        return prompt, negative
    from brushwork import presets

    try:
        preset = presets.load_preset(recipe.preset)
    except BrushworkError:
        return prompt, negative
    suffix = preset.prompt_suffix
    if suffix and prompt == suffix:
        prompt = ""
    elif suffix and prompt.endswith(", " + suffix):
        prompt = prompt[: -len(", " + suffix)]
    if negative and negative == preset.fields.get("negative_prompt"):
        negative = ""
    return prompt, negative


def export_png(doc: Document, entry_id: str, path: str | Path) -> Path:
    entry = doc.history_entry(entry_id)
    return atomic_write_bytes(path, with_metadata(entry.png, entry.recipe))


class HistoryPanel(QWidget):
    export_requested = Signal(str)  # entry id: the window asks where to save
    message = Signal(str)  # one line for the status bar

    def __init__(self, doc: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.list = QListWidget()
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(96, 96))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setSpacing(4)
        self.list.itemDoubleClicked.connect(lambda _item: self._apply())
        self.apply_button = QPushButton("Apply as layer", clicked=self._apply)
        self.reuse_button = QPushButton("Reuse settings", clicked=self._reuse)
        self.export_button = QPushButton("Export PNG…", clicked=self._export)
        row = QHBoxLayout()
        for b in (self.apply_button, self.reuse_button, self.export_button):
            row.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        doc.history_changed.connect(self.sync)
        self.list.currentRowChanged.connect(lambda _row: self._enable())
        self.sync()

    def sync(self) -> None:
        self.list.clear()
        for entry in self.doc.history:
            try:
                icon = result_icon(QPixmap.fromImage(imaging.image_from_bytes(entry.png, "result")))
            except BrushworkError:  # a damaged picture in a document: list it, still exportable
                icon = QIcon()
            item = QListWidgetItem(icon, f"{entry.task} · {entry.recipe.seed}")
            item.setData(Qt.ItemDataRole.UserRole, entry.id)
            item.setToolTip(_describe(entry))
            self.list.addItem(item)
        if self.doc.history:
            self.list.setCurrentRow(0)
        self._enable()

    def selected_id(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _enable(self) -> None:
        has = self.selected_id() is not None
        for b in (self.apply_button, self.reuse_button, self.export_button):
            b.setEnabled(has)

    def _apply(self) -> None:
        if entry_id := self.selected_id():
            try:
                apply_as_layer(self.doc, entry_id)
            except BrushworkError as exc:
                self.message.emit(f"Apply as layer: {exc}")

    def _reuse(self) -> None:
        if entry_id := self.selected_id():
            reuse_settings(self.doc, entry_id)

    def _export(self) -> None:
        if entry_id := self.selected_id():
            self.export_requested.emit(entry_id)


def result_icon(pixmap: QPixmap) -> QIcon:
    """A thumbnail that keeps its colours when selected (Qt tints a selected icon with the
    highlight colour by default: a red result looked purple)."""
    icon = QIcon(pixmap)
    icon.addPixmap(pixmap, QIcon.Mode.Selected)
    return icon


def _describe(entry: HistoryEntry) -> str:
    r = entry.recipe
    steps = f"{r.steps} steps" if r.steps is not None else "model's steps"
    cfg = f"CFG {r.cfg:g}" if r.cfg is not None else "model's CFG"
    return (f"{r.prompt or '(no prompt)'}\nmodel {r.model or 'default'} · {r.sampler or 'model sampler'} · {steps} · "
            f"{cfg} · seed {r.seed}")
