"""The generate panel shows the defaults the chosen model will run with, and the artist's own values
win (issue 19). The defaults come from the worker's model list; fields the artist did not choose
travel unset, for the worker to fill from the model that actually runs."""

from __future__ import annotations

import pytest
from brushwork_canvas.recipes import build_job
from canvas_helpers import StandInBackend, window_with

DEMO = {"name": "brushwork-demo", "kind": "pipeline", "family": "sd15", "variant": "base", "default": True,
        "defaults": {"width": 64, "height": 64, "steps": 20, "cfg": 5.0, "sampler": "Euler a",
                     "why": "brushwork-demo's own manifest"}}
TURBO = {"name": "sdxl-turbo", "kind": "pipeline", "family": "sdxl", "variant": "turbo",
         "defaults": {"width": 512, "height": 512, "steps": 1, "cfg": 0.0, "sampler": "Euler a", "why": "sdxl turbo"}}
UPSCALER = {"name": "4x-tiny-esrgan", "kind": "upscaler"}


@pytest.fixture
def win(qtbot, qapp):
    window = window_with(qtbot, StandInBackend([DEMO, TURBO, UPSCALER, {"name": "mystery", "kind": "pipeline"}]))
    with qtbot.waitSignal(window.session.catalog_changed, timeout=10000):
        window.session.load_models()
    yield window
    assert window.session.runner.shutdown(10000)


def unset_or(value):
    """What the Recipe carries for a field the artist left to the model: None where the SDK lets a
    Recipe leave it to the worker, else the model's default itself."""
    from brushwork import recipe

    return None if hasattr(recipe, "MODEL_DEFAULTED") else value


def shown(panel):
    return panel.steps.value(), panel.cfg.value(), panel.sampler.currentText()


def test_the_panel_shows_the_chosen_models_defaults(win):
    panel, doc = win.generate_panel, win.doc
    assert doc.settings.explicit == [], "a new document leaves sampling to the model"
    assert shown(panel) == (20, 5.0, "Euler a"), "no model chosen: the worker's default model (the demo)"
    assert "brushwork-demo: 64×64, 20 steps, CFG 5, Euler a (brushwork-demo's own manifest)" in \
        panel.defaults_label.text()
    assert "The document is 64×64" not in panel.defaults_label.text()
    panel.model.setCurrentText("sdxl-turbo")
    assert shown(panel) == (1, 0.0, "Euler a")
    assert "sdxl-turbo: 512×512, 1 step, CFG 0, Euler a (sdxl turbo)" in panel.defaults_label.text()
    assert "The document is 64×64" in panel.defaults_label.text(), "says when the document is not the model's size"
    r = build_job(doc, "generate").recipe
    assert (r.model, r.steps, r.cfg, r.sampler) == ("sdxl-turbo", unset_or(1), unset_or(0.0), unset_or("Euler a"))
    assert (r.width, r.height) == (64, 64), "the document's size is the picture's"
    assert win.upscalers == ["4x-tiny-esrgan"]


def test_the_artists_values_win_and_use_model_defaults_gives_them_back(win):
    panel, doc = win.generate_panel, win.doc
    panel.model.setCurrentText("sdxl-turbo")
    panel.steps.setValue(6)  # the artist types 6 steps
    assert doc.settings.explicit == ["steps"]
    assert shown(panel) == (6, 0.0, "Euler a") and "Yours: steps" in panel.defaults_label.text()
    r = build_job(doc, "generate").recipe
    assert (r.steps, r.cfg, r.sampler) == (6, unset_or(0.0), unset_or("Euler a"))
    panel.model.setCurrentText("brushwork-demo")
    assert shown(panel) == (6, 5.0, "Euler a"), "another model: its defaults, the artist's steps"
    assert panel.defaults_button.isEnabled()
    panel.defaults_button.click()
    assert doc.settings.explicit == [] and shown(panel) == (20, 5.0, "Euler a")
    assert build_job(doc, "generate").recipe.steps == unset_or(20)
    assert not panel.defaults_button.isEnabled()


def test_a_model_the_worker_gives_no_defaults_for_says_so(win):
    panel, doc = win.generate_panel, win.doc
    panel.model.setCurrentText("mystery")
    assert "not known yet" in panel.defaults_label.text()
    assert shown(panel) == (doc.settings.steps, doc.settings.cfg, doc.settings.sampler)


def test_a_preset_sets_its_sampling_on_a_full_size_model_but_not_on_the_demo_or_a_few_step_one(win):
    panel, doc = win.generate_panel, win.doc
    panel.model.setCurrentText("mystery")  # a full-size model (no few-step variant)
    panel.preset.setCurrentText("texture-seamless")  # 30 steps, CFG 7, DPM++ 2M Karras
    assert doc.settings.explicit == ["steps", "cfg", "sampler"] and shown(panel) == (30, 7.0, "DPM++ 2M Karras")
    panel.defaults_button.click()
    panel.preset.setCurrentText("(none)")
    for model, own in (("sdxl-turbo", (1, 0.0, "Euler a")), ("brushwork-demo", (20, 5.0, "Euler a"))):
        panel.model.setCurrentText(model)
        panel.preset.setCurrentText("texture-seamless")
        assert doc.settings.explicit == [] and shown(panel) == own, model
        assert "this model keeps its own" in panel.queue_label.text()
        assert doc.settings.tiling == "xy", "the rest of the preset applies"
        panel.preset.setCurrentText("(none)")


def test_reuse_settings_makes_the_values_that_ran_the_artists(win):
    from brushwork.recipe import Recipe
    from brushwork_canvas.document import HistoryEntry
    from brushwork_canvas.history_panel import reuse_settings

    doc = win.doc
    doc.add_history(HistoryEntry(png=b"-", recipe=Recipe(prompt="tiles", steps=9, cfg=3.0, sampler="DDIM", seed=2)))
    reuse_settings(doc, doc.history[0].id)
    assert doc.settings.explicit == ["steps", "cfg", "sampler"]
    assert shown(win.generate_panel) == (9, 3.0, "DDIM")
