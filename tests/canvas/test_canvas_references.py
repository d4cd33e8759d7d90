"""Reference slots (issue 17): a picture file or a layer dropped on a slot becomes one of the
Recipe's references, with the slot's weight and mode; a drop that is not a picture changes
nothing and says why in the Messages panel."""

from __future__ import annotations

import numpy as np
from brushwork_canvas import imaging
from brushwork_canvas.docfile import load_document, save_document
from brushwork_canvas.recipes import build_job
from canvas_helpers import paint, png_file
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent


def drop(widget, mime):
    """A real drop event delivered to the slot widget (what Qt sends when the mouse is released)."""
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)


def file_mime(path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def stripes():
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, ::4] = (250, 200, 10)
    return arr


def test_a_dropped_picture_file_becomes_a_reference_with_the_slots_weight_and_mode(window, tmp_path):
    doc, box = window.doc, window.generate_panel.references
    path = png_file(tmp_path / "golden stripes.png", stripes())
    assert box.slots[0].isVisibleTo(window) and not box.slots[1].isVisibleTo(window), "one empty slot to drop on"
    drop(box.slots[0], file_mime(path))
    assert [s.name for s in doc.references] == ["golden stripes"]
    assert box.slots[1].isVisibleTo(window), "the next empty slot shows"

    box.slots[0].weight.setValue(0.9)
    box.slots[0].weight.editingFinished.emit()
    box.slots[0].mode.setCurrentText("composition")
    box.slots[0].mode.activated.emit(1)
    job = build_job(doc, "generate")
    (ref,) = job.recipe.references
    assert (ref.weight, ref.mode) == (0.9, "composition")
    sent = imaging.rgba_array(imaging.image_from_bytes(job.assets[ref.image]))
    assert sent.shape[:2] == (40, 60) and (sent[:, :, :3] == stripes()).all(), "the picture as it is, pixel for pixel"
    assert job.recipe.validate() is job.recipe

    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert (doc.references[0].weight, doc.references[0].mode) == (0.6, "style"), "edits are undoable"
    doc.undo_stack.undo()
    assert doc.references == [] and build_job(doc, "generate").recipe.references == []


def test_a_layer_dragged_from_the_layers_list_fills_a_slot(window):
    doc, box = window.doc, window.generate_panel.references
    sketch = doc.layers[0]
    paint(doc, sketch, [(10, 64), (118, 64)], size=8)
    item = window.layers_panel.list.currentItem()
    mime = window.layers_panel.list.mimeData([item])  # what dragging the row carries
    drop(box.slots[0], mime)
    assert [s.name for s in doc.references] == [sketch.name]
    job = build_job(doc, "generate")
    picture = imaging.rgba_array(imaging.image_from_bytes(job.assets[job.recipe.references[0].image]))
    assert picture[64, 64, :3].max() < 60 and picture[10, 10, :3].tolist() == [255, 255, 255], \
        "the layer's strokes over white"


def test_a_file_that_is_not_a_picture_changes_nothing_and_says_why(window, tmp_path):
    doc, box = window.doc, window.generate_panel.references
    good = png_file(tmp_path / "ref.png", stripes())
    drop(box.slots[0], file_mime(good))
    before = imaging.rgba_array(doc.references[0].image)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    drop(box.slots[0], file_mime(notes))  # onto the filled slot
    assert "Reference slot 1" in window.messages_panel.text() and "notes.txt" in window.messages_panel.text()
    assert "not a picture" in window.messages_panel.text()
    assert len(doc.references) == 1 and (imaging.rgba_array(doc.references[0].image) == before).all(), \
        "the slot keeps its picture"

    window.add_layer("pose")
    pose_item = window.layers_panel.list.currentItem()
    drop(box.slots[1], window.layers_panel.list.mimeData([pose_item]))
    assert "has no picture to use as a reference" in window.messages_panel.text()
    text = QMimeData()
    text.setText("hello")
    drop(box.slots[1], text)
    assert "drop a picture file, a picture, or a layer" in window.messages_panel.text()
    assert len(doc.references) == 1


def test_references_are_saved_and_open_again(window, tmp_path):
    doc, box = window.doc, window.generate_panel.references
    drop(box.slots[0], file_mime(png_file(tmp_path / "a.png", stripes())))
    big = np.zeros((1500, 3000, 3), np.uint8)
    big[:, 1500:] = 255
    drop(box.slots[1], file_mime(png_file(tmp_path / "wide.png", big)))
    assert (doc.references[1].image.width(), doc.references[1].image.height()) == (1024, 512), \
        "a large picture is kept at 1024 on its long side"
    back = load_document(save_document(doc, tmp_path / "refs.bwcanvas"))
    assert [(s.name, s.weight, s.mode, s.id) for s in back.references] == \
        [(s.name, s.weight, s.mode, s.id) for s in doc.references]
    assert (imaging.rgba_array(back.references[0].image) == imaging.rgba_array(doc.references[0].image)).all()
