"""Strokes, masks and pose joints through the real canvas widget and mouse events; undo/redo."""

from __future__ import annotations

import json

import pytest
from brushwork_canvas import imaging
from brushwork_canvas.commands import AddLayer, MoveLayer, RemoveLayer, SetLayerProps
from brushwork_canvas.pose import from_openpose, new_person, to_openpose
from brushwork_canvas.tools import Stroke
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest


def drag(view, points):
    """Press at the first document point, move through the rest, release at the last."""
    widget_points = [view.to_widget(QPointF(*p)).toPoint() for p in points]
    QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_points[0])
    for wp in widget_points[1:]:
        QTest.mouseMove(view, wp)
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, widget_points[-1])


def painted(layer):
    return imaging.alpha_mask(layer.image)


def add(doc, kind):
    layer = doc.new_layer(kind)
    doc.undo_stack.push(AddLayer(doc, layer))
    return doc.layer(layer.id)


def test_pen_stroke_paints_only_the_active_layer_and_undo_redo_restore_it(window):
    doc, view = window.doc, window.canvas
    sketch = doc.layers[0]
    mask = add(doc, "mask")
    doc.set_active(sketch.id)
    view.brush_size = 6
    drag(view, [(20, 64), (60, 64), (100, 64)])

    hit = painted(sketch)
    assert hit[64, 20:100].all(), "the stroke covers its path"
    assert not hit[10, :].any() and not hit[120, :].any(), "and nothing far from it"
    assert not painted(mask).any(), "the inactive mask layer is untouched"
    assert doc.undo_stack.count() == 2 and doc.undo_stack.undoText() == "Paint"

    doc.undo_stack.undo()
    assert not painted(doc.layer(sketch.id)).any()
    doc.undo_stack.redo()
    assert painted(doc.layer(sketch.id))[64, 20:100].all()


def test_eraser_removes_paint_and_is_one_undo_step(window):
    doc, view = window.doc, window.canvas
    sketch = doc.layers[0]
    view.brush_size = 10
    drag(view, [(10, 40), (118, 40)])
    view.erase = True
    drag(view, [(64, 20), (64, 60)])
    hit = painted(sketch)
    assert not hit[40, 60:68].any(), "erased where the eraser crossed"
    assert hit[40, 20] and hit[40, 110], "kept elsewhere"
    doc.undo_stack.undo()
    assert painted(doc.layer(sketch.id))[40, 60:68].all()


def test_painting_a_hidden_layer_does_nothing_and_says_why(window, qtbot):
    doc, view = window.doc, window.canvas
    sketch = doc.layers[0]
    doc.undo_stack.push(SetLayerProps(doc, sketch.id, visible=False))
    with qtbot.waitSignal(view.status) as blocker:
        drag(view, [(20, 20), (50, 50)])
    assert "hidden" in blocker.args[0]
    assert not painted(sketch).any()


def test_mask_painting_makes_a_white_on_black_mask(window):
    from brushwork_canvas.recipes import mask_picture

    doc, view = window.doc, window.canvas
    mask = add(doc, "mask")
    view.brush_size = 12
    drag(view, [(30, 30), (90, 30)])
    assert painted(mask)[30, 30:90].all()
    assert not painted(doc.layers[0]).any(), "the sketch layer below is untouched"
    picture = imaging.rgba_array(imaging.image_from_bytes(mask_picture(doc)))
    assert picture[30, 60, :3].tolist() == [255, 255, 255], "white = repaint"
    assert picture[100, 60, :3].tolist() == [0, 0, 0]
    view.erase = True
    drag(view, [(20, 30), (100, 30)])
    with pytest.raises(Exception, match="mask is empty"):
        mask_picture(doc)


def test_dragging_a_pose_joint_changes_the_exported_openpose_json(window):
    doc, view = window.doc, window.canvas
    window.add_layer("pose")
    pose = doc.active
    assert pose.kind == "pose" and len(pose.people) == 1
    before = to_openpose(pose.people, doc.width, doc.height)
    wrist = pose.people[0][4][:2]  # right wrist
    drag(view, [tuple(wrist), (wrist[0] - 10, wrist[1] + 5), (wrist[0] - 20, wrist[1] + 10)])

    after = to_openpose(doc.layer(pose.id).people, doc.width, doc.height)
    keypoints = after["people"][0]["pose_keypoints_2d"]
    assert keypoints[12:14] == pytest.approx([wrist[0] - 20, wrist[1] + 10], abs=1.0)
    assert keypoints[:12] == before["people"][0]["pose_keypoints_2d"][:12], "other joints stay put"
    assert json.loads(json.dumps(after)) == after
    doc.undo_stack.undo()
    assert to_openpose(doc.layer(pose.id).people, doc.width, doc.height) == before


def test_add_person_and_openpose_round_trip(window):
    doc = window.doc
    window.add_layer("pose")
    window.add_person()
    pose = doc.active
    assert len(pose.people) == 2
    data = to_openpose(pose.people, doc.width, doc.height)
    assert len(data["people"][1]["pose_keypoints_2d"]) == 54
    assert from_openpose(json.dumps(data), doc.width, doc.height) == pose.people
    # a pose made for a canvas twice as large is scaled down to this document
    big = to_openpose([new_person(256, 256)], 256, 256)
    scaled = from_openpose(big, 128, 128)[0]
    assert scaled[1][:2] == pytest.approx([v / 2 for v in new_person(256, 256)[1][:2]], abs=0.02)


@pytest.mark.parametrize("bad, reason", [
    ("not json", "not valid JSON"),
    ({"nobody": []}, "'people' list"),
    ({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}, "18 x"),
    ({"people": [{"pose_keypoints_2d": ["x"] * 54}]}, "not a number"),
])
def test_bad_openpose_json_is_one_clear_error(bad, reason):
    from brushwork_canvas.pose import PoseFormatError

    with pytest.raises(PoseFormatError, match=reason):
        from_openpose(bad if isinstance(bad, str) else json.dumps(bad), 64, 64)


def test_layer_operations_undo_and_redo(doc):
    a, b = add(doc, "sketch"), add(doc, "mask")
    assert [layer.id for layer in doc.layers] == [a.id, b.id]
    doc.undo_stack.push(MoveLayer(doc, b.id, 0))
    assert [layer.id for layer in doc.layers] == [b.id, a.id]
    doc.undo_stack.push(RemoveLayer(doc, a.id))
    assert [layer.id for layer in doc.layers] == [b.id]
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert [layer.id for layer in doc.layers] == [a.id, b.id]
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.layers == []
    for _ in range(4):
        doc.undo_stack.redo()
    assert [layer.id for layer in doc.layers] == [b.id]


def test_stroke_outside_the_document_records_nothing(doc):
    layer = add(doc, "sketch")
    count = doc.undo_stack.count()
    stroke = Stroke(doc, layer.id, size=4)
    stroke.begin(QPointF(-50, -50))
    stroke.move(QPointF(-40, -45))
    stroke.end()
    assert doc.undo_stack.count() == count
    assert not painted(layer).any()


def test_cannot_paint_on_a_pose_layer(doc):
    from brushwork_canvas.document import CanvasError

    layer = add(doc, "pose")
    with pytest.raises(CanvasError, match="cannot paint on a pose layer"):
        Stroke(doc, layer.id, size=4)
