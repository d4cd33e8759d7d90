"""Faults the worker must survive without dying or losing a job: another program holding a write
lock on history.sqlite, a full or read-only output folder, a bug inside the GPU loop. The hub, the
history and the GPU thread are the real ones (a stand-in Studio makes the pixels quickly)."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brushwork import protocol
from brushwork.errors import HistoryError, OutputFolderError, QueueFullError
from brushwork.recipe import Recipe
from brushwork.worker.engine_runner import EngineRunner
from brushwork.worker.history import History
from brushwork.worker.hub import EventLog, Hub
from brushwork.worker.outputs import Outputs

RECIPE = Recipe(prompt="x", width=64, height=64, steps=2, seed=1)


class FakeResult:
    def __init__(self, recipe):
        self.recipe, self.seeds = recipe, [recipe.seed or 1]

    def save(self, stem: Path) -> list[Path]:
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.write_bytes(b"\x89PNG fake " + stem.name.encode())
        return [stem]


class FakeStudio:
    settings = None
    device = "cpu"

    def generate(self, recipe, on_progress=None, cancel=None):
        return FakeResult(recipe)


def make_worker_parts(tmp_path: Path, *, busy_timeout: float = 0.2, **hub_kwargs):
    history = History(tmp_path / "state" / protocol.HISTORY_FILE, busy_timeout=busy_timeout)
    hub = Hub(EventLog(), on_change=lambda job: history.save(job.client, job.info(None)),
              on_change_many=lambda jobs: history.save_many([(j.client, j.info(None)) for j in jobs]), **hub_kwargs)
    outputs = Outputs({"default": tmp_path / "out"})
    runner = EngineRunner(hub, outputs, studio_factory=FakeStudio)
    runner._check_models = lambda recipe: None  # the stand-in studio has no model folders
    return history, hub, outputs, runner


@contextlib.contextmanager
def write_lock(path: Path):
    """Another program (a backup, a DB browser) holding the write lock of the SQLite file."""
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE jobs SET client=client")
    try:
        yield other
    finally:
        other.execute("ROLLBACK")
        other.close()


def wait_until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_a_locked_history_refuses_the_submit_and_leaves_no_ghost_job(tmp_path):
    history, hub, _, _ = make_worker_parts(tmp_path)
    with write_lock(history.path), pytest.raises(HistoryError) as err:
        hub.submit("c1", RECIPE, "default", False)
    assert err.value.http_status == 503 and "cannot be written" in str(err.value)
    assert hub.queue_length() == 0 and hub.list("c1") == []  # nothing queued, nothing to run twice
    job, _ = hub.submit("c1", RECIPE, "default", False)  # the lock is gone: the retry goes through
    assert hub.queue_length() == 1 and history.get(job.id).state == protocol.QUEUED


def test_the_gpu_thread_survives_a_history_lock_and_writes_everything_after(tmp_path):
    history, hub, _, runner = make_worker_parts(tmp_path)
    jobs = [hub.submit("c1", RECIPE, "default", False)[0] for _ in range(3)]
    with write_lock(history.path):
        runner.start()
        wait_until(lambda: all(j.state == protocol.DONE for j in jobs))
        assert runner.is_alive()
        assert hub.unsaved_count() == 3 and hub.last_error["code"] == "history_unavailable"
        assert not history.writable()
        assert history.get(jobs[0].id).state == protocol.QUEUED  # the old row: the write is pending
    # The lock is released: the pending writes go through, and later jobs run as usual.
    wait_until(lambda: hub.unsaved_count() == 0)
    assert [history.get(j.id).state for j in jobs] == [protocol.DONE] * 3
    later, _ = hub.submit("c1", RECIPE, "default", False)
    wait_until(lambda: later.state == protocol.DONE)
    assert history.get(later.id).state == protocol.DONE and history.writable()
    runner.stop_requested.set()
    runner.join(5)


def test_a_bug_inside_the_gpu_loop_fails_that_job_and_the_thread_goes_on(tmp_path):
    _, hub, _, runner = make_worker_parts(tmp_path)
    calls = []

    def broken_finish(job, state, **kwargs):  # a bug where the job is recorded
        calls.append(state)
        if len(calls) <= 2:  # the job's own error path records it too: that fails as well
            raise RuntimeError("boom while recording")
        return original(job, state, **kwargs)

    original, hub.finish = hub.finish, broken_finish
    first, _ = hub.submit("c1", RECIPE, "default", False)
    runner.start()
    wait_until(lambda: first.state == protocol.FAILED)
    assert "boom while recording" in first.error["message"] and runner.is_alive()
    assert runner.last_error["where"] == f"job {first.id}"
    second, _ = hub.submit("c1", RECIPE, "default", False)
    wait_until(lambda: second.state == protocol.DONE)
    runner.stop_requested.set()
    runner.join(5)


def test_a_result_that_cannot_be_written_fails_the_job_with_a_clear_error(tmp_path):
    _, hub, outputs, runner = make_worker_parts(tmp_path)
    (tmp_path / "out").write_text("a file where the folder should be")
    job, _ = hub.submit("c1", RECIPE, "default", False)
    runner.start()
    wait_until(lambda: job.state == protocol.FAILED)
    assert job.error["code"] == "output_unwritable" and "not a folder" in job.error["message"]
    with pytest.raises(OutputFolderError):
        outputs.check_writable("default")
    runner.stop_requested.set()
    runner.join(5)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB file system, as root (mount) — else a folder the test cannot fill is skipped."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(mnt)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_and_read_only_output_folders_are_refused_at_submit_and_at_write(tiny_tmpfs, tmp_path):
    outputs = Outputs({"default": tiny_tmpfs / "renders"})
    with pytest.raises(OutputFolderError, match="KiB free"):  # 1 MiB is under MIN_FREE_BYTES
        outputs.check_writable("default")
    # The write itself on a full disk: ENOSPC becomes the same clear error, nothing half-written.
    (tiny_tmpfs / "filler").write_bytes(b"\0" * (1024 * 1024 - 8192))
    _, hub, _, runner = make_worker_parts(tmp_path)
    runner.outputs = outputs

    class BigResult(FakeResult):
        def save(self, stem):
            from brushwork.assets import atomic_write_bytes

            return [atomic_write_bytes(stem, os.urandom(256 * 1024))]

    class BigStudio(FakeStudio):
        def generate(self, recipe, on_progress=None, cancel=None):
            return BigResult(recipe)

    runner._studio_factory = BigStudio
    job, _ = hub.submit("c1", RECIPE, "default", False)
    runner.start()
    wait_until(lambda: job.state == protocol.FAILED)
    assert job.error["code"] == "output_unwritable" and "disk is full" in job.error["message"]
    assert not [p for p in tiny_tmpfs.rglob("*") if p.name.endswith(".part")]
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    with pytest.raises(OutputFolderError, match="read-only"):
        outputs.check_writable("default")
    runner.stop_requested.set()
    runner.join(5)


def test_queue_limits_per_client_and_in_all(tmp_path):
    _, hub, _, _ = make_worker_parts(tmp_path, max_per_client=3, max_total=5)
    for _ in range(3):
        hub.submit("a", RECIPE, "default", False)
    with pytest.raises(QueueFullError) as err:
        hub.submit("a", RECIPE, "default", False)
    assert err.value.http_status == 429 and err.value.limit == 3 and err.value.to_dict()["limit"] == 3
    with pytest.raises(QueueFullError):
        hub.submit("a", RECIPE, "default", True)  # a live job counts too when it replaces none
    hub.submit("b", RECIPE, "default", True)
    hub.submit("b", RECIPE, "default", True)  # replaces b's waiting live job: the queue does not grow
    hub.submit("b", RECIPE, "default", False)
    assert hub.queue_length() == 5
    with pytest.raises(QueueFullError, match="in all") as err:
        hub.submit("c", RECIPE, "default", False)
    assert err.value.limit == 5


def test_cancel_all_cancels_every_job_of_one_client_in_one_write(tmp_path):
    history, hub, _, _ = make_worker_parts(tmp_path, max_per_client=2000, max_total=2000)
    mine = [hub.submit("a", RECIPE, "default", False)[0] for _ in range(1000)]
    other, _ = hub.submit("b", RECIPE, "default", False)
    writes = []
    original = history.save_many
    history.save_many = lambda jobs: (writes.append(len(jobs)), original(jobs))[1]
    cancelled = hub.cancel_all("a")
    assert sorted(cancelled) == sorted(j.id for j in mine) and writes == [1000]
    assert all(history.get(j.id).state == protocol.CANCELLED for j in mine[::97])
    assert other.state == protocol.QUEUED and hub.queue_length() == 1


def test_finished_jobs_are_released_from_memory_but_kept_in_the_history(tmp_path):
    history, hub, _, _ = make_worker_parts(tmp_path, keep_finished=5)
    jobs = [hub.submit("a", RECIPE, "default", False)[0] for _ in range(20)]
    hub.cancel_all("a")
    assert len(hub.list("a")) == 5
    assert history.get(jobs[0].id).state == protocol.CANCELLED


def test_history_retention_keeps_the_newest_jobs(tmp_path):
    history = History(tmp_path / "h.sqlite", keep=10)
    from brushwork.protocol import JobInfo

    for i in range(25):
        history.save("c", JobInfo(id=f"{i:016x}", state=protocol.DONE, created=1000.0 + i,
                                  recipe={"prompt": "p" * 20_000}))
    assert history.prune() == 15
    kept = [info.id for _, info in history.list(limit=100)]
    assert kept == [f"{i:016x}" for i in range(24, 14, -1)]
    db = sqlite3.connect(str(history.path))
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0  # the freed pages went back


def test_history_and_its_wal_are_private(tmp_path):
    history = History(tmp_path / "state" / "h.sqlite")
    from brushwork.protocol import JobInfo

    history.save("c", JobInfo(id="0" * 16, state=protocol.DONE))
    history.make_private()
    for suffix in ("", "-wal"):
        assert os.stat(f"{history.path}{suffix}").st_mode & 0o777 == 0o600


def test_engine_runner_errno_messages():
    from brushwork.worker.engine_runner import output_error

    assert "read-only" in str(output_error(OSError(errno.EROFS, "ro"), Path("/x"), "default"))
    assert "quota" in str(output_error(OSError(errno.EDQUOT, "q"), Path("/x"), "default"))


# ---- through a real worker process ------------------------------------------------------------

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE jobs SET client=client")
print("locked", flush=True)
sys.stdin.readline()  # held until the test says so
db.execute("ROLLBACK")
"""


