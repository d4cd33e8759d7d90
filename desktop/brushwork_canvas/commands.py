"""Undo commands: every stroke and layer operation is one QUndoCommand on the document's stack.

Strokes and pose drags are painted live while the mouse moves (the user must see them at once),
so their commands are pushed *after* the fact: the first ``redo()`` that ``QUndoStack.push`` calls
is skipped because the change is already there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QRect
from PySide6.QtGui import QImage, QPainter, QUndoCommand

from .document import Document, Layer, ReferenceSlot, RegionSettings
from .pose import Person, copy_people


class _AfterTheFact(QUndoCommand):
    def __init__(self, text: str):
        super().__init__(text)
        self._applied = True  # already on screen when pushed

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        self.apply()

    def apply(self) -> None:
        raise NotImplementedError


class StrokeCommand(_AfterTheFact):
    """Pixels of one stroke: only the touched rectangle is kept, before and after."""

    def __init__(self, doc: Document, layer_id: str, rect: QRect, before: QImage, after: QImage, text: str = "Stroke"):
        super().__init__(text)
        self.doc, self.layer_id, self.rect = doc, layer_id, rect
        self.before, self.after = before, after

    def _paste(self, patch: QImage) -> None:
        layer = self.doc.layer(self.layer_id)
        image = layer.image.copy()
        painter = QPainter(image)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(self.rect.topLeft(), patch)
        painter.end()
        self.doc._set_image(self.layer_id, image)

    def apply(self) -> None:
        self._paste(self.after)

    def undo(self) -> None:
        self._paste(self.before)


class PoseCommand(_AfterTheFact):
    def __init__(self, doc: Document, layer_id: str, before: list[Person], after: list[Person],
                 text: str = "Move joint"):
        super().__init__(text)
        self.doc, self.layer_id = doc, layer_id
        self.before, self.after = copy_people(before), copy_people(after)

    def apply(self) -> None:
        self.doc._set_people(self.layer_id, self.after)

    def undo(self) -> None:
        self.doc._set_people(self.layer_id, self.before)


class SetPeople(QUndoCommand):
    """Replace a pose layer's people (add a person, import JSON)."""

    def __init__(self, doc: Document, layer_id: str, people: list[Person], text: str):
        super().__init__(text)
        self.doc, self.layer_id = doc, layer_id
        self.before = copy_people(doc.layer(layer_id).people)
        self.after = copy_people(people)

    def redo(self) -> None:
        self.doc._set_people(self.layer_id, self.after)

    def undo(self) -> None:
        self.doc._set_people(self.layer_id, self.before)


class SetImage(QUndoCommand):
    """Replace a whole layer's pixels (import, clear, apply a result)."""

    def __init__(self, doc: Document, layer_id: str, image: QImage, text: str):
        super().__init__(text)
        self.doc, self.layer_id = doc, layer_id
        self.before = doc.layer(layer_id).image
        self.after = image

    def redo(self) -> None:
        self.doc._set_image(self.layer_id, self.after)

    def undo(self) -> None:
        self.doc._set_image(self.layer_id, self.before)


class AddLayer(QUndoCommand):
    def __init__(self, doc: Document, layer: Layer, index: int | None = None, text: str | None = None):
        super().__init__(text or f"Add {layer.name}")
        self.doc, self.layer = doc, layer
        self.index = len(doc.layers) if index is None else index
        self.previous_active = doc.active_id

    def redo(self) -> None:
        self.doc._insert(self.index, self.layer)

    def undo(self) -> None:
        self.doc._remove(self.layer.id)
        self.doc.active_id = self.previous_active


class RemoveLayer(QUndoCommand):
    def __init__(self, doc: Document, layer_id: str):
        layer = doc.layer(layer_id)
        super().__init__(f"Delete {layer.name}")
        self.doc, self.layer = doc, layer
        self.index = doc.index_of(layer_id)

    def redo(self) -> None:
        self.doc._remove(self.layer.id)

    def undo(self) -> None:
        self.doc._insert(self.index, self.layer)


