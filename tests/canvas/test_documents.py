"""Save → open round-trips, autosave, corrupt files, PNG export with metadata, recipes from layers."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from brushwork.recipe import Recipe
from brushwork_canvas import imaging
from brushwork_canvas.commands import AddLayer, SetLayerProps
from brushwork_canvas.docfile import load_document, save_document
from brushwork_canvas.document import CanvasError, ControlSettings, Document, HistoryEntry
from brushwork_canvas.png_meta import read_text, with_metadata
from brushwork_canvas.pose import new_person
from brushwork_canvas.recipes import build_job, visible_picture
from brushwork_canvas.tools import Stroke
from PySide6.QtCore import QPointF


def add(doc, kind, **props):
    layer = doc.new_layer(kind)
    if kind == "pose":
        layer.people = [new_person(doc.width, doc.height)]
    doc.undo_stack.push(AddLayer(doc, layer))
    return layer


def scribble(doc, layer, a=(8, 8), b=(56, 56), size=5):
    stroke = Stroke(doc, layer.id, size=size)
    stroke.begin(QPointF(*a))
    stroke.move(QPointF(*b))
    stroke.end()


def result_png(doc, color=(200, 30, 30)):
    arr = np.zeros((doc.height, doc.width, 3), np.uint8)
    arr[:] = color
    return imaging.png_bytes(imaging.from_array(arr))


@pytest.fixture
def full_doc(doc):
    sketch = add(doc, "sketch")
    scribble(doc, sketch)
    mask = add(doc, "mask")
    scribble(doc, mask, (10, 50), (50, 50), size=9)
    pose = add(doc, "pose")
    doc.undo_stack.push(SetLayerProps(doc, sketch.id, control=ControlSettings(True, "scribble", 0.7, 0.1, 0.8)))
    doc.undo_stack.push(SetLayerProps(doc, mask.id, visible=False, opacity=0.5))
    doc.update_settings(prompt="a red fox", negative_prompt="blurry", seed=1234, seed_locked=True, steps=3)
    recipe = Recipe(prompt="a red fox", width=64, height=64, seed=99, steps=3)
    doc.add_history(HistoryEntry(png=result_png(doc), recipe=recipe, task="generate"))
    doc.set_active(pose.id)
    return doc


def test_save_open_round_trip_keeps_layers_pixels_pose_history_and_settings(full_doc, tmp_path):
    path = save_document(full_doc, tmp_path / "art.bwcanvas")
    assert [p.name for p in tmp_path.iterdir()] == ["art.bwcanvas"], "no temporary file left behind"
    back = load_document(path)
    assert (back.width, back.height) == (64, 64)
    assert [(la.id, la.kind, la.name, la.visible, la.opacity) for la in back.layers] == \
        [(la.id, la.kind, la.name, la.visible, la.opacity) for la in full_doc.layers]
    for a, b in zip(full_doc.layers, back.layers, strict=True):
        assert a.control == b.control
        if a.kind == "pose":
            assert b.people == a.people
        else:
            assert (imaging.rgba_array(a.image) == imaging.rgba_array(b.image)).all()
    assert back.active_id == full_doc.active_id
    assert back.settings == full_doc.settings
    assert [(h.id, h.png, h.recipe, h.task) for h in back.history] == \
        [(h.id, h.png, h.recipe, h.task) for h in full_doc.history]
    assert back.undo_stack.count() == 0 and not back.dirty


def test_the_file_is_a_zip_with_a_readable_manifest(full_doc, tmp_path):
    path = save_document(full_doc, tmp_path / "art.bwcanvas")
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = set(zf.namelist())
    assert manifest["format"] == "brushwork-canvas" and manifest["version"] == 2
    assert {e["kind"] for e in manifest["layers"]} == {"sketch", "mask", "pose"}
    pose = next(e for e in manifest["layers"] if e["kind"] == "pose")
    assert len(pose["pose"]["people"][0]["pose_keypoints_2d"]) == 54
    assert all(e["file"] in names for e in manifest["layers"] if "file" in e)
    assert manifest["history"][0]["recipe"]["seed"] == 99


def test_saving_over_a_file_replaces_it_whole(full_doc, tmp_path):
    path = tmp_path / "art.bwcanvas"
    save_document(full_doc, path)
    full_doc.update_settings(prompt="changed")
    save_document(full_doc, path)
    assert load_document(path).settings.prompt == "changed"


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"not a zip"), "not a Brushwork canvas document"),
    (lambda p: _rewrite(p, drop="manifest.json"), "manifest.json is missing"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "format": "other"}), "does not describe"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "version": 99}), "version 99"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "width": 63}), "multiple of 8"),
    (lambda p: _rewrite(p, drop_layer_files=True), "is missing from the document"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "layers": [{"kind": "sculpture"}]}), "kind must be one of"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "history": [{"recipe": {"steps": "many"}, "file": "x"}]}), "steps"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "layers": [{**m["layers"][0], "opacity": 1.5}]}),
     r"layers\[0\]\.opacity must be a number from 0 to 1, got 1\.5"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "layers": [{**m["layers"][0], "opacity": "half"}]}),
     r"layers\[0\]\.opacity must be a number from 0 to 1, got 'half'"),
    (lambda p: _rewrite(p, manifest=lambda m: {**m, "results_since": "yesterday"}), "results_since must be a time"),
])
def test_a_damaged_document_is_one_clear_error(full_doc, tmp_path, damage, message):
    path = save_document(full_doc, tmp_path / "art.bwcanvas")
    damage(path)
    with pytest.raises(CanvasError, match=message) as info:
        load_document(path)
    assert str(path) in str(info.value)


def test_a_missing_document_names_the_file(tmp_path):
    with pytest.raises(CanvasError, match="no such file"):
        load_document(tmp_path / "nope.bwcanvas")


def _rewrite(path, *, drop=None, manifest=None, drop_layer_files=False):
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    if drop:
        items.pop(drop)
    if manifest:
        items["manifest.json"] = json.dumps(manifest(json.loads(items["manifest.json"]))).encode()
    if drop_layer_files:
        items = {n: d for n, d in items.items() if not n.startswith("layers/")}
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in items.items():
            zf.writestr(n, d)


def test_autosave_writes_after_a_result_at_once_and_reopens(qtbot, full_doc, tmp_path):
    from brushwork_canvas.autosave import Autosaver, autosave_path

    saver = Autosaver(full_doc)
    assert saver.path == autosave_path() and str(tmp_path) in str(saver.path), "under the test's BRUSHWORK_HOME"
    full_doc.add_history(HistoryEntry(png=result_png(full_doc, (0, 0, 255)),
                                      recipe=Recipe(seed=5, width=64, height=64)))
    assert saver.saves == 1, "a result is saved without waiting"
    assert len(load_document(saver.path).history) == 2
    scribble(full_doc, full_doc.layers[0], (5, 60), (60, 5))
    qtbot.waitUntil(lambda: saver.saves == 2, timeout=5000)


def test_history_entry_exports_png_with_recipe_metadata(full_doc, tmp_path):
    from brushwork_canvas.history_panel import apply_as_layer, export_png, reuse_settings

    entry = full_doc.history[0]
    out = export_png(full_doc, entry.id, tmp_path / "out.png")
    text = read_text(out.read_bytes())
    assert Recipe.from_json(text["brushwork"]) == entry.recipe
    assert text["parameters"].startswith("a red fox\n") and "Seed: 99" in text["parameters"]
    assert imaging.image_from_bytes(out.read_bytes()).width() == 64
    # a PNG that already carries metadata (as the worker writes them) is exported unchanged
    assert with_metadata(out.read_bytes(), Recipe(prompt="other")) == out.read_bytes()

    layer_id = apply_as_layer(full_doc, entry.id)
    assert imaging.rgba_array(full_doc.layer(layer_id).image)[5, 5].tolist() == [200, 30, 30, 255]
    full_doc.update_settings(seed_locked=False, prompt="x")
    reuse_settings(full_doc, entry.id)
    assert (full_doc.settings.prompt, full_doc.settings.seed, full_doc.settings.seed_locked) == ("a red fox", 99, True)


def test_recipes_from_layers(full_doc):
    doc = full_doc
    job = build_job(doc, "generate")
    r = job.recipe
    assert (r.prompt, r.negative_prompt, r.width, r.height, r.seed, r.steps) == ("a red fox", "blurry", 64, 64, 1234, 3)
    assert r.task == "txt2img"
    kinds = {c.kind: c for c in r.controls}
    assert set(kinds) == {"scribble", "pose"}, "enabled controls only (the mask is not one)"
    scribble_control = kinds["scribble"]
    assert (scribble_control.strength, scribble_control.start, scribble_control.end) == (0.7, 0.1, 0.8)
    picture = imaging.rgba_array(imaging.image_from_bytes(job.assets[scribble_control.image]))
    assert picture[32, 32, 3] == 255 and picture[5, 60, 3] == 0, \
        "a sketch travels as drawn: strokes on transparency (the engine reads lines from alpha)"
    assert scribble_control.preprocess == "none" and scribble_control.model == ""
    assert kinds["pose"].signal["canvas_width"] == 64 and len(kinds["pose"].signal["people"]) == 1

    refine = build_job(doc, "refine").recipe
    assert refine.task == "img2img" and refine.strength == doc.settings.strength
    with pytest.raises(CanvasError, match="mask"):
        build_job(doc, "inpaint")  # the only mask layer is hidden
    doc.undo_stack.push(SetLayerProps(doc, doc.layers[1].id, visible=True))
    inpaint = build_job(doc, "inpaint")
    assert inpaint.recipe.task == "inpaint" and inpaint.recipe.mask in inpaint.assets
    mask = imaging.rgba_array(imaging.image_from_bytes(inpaint.assets[inpaint.recipe.mask]))
    assert mask[50, 30, 0] == 255 and mask[10, 30, 0] == 0


def test_visible_picture_composites_only_visible_picture_layers(doc):
    sketch = add(doc, "sketch")
    scribble(doc, sketch)
    mask = add(doc, "mask")
    scribble(doc, mask, (0, 60), (63, 60), size=6)
    picture = imaging.rgba_array(imaging.image_from_bytes(visible_picture(doc)))
    assert picture[32, 32, :3].max() < 60, "the dark sketch stroke is there"
    assert picture[60, 30, :3].tolist() == [255, 255, 255], "the mask is not part of the picture"
    doc.undo_stack.push(SetLayerProps(doc, sketch.id, visible=False))
    assert imaging.rgba_array(imaging.image_from_bytes(visible_picture(doc)))[32, 32, :3].tolist() == [255, 255, 255]


def test_presets_shape_the_recipe(doc):
    doc.update_settings(preset="sketch-to-image", prompt="a castle")
    r = build_job(doc, "generate").recipe
    assert r.preset == "sketch-to-image"
    assert r.negative_prompt, "the preset's negative prompt stays when the artist wrote none"
    live = build_job(doc, "live", seed=7).recipe
    assert live.preset == "live-fast" and live.seed == 7 and live.task == "img2img"
    assert (live.width, live.height) == (64, 64), "the document's size wins over the preset's"


def test_new_document_sizes_are_checked(qapp):
    with pytest.raises(CanvasError, match="multiple of 8"):
        Document(100, 64)
    with pytest.raises(CanvasError, match="between 64 and 4096"):
        Document(32, 64)


def test_closing_and_restarting_the_app_brings_back_layers_and_history(qtbot, tmp_path):
    from brushwork_canvas.app import build

    first = build(width=64, height=64)
    qtbot.addWidget(first)
    scribble(first.doc, first.doc.layers[0])
    first.doc.add_history(HistoryEntry(png=result_png(first.doc), recipe=Recipe(seed=8, width=64, height=64)))
    first.doc.update_settings(prompt="kept")
    first.close()  # closeEvent autosaves

    second = build(width=512, height=512)  # the size only applies to a brand new document
    qtbot.addWidget(second)
    assert (second.doc.width, second.doc.height) == (64, 64)
    assert second.doc.settings.prompt == "kept"
    assert [h.recipe.seed for h in second.doc.history] == [8]
    assert imaging.alpha_mask(second.doc.layers[0].image)[32, 32]
    assert second.history_panel.list.count() == 1
    second.close()


def test_an_unreadable_autosave_is_kept_aside_not_overwritten(qtbot):
    from brushwork_canvas.app import build
    from brushwork_canvas.autosave import autosave_path

    autosave_path().parent.mkdir(parents=True)
    autosave_path().write_bytes(b"garbage")
    win = build(width=64, height=64)
    qtbot.addWidget(win)
    assert autosave_path().with_suffix(".unreadable").read_bytes() == b"garbage"
    assert "could not be read" in win.statusBar().currentMessage()
    assert [layer.kind for layer in win.doc.layers] == ["sketch"]
    win.close()


def test_dropped_files_and_pasted_pictures_become_image_layers(window, tmp_path, qapp):
    from PySide6.QtGui import QGuiApplication

    arr = np.zeros((50, 100, 3), np.uint8)
    arr[:, :, 2] = 255
    path = tmp_path / "blue.png"
    path.write_bytes(imaging.png_bytes(imaging.from_array(arr)))
    window.import_images([str(path), str(tmp_path / "missing.png")])
    layer = window.doc.layers[-1]
    assert layer.kind == "image" and layer.name == "blue"
    assert (layer.image.width(), layer.image.height()) == (128, 128), "fitted to the document"
    assert imaging.rgba_array(layer.image)[64, 64].tolist() == [0, 0, 255, 255]
    assert "missing.png" in window.statusBar().currentMessage(), "a bad file is reported, not raised"

    QGuiApplication.clipboard().setImage(imaging.from_array(arr))
    window.paste()
    assert window.doc.layers[-1].name == "Pasted"
