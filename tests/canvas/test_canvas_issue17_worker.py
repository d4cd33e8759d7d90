"""Regions, the Upscale action and model defaults against a REAL worker (`python -m brushwork.worker`)
on the tiny models and a tiny ESRGAN written through the real upscaler loader's file layout."""

from __future__ import annotations

import secrets

import pytest
from brushwork_canvas import imaging
from canvas_helpers import paint
from PySide6.QtTest import QTest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("canvas-real-worker")]


@pytest.fixture(scope="module")
def upscalers(tmp_path_factory):
    from brushwork.testing.tiny_upscaler import build_tiny_esrgan

    root = tmp_path_factory.mktemp("upscaler-dir")
    build_tiny_esrgan(root / "ESRGAN" / "2x-tiny-esrgan.safetensors", scale=2)  # A1111's folder name
    return root


@pytest.fixture(scope="module")
def worker(tiny_models, upscalers, tmp_path_factory):
    from brushwork.testing.tiny_ip_adapter import ensure_tiny_ip_adapters
    from brushwork.worker.testing import WorkerProcess

    ensure_tiny_ip_adapters(tiny_models.root)
    proc = WorkerProcess(home=tmp_path_factory.mktemp("worker-home"), model_dirs=[tiny_models.root, upscalers])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def win(worker, qtbot, qapp):
    from brushwork_canvas.app import build
    from brushwork_canvas.backend import ClientBackend

    backend = ClientBackend(worker.url, token=worker.token, client_key=secrets.token_hex(16))
    window = build(backend=backend, width=64, height=64, restore=False)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.session.catalog_changed, timeout=60000):
        window.session.load_models()
    window.doc.update_settings(model="tiny-sd15", steps=2, prompt="a wall", seed=3, seed_locked=True)
    yield window
    assert window.session.runner.shutdown(20000)


def run(win, qtbot, action):
    messages = []
    win.session.message.connect(messages.append)
    with qtbot.waitSignal(win.session.result_added, timeout=120000):
        assert win.session.run(action) is not None, win.messages_panel.text()
    qtbot.waitUntil(lambda: not win.session.busy, timeout=20000)
    return messages


def test_the_worker_lists_each_models_defaults_and_its_upscalers(win, tiny_models, monkeypatch):
    from brushwork.models import sources
    from brushwork.models.defaults import defaults_for_ref

    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    expected = defaults_for_ref(sources.resolve("tiny-sd15", "pipeline"))
    got = win.session.catalog.defaults_for("tiny-sd15")
    assert got is not None, "the worker's model list carries the defaults"
    assert (got.width, got.height, got.steps, got.cfg, got.sampler) == \
        (expected.width, expected.height, expected.steps, expected.cfg, expected.sampler)
    assert win.upscalers == ["2x-tiny-esrgan"]
    from brushwork.testing.tiny_ip_adapter import SD15_ADAPTER

    box = win.generate_panel.references.adapter
    assert SD15_ADAPTER in [box.itemText(i) for i in range(box.count())], "the worker's IP-Adapters are offered"
    win.generate_panel.defaults_button.click()  # follow the model
    assert win.generate_panel.steps.value() == expected.steps
    assert f"{expected.steps} step" in win.generate_panel.defaults_label.text()


def test_a_region_layer_runs_on_the_worker_and_is_recorded(win, qtbot):
    doc = win.doc
    win.add_layer("region")
    region = doc.active
    paint(doc, region, [(8, 8), (8, 56)], size=12)
    QTest.keyClicks(win.layers_panel.region_prompt, "red bricks")
    messages = run(win, qtbot, "generate")
    ran = doc.history[0].recipe
    assert [(r.prompt, r.weight) for r in ran.regions] == [("red bricks", 1.0)], messages
    sent = win.session.submitted[-1]
    assert ran.regions[0].mask == sent.recipe.regions[0].mask, "the mask the canvas made is the one that ran"
    assert doc.layers[-1].kind == "image" and doc.layers[-1].image.width() == 64


def test_the_upscale_action_runs_on_the_worker_and_lands_as_a_layer(win, qtbot):
    doc = win.doc
    paint(doc, doc.layers[0], [(4, 32), (60, 32)], size=6)
    names = [layer.name for layer in doc.layers]
    with qtbot.waitSignal(win.session.result_added, timeout=120000):
        assert win.upscale(upscale_factor=2, upscale_model="2x-tiny-esrgan", upscale_refine=0.0) is not None
    qtbot.waitUntil(lambda: not win.session.busy, timeout=20000)
    entry = doc.history[0]
    assert entry.task == "upscale" and entry.recipe.upscale.model == "2x-tiny-esrgan"
    assert imaging.image_from_bytes(entry.png).width() == 128
    assert (doc.width, doc.height) == (128, 128) and [la.name for la in doc.layers] == names + ["Upscaled 1"]
    doc.undo_stack.undo()
    assert (doc.width, doc.height) == (64, 64) and [la.name for la in doc.layers] == names

    with qtbot.waitSignal(win.session.result_added, timeout=120000):
        win.upscale(upscale_factor=2, upscale_model="", upscale_refine=0.0)  # Lanczos: no model at all
    qtbot.waitUntil(lambda: not win.session.busy, timeout=20000)
    assert doc.history[0].recipe.upscale.model == "" and (doc.width, doc.height) == (128, 128)


def test_upscale_with_a_refine_pass_runs_on_the_worker(win, qtbot):
    doc = win.doc
    doc.update_settings(steps=4)
    win.add_layer("region")  # the refine is the upscale's one diffusion pass: the region acts in it
    paint(doc, doc.active, [(8, 8), (8, 56)], size=12)
    QTest.keyClicks(win.layers_panel.region_prompt, "moss")
    with qtbot.waitSignal(win.session.result_added, timeout=180000):
        assert win.upscale(upscale_factor=2, upscale_model="", upscale_refine=0.5) is not None, \
            win.messages_panel.text()
    qtbot.waitUntil(lambda: not win.session.busy, timeout=20000)
    ran = doc.history[0].recipe
    assert (ran.task, ran.upscale.refine, ran.prompt) == ("upscale", 0.5, "a wall"), win.messages_panel.text()
    assert [r.prompt for r in ran.regions] == ["moss"] and ran.regions[0].mask.startswith("sha256:")
    assert (doc.width, doc.height) == (128, 128) and doc.layers[-1].name == "Upscaled 1"


def test_a_dropped_reference_runs_on_the_worker_through_the_chosen_adapter(win, qtbot, tmp_path):
    import numpy as np
    from brushwork.testing.tiny_ip_adapter import SD15_ADAPTER
    from canvas_helpers import png_file
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    doc, box = win.doc, win.generate_panel.references
    rng = np.random.default_rng(3)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png_file(tmp_path / "ref.png", rng.random((64, 64, 3)) * 255)))])
    box.slots[0].dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                      Qt.KeyboardModifier.NoModifier))
    box.adapter.setCurrentText(SD15_ADAPTER)
    box.adapter.lineEdit().editingFinished.emit()
    assert doc.settings.reference_model == SD15_ADAPTER
    run(win, qtbot, "generate")
    ran = doc.history[0].recipe
    assert [(r.model, r.weight, r.mode) for r in ran.references] == [(SD15_ADAPTER, 0.6, "style")], \
        win.messages_panel.text()
    assert ran.references[0].image == win.session.submitted[-1].recipe.references[0].image
