"""The session's state machine with a scripted in-memory backend (pure unit tests: job routing,
live-mode coalescing, cancel, failures). The same behaviours run against a real worker in
test_worker.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from brushwork.errors import WorkerError
from brushwork_canvas import imaging
from brushwork_canvas.backend import CANCELLED, FAILED, PROGRESS, QUEUED, RESULT, JobUpdate
from brushwork_canvas.commands import AddLayer
from brushwork_canvas.jobs import JobRunner
from brushwork_canvas.session import Session
from brushwork_canvas.tools import Stroke
from PySide6.QtCore import QPointF


def png(w=64, h=64, value=128):
    return imaging.png_bytes(imaging.from_array(np.full((h, w, 3), value, np.uint8)))


class ScriptedJob:
    def __init__(self, backend, recipe, live):
        self.id = f"job{len(backend.jobs)}"
        self.recipe, self.live = recipe, live
        self.release = threading.Event()
        self.cancelled = threading.Event()
        self.backend = backend

    def cancel(self):
        self.cancelled.set()
        self.release.set()

    def updates(self):
        yield JobUpdate(QUEUED, position=1)
        yield JobUpdate(PROGRESS, step=1, total=2, preview=png(8, 8))
        self.release.wait(10)
        if self.cancelled.is_set():
            yield JobUpdate(CANCELLED, message="cancelled by the client")
        elif self.backend.fail_with:
            yield JobUpdate(FAILED, message=self.backend.fail_with)
        else:
            yield JobUpdate(RESULT, images=[png()], recipe=self.recipe.replace(seed=self.recipe.seed or 42))


class ScriptedBackend:
    def __init__(self, *, auto_release=True):
        self.jobs: list[ScriptedJob] = []
        self.uploads: list[bytes] = []
        self.auto_release = auto_release
        self.fail_with = ""
        self.submit_error: Exception | None = None

    def upload(self, data):
        from brushwork.assets import content_ref

        self.uploads.append(data)
        return content_ref(data)

    def submit(self, recipe, *, live=False):
        if self.submit_error:
            raise self.submit_error
        job = ScriptedJob(self, recipe, live)
        self.jobs.append(job)
        if self.auto_release:
            job.release.set()
        return job

    def models(self):
        return [{"name": "tiny-sd15", "kind": "pipeline"}, {"name": "controlnet-tiny-pose", "kind": "controlnet"},
                {"name": "other", "kind": "pipeline"}]

    def finished_results(self, since, known):
        return [], since


@pytest.fixture
def setup(doc, qtbot):
    def make(**kwargs):
        backend = ScriptedBackend(**kwargs)
        runner = JobRunner(backend)
        session = Session(doc, runner)
        layer = doc.new_layer("sketch")
        doc.undo_stack.push(AddLayer(doc, layer))
        made.append((backend, runner))
        return backend, runner, session, layer
    made = []
    yield make
    for backend, runner in made:  # no job thread may outlive its test
        for job in backend.jobs:
            job.release.set()
        assert runner.shutdown(5000)


def stroke(doc, layer, y):
    s = Stroke(doc, layer.id, size=3)
    s.begin(QPointF(5, y))
    s.move(QPointF(60, y))
    s.end()


def test_generate_puts_the_result_in_history_and_on_a_new_layer(setup, doc, qtbot):
    backend, runner, session, _ = setup()
    with qtbot.waitSignal(session.result_added, timeout=5000):
        session.run("generate")
    assert len(doc.history) == 1 and doc.history[0].task == "generate"
    assert doc.layers[-1].kind == "image" and doc.layers[-1].name == "Result 1"
    assert not session.busy


def test_progress_preview_and_queue_position_reach_the_ui(setup, qtbot):
    backend, runner, session, _ = setup(auto_release=False)
    positions, steps, previews = [], [], []
    session.queue_position.connect(positions.append)
    session.progress.connect(lambda s, t: steps.append((s, t)))
    session.preview.connect(previews.append)
    session.run("generate")
    qtbot.waitUntil(lambda: (1, 2) in steps, timeout=5000)
    assert 1 in positions and previews and previews[0].width() == 8
    backend.jobs[0].release.set()
    qtbot.waitUntil(lambda: not session.busy, timeout=5000)
    assert steps[-1] == (0, 0) and previews[-1].isNull(), "the progress and preview clear at the end"


def test_live_mode_coalesces_a_burst_of_edits_into_at_most_two_jobs(setup, doc, qtbot):
    backend, runner, session, layer = setup(auto_release=False)
    doc.update_settings(prompt="fox", seed=77, seed_locked=True)
    session.set_live(True)
    qtbot.waitUntil(lambda: len(backend.jobs) == 1, timeout=3000)  # the first live pass
    for y in range(5, 60, 3):  # 19 strokes while that job runs
        stroke(doc, layer, y)
    qtbot.wait(450)  # longer than the debounce
    assert len(backend.jobs) == 1, "nothing new is sent while a live job runs"
    backend.jobs[0].release.set()
    qtbot.waitUntil(lambda: len(backend.jobs) == 2, timeout=3000)
    backend.jobs[1].release.set()
    qtbot.wait(450)
    assert len(backend.jobs) == 2, "one follow-up job for the whole burst"
    assert all(j.live and j.recipe.seed == 77 for j in backend.jobs), "live jobs, fixed seed"
    assert backend.jobs[1].recipe.init_image != backend.jobs[0].recipe.init_image, "the latest edit is what runs"
    assert doc.history == [], "live results do not flood the history"


def test_rapid_edits_before_the_debounce_fires_make_one_job(setup, doc, qtbot):
    backend, runner, session, layer = setup()
    session.set_live(True)
    for y in range(5, 60, 5):
        stroke(doc, layer, y)
    qtbot.wait(700)
    assert len(backend.jobs) == 1


def test_cancel_reaches_the_running_job(setup, qtbot):
    backend, runner, session, _ = setup(auto_release=False)
    messages = []
    session.message.connect(messages.append)
    session.run("generate")
    qtbot.waitUntil(lambda: bool(backend.jobs and runner.running()), timeout=3000)
    session.cancel()
    qtbot.waitUntil(lambda: not session.busy, timeout=3000)
    assert backend.jobs[0].cancelled.is_set()
    assert messages[-1] == "Generate cancelled"


def test_a_failed_job_or_a_dead_worker_is_a_message_not_a_crash(setup, doc, qtbot):
    backend, runner, session, _ = setup()
    messages = []
    session.message.connect(messages.append)
    backend.fail_with = "out of memory: needed 3.2 GiB"
    session.run("generate")
    qtbot.waitUntil(lambda: not session.busy, timeout=3000)
    assert messages[-1] == "Generate failed: out of memory: needed 3.2 GiB"
    backend.submit_error = WorkerError("the worker could not be reached")
    session.run("generate")
    qtbot.waitUntil(lambda: not session.busy, timeout=3000)
    assert messages[-1] == "Generate failed: the worker could not be reached"
    backend.submit_error = RuntimeError("boom")
    session.run("generate")
    qtbot.waitUntil(lambda: not session.busy, timeout=3000)
    assert messages[-1] == "Generate failed: RuntimeError: boom"
    assert doc.history == []


def test_inpaint_without_a_mask_says_so_and_sends_nothing(setup, qtbot):
    backend, runner, session, _ = setup()
    messages = []
    session.message.connect(messages.append)
    assert session.run("inpaint") is None
    assert "Inpaint needs a mask" in messages[-1] and backend.jobs == []


def test_models_are_listed_in_the_background(setup, qtbot):
    backend, runner, session, _ = setup()
    nets = []
    session.controlnets_loaded.connect(nets.append)
    with qtbot.waitSignal(session.models_loaded, timeout=3000) as blocker:
        session.load_models()
    assert blocker.args[0] == ["other", "tiny-sd15"]
    assert nets == [["controlnet-tiny-pose"]]


def test_an_unlocked_seed_box_takes_the_seed_the_worker_picked(setup, doc, qtbot):
    backend, runner, session, _ = setup()
    assert not doc.settings.seed_locked
    with qtbot.waitSignal(session.result_added, timeout=5000):
        session.run("generate")
    assert backend.jobs[0].recipe.seed is None, "unlocked: the worker picks"
    assert doc.settings.seed == 42 and not doc.settings.seed_locked
    doc.update_settings(seed_locked=True)  # Lock now: the next job repeats that picture's seed
    with qtbot.waitSignal(session.result_added, timeout=5000):
        session.run("generate")
    assert backend.jobs[1].recipe.seed == 42


def test_the_same_picture_twice_is_one_history_entry_but_two_layers(setup, doc, qtbot):
    backend, runner, session, _ = setup()
    for _ in range(2):  # the scripted worker returns identical bytes each time (same seed, same settings)
        with qtbot.waitSignal(session.result_added, timeout=5000):
            session.run("generate")
    assert len(doc.history) == 1
    assert [layer.kind for layer in doc.layers].count("image") == 2


def test_startup_says_it_is_connecting_then_what_the_worker_has(setup, qtbot):
    backend, runner, session, _ = setup()
    messages = []
    session.message.connect(messages.append)
    with qtbot.waitSignal(session.history_synced, timeout=5000):
        session.start()
    qtbot.waitUntil(lambda: any(m.startswith("Connected") for m in messages), timeout=5000)
    assert messages[0].startswith("Connecting to the worker")
    assert "Connected to the worker: 2 models, 1 ControlNet" in messages
