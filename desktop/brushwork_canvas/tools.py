"""Brush and pose-drag gestures on the model, in document coordinates (no widgets).

The canvas widget turns mouse events into ``begin/move/end`` calls; tests can drive the same
gestures directly. A gesture ends in exactly one undo command.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from .commands import PoseCommand, StrokeCommand
from .document import CanvasError, Document
from .pose import copy_people, nearest_joint

PAINT_KINDS = ("image", "sketch", "mask", "depth", "region")
# Layers whose paint means "here" (white), whatever the brush colour: inpaint masks and regions.
MASK_KINDS = ("mask", "region")


class Stroke:
    """A pen or eraser stroke on a raster layer (sketch, mask, image or depth)."""

    def __init__(self, doc: Document, layer_id: str, *, size: float, erase: bool = False, color: QColor | None = None):
        layer = doc.layer(layer_id)
        if layer.kind not in PAINT_KINDS:
            raise CanvasError(f"cannot paint on a {layer.kind} layer")
        self.doc, self.layer_id, self.size, self.erase = doc, layer_id, max(1.0, float(size)), erase
        # Masks and regions are white (= here) by definition; other layers take the chosen colour.
        self.color = QColor(255, 255, 255) if layer.kind in MASK_KINDS else (color or QColor(20, 20, 20))
        self.before = layer.image.copy()
        self.last: QPointF | None = None
        self.bounds = QRect()

    def begin(self, point: QPointF) -> None:
        self.last = point
        self._segment(point, point)

    def move(self, point: QPointF) -> None:
        if self.last is None:
            self.begin(point)
            return
        self._segment(self.last, point)
        self.last = point

    def end(self) -> None:
        """Record the stroke as one undo step (nothing when it touched no pixels)."""
        rect = self.bounds.intersected(QRect(0, 0, self.doc.width, self.doc.height))
        if rect.isEmpty():
            return
        after = self.doc.layer(self.layer_id).image.copy(rect)
        before = self.before.copy(rect)
        kind = self.doc.layer(self.layer_id).kind
        text = ("Erase" if self.erase else "Paint") + (f" {kind}" if kind in MASK_KINDS else "")
        self.doc.undo_stack.push(StrokeCommand(self.doc, self.layer_id, rect, before, after, text))

    def _segment(self, a: QPointF, b: QPointF) -> None:
        layer = self.doc.layer(self.layer_id)
        painter = QPainter(layer.image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self.erase:
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
        painter.setPen(QPen(self.color, self.size, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                            Qt.PenJoinStyle.RoundJoin))
        painter.drawLine(a, b)
        painter.end()
        pad = int(self.size) + 2
        seg = QRect(int(min(a.x(), b.x())) - pad, int(min(a.y(), b.y())) - pad,
                    int(abs(a.x() - b.x())) + 2 * pad, int(abs(a.y() - b.y())) + 2 * pad)
        self.bounds = self.bounds.united(seg)
        self.doc.pixels_changed.emit(self.layer_id)


class JointDrag:
    """Drag one joint of a pose layer; ``grab`` returns None when no joint is near the point."""

    def __init__(self, doc: Document, layer_id: str, person: int, joint: int):
        self.doc, self.layer_id, self.person, self.joint = doc, layer_id, person, joint
        self.before = copy_people(doc.layer(layer_id).people)
        self.moved = False

    @classmethod
    def grab(cls, doc: Document, layer_id: str, point: QPointF, radius: float) -> JointDrag | None:
        layer = doc.layer(layer_id)
        if layer.kind != "pose":
            raise CanvasError(f"{layer.name} is not a pose layer")
        hit = nearest_joint(layer.people, point.x(), point.y(), radius)
        return cls(doc, layer_id, *hit) if hit else None

    def move(self, point: QPointF) -> None:
        layer = self.doc.layer(self.layer_id)
        x = min(max(point.x(), 0.0), self.doc.width - 1.0)
        y = min(max(point.y(), 0.0), self.doc.height - 1.0)
        layer.people[self.person][self.joint][:2] = [round(x, 2), round(y, 2)]
        self.moved = True
        self.doc.pixels_changed.emit(self.layer_id)

    def end(self) -> None:
        if self.moved:
            after = self.doc.layer(self.layer_id).people
            self.doc.undo_stack.push(PoseCommand(self.doc, self.layer_id, self.before, after))
