"""The token never goes to a process that is not the worker (a squatter on the port after a
kill -9 with a stale worker.json), and it rotates on request with clients following."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from brushwork import paths, protocol
from brushwork.client import Client, connect
from brushwork.errors import WorkerError
from brushwork.worker.testing import WorkerProcess
from worker_helpers import raw_request

TOKEN = "squat-test-token-" + "x" * 40


class Squatter:
    """A plain socket on loopback that answers every request like a healthy worker would, except
    that it cannot know the token; it records every byte it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        body = json.dumps({"protocol": "1.0", "ok": True, "engine": "ready", "proof": "0" * 64,
                           "instance": "squat", "jobs": []}).encode()
        with conn:
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.received += chunk
                buf += chunk
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    self.requests += 1
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Brushwork-Protocol: 1.0\r\n"
                                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def close(self):
        self.sock.close()


@pytest.fixture
def squatter():
    s = Squatter()
    yield s
    s.close()


def test_a_process_squatting_the_port_never_receives_the_token(squatter):
    state = paths.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    (state / protocol.TOKEN_FILE).write_text(TOKEN + "\n")
    # What a worker killed with kill -9 leaves behind: worker.json naming a port someone else took.
    (state / protocol.INFO_FILE).write_text(json.dumps({"url": f"http://127.0.0.1:{squatter.port}", "pid": 1}))
    with pytest.raises(WorkerError, match="no worker is running"):
        connect(start=False)
    with pytest.raises(WorkerError, match="did not prove"):
        Client(f"http://127.0.0.1:{squatter.port}", TOKEN).health()
    with pytest.raises(WorkerError, match="did not prove"):
        Client(f"http://127.0.0.1:{squatter.port}", TOKEN).submit({"prompt": "x"})
    assert squatter.requests >= 3 and b"/v1/hello?nonce=" in squatter.received
    assert TOKEN.encode() not in bytes(squatter.received) and b"Authorization" not in bytes(squatter.received)


def test_the_real_worker_proves_itself_and_a_wrong_nonce_is_refused(tmp_path):
    env = {"BRUSHWORK_WORKER_PRELOAD": "0"}
    with WorkerProcess(tmp_path / "home", env=env) as worker:
        assert worker.client().health()["instance"]
        status, _, data = raw_request(worker, "GET", "/v1/hello?nonce=" + "ab" * 16, token=False)
        from brushwork.protocol import hello_proof

        assert status == 200 and data["proof"] == hello_proof(worker.token, "ab" * 16)
        status, _, data = raw_request(worker, "GET", "/v1/hello?nonce=zz", token=False)
        assert status == 400 and data["error"]["code"] == "bad_request"


def test_new_token_rotates_and_clients_read_it_again(tmp_path):
    home = tmp_path / "home"
    env = {"BRUSHWORK_WORKER_PRELOAD": "0"}
    with WorkerProcess(home, env=env) as first:
        old = first.token
    with WorkerProcess(home, env=env, args=("--new-token",)) as second:
        assert second.token != old and len(second.token) >= 32
        status, _, data = raw_request(second, "GET", "/v1/health", headers={"Authorization": f"Bearer {old}"},
                                      token=False)
        assert status == 401
        # A client holding the old token, made from the token file: it reads the new one and goes on.
        follower = Client(second.url, old, token_file=home / "state" / protocol.TOKEN_FILE)
        assert follower.health()["instance"] and follower.token == second.token
        with pytest.raises(WorkerError, match="did not prove"):  # a token given by hand is not re-read
            Client(second.url, old).health()
