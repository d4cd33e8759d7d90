"""A soak run (about 30 s, loopback only): fuzzed requests and three clients queueing, cancelling and
fetching jobs, while another process locks history.sqlite and the output disk fills up mid-run.
The worker keeps serving, its GPU thread lives, and every accepted job ends and is in the history.

The worker is the real one (HTTP server, hub, history, GPU thread, outputs) in this process; only
the Studio is a stand-in that writes a 48 KiB PNG-named file at once, so the run is about faults,
not pixels. The history lock comes from another process; the full disk is a 2 MiB tmpfs when this
runs as root (else a file put where the destination folder should be).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from brushwork import paths, protocol
from brushwork.assets import AssetStore, atomic_write_bytes
from brushwork.errors import BrushworkError, HistoryError, OutputFolderError, QueueFullError

pytestmark = pytest.mark.xdist_group("worker-soak")

RUN_S = 24.0  # the whole run stays well under a minute on a busy 2-core machine
LOCK_AT_S, LOCK_FOR_S = 5.0, 7.0  # another process holds history.sqlite's write lock then
FULL_AT_S, FULL_FOR_S = 13.0, 6.0  # the "tiny" destination's disk is full then

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE jobs SET client=client")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


class FastResult:
    def __init__(self, recipe):
        self.recipe, self.seeds = recipe, [recipe.seed or 1]

    def save(self, stem: Path) -> list[Path]:
        return [atomic_write_bytes(stem, b"\x89PNG" + os.urandom(48 * 1024))]


class FastStudio:
    settings = None
    device = "cpu"

    def __init__(self):
        self.assets = AssetStore(paths.state_dir() / "assets")

    def generate(self, recipe, on_progress=None, cancel=None):
        time.sleep(0.01)
        return FastResult(recipe)


@pytest.fixture
def disk(tmp_path):
    """(folder, fill(), free()): a 2 MiB tmpfs as root, else a folder a file can stand in for."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                             capture_output=True).returncode == 0
    folder = mnt / "renders"

    def fill():
        if mounted:
            try:
                with open(mnt / "filler", "wb") as f:
                    while True:
                        f.write(b"\0" * 65536)
            except OSError:
                pass
        else:
            folder.rename(mnt / "renders.away") if folder.exists() else None
            folder.write_text("in the way")

    def free():
        if mounted:
            (mnt / "filler").unlink()
        else:
            folder.unlink()

    yield folder, fill, free, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _request(url: str, method: str, path: str, body: bytes | None, headers: dict) -> int:
    import http.client

    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status >= 500:
        code = json.loads(data)["error"]["code"] if data.startswith(b"{") else "?"
        if not (resp.status == 503 and code == "history_unavailable"):
            raise AssertionError(f"{method} {path} -> {resp.status} {data[:200]!r}")
    return resp.status