@pytest.fixture
def lone_worker(tmp_path):
    from brushwork.worker.testing import WorkerProcess

    env = {"BRUSHWORK_DEFAULT_MODEL": "no-such-model-for-tests", "BRUSHWORK_WORKER_PRELOAD": "0"}
    with WorkerProcess(tmp_path / "home", env=env) as worker:
        yield worker


def test_a_worker_whose_history_another_process_locks_refuses_then_recovers(lone_worker):
    from brushwork.errors import HistoryError as RemoteHistoryError

    client = lone_worker.client()
    db = lone_worker.state_dir / protocol.HISTORY_FILE
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        health = client.health()
        assert health["history"]["writable"] is False and health["ok"] is False
        with pytest.raises(RemoteHistoryError, match="cannot be written"):
            client.submit(RECIPE)
        assert client.jobs() == []  # no ghost job behind the refusal
    finally:
        locker.communicate("go\n", timeout=30)
    job = client.submit(RECIPE)  # the lock is gone: the same submit goes through, saved at once
    assert [j.id for j in client.history()] == [job.id]
    health = client.health()
    assert health["history"]["writable"] and health["ok"] and health["engine"] != "dead"


def test_pickle_weights_inside_a_diffusers_folder_are_refused_by_name(tmp_path):
    import json
    import pickle

    from brushwork.errors import UnsafeCheckpointError
    from brushwork.models import sources
    from brushwork.models.settings import Settings

    model = tmp_path / "models" / "picklemodel"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                        "unet": ["diffusers", "UNet2DConditionModel"]}))
    (model / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    (model / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps({"a": 1}))
    settings = Settings(model_dirs=[tmp_path / "models"])
    with pytest.raises(UnsafeCheckpointError, match=r"unet/diffusion_pytorch_model\.bin") as err:
        sources.resolve("picklemodel", "pipeline", settings, allow_paths=False)
    assert err.value.code == "pickle_refused"
    assert "picklemodel" not in [m.name for m in sources.list_models(settings, kinds=("pipeline",))]
    # The same folder with safetensors next to the .bin loads the safetensors: not refused.
    (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    from brushwork.models.folder_pickles import pickle_weights

    assert pickle_weights(model) == []


def test_identical_results_of_one_client_are_separate_records(tmp_path):
    from brushwork.protocol import JobInfo

    history = History(tmp_path / "h.sqlite")
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(b"same")
    second.write_bytes(b"same")
    for job_id, path in (("1" * 16, first), ("2" * 16, second)):
        history.save("c", JobInfo(id=job_id, state=protocol.DONE,
                                  results=[{"sha256": "f" * 64, "path": str(path), "seed": 1, "index": 0}]))
    assert history.jobs_with_result("f" * 64, "c") == ["1" * 16, "2" * 16]
    assert history.result_path("f" * 64, "c") == second
    second.unlink()  # the newer file was deleted: the older identical one still serves
    assert history.result_path("f" * 64, "c") == first


def test_the_workers_files_are_private(lone_worker):
    import hashlib

    client = lone_worker.client()
    ref = client.upload(b"an artist's private upload")
    client.submit(RECIPE)
    state = lone_worker.state_dir
    asset = state / "assets" / ref[7:9] / ref[7:]
    assert hashlib.sha256(asset.read_bytes()).hexdigest() == ref[7:]
    for path in (state / protocol.HISTORY_FILE, Path(f"{state / protocol.HISTORY_FILE}-wal"), asset):
        assert path.stat().st_mode & 0o777 == 0o600, path
    for folder in (state, state / "assets", asset.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


def test_the_log_a_client_starts_the_worker_with_is_private(tmp_path):
    from brushwork import launch, paths

    paths.state_dir().mkdir(parents=True, exist_ok=True)
    log = paths.state_dir() / protocol.LOG_FILE
    log.write_text("old lines\n")
    os.chmod(log, 0o644)
    with launch._open_private_log(log) as f:
        f.write(b"new line\n")
    assert log.stat().st_mode & 0o777 == 0o600 and log.read_text() == "old lines\nnew line\n"
