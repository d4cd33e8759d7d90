"""The canvas against a REAL worker process with tiny models: generate, refine, live mode, cancel,
and the worker dying mid-job. No fakes: the worker is `python -m brushwork.worker`."""

from __future__ import annotations

import secrets

import pytest
from brushwork.recipe import Recipe
from brushwork_canvas.png_meta import read_text
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

# One worker for the module: under `pytest -n 2 --dist loadgroup` these tests share a process.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("canvas-real-worker")]

STEPS = 2


@pytest.fixture(scope="module")
def worker(tiny_models, tmp_path_factory):
    from brushwork.worker.testing import WorkerProcess

    proc = WorkerProcess(home=tmp_path_factory.mktemp("worker-home"), model_dirs=[tiny_models.root])
    proc.start()
    try:
        client = proc.client()
        try:  # the canvas tests need a worker that generates; say plainly when it cannot
            client.generate(Recipe(prompt="probe", model="tiny-sd15", width=64, height=64, steps=1, seed=1),
                            timeout=120)
        except Exception as exc:
            pytest.skip(f"the worker cannot generate with the tiny models yet: {exc}")
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def real_window(worker, qtbot, qapp):
    from brushwork_canvas.app import build
    from brushwork_canvas.backend import ClientBackend

    backend = ClientBackend(worker.url, token=worker.token, client_key=secrets.token_hex(16))
    win = build(backend=backend, width=64, height=64, restore=False)
    qtbot.addWidget(win)
    win.resize(900, 700)
    win.show()
    qtbot.waitExposed(win)
    win.doc.update_settings(model="tiny-sd15", steps=STEPS, prompt="a lighthouse", seed=3, seed_locked=True)
    yield win
    win.session.set_live(False)
    assert win.session.runner.shutdown(20000)


def draw(win, y):
    view = win.canvas
    a, b = view.to_widget(QPointF(6, y)).toPoint(), view.to_widget(QPointF(58, y)).toPoint()
    QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    QTest.mouseMove(view, b)
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def test_generate_puts_a_result_in_history_and_on_a_layer(real_window, qtbot):
    win = real_window
    layers_before = len(win.doc.layers)
    with qtbot.waitSignal(win.session.result_added, timeout=60000):
        win.generate_panel.generate_button.click()
    entry = win.doc.history[0]
    assert entry.recipe.seed == 3 and entry.recipe.model == "tiny-sd15" and entry.recipe.steps == STEPS
    assert "brushwork" in read_text(entry.png), "the worker's PNG keeps its recipe metadata"
    assert len(win.doc.layers) == layers_before + 1 and win.doc.layers[-1].kind == "image"
    assert win.doc.layers[-1].image.width() == 64
    assert win.history_panel.list.count() == 1
    qtbot.waitUntil(lambda: not win.session.busy, timeout=10000)
    assert win.generate_panel.progress.format() == "idle"


def test_refine_sends_the_visible_picture(real_window, qtbot):
    win = real_window
    draw(win, 30)
    with qtbot.waitSignal(win.session.result_added, timeout=60000):
        win.generate_panel.refine_button.click()
    assert win.doc.history[0].recipe.task == "img2img"


def test_live_mode_coalesces_many_rapid_strokes(real_window, qtbot):
    win = real_window
    results = []
    win.session.live_result.connect(results.append)
    win.generate_panel.live_button.click()  # on: one pass for the current picture
    for y in range(4, 62, 2):  # 29 strokes, as fast as the event loop takes them
        draw(win, y)
    qtbot.waitUntil(lambda: bool(results) and not win.session.busy, timeout=60000)
    qtbot.wait(500)  # past the debounce: nothing more may start
    live_jobs = [s for s in win.session.submitted if s.live]
    assert 1 <= len(live_jobs) <= 2, f"{len(live_jobs)} live jobs for one burst of strokes"
    assert all(s.recipe.seed == win.session.live_seed for s in live_jobs), "live mode keeps one seed"
    assert results[-1].width() == 64
    assert win.doc.history == [], "live results stay out of the history"


def test_cancel_stops_a_long_job(real_window, qtbot):
    win = real_window
    win.doc.update_settings(steps=150)
    steps = []
    win.session.progress.connect(lambda s, t: steps.append(s))
    messages = []
    win.session.message.connect(messages.append)
    win.generate_panel.generate_button.click()
    qtbot.waitUntil(lambda: any(s > 0 for s in steps), timeout=60000)
    assert win.generate_panel.cancel_button.isEnabled()
    win.generate_panel.cancel_button.click()
    qtbot.waitUntil(lambda: not win.session.busy, timeout=30000)
    assert "Generate cancelled" in messages
    assert max(steps) < 150 and win.doc.history == []


def test_sketch_and_pose_layers_steer_generation_as_controls(real_window, qtbot):
    from brushwork_canvas.commands import SetLayerProps
    from brushwork_canvas.document import ControlSettings

    win = real_window
    doc = win.doc
    sketch = doc.layers[0]
    draw(win, 32)
    doc.undo_stack.push(SetLayerProps(doc, sketch.id, control=ControlSettings(
        enabled=True, kind="scribble", strength=0.8, start=0.0, end=0.9, model="controlnet-tiny-scribble")))
    win.add_layer("pose")
    pose = doc.active
    doc.undo_stack.push(SetLayerProps(doc, pose.id, control=ControlSettings(
        enabled=True, kind="pose", strength=1.0, model="controlnet-tiny-pose")))
    messages = []
    win.session.message.connect(messages.append)
    with qtbot.waitSignal(win.session.result_added, timeout=60000):
        win.generate_panel.generate_button.click()
    ran = doc.history[0].recipe
    assert sorted(c.kind for c in ran.controls) == ["pose", "scribble"], messages
    assert {c.model for c in ran.controls} == {"controlnet-tiny-scribble", "controlnet-tiny-pose"}


def test_the_worker_dying_mid_job_loses_nothing(real_window, worker, qtbot):
    from brushwork_canvas.docfile import load_document

    win = real_window
    draw(win, 20)
    win.doc.update_settings(steps=150)
    steps, messages = [], []
    win.session.progress.connect(lambda s, t: steps.append(s))
    win.session.message.connect(messages.append)
    win.generate_panel.generate_button.click()
    qtbot.waitUntil(lambda: any(s > 0 for s in steps), timeout=60000)
    worker.kill()  # kill -9 while the job runs
    try:
        qtbot.waitUntil(lambda: not win.session.busy, timeout=30000)
        failures = [m for m in messages if m.startswith("Generate failed:")]
        assert failures and "worker" in failures[-1] and "\n" not in failures[-1], messages
        assert win.generate_panel.cancel_button.isEnabled() is False
        # the drawing is intact, and autosaved
        assert win.autosaver.save_now()
        saved = load_document(win.autosaver.path)
        assert [layer.kind for layer in saved.layers] == [layer.kind for layer in win.doc.layers]
        draw(win, 40)  # the canvas still works
        assert win.doc.undo_stack.count() >= 2
    finally:
        worker.start()  # later tests (any order) get a fresh worker