def test_soak_fuzz_a_history_lock_and_a_full_disk(tmp_path, disk, monkeypatch):
    from brushwork.worker.app import Worker

    folder, fill, free, mounted = disk
    paths.config_dir().mkdir(parents=True, exist_ok=True)
    (paths.config_dir() / "worker.toml").write_text(f'[destinations]\ntiny = "{folder}"\n')
    monkeypatch.setattr("brushwork.worker.outputs.MIN_FREE_BYTES", 64 * 1024)  # the tiny disk takes jobs
    monkeypatch.setattr("brushwork.worker.history.BUSY_TIMEOUT_S", 1.0)  # a write gives up after 1 s
    worker = Worker(host="127.0.0.1", port=0, studio_factory=FastStudio, preload=True)
    worker.runner._check_models = lambda recipe: None  # the stand-in studio has no model folders
    server = threading.Thread(target=worker.serve, kwargs={"install_signals": False}, daemon=True)
    server.start()
    from brushwork.client import Client

    figures = {"requests": 0, "fuzz_requests": 0, "jobs_accepted": 0, "refused_queue_full": 0,
               "refused_history_locked": 0, "refused_output_unwritable": 0, "cancels": 0,
               "faults_injected": 0, "failed_output_unwritable": 0}
    accepted: dict[str, tuple[Client, str]] = {}
    lock = threading.Lock()
    start = time.monotonic()
    stop = threading.Event()
    problems: list[str] = []

    def count(key: str, n: int = 1) -> None:
        with lock:
            figures[key] += n

    def job_client(key: str, seed: int) -> None:
        rng = random.Random(seed)
        client = Client(worker.url, worker.token, client_key=key, timeout=30)
        while not stop.is_set():
            destination = "tiny" if rng.random() < 0.4 else "default"
            recipe = {"prompt": f"soak {rng.random()}", "width": 64, "height": 64, "steps": 2,
                      "seed": rng.randrange(1 << 30)}
            # Client 0 sends live jobs only: each replaces its waiting one, so it never meets the
            # queue limit and its submits reach the history even while the queue is full.
            live = key.endswith("-0") or rng.random() < 0.1
            try:
                job = client.submit(recipe, destination=destination, live=live)
                with lock:
                    accepted[job.id] = (client, key)
                count("jobs_accepted")
                if rng.random() < 0.15:
                    client.cancel(job.id)
                    count("cancels")
                if rng.random() < 0.02:
                    client.cancel_all()
                    count("cancels")
            except QueueFullError:
                count("refused_queue_full")
                time.sleep(0.05)
            except HistoryError:
                count("refused_history_locked")
            except OutputFolderError:
                count("refused_output_unwritable")
            except BrushworkError as exc:
                problems.append(f"{key}: {type(exc).__name__}: {exc}")
            finally:
                count("requests")

    def fuzzer(seed: int) -> None:
        rng = random.Random(seed)
        host, port = worker.url.removeprefix("http://").rsplit(":", 1)
        paths_ = ["/v1/health", "/v1/jobs", "/v1/jobs/cancel", "/v1/events?since=0&timeout=0.2", "/v1/history",
                  "/v1/assets/check", "/v1/assets/" + "a" * 64, "/v1/results/" + "b" * 64, "/v1/x", "/",
                  "/v1/jobs/0123456789abcdef", "/v1/hello?nonce=" + "c" * 32]
        while not stop.is_set():
            try:
                if rng.random() < 0.15:  # raw noise on the socket
                    with socket.create_connection((host, int(port)), timeout=5) as sock:
                        sock.sendall(os.urandom(rng.randrange(1, 400)) + b"\r\n\r\n")
                        sock.shutdown(socket.SHUT_WR)
                        reply = sock.recv(200)
                        if reply.startswith(b"HTTP/1.") and int(reply.split()[1]) >= 500:
                            problems.append(f"noise -> {reply[:60]!r}")
                else:
                    method = rng.choice(["GET", "POST", "PUT", "DELETE", "BREW", "HEAD"])
                    body = rng.choice([None, b"", b"{}", b'{"recipe": {"prompt": 5}}', os.urandom(200),
                                       json.dumps({"recipe": {"prompt": "x", "model": "m" * 1024}}).encode()])
                    headers = {"Authorization": f"Bearer {worker.token}", protocol.H_CLIENT: f"fuzz{seed}"}
                    if rng.random() < 0.1:
                        headers["Authorization"] = "Bearer wrong"
                    _request(worker.url, method, rng.choice(paths_), body, headers)
            except (TimeoutError, ConnectionError):
                pass
            except AssertionError as exc:
                problems.append(str(exc))
            count("fuzz_requests")
            count("requests")

    def janitor() -> None:  # the artist moves results away from the small disk (not while it is "full")
        while not stop.is_set():
            if not filled.is_set() and folder.is_dir():
                for png in folder.rglob("*.png"):
                    png.unlink(missing_ok=True)
            time.sleep(0.3)

    filled = threading.Event()
    threads = [threading.Thread(target=job_client, args=(f"soak-client-{i}", i)) for i in range(3)]
    threads += [threading.Thread(target=fuzzer, args=(100 + i,)) for i in range(2)]
    threads.append(threading.Thread(target=janitor))
    for t in threads:
        t.start()
    db = worker.state_dir / protocol.HISTORY_FILE
    locker = None
    health_during_lock = None
    try:
        time.sleep(LOCK_AT_S)
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout.readline().strip() == "locked"
        count("faults_injected")
        time.sleep(LOCK_FOR_S / 2)
        health_during_lock = Client(worker.url, worker.token).health()
        time.sleep(LOCK_FOR_S / 2)
        locker.communicate("go\n", timeout=30)
        time.sleep(max(0.0, FULL_AT_S - (time.monotonic() - start)))
        filled.set()
        fill()
        count("faults_injected")
        time.sleep(FULL_FOR_S)
        free()
        filled.clear()
        time.sleep(max(0.0, RUN_S - (time.monotonic() - start)))
    finally:
        if locker is not None and locker.poll() is None:
            locker.communicate("go\n", timeout=30)
        stop.set()
        for t in threads:
            t.join(60)

    # Every accepted job ends, and its final state reaches the history.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {job_id: worker.job_info(auth_id(worker, key), job_id).state
                  for job_id, (_, key) in accepted.items()}
        if all(s in protocol.FINAL_STATES for s in states.values()) and worker.hub.unsaved_count() == 0:
            break
        time.sleep(0.2)
    rows = {j: worker.history.get(j) for j in accepted}
    in_history = {j for j, info in rows.items() if info is not None and info.state in protocol.FINAL_STATES}
    lost = sorted(set(accepted) - in_history)
    figures["failed_output_unwritable"] = sum(
        1 for j in in_history if (rows[j].error or {}).get("code") == "output_unwritable")
    figures["done"] = sum(1 for j in in_history if rows[j].state == protocol.DONE)
    figures["jobs_lost"] = len(lost)
    figures["disk"] = "tmpfs 2 MiB" if mounted else "a file in the folder's place"
    health = Client(worker.url, worker.token).health()
    gpu_thread_alive = worker.runner.is_alive()
    worker.shutdown()
    print("\nsoak figures:", json.dumps(figures))
    assert not problems, problems[:5]
    assert lost == [], lost[:5]
    assert health_during_lock["history"]["writable"] is False
    assert health["ok"] and health["engine"] == "ready" and gpu_thread_alive
    assert figures["refused_history_locked"] >= 2 and figures["done"] > 0
    assert figures["failed_output_unwritable"] + figures["refused_output_unwritable"] > 0
    assert figures["requests"] > 200


def auth_id(worker, key: str) -> str:
    from brushwork.worker import auth

    return auth.client_id(worker.token, key)
