"""Finding, starting, crashing and stopping the worker: connect() under a lock, kill -9 and
recovery, SIGTERM mid-job, history across restarts, and the one-line failures."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from brushwork import paths, protocol
from brushwork.client import connect
from brushwork.errors import BrushworkError, WorkerError
from worker_helpers import tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-life")


def reap(pid: int, timeout: float = 60.0) -> int:
    """Wait for a worker connect() started (our child) to exit; its exit status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    raise AssertionError(f"worker {pid} did not exit within {timeout} s")


def wait_progress(job, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.kind == "progress" for e in job.poll(timeout=1.0)):
            return
    raise AssertionError(f"no progress for {job.id}")


def partial_files():
    out = paths.outputs_dir()
    return list(out.rglob("*.part")) if out.exists() else []


@pytest.mark.slow
def test_start_crash_recover_and_stop_cleanly(tiny_models, monkeypatch):
    monkeypatch.setenv(protocol.ENV_PORT, "0")
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    monkeypatch.setenv(protocol.ENV_PYTHON, sys.executable)
    state = paths.state_dir()

    # Two clients at once: the lock lets exactly one of them start a worker; both get it.
    clients, errors = [], []

    def connect_one(key):
        try:
            clients.append(connect(client_key=key, timeout=120))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connect_one, args=(k,)) for k in ("artist", "other")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert clients[0].url == clients[1].url
    assert (state / protocol.LOG_FILE).read_text().count("started by a client") == 1
    first_pid = json.loads((state / protocol.INFO_FILE).read_text())["pid"]
    client = next(c for c in clients if c.client_key == "artist")

    kept = client.generate(tiny_recipe(steps=2, seed=1), timeout=120)

    # kill -9 mid-job: the waiting client gets a WorkerError, no partial file is left.
    doomed = client.submit(tiny_recipe(steps=200))
    wait_progress(doomed)
    os.kill(first_pid, signal.SIGKILL)
    reap(first_pid)
    with pytest.raises(WorkerError):
        doomed.result(timeout=30)
    assert not partial_files()

    # connect() starts a new worker; the history survived and says what happened.
    client = connect(client_key="artist", timeout=120)
    second_pid = json.loads((state / protocol.INFO_FILE).read_text())["pid"]
    assert second_pid != first_pid
    lost = client.job(doomed.id)
    assert lost.state == protocol.FAILED and lost.error["code"] == "worker_error"
    history = {h.id: h for h in client.history()}
    assert history[kept.job].state == protocol.DONE
    assert client.fetch_result(kept.hashes[0]) == kept.png_bytes[0]

    # SIGTERM mid-job: the running job is cancelled (no decode, no file), the worker exits 0
    # and removes worker.json.
    stopped = client.submit(tiny_recipe(steps=200, seed=2))
    wait_progress(stopped)
    os.kill(second_pid, signal.SIGTERM)
    assert reap(second_pid) == 0
    assert not (state / protocol.INFO_FILE).exists()
    assert not partial_files()
    outputs = list(paths.outputs_dir().rglob("*.png"))
    assert [p for p in outputs if stopped.id in p.name] == []
    with sqlite3.connect(state / protocol.HISTORY_FILE) as db:
        row = db.execute("SELECT state FROM jobs WHERE id=?", (stopped.id,)).fetchone()
    assert row == (protocol.CANCELLED,)

    # `brushwork history` reads the history while no worker runs.
    run = subprocess.run([sys.executable, "-m", "brushwork", "history", "--json"], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    states = {json.loads(line)["id"]: json.loads(line)["state"] for line in run.stdout.splitlines()}
    assert states[kept.job] == "done" and states[doomed.id] == "failed" and states[stopped.id] == "cancelled"


def test_connect_without_starting_says_no_worker_runs():
    with pytest.raises(WorkerError, match="no worker is running"):
        connect(start=False)


def test_connect_to_a_url_where_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WorkerError, match="no worker answers"):
        connect(f"http://127.0.0.1:{port}")


