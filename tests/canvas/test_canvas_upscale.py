"""The Upscale action (issue 17): the visible picture goes out as a task-"upscale" Recipe (strength
0, the factor, the model or Lanczos, an optional refine); the result lands as a new layer on a
document enlarged to its size, and in the history; one Undo gives back the artist's layers."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork_canvas import imaging
from brushwork_canvas.document import CanvasError, Document
from brushwork_canvas.recipes import build_job, visible_picture
from canvas_helpers import StandInBackend, paint, region_layer, window_with
from PySide6.QtTest import QTest


@pytest.fixture
def win(qtbot, qapp):
    window = window_with(qtbot, StandInBackend(), size=64)
    yield window
    assert window.session.runner.shutdown(10000)


def test_upscale_sends_the_visible_picture_as_an_upscale_recipe(win):
    doc = win.doc
    paint(doc, doc.layers[0], [(4, 32), (60, 32)], size=6)
    doc.update_settings(prompt="bricks", upscale_factor=4, upscale_model="4x-tiny-esrgan")
    job = build_job(doc, "upscale")
    r = job.recipe
    assert r.task == "upscale" and r.strength == 0
    assert (r.upscale.model, r.upscale.factor, r.upscale.refine) == ("4x-tiny-esrgan", 4.0, 0.0)
    assert job.assets[r.init_image] == visible_picture(doc), "the flattened canvas, as Refine would start from"
    assert (r.width, r.height) == (64, 64) and r.size == (256, 256)

    doc.update_settings(upscale_factor=2, upscale_model="", upscale_refine=0.3)
    refine = build_job(doc, "upscale").recipe
    assert (refine.upscale.model, refine.upscale.refine, refine.strength) == ("", 0.3, 0.0)
    assert refine.prompt == "bricks", "the refine pass uses the prompt"
    assert refine.regions == [] and refine.controls == []


def test_the_refine_takes_the_region_layers(win):
    doc = win.doc
    doc.update_settings(prompt="a stone wall")
    region_layer(win, "red bricks", [(10, 10), (10, 50)], size=8)
    doc.update_settings(upscale_factor=2, upscale_model="", upscale_refine=0.3)
    refine = build_job(doc, "upscale").recipe
    assert [g.prompt for g in refine.regions] == ["red bricks"], "the refine is the diffusion regions act in"
    refine.validate()
    doc.update_settings(upscale_refine=0.0)
    assert build_job(doc, "upscale").recipe.regions == [], "an upscale alone runs no diffusion for them"


def test_the_result_lands_as_a_new_layer_and_undo_gives_the_layers_back(win, qtbot):
    doc = win.doc
    sketch = doc.layers[0]
    paint(doc, sketch, [(4, 32), (60, 32)], size=6)
    before_pixels = imaging.rgba_array(sketch.image)
    win.add_layer("mask")
    mask = doc.active
    paint(doc, mask, [(20, 10), (20, 50)], size=8)
    win.add_layer("pose")
    pose = doc.active
    joints = [list(j) for j in pose.people[0]]
    names = [layer.name for layer in doc.layers]

    with qtbot.waitSignal(win.session.result_added, timeout=10000):
        assert win.upscale(upscale_factor=2, upscale_model="", upscale_refine=0.0) is not None
    sent = win.session.submitted[-1].recipe
    assert sent.task == "upscale" and sent.upscale.factor == 2
    assert (doc.width, doc.height) == (128, 128), "the document grew to the result's size"
    assert [layer.name for layer in doc.layers] == names + ["Upscaled 1"], "a new layer on top; none replaced"
    top = imaging.rgba_array(doc.layers[-1].image)
    assert top.shape[:2] == (128, 128) and top[64, 64, :3].max() < 90 and top[10, 10, :3].min() > 200
    assert imaging.alpha_mask(mask.image)[60, 40], "the mask was resampled with the document"
    assert pose.people[0][0][0] == pytest.approx(joints[0][0] * 2, abs=0.05)
    assert doc.history[0].task == "upscale" and win.history_panel.list.count() == 1
    assert win.generate_panel.size_label.text() == "128 × 128"

    doc.undo_stack.undo()  # the whole upscale is one step
    assert (doc.width, doc.height) == (64, 64) and [layer.name for layer in doc.layers] == names
    assert (imaging.rgba_array(sketch.image) == before_pixels).all(), "the very pixels the layer had"
    assert [list(j) for j in pose.people[0]] == joints
    assert len(doc.history) == 1, "the result stays in the history"


def test_a_result_for_a_document_that_changed_meanwhile_goes_to_the_history_only(win, qtbot):
    doc = win.doc
    win.session.run("upscale")
    doc.reset(96, 96)  # File > New while the job ran
    qtbot.waitUntil(lambda: not win.session.busy, timeout=10000)
    assert (doc.width, doc.height) == (96, 96) and doc.layers == []
    assert len(doc.history) == 1 and "no longer 64x64" in win.messages_panel.text()


def test_an_upscale_past_the_size_limit_is_refused_before_anything_is_sent(qapp):
    doc = Document(2048, 64)
    doc.update_settings(upscale_factor=4)
    with pytest.raises(CanvasError, match="would be 8192x256; a document is at most 4096"):
        build_job(doc, "upscale")


def test_the_dialog_offers_lanczos_and_the_workers_upscalers(win, qtbot):
    from brushwork_canvas.upscale_dialog import LANCZOS, UpscaleDialog

    win.session.upscalers_loaded.emit(["4x-tiny-esrgan"])
    dialog = UpscaleDialog(win.doc, win.upscalers, win)
    qtbot.addWidget(dialog)
    assert [dialog.model.itemText(i) for i in range(dialog.model.count())] == [LANCZOS, "4x-tiny-esrgan"]
    assert dialog.choices() == {"upscale_factor": 2, "upscale_model": "", "upscale_refine": 0.0}
    dialog.factor.setCurrentIndex(1)
    dialog.model.setCurrentIndex(1)
    dialog.refine.clear()
    QTest.keyClicks(dialog.refine, "0.25")
    assert dialog.size_label.text() == "256 × 256"
    assert dialog.choices() == {"upscale_factor": 4, "upscale_model": "4x-tiny-esrgan", "upscale_refine": 0.25}


def test_the_stand_in_enlarges_like_the_worker_would(qapp):
    """The stand-in's result is the init picture at factor x size (its output is what the canvas
    is tested against, so it is checked too)."""
    from brushwork.recipe import Recipe, Upscale
    from canvas_helpers import StandInBackend

    backend = StandInBackend()
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:, 32:] = 255
    ref = backend.upload(imaging.png_bytes(imaging.from_array(arr)))
    job = backend.submit(Recipe(init_image=ref, strength=0.0, upscale=Upscale(factor=2.0), width=64, height=64))
    result = list(job.updates())[-1]
    out = imaging.rgba_array(imaging.image_from_bytes(result.images[0]))
    assert out.shape[:2] == (128, 128) and out[5, 5, 0] == 0 and out[5, 120, 0] == 255
