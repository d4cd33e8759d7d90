"""History is never lost: results of this canvas's client that finished while the canvas was closed
or disconnected come into the document's history at startup and on reconnect — once each, without
blocking the UI thread. Against a REAL worker process; the "other side" is a plain
``brushwork.client.Client`` using the canvas's own client key (the worker derives the client id
from the key: same key, same client)."""

from __future__ import annotations

import hashlib
import secrets
import time

import pytest
from brushwork.client import Client
from brushwork.recipe import Recipe
from brushwork_canvas.backend import ClientBackend, canvas_client_key

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("canvas-history-worker")]


@pytest.fixture(scope="module")
def worker(tiny_models, tmp_path_factory):
    from brushwork.worker.testing import WorkerProcess

    proc = WorkerProcess(home=tmp_path_factory.mktemp("history-worker"), model_dirs=[tiny_models.root])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        stray = _stray_worker(proc)
        assert stray is None, f"a canvas started worker {stray} of its own in the test's home"


def _stray_worker(proc) -> int | None:
    """A worker named in the home's worker.json that is not the fixture's (stopped if found)."""
    import json
    import os
    import signal

    from brushwork import protocol

    try:
        pid = int(json.loads((proc.state_dir / protocol.INFO_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == proc.proc.pid:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    return pid


def recipe(seed: int, **extra) -> Recipe:
    return Recipe(prompt="a lighthouse", model="tiny-sd15", width=64, height=64, steps=2, seed=seed, **extra)


def finished_job(client: Client, seed: int, *, live: bool = False, **extra):
    """Submit through a plain client and wait until the worker has finished and recorded it."""
    job = client.submit(recipe(seed, **extra), live=live)
    job.result(timeout=120)
    return client.job(job.id)


def open_canvas(qtbot, backend, *, restore=False):
    from brushwork_canvas.app import build

    win = build(backend=backend, width=64, height=64, restore=restore)
    qtbot.addWidget(win)
    win.show()
    return win


def close_canvas(win):
    win.session.set_live(False)
    assert win.session.runner.shutdown(20000)


def start_and_wait(win, qtbot) -> int:
    """The app's own startup step (models + history sync); returns how many results the sync added."""
    before = len(win.doc.history)
    with qtbot.waitSignal(win.session.history_synced, timeout=60000) as got:
        win.session.start()
        assert len(win.doc.history) == before, "start() returns at once; results come in later"
    return got.args[0]


def test_results_that_finished_while_the_canvas_was_closed_appear_at_startup_once(worker, qtbot):
    key = canvas_client_key()  # the key a canvas on this machine uses (state dir, 0600)
    plain = Client(worker.url, worker.token, client_key=key)
    done = finished_job(plain, seed=11)
    batch = finished_job(plain, seed=20, batch=2)
    finished_job(plain, seed=12, live=True)  # live results never enter a history
    finished_job(worker.client(secrets.token_hex(16)), seed=13)  # another client's: never ours

    win = open_canvas(qtbot, ClientBackend(worker.url, token=worker.token))  # default key: the canvas's
    said: list[str] = []
    win.session.message.connect(said.append)  # the model list's "Connected" line may come last
    try:
        assert win.doc.history == []
        assert start_and_wait(win, qtbot) == 3
        by_hash = {e.sha256: e for e in win.doc.history}
        expected = {r["sha256"]: (done.id, r["seed"]) for r in done.results}
        expected.update({r["sha256"]: (batch.id, r["seed"]) for r in batch.results})
        assert set(by_hash) == set(expected), "exactly our finished, non-live results"
        for sha, (job_id, seed) in expected.items():
            entry = by_hash[sha]
            assert hashlib.sha256(entry.png).hexdigest() == sha, "the PNG byte for byte as the worker wrote it"
            assert entry.job == job_id and entry.task == "generate"
            assert entry.recipe.seed == seed and entry.recipe.batch == 1, "each picture's own recipe"
        assert [e.recipe.seed for e in win.doc.history][-1] == 11, "oldest at the bottom, as they finished"
        assert win.layers_panel.list.count() == 1, "recovered results go to the history, not onto the canvas"
        assert any("added to the history" in line for line in said)

        with qtbot.waitSignal(win.session.history_synced, timeout=60000) as again:
            win.session.sync_history()
        assert again.args == [0] and len(win.doc.history) == 3, "a second sync adds nothing"
        win.autosaver.save_now()
    finally:
        close_canvas(win)

    # Restart the canvas: the autosave brings the three back, and the startup sync adds no copies.
    win = open_canvas(qtbot, ClientBackend(worker.url, token=worker.token), restore=True)
    try:
        assert len(win.doc.history) == 3
        assert start_and_wait(win, qtbot) == 0
        assert len(win.doc.history) == 3
    finally:
        close_canvas(win)


def test_a_result_the_canvas_received_itself_is_not_added_again(worker, qtbot):
    win = open_canvas(qtbot, ClientBackend(worker.url, token=worker.token))
    try:
        assert start_and_wait(win, qtbot) == 0
        win.doc.update_settings(model="tiny-sd15", steps=2, prompt="a boat", seed=5, seed_locked=True)
        with qtbot.waitSignal(win.session.result_added, timeout=60000):
            win.generate_panel.generate_button.click()
        assert win.doc.history[0].job, "results from the canvas's own jobs carry the job id"
        with qtbot.waitSignal(win.session.history_synced, timeout=60000) as got:
            win.session.sync_history()
        assert got.args == [0] and len(win.doc.history) == 1
    finally:
        close_canvas(win)


def test_a_new_document_does_not_adopt_the_previous_documents_results(worker, qtbot):
    plain = Client(worker.url, worker.token, client_key=canvas_client_key())
    finished_job(plain, seed=31)
    win = open_canvas(qtbot, ClientBackend(worker.url, token=worker.token))
    try:
        win.doc.reset(64, 64)  # File > New
        assert start_and_wait(win, qtbot) == 0 and win.doc.history == []
        finished_job(plain, seed=32)  # finishes after New: this document's
        with qtbot.waitSignal(win.session.history_synced, timeout=60000) as got:
            win.session.sync_history()
        assert got.args == [1] and win.doc.history[0].recipe.seed == 32
    finally:
        close_canvas(win)


def test_a_reconnect_brings_in_results_that_finished_while_the_worker_was_away(worker, qtbot, monkeypatch):
    # The canvas finds the worker as the app does (worker.json and the token file in the state dir).
    monkeypatch.setenv("BRUSHWORK_HOME", str(worker.home))
    win = open_canvas(qtbot, ClientBackend())
    try:
        start_and_wait(win, qtbot)
        # Nothing of ours may be talking to the worker when it dies: a call failing in between
        # would (rightly) start a worker of its own in this home.
        assert win.session.runner.wait_idle(30000)
        before = len(win.doc.history)
        worker.kill()  # the worker goes away (kill -9) ...
        worker.start()  # ... and comes back on another port, where a job of ours finishes
        done = finished_job(Client(worker.url, worker.token, client_key=canvas_client_key()), seed=41)
        messages = []
        win.session.message.connect(messages.append)
        with qtbot.waitSignal(win.session.history_synced, timeout=120000, raising=False) as got:
            win.session.load_models()  # any call: it finds the old worker gone and reconnects
        assert got.signal_triggered, f"no history sync after the reconnect; status lines: {messages}"
        assert got.args == [1], messages
        assert win.doc.history[0].sha256 == done.results[0]["sha256"]
        assert len(win.doc.history) == before + 1
    finally:
        close_canvas(win)
        if worker.proc is None or worker.proc.poll() is not None:
            worker.start()


def test_a_sync_that_cannot_reach_the_worker_is_one_line_and_the_canvas_goes_on(qtbot):
    win = open_canvas(qtbot, ClientBackend("http://127.0.0.1:9", token="x" * 40))  # nothing listens on port 9
    try:
        messages = []
        win.session.message.connect(messages.append)
        started = time.monotonic()
        win.session.sync_history()
        assert time.monotonic() - started < 0.5, "the UI thread does not wait for the network"
        qtbot.waitUntil(lambda: any("history" in m for m in messages), timeout=30000)
        failure = next(m for m in messages if "history" in m)
        assert failure.startswith("Could not look for results in the worker's history:") and "\n" not in failure
        assert win.doc.history == []
    finally:
        close_canvas(win)
