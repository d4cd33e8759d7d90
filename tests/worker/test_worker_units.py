"""The worker's small parts on their own: token file, client ids, origins, destinations,
history persistence, the event ring and the queue (no process, no HTTP)."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
from brushwork import paths, protocol
from brushwork.recipe import Recipe
from brushwork.worker import auth
from brushwork.worker.app import is_loopback
from brushwork.worker.history import History
from brushwork.worker.hub import EventLog, Hub, NotFound
from brushwork.worker.outputs import DestinationError, Outputs


def test_token_is_created_private_once_and_reused(tmp_path):
    token, path = auth.load_or_create_token(tmp_path / "state")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert auth.load_or_create_token(tmp_path / "state") == (token, path)
    os.chmod(path, 0o644)  # someone loosened it: tightened again on the next start
    auth.load_or_create_token(tmp_path / "state")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_bearer_check_and_client_ids():
    assert auth.bearer_ok("Bearer sekrit", "sekrit")
    assert not auth.bearer_ok("Bearer sekrit2", "sekrit") and not auth.bearer_ok(None, "sekrit")
    assert not auth.bearer_ok("bearer sekrit", "sekrit") and not auth.bearer_ok("Bearer \udcff", "sekrit")
    a, b = auth.client_id("t1", "key-a"), auth.client_id("t1", "key-b")
    assert a != b and a == auth.client_id("t1", "key-a") and len(a) == 16
    assert auth.client_id("t2", "key-a") != a  # ids depend on the worker's token, not the key alone


@pytest.mark.parametrize("origin,site,refused", [
    (None, None, False), (None, "none", False), (None, "same-origin", False),
    ("https://example.com", None, True), ("null", None, True), (None, "cross-site", True), (None, "same-site", True),
])
def test_origin_rule(origin, site, refused):
    assert (auth.refused_origin(origin, site) is not None) == refused


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                           ("[::1]", True), ("0.0.0.0", False), ("192.168.1.5", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) == loopback


def test_destinations_are_names_from_the_config(tmp_path):
    target = tmp_path / "textures"
    paths.config_dir().mkdir(parents=True)
    (paths.config_dir() / "worker.toml").write_text(
        f'[destinations]\ntextures = "{target}"\n"bad name/../x" = "/tmp"\n')
    outputs = Outputs.load()
    assert sorted(outputs.folders) == ["default", "textures"]
    assert outputs.check(None) == outputs.check("") == "default"
    assert outputs.check("textures") == "textures"
    for bad in ("/tmp", "../default", 5, ["default"]):
        with pytest.raises(DestinationError, match="known: default, textures"):
            outputs.check(bad)
    stem = outputs.stem_for("textures", "0123456789abcdef")
    assert stem.parent.parent == target and stem.name.endswith("-0123456789abcdef.png")
    stem.parent.mkdir(parents=True)
    (stem.parent / f".{stem.name}.abc.part").write_bytes(b"half")
    assert outputs.sweep_partials() == 1 and not list(target.rglob("*.part"))


def test_broken_worker_toml_is_a_one_line_error():
    paths.config_dir().mkdir(parents=True)
    (paths.config_dir() / "worker.toml").write_text("[destinations\n")
    with pytest.raises(Exception, match="worker.toml: not valid TOML"):
        Outputs.load()


def _hub(tmp_path):
    history = History(tmp_path / "h.sqlite")
    return Hub(EventLog(ring_size=4), on_change=lambda job: history.save(job.client, job.info(None))), history


def test_history_survives_reopening_and_marks_interrupted_jobs(tmp_path):
    hub, history = _hub(tmp_path)
    queued, _ = hub.submit("c1", Recipe(prompt="a"), "default", False)
    running, _ = hub.submit("c1", Recipe(prompt="b"), "default", False)
    hub.next_job(0)  # the first one starts
    history.close()
    reopened = History(tmp_path / "h.sqlite")
    assert reopened.mark_interrupted() == 2
    info = reopened.get(queued.id, "c1")
    assert info.state == protocol.FAILED and info.error["code"] == "worker_error"
    assert reopened.get(queued.id, "someone-else") is None
    assert [i.recipe["prompt"] for _, i in reopened.list("c1")] == ["b", "a"]
    assert running.id in {i.id for _, i in reopened.list()}


def test_event_ring_is_bounded_and_says_when_it_dropped_events(tmp_path):
    log = EventLog(ring_size=4)
    for i in range(6):
        log.emit("c1", protocol.EV_PROGRESS, "j", {"step": i})
    log.emit("c2", protocol.EV_PROGRESS, "k", {})
    events, truncated = log.read("c1", 0)
    assert [e.data["step"] for e in events] == [2, 3, 4, 5] and truncated
    events, truncated = log.read("c1", events[0].seq)
    assert len(events) == 3 and not truncated
    assert [e.job for e in log.read("c2", 0)[0]] == ["k"]
    assert log.read("c3", 0, timeout=0.05) == ([], False)


def test_queue_positions_cancel_and_stop(tmp_path):
    hub, _ = _hub(tmp_path)
    jobs = [hub.submit("c1", Recipe(prompt=str(i)), "default", False)[0] for i in range(3)]
    assert [hub.get("c1", j.id)[1] for j in jobs] == [0, 1, 2]
    assert hub.next_job(0) is jobs[0]
    assert [hub.get("c1", j.id)[1] for j in jobs] == [0, 1, 2]  # running counts as ahead
    with pytest.raises(NotFound):
        hub.cancel("c2", jobs[1].id)
    assert hub.cancel("c1", jobs[1].id).state == protocol.CANCELLED
    assert hub.get("c1", jobs[2].id)[1] == 1
    dropped = hub.stop()
    assert dropped == [jobs[2]] and jobs[0].cancel.is_set()
    with pytest.raises(Exception, match="shutting down"):
        hub.submit("c1", Recipe(), "default", False)


def test_a_reader_of_some_kinds_sleeps_through_the_others(tmp_path):
    log = EventLog()
    got = {}

    def reader():
        got["events"], _ = log.read("c1", 0, timeout=10, kinds=frozenset(protocol.FINAL_EVENTS))

    thread = threading.Thread(target=reader)
    thread.start()
    for step in range(3):
        log.emit("c1", protocol.EV_PROGRESS, "j", {"step": step})
    time.sleep(0.1)
    assert thread.is_alive(), "progress events woke a reader that asked only for the end"
    log.emit("c1", protocol.EV_RESULT, "j", {"results": []})
    thread.join(5)
    assert [e.kind for e in got["events"]] == [protocol.EV_RESULT]
    # Without kinds, everything after `since` as before.
    assert [e.kind for e in log.read("c1", 0)[0]] == [protocol.EV_PROGRESS] * 3 + [protocol.EV_RESULT]
