"""The drawing surface: shows the layers (masks as a red overlay, poses with joint handles) and the
step preview, and turns mouse gestures into ``tools`` gestures on the active layer."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen, QTransform
from PySide6.QtWidgets import QSizePolicy, QWidget

from .document import Document
from .pose import draw_people
from .tools import PAINT_KINDS, JointDrag, Stroke

MASK_TINT = QColor(255, 40, 60)
MASK_OPACITY = 0.45
MASK_HATCH = QColor(255, 255, 255, 200)
# Region layers show in their own colours (the layers panel tags them alike), told apart from the
# red inpaint mask.
REGION_COLORS = (QColor(40, 150, 255), QColor(60, 200, 90), QColor(240, 180, 30), QColor(190, 80, 230),
                 QColor(30, 200, 200), QColor(240, 110, 40), QColor(150, 150, 255), QColor(160, 210, 60))
REGION_OPACITY = 0.4


def region_color(doc: Document, layer_id: str) -> QColor:
    regions = [layer.id for layer in doc.layers if layer.kind == "region"]
    return REGION_COLORS[regions.index(layer_id) % len(REGION_COLORS)] if layer_id in regions else REGION_COLORS[0]


class CanvasView(QWidget):
    files_dropped = Signal(list)  # local file paths dropped on the canvas
    status = Signal(str)

    def __init__(self, doc: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc = doc
        self.brush_size = 8.0
        self.erase = False
        self.color = QColor(20, 20, 20)
        self.preview = QImage()
        self._gesture: Stroke | JointDrag | None = None
        self._hover: QPointF | None = None
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setMinimumSize(320, 320)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        doc.layers_changed.connect(self.update)
        doc.pixels_changed.connect(lambda _id: self.update())

    # ---- geometry: document <-> widget coordinates -----------------------------------------

    def transform(self) -> QTransform:
        margin = 16
        avail_w, avail_h = max(1, self.width() - 2 * margin), max(1, self.height() - 2 * margin)
        scale = min(avail_w / self.doc.width, avail_h / self.doc.height)
        dx = (self.width() - self.doc.width * scale) / 2
        dy = (self.height() - self.doc.height * scale) / 2
        return QTransform(scale, 0, 0, scale, dx, dy)

    def to_doc(self, pos: QPointF) -> QPointF:
        inverted, _ok = self.transform().inverted()
        return inverted.map(QPointF(pos))

    def to_widget(self, point: QPointF) -> QPointF:
        return self.transform().map(QPointF(point))

    def set_preview(self, image: QImage) -> None:
        self.preview = image
        self.update()

    # ---- painting ---------------------------------------------------------------------------

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 31, 34))
        t = self.transform()
        painter.setTransform(t)
        page = QRectF(0, 0, self.doc.width, self.doc.height)
        painter.fillRect(page, QColor(255, 255, 255))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        active = self.doc.active
        for layer in self.doc.layers:
            if not layer.visible:
                continue
            painter.setOpacity(layer.opacity)
            if layer.kind == "pose":
                draw_people(painter, layer.people, scale=1.0 / t.m11(), handles=layer is active)
            elif layer.kind == "mask":
                painter.setOpacity(MASK_OPACITY * layer.opacity)
                painter.drawImage(0, 0, mask_overlay(layer.image))
            elif layer.kind == "region":
                painter.setOpacity(REGION_OPACITY * layer.opacity)
                painter.drawImage(0, 0, tinted(layer.image, region_color(self.doc, layer.id)))
            else:
                painter.drawImage(0, 0, layer.image)
        painter.setOpacity(1.0)
        if not self.preview.isNull():
            painter.drawImage(page, self.preview)
        painter.setPen(QPen(QColor(70, 72, 78), 1.0 / t.m11()))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(page)
        if self._hover is not None and active is not None and active.kind in PAINT_KINDS:
            painter.setPen(QPen(QColor(120, 170, 255), 1.0 / t.m11()))
            r = self.brush_size / 2
            painter.drawEllipse(self._hover, r, r)
        painter.end()

    # ---- mouse ------------------------------------------------------------------------------

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        layer = self.doc.active
        point = self.to_doc(event.position())
        if layer is None:
            self.status.emit("Add a layer first (Layer menu)")
            return
        if not layer.visible:
            self.status.emit(f"{layer.name} is hidden: show it to draw on it")
            return
        if layer.kind in PAINT_KINDS:
            self._gesture = Stroke(self.doc, layer.id, size=self.brush_size, erase=self.erase, color=self.color)
            self._gesture.begin(point)
        elif layer.kind == "pose":
            radius = 12.0 / self.transform().m11()  # 12 screen pixels, whatever the zoom
            self._gesture = JointDrag.grab(self.doc, layer.id, point, radius)

    def mouseMoveEvent(self, event) -> None:
        self._hover = self.to_doc(event.position())
        if self._gesture is not None:
            self._gesture.move(self._hover)
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._gesture is not None:
            gesture, self._gesture = self._gesture, None
            gesture.end()

    def leaveEvent(self, _event) -> None:
        self._hover = None
        self.update()

    # ---- drag and drop ----------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.files_dropped.emit(paths)
            event.acceptProposedAction()


def mask_overlay(image: QImage) -> QImage:
    """How a mask shows: red, hatched with light lines so that it stays visible over red pictures
    (bricks, skin) where a flat red tint disappears."""
    out = tinted(image, MASK_TINT)
    painter = QPainter(out)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceAtop)  # only where painted
    painter.fillRect(out.rect(), QBrush(MASK_HATCH, Qt.BrushStyle.BDiagPattern))
    painter.end()
    return out


def tinted(image: QImage, color: QColor) -> QImage:
    """The painted part of ``image`` in one flat colour (the mask overlay)."""
    out = image.copy()
    painter = QPainter(out)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
    painter.fillRect(out.rect(), QBrush(color))
    painter.end()
    return out
