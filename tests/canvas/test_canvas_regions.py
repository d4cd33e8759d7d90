"""Region layers (issue 17): a mask painted like any mask, with its own prompt box, becomes one of
the Recipe's regions: the mask travels as a grey PNG whose pixels are the paint's alpha."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork_canvas import imaging
from brushwork_canvas.commands import SetLayerProps
from brushwork_canvas.docfile import load_document, save_document
from brushwork_canvas.recipes import build_job, visible_picture
from canvas_helpers import paint, region_layer
from PySide6.QtTest import QTest


def mask_of(job, region):
    return imaging.rgba_array(imaging.image_from_bytes(job.assets[region.mask]))


def test_a_region_layer_becomes_a_recipe_region_with_its_painted_mask(window):
    doc = window.doc
    doc.update_settings(prompt="a stone wall")
    left = region_layer(window, "red bricks", [(10, 20), (10, 110)], size=14)
    right = region_layer(window, "blue tiles", [(100, 20), (100, 110)], size=20)
    window.layers_panel.region_weight.setValue(0.8)
    window.layers_panel.region_weight.editingFinished.emit()

    job = build_job(doc, "generate")
    r = job.recipe
    assert r.prompt == "a stone wall", "the base prompt stays the recipe's"
    assert [(g.prompt, g.weight) for g in r.regions] == [("red bricks", 1.0), ("blue tiles", 0.8)]
    for layer, region in zip((left, right), r.regions, strict=True):
        mask = mask_of(job, region)
        alpha = imaging.rgba_array(layer.image)[:, :, 3]
        assert (mask[:, :, 0] == alpha).all() and (mask[:, :, 1] == alpha).all(), \
            "the mask's grey is the paint's alpha, soft edges included"
        assert mask[:, :, 3].min() == 255, "an opaque grey picture: white = the region"
    assert mask_of(job, r.regions[0])[60, 10, 0] == 255 and mask_of(job, r.regions[0])[60, 100, 0] == 0
    assert len(np.unique(mask_of(job, r.regions[1])[:, :, 0])) > 2, "the brush's soft edge is kept"
    white = imaging.rgba_array(imaging.image_from_bytes(visible_picture(doc)))
    assert (white[:, :, :3] == 255).all(), "a region is not part of the picture Refine starts from"
    assert r.validate() is r


def test_typing_a_region_prompt_is_one_undo_step_and_hidden_regions_stay_out(window):
    doc = window.doc
    layer = region_layer(window, "moss", [(20, 20), (40, 40)])
    assert layer.region.prompt == "moss"
    assert "“moss”" in window.layers_panel.list.currentItem().text(), "the list says what the region shows"
    doc.undo_stack.undo()
    assert layer.region.prompt == "" and window.layers_panel.region_prompt.text() == ""
    doc.undo_stack.redo()
    assert layer.region.prompt == "moss"
    doc.undo_stack.push(SetLayerProps(doc, layer.id, visible=False))
    assert build_job(doc, "generate").recipe.regions == []


@pytest.mark.parametrize("prompt, painted, message", [
    ("", True, "the region has no prompt"),
    ("sky", False, "nothing is painted on the region"),
])
def test_a_region_without_prompt_or_paint_is_refused_before_anything_is_sent(window, prompt, painted, message):
    window.add_layer("region")
    layer = window.doc.active
    if painted:
        paint(window.doc, layer, [(30, 30), (60, 60)])
    if prompt:
        QTest.keyClicks(window.layers_panel.region_prompt, prompt)
    assert window.session.run("generate") is None
    assert message in window.messages_panel.text() and layer.name in window.messages_panel.text()
    assert window.session.submitted == []


def test_regions_are_saved_and_open_again(window, tmp_path):
    doc = window.doc
    layer = region_layer(window, "a golden door", [(30, 30), (80, 90)])
    window.layers_panel.region_negative.setText("rust")
    window.layers_panel.region_negative.textEdited.emit("rust")
    back = load_document(save_document(doc, tmp_path / "regions.bwcanvas"))
    again = back.layer(layer.id)
    assert again.kind == "region" and again.region == layer.region
    assert (again.region.prompt, again.region.negative_prompt) == ("a golden door", "rust")
    assert (imaging.rgba_array(again.image) == imaging.rgba_array(layer.image)).all()
    assert build_job(back, "generate").recipe.regions[0].negative_prompt == "rust"


def test_live_mode_leaves_out_a_region_still_being_made(window):
    doc = window.doc
    window.add_layer("region")
    paint(doc, doc.active, [(30, 30), (60, 60)])  # painted, no prompt yet: Live must not fail each pass
    assert build_job(doc, "live", seed=1).recipe.regions == []
    QTest.keyClicks(window.layers_panel.region_prompt, "ivy")
    assert [r.prompt for r in build_job(doc, "live", seed=1).recipe.regions] == ["ivy"]