class MoveLayer(QUndoCommand):
    def __init__(self, doc: Document, layer_id: str, new_index: int):
        super().__init__("Move layer")
        self.doc, self.layer_id = doc, layer_id
        self.old_index = doc.index_of(layer_id)
        self.new_index = max(0, min(new_index, len(doc.layers) - 1))

    def redo(self) -> None:
        self.doc._move(self.layer_id, self.new_index)

    def undo(self) -> None:
        self.doc._move(self.layer_id, self.old_index)


class SetLayerProps(QUndoCommand):
    """Name, visibility, opacity or control settings of a layer."""

    def __init__(self, doc: Document, layer_id: str, text: str = "Layer settings", **props: Any):
        super().__init__(text)
        layer = doc.layer(layer_id)
        self.doc, self.layer_id = doc, layer_id
        self.after = props
        self.before = {key: getattr(layer, key) for key in props}

    def redo(self) -> None:
        self.doc._set_props(self.layer_id, self.after)

    def undo(self) -> None:
        self.doc._set_props(self.layer_id, self.before)


class SetOpacity(QUndoCommand):
    """A layer's opacity. Every value a slider passes through while one drag lasts (same ``gesture``)
    merges into one undo step; separate edits (each drag, each spin-box change) stay separate."""

    MERGE_ID = 0x0B0C

    def __init__(self, doc: Document, layer_id: str, opacity: float, gesture: int | None = None):
        super().__init__("Layer opacity")
        self.doc, self.layer_id, self.gesture = doc, layer_id, gesture
        self.before = doc.layer(layer_id).opacity
        self.after = opacity

    def id(self) -> int:
        return self.MERGE_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not (isinstance(other, SetOpacity) and other.layer_id == self.layer_id
                and self.gesture is not None and other.gesture == self.gesture):
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        self.doc._set_props(self.layer_id, {"opacity": self.after})

    def undo(self) -> None:
        self.doc._set_props(self.layer_id, {"opacity": self.before})


class SetReferences(QUndoCommand):
    """The reference slots after a drop, an edit of weight or mode, or a removal (the whole list:
    four slots at most, and their pictures are shared, not copied)."""

    def __init__(self, doc: Document, slots: list[ReferenceSlot], text: str = "Reference"):
        super().__init__(text)
        self.doc = doc
        self.before, self.after = list(doc.references), list(slots)

    def redo(self) -> None:
        self.doc._set_references(self.after)

    def undo(self) -> None:
        self.doc._set_references(self.before)


class ResizeDocument(QUndoCommand):
    """A new document size with every layer resampled to it (the upscale): undo gives back the
    very pixels and joints the layers had."""

    def __init__(self, doc: Document, width: int, height: int, text: str = "Resize document"):
        super().__init__(text)
        self.doc = doc
        self.before = (doc.width, doc.height, {la.id: la.image for la in doc.layers if la.image is not None},
                       {la.id: copy_people(la.people) for la in doc.layers if la.kind == "pose"})
        self.after = (width, height, *doc.scaled_content(width, height))

    def redo(self) -> None:
        self.doc._resize(*self.after)

    def undo(self) -> None:
        self.doc._resize(*self.before)


class SetRegion(QUndoCommand):
    """A region layer's prompt box. Typing is one undo step per burst: consecutive edits of the
    same region merge (like a text editor's undo), a different layer or field starts a new step."""

    MERGE_ID = 0x0B0D

    def __init__(self, doc: Document, layer_id: str, region: RegionSettings, field: str = ""):
        super().__init__("Region prompt" if field in ("prompt", "negative_prompt") else "Region settings")
        self.doc, self.layer_id, self.field = doc, layer_id, field
        self.before = dataclasses.replace(doc.layer(layer_id).region)
        self.after = dataclasses.replace(region)

    def id(self) -> int:
        return self.MERGE_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not (isinstance(other, SetRegion) and other.layer_id == self.layer_id and self.field
                and other.field == self.field):
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        self.doc._set_props(self.layer_id, {"region": dataclasses.replace(self.after)})

    def undo(self) -> None:
        self.doc._set_props(self.layer_id, {"region": dataclasses.replace(self.before)})
