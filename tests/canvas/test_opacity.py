"""Layer opacity: the layers panel's slider and spin box (real widgets, real mouse), one undo step per
edit, saved in .bwcanvas, and honoured on screen and in the picture Refine/Inpaint start from."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork_canvas import imaging
from brushwork_canvas.commands import AddLayer
from brushwork_canvas.docfile import load_document, save_document
from brushwork_canvas.document import CanvasError
from brushwork_canvas.recipes import build_job, visible_picture
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyle, QStyleOptionSlider


def black_square(doc, layer, rect=(16, 16, 96, 96)):
    """Opaque black over ``rect`` of a layer, without the undo stack (test setup, not an edit)."""
    arr = np.zeros((doc.height, doc.width, 4), np.uint8)
    x, y, w, h = rect
    arr[y:y + h, x:x + w] = (0, 0, 0, 255)
    doc._set_image(layer.id, imaging.from_array(arr).convertToFormat(imaging.LAYER_FORMAT))


def set_spin(spin, value):
    """Type a value into a spin box and press Enter, as a user does."""
    spin.setFocus()
    spin.selectAll()
    QTest.keyClicks(spin, str(value))
    QTest.keyClick(spin, Qt.Key.Key_Return)


def handle_center(slider) -> QPoint:
    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    rect = slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                         QStyle.SubControl.SC_SliderHandle, slider)
    return rect.center()


def png_pixel(png: bytes, x: int, y: int) -> tuple:
    rgb = imaging.rgba_array(imaging.image_from_bytes(png))[y, x, :3]
    return tuple(int(v) for v in rgb)


def test_the_spin_box_sets_the_active_layers_opacity_as_one_undo_step(window):
    doc, panel = window.doc, window.layers_panel
    sketch = doc.layers[0]
    assert panel.opacity_spin.value() == 100 and panel.opacity_slider.value() == 100
    set_spin(panel.opacity_spin, 40)
    assert sketch.opacity == pytest.approx(0.40)
    assert panel.opacity_slider.value() == 40, "slider and spin box show the same value"
    assert doc.undo_stack.count() == 1 and doc.undo_stack.undoText() == "Layer opacity"
    assert "40 %" in panel.list.item(0).text(), "the layer list says the layer is faded"
    doc.undo_stack.undo()
    assert sketch.opacity == 1.0 and panel.opacity_spin.value() == 100
    doc.undo_stack.redo()
    assert sketch.opacity == pytest.approx(0.40)


def test_a_slider_drag_is_one_undo_step_and_two_drags_are_two(window, qtbot):
    doc, panel = window.doc, window.layers_panel
    sketch = doc.layers[0]
    slider = panel.opacity_slider
    for target_x in (slider.width() // 2, slider.width() // 4):
        start = handle_center(slider)
        QTest.mousePress(slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        for step in range(1, 6):  # several intermediate values, each applied at once
            x = start.x() + (target_x - start.x()) * step // 5
            QTest.mouseMove(slider, QPoint(x, start.y()))
        QTest.mouseRelease(slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                           QPoint(target_x, start.y()))
    assert 0.0 < sketch.opacity < 0.5, "the handle went left: the layer is fainter"
    assert doc.undo_stack.count() == 2, "each drag is one undo step, whatever values it passed"
    second = sketch.opacity
    doc.undo_stack.undo()
    assert 0.3 < sketch.opacity < 0.75 and sketch.opacity != second, "undo goes back to where the first drag ended"
    doc.undo_stack.undo()
    assert sketch.opacity == 1.0


def test_opacity_edits_the_active_layer_only_and_follows_selection(window):
    doc, panel = window.doc, window.layers_panel
    sketch = doc.layers[0]
    image = doc.new_layer("image")
    doc.undo_stack.push(AddLayer(doc, image))
    set_spin(panel.opacity_spin, 25)
    assert image.opacity == pytest.approx(0.25) and sketch.opacity == 1.0
    doc.set_active(sketch.id)
    assert panel.opacity_spin.value() == 100 and panel.opacity_slider.value() == 100
    doc.set_active(image.id)
    assert panel.opacity_spin.value() == 25


def test_opacity_is_honoured_on_screen_and_in_the_refine_picture(window):
    doc, panel = window.doc, window.layers_panel
    sketch = doc.layers[0]
    black_square(doc, sketch)
    set_spin(panel.opacity_spin, 50)

    init_png = visible_picture(doc)
    assert png_pixel(init_png, 64, 64) == pytest.approx((128, 128, 128), abs=2), "50 % black over white"
    assert png_pixel(init_png, 4, 4) == (255, 255, 255)

    job = build_job(doc, "refine")
    assert job.assets[job.recipe.init_image] == init_png, "Refine starts from the faded picture"
    mask = doc.new_layer("mask")
    doc.undo_stack.push(AddLayer(doc, mask))
    black_square(doc, mask, (40, 40, 20, 20))
    job = build_job(doc, "inpaint")
    assert job.assets[job.recipe.init_image] == init_png, "so does Inpaint (the mask is not part of the picture)"
    doc.set_active(sketch.id)

    view = window.canvas
    window.canvas.repaint()
    shot = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    centre = view.to_widget(QPointF(64, 64)).toPoint()
    pixel = shot.pixelColor(centre)
    assert abs(pixel.red() - 128) <= 3 and abs(pixel.green() - 128) <= 3, "the canvas shows it at 50 %"

    set_spin(panel.opacity_spin, 0)
    assert png_pixel(visible_picture(doc), 64, 64) == (255, 255, 255), "0 % hides the layer's paint"


def test_opacity_survives_save_and_open(window, tmp_path):
    doc, panel = window.doc, window.layers_panel
    set_spin(panel.opacity_spin, 35)
    back = load_document(save_document(doc, tmp_path / "faded.bwcanvas"))
    assert back.layers[0].opacity == pytest.approx(0.35)


@pytest.mark.parametrize("bad", [1.2, -0.1, float("nan"), "0.5", True])
def test_the_model_refuses_an_opacity_outside_0_to_1(doc, bad):
    layer = doc.new_layer("sketch")
    doc.undo_stack.push(AddLayer(doc, layer))
    with pytest.raises(CanvasError, match="opacity must be a number from 0 to 1"):
        doc._set_props(layer.id, {"opacity": bad})
    assert layer.opacity == 1.0


def test_a_mask_stays_visible_over_a_red_picture(window):
    """A flat red tint vanishes over red bricks; the hatched overlay must not."""
    doc, view = window.doc, window.canvas
    red = np.zeros((doc.height, doc.width, 3), np.uint8)
    red[:] = (200, 30, 30)
    image = doc.new_layer("image", "Bricks", imaging.from_array(red))
    doc.undo_stack.push(AddLayer(doc, image))
    mask = doc.new_layer("mask")
    doc.undo_stack.push(AddLayer(doc, mask))
    black_square(doc, mask, (32, 32, 64, 64))
    view.repaint()
    shot = imaging.rgba_array(view.grab().toImage())[:, :, :3].astype(int)
    top_left = view.to_widget(QPointF(36, 36)).toPoint()
    bottom_right = view.to_widget(QPointF(92, 92)).toPoint()
    masked = shot[top_left.y():bottom_right.y(), top_left.x():bottom_right.x()]
    difference = np.abs(masked - np.array([200, 30, 30])).max(axis=2)
    assert (difference > 40).mean() > 0.1, "the hatch lines stand out (a flat red tint: none do)"
    outside = view.to_widget(QPointF(10, 10)).toPoint()
    assert np.abs(shot[outside.y(), outside.x()] - np.array([200, 30, 30])).max() <= 3, "unmasked: the picture as is"