def test_connect_reports_a_python_that_cannot_start_the_worker(tmp_path):
    with pytest.raises(WorkerError, match="cannot start the worker"):
        connect(python=str(tmp_path / "no-such-python"), timeout=10)
    fake = tmp_path / "broken-python"
    fake.write_text("#!/bin/sh\necho 'No module named brushwork' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(WorkerError, match=r"exited at start \(code 3\).*No module named brushwork"):
        connect(python=str(fake), timeout=10)


class _FutureWorker(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"protocol": "2.0", "ok": true}'
        self.send_response(200)
        self.send_header(protocol.H_PROTOCOL, "2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_worker_of_another_major_version_is_a_clear_error():
    server = http.server.HTTPServer(("127.0.0.1", 0), _FutureWorker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(WorkerError, match="protocol 2.0.*update Brushwork"):
            connect(f"http://127.0.0.1:{server.server_address[1]}", token="x")
    finally:
        server.shutdown()
        server.server_close()


def test_worker_command_on_a_busy_port_fails_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "brushwork.worker", "--port", str(port)],
                             capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines == [f"brushwork: error: port {port} on 127.0.0.1 is already in use (another worker is running, "
                     "or choose another with --port)"]


def test_history_command_with_no_history_yet(capsys):
    from brushwork.worker.commands import main

    assert main(["history"]) == 0
    assert "no history yet" in capsys.readouterr().err


def test_out_of_memory_becomes_a_clear_error_with_what_was_needed():
    from brushwork.errors import OutOfMemoryError
    from brushwork.worker.engine_runner import to_brushwork_error

    # The messages torch raises on CPU and CUDA.
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 34359738368 bytes. Error code 12 (Cannot allocate memory)")
    err = to_brushwork_error(cpu)
    assert isinstance(err, OutOfMemoryError) and err.needed_bytes == 34359738368
    assert "32768 MiB" in str(err) and "still running" in str(err)
    cuda = type("OutOfMemoryError", (RuntimeError,), {})(
        "CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 7.79 GiB total capacity)")
    assert to_brushwork_error(cuda).needed_bytes == int(2.5 * (1 << 30))
    assert to_brushwork_error(MemoryError()).code == "out_of_memory"
    other = to_brushwork_error(ValueError("boom\nsecond line"))
    assert other.code == "internal_error" and str(other) == "internal error: ValueError: boom"


def test_errors_from_the_worker_keep_their_class():
    from brushwork.client import _error_from_response

    err = _error_from_response(400, json.dumps({"error": {"code": "invalid_recipe", "field": "steps",
                                                          "message": "steps: must be a number"}}).encode())
    assert type(err).__name__ == "RecipeError" and err.field == "steps"
    err = _error_from_response(404, b'{"error": {"code": "not_found", "message": "no job"}}')
    assert isinstance(err, BrushworkError) and err.code == "not_found"
    assert isinstance(_error_from_response(502, b"<html>proxy</html>"), WorkerError)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address-space limits via prlimit are Linux's")
def test_a_real_out_of_memory_fails_the_job_and_the_worker_stays_up(tiny_models, tmp_path):
    """The worker's address space is capped (prlimit), then a job far too big for it runs."""
    import resource

    from brushwork.errors import OutOfMemoryError
    from brushwork.worker.testing import WorkerProcess
    from PIL import Image

    # A copy of tiny-sd15 that claims a 2048 px native size: a 2048² job is then no larger than
    # native and runs the plain whole-picture path (over 2x native every task takes the bounded
    # large-image paths of engine/tiled.py, which would not run out of memory here).
    models = tmp_path / "models"
    shutil.copytree(tiny_models.sd15, models / "tiny-sd15-bignative")
    config = models / "tiny-sd15-bignative" / "unet" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "sample_size": 1024}))
    with WorkerProcess(tmp_path / "oom-home", model_dirs=[tiny_models.root, models], wait_engine=True,
                       start_timeout=120) as worker:
        client = worker.client()
        client.generate(tiny_recipe(model="tiny-sd15-bignative", steps=1), timeout=120)  # loaded and warm
        status = (Path(f"/proc/{worker.proc.pid}/status")).read_text()
        vm_kib = int(next(line for line in status.splitlines() if line.startswith("VmSize:")).split()[1])
        cap = vm_kib * 1024 + 768 * 2**20  # room for small jobs, not for a 2048x2048 decode
        resource.prlimit(worker.proc.pid, resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
        init = tmp_path / "init.png"
        Image.new("RGB", (64, 64), (90, 60, 30)).save(init)
        with pytest.raises(OutOfMemoryError) as info:
            client.generate(tiny_recipe(model="tiny-sd15-bignative", steps=1, width=2048, height=2048, cfg=1.0,
                                        init_image=str(init), strength=1.0), timeout=300)
        assert "out of memory" in str(info.value)
        assert client.health()["ok"]
        again = client.generate(tiny_recipe(model="tiny-sd15-bignative", steps=1, seed=2), timeout=120)
        assert again.seeds == [2]
