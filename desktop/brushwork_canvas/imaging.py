"""QImage helpers: PNG bytes in and out, and the pictures a Recipe needs from layers.

numpy is used for per-pixel work (it is light and already a dependency); torch never is.
"""

from __future__ import annotations

import numpy as np
from brushwork.errors import InputImageError
from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QColor, QImage, QPainter

LAYER_FORMAT = QImage.Format.Format_ARGB32_Premultiplied


def blank(width: int, height: int) -> QImage:
    image = QImage(width, height, LAYER_FORMAT)
    image.fill(0)
    return image


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise InputImageError("could not encode the picture as PNG")
    buffer.close()
    return bytes(data.data())


def image_from_bytes(data: bytes, what: str = "image") -> QImage:
    image = QImage()
    if not data or not image.loadFromData(data):
        raise InputImageError(f"{what}: not a picture Qt can read (PNG, JPEG, WebP, BMP ...)")
    return image


def image_from_file(path: str) -> QImage:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputImageError(f"{path}: {exc.strerror or exc}") from None
    return image_from_bytes(data, path)


def fit_into(image: QImage, width: int, height: int) -> QImage:
    """``image`` scaled to cover a width x height layer (aspect kept, centred, cropped)."""
    from PySide6.QtCore import Qt

    out = blank(width, height)
    scaled = image.scaled(width, height, Qt.AspectRatioMode.KeepAspectRatioByExpanding,
                          Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(out)
    painter.drawImage((width - scaled.width()) // 2, (height - scaled.height()) // 2, scaled)
    painter.end()
    return out


def rgba_array(image: QImage) -> np.ndarray:
    """(H, W, 4) uint8, straight (not premultiplied) RGBA; a copy."""
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : w * 4].reshape(h, w, 4).copy()


def from_array(array: np.ndarray) -> QImage:
    """A QImage from (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA uint8 (copied)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    h, w = array.shape[:2]
    if array.ndim == 2:
        fmt, stride = QImage.Format.Format_Grayscale8, w
    elif array.shape[2] == 3:
        fmt, stride = QImage.Format.Format_RGB888, w * 3
    else:
        fmt, stride = QImage.Format.Format_RGBA8888, w * 4
    return QImage(array.data, w, h, stride, fmt).copy()


def alpha_mask(image: QImage, threshold: int = 8) -> np.ndarray:
    """Boolean (H, W): where the layer has paint."""
    return rgba_array(image)[:, :, 3] >= threshold


def white_on_black(image: QImage) -> QImage:
    """Paint → white on black: scribble controls and inpaint masks (white = repaint)."""
    gray = np.where(alpha_mask(image), 255, 0).astype(np.uint8)
    return from_array(gray)


def flatten(images: list[tuple[QImage, float]], width: int, height: int, background: QColor) -> QImage:
    """Composite (image, opacity) pairs bottom-up over an opaque background, as RGB."""
    out = QImage(width, height, QImage.Format.Format_RGB32)
    out.fill(background)
    painter = QPainter(out)
    for image, opacity in images:
        painter.setOpacity(opacity)
        painter.drawImage(0, 0, image)
    painter.end()
    return out.convertToFormat(QImage.Format.Format_RGB888)
