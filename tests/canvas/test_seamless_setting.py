"""The Seamless setting (Recipe.tiling) in the generate panel: what the artist picks is what runs,
presets load theirs into the panel, Reuse settings brings it back, and documents keep it."""

from __future__ import annotations

import json
import zipfile

import pytest
from brushwork.recipe import Recipe
from brushwork_canvas.docfile import load_document, save_document
from brushwork_canvas.document import CanvasError, HistoryEntry
from brushwork_canvas.history_panel import reuse_settings
from brushwork_canvas.recipes import build_job


def pick(combo, text):
    index = combo.findText(text)
    assert index >= 0, f"{text!r} is not offered"
    combo.setCurrentIndex(index)


def test_the_seamless_choice_is_what_the_recipe_asks_for(window):
    panel, doc = window.generate_panel, window.doc
    assert panel.tiling.currentText() == "Off" and build_job(doc, "generate").recipe.tiling == ""
    pick(panel.tiling, "Both ways (xy)")
    assert doc.settings.tiling == "xy"
    assert build_job(doc, "generate").recipe.tiling == "xy"
    assert build_job(doc, "refine").recipe.tiling == "xy"
    pick(panel.tiling, "Left–right (x)")
    assert build_job(doc, "live").recipe.tiling == "x", "live mode paints seamless textures too"


def test_a_preset_loads_its_tiling_into_the_panel_and_the_artist_can_turn_it_off(window):
    panel, doc = window.generate_panel, window.doc
    pick(panel.preset, "texture-seamless")
    assert panel.tiling.currentText() == "Both ways (xy)" and doc.settings.tiling == "xy"
    pick(panel.tiling, "Off")
    assert build_job(doc, "generate").recipe.tiling == "", "the panel, not the preset, has the last word"
    pick(panel.preset, "(none)")
    assert panel.tiling.currentText() == "Off"


def test_reuse_settings_brings_back_the_tiling(window):
    doc = window.doc
    doc.add_history(HistoryEntry(png=b"a damaged picture: listed all the same",
                                 recipe=Recipe(prompt="bricks", tiling="y", seed=4)))
    reuse_settings(doc, doc.history[0].id)
    assert window.history_panel.list.count() == 1
    layers = len(doc.layers)
    window.history_panel.apply_button.click()  # the damaged picture: one line, no layer, no traceback
    assert len(doc.layers) == layers and window.statusBar().currentMessage().startswith("Apply as layer: result:")
    assert window.generate_panel.tiling.currentText() == "Top–bottom (y)"


def _manifest_edit(path, change):
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(items["manifest.json"])
    change(manifest)
    items["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items.items():
            zf.writestr(name, data)


def test_documents_keep_the_tiling_and_older_ones_take_their_presets(doc, tmp_path):
    doc.update_settings(tiling="x")
    path = save_document(doc, tmp_path / "a.bwcanvas")
    assert load_document(path).settings.tiling == "x"

    def older(manifest):  # written before the Seamless setting existed, with the seamless preset
        del manifest["settings"]["tiling"]
        manifest["settings"]["preset"] = "texture-seamless"

    _manifest_edit(path, older)
    assert load_document(path).settings.tiling == "xy"

    _manifest_edit(path, lambda m: m["settings"].update(tiling="z"))
    with pytest.raises(CanvasError, match="settings.tiling must be one of"):
        load_document(path)


def test_reuse_settings_gives_back_the_prompt_as_typed_not_with_the_presets_suffix_twice(window):
    from brushwork import presets

    doc = window.doc
    doc.update_settings(prompt="red brick wall", preset="texture-seamless", strength=0.4)
    ran = build_job(doc, "generate").recipe  # what the worker runs and records
    preset = presets.load_preset("texture-seamless")
    assert ran.prompt.endswith(preset.prompt_suffix) and ran.negative_prompt
    doc.add_history(HistoryEntry(png=b"-", recipe=ran))
    doc.update_settings(prompt="something else", preset="")
    reuse_settings(doc, doc.history[0].id)
    assert (doc.settings.prompt, doc.settings.negative_prompt, doc.settings.preset) == \
        ("red brick wall", "", "texture-seamless")
    assert build_job(doc, "generate").recipe.prompt == ran.prompt, "reused twice, still one suffix"
    assert doc.settings.strength == 0.4, "a txt2img result does not overwrite the Refine strength"


def test_the_seed_box_holds_every_seed_the_worker_can_pick(window):
    """Seeds go up to 2**32 - 1; a plain QSpinBox stops at 2**31 - 1 and showed a wrong number."""
    panel, doc = window.generate_panel, window.doc
    doc.update_settings(seed=2**32 - 1)
    assert int(panel.seed.value()) == 2**32 - 1
    panel.seed.setValue(3_000_000_001)
    assert doc.settings.seed == 3_000_000_001 and isinstance(doc.settings.seed, int)
    doc.update_settings(seed_locked=True)
    assert build_job(doc, "generate").recipe.seed == 3_000_000_001


def test_a_selected_history_thumbnail_keeps_its_colours(window):
    import numpy as np
    from brushwork_canvas import imaging
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon

    red = np.zeros((64, 64, 3), np.uint8)
    red[:] = (200, 30, 30)
    window.doc.add_history(HistoryEntry(png=imaging.png_bytes(imaging.from_array(red)), recipe=Recipe(seed=1)))
    icon = window.history_panel.list.item(0).icon()
    selected = imaging.rgba_array(icon.pixmap(QSize(32, 32), QIcon.Mode.Selected).toImage())
    assert selected[16, 16, :3].tolist() == [200, 30, 30]


def test_the_panel_takes_its_limits_and_choices_from_the_recipe(window):
    from brushwork import recipe

    panel = window.generate_panel
    assert panel.steps.maximum() == recipe.MAX_STEPS and panel.cfg.maximum() == recipe.MAX_CFG
    assert [panel.sampler.itemText(i) for i in range(panel.sampler.count())] == list(recipe.SAMPLERS)
