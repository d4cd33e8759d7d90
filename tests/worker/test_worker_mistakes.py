"""Every client mistake is a 4xx with a code from brushwork.errors, never a 5xx or internal_error:
unknown methods and HTTP versions, over-long model names, an .npz sent as a .npy depth, a control
the demo model does not have."""

from __future__ import annotations

import io
import socket
import zipfile

import numpy as np
import pytest
from brushwork import errors
from brushwork.assets import AssetStore
from brushwork.errors import InputImageError, RecipeError
from brushwork.recipe import Control, Recipe
from brushwork.worker.engine_runner import EngineRunner
from worker_helpers import raw_request, tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-http")

KNOWN_CODES = {cls.code for cls in errors._BY_CODE.values()}


def raw_bytes(worker, data: bytes) -> bytes:
    host, port = worker.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("method", ["BREW", "TRACE", "CONNECT", "PROPFIND"])
def test_an_unknown_method_is_405_not_501(http_worker, method):
    status, headers, body = raw_request(http_worker, method, "/v1/health")
    assert status == 405 and body["error"]["code"] == "method_not_allowed" and "GET" in headers["allow"]
    assert body["error"]["code"] in KNOWN_CODES


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0"])
def test_an_unsupported_http_version_is_400_not_505(http_worker, version):
    answer = raw_bytes(http_worker, f"GET /v1/health {version}\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"bad_http_version"' in answer


def test_a_1024_character_model_name_is_an_invalid_recipe(http_worker):
    for field in ("model", "vae"):
        recipe = tiny_recipe(**{field: "m" * 1024}).to_dict()
        status, _, body = raw_request(http_worker, "POST", "/v1/jobs", body=_json({"recipe": recipe}))
        assert status == 400 and body["error"]["code"] == "invalid_recipe" and body["error"]["field"] == field
        assert "too long" in body["error"]["message"]


def _json(payload) -> bytes:
    import json

    return json.dumps(payload).encode()


class _Studio:
    def __init__(self, root):
        self.assets = AssetStore(root)


def test_an_npz_sent_as_npy_depth_is_a_bad_image(tmp_path):
    studio = _Studio(tmp_path / "assets")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("depth.npy", b"x")
    ref = studio.assets.put(buf.getvalue())
    runner = EngineRunner(hub=None, outputs=None, studio_factory=None)
    runner.studio = studio
    signal = {"data": ref, "width": 8, "height": 8, "format": "npy"}
    recipe = Recipe(prompt="x", controls=[Control(kind="depth", signal=signal)]).validate()
    with pytest.raises(InputImageError, match=r"zip \(\.npz\)"):
        runner._check_images(recipe)
    good = io.BytesIO()
    np.save(good, np.zeros((8, 8), np.float32))
    signal["data"] = studio.assets.put(good.getvalue())
    runner._check_images(Recipe(prompt="x", controls=[Control(kind="depth", signal=signal)]).validate())


def test_the_demo_model_with_a_control_it_lacks_says_which_it_has(monkeypatch):
    from brushwork.models import bundled, sources

    if bundled.weights_dir() is None:
        pytest.skip("this install has no demo weights")
    demo = sources.resolve(bundled.NAME, "pipeline", allow_paths=False)
    lineart = Recipe(prompt="x", model=bundled.NAME, controls=[Control(kind="lineart", image="sha256:" + "0" * 64)])
    with pytest.raises(RecipeError, match="has no lineart control") as err:
        EngineRunner._check_demo_controls(lineart, demo)
    assert "it has: depth, inpaint" in str(err.value) and err.value.field == "controls[0].kind"
    depth = Recipe(prompt="x", model=bundled.NAME, controls=[Control(kind="depth", image="sha256:" + "0" * 64)])
    EngineRunner._check_demo_controls(depth, demo)  # the demo's own depth ControlNet fits


def test_a_long_poll_whose_client_disconnects_logs_no_error_or_traceback(http_worker):
    import struct
    import time

    before = len(http_worker.log_text())
    host, port = http_worker.url.removeprefix("http://").rsplit(":", 1)
    for _ in range(3):
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(f"GET /v1/events?since=0&timeout=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {http_worker.token}\r\nX-Brushwork-Client: gone\r\n\r\n".encode())
        time.sleep(0.1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        sock.close()
    time.sleep(1.5)  # the long-polls end and write into the reset sockets
    assert http_worker.client().health()["ok"] is not None  # still serving
    logged = http_worker.log_text()[before:]
    assert "Traceback" not in logged and " ERROR " not in logged


def test_pose_signals_are_bounded_by_size(http_worker):
    person = {"pose_keypoints_2d": [10.0, 10.0, 1.0] * 18}
    big = {"people": [person] * 2000, "canvas_width": 64, "canvas_height": 64}
    recipe = tiny_recipe(controls=[Control(kind="pose", signal=big)]).to_dict()
    status, _, body = raw_request(http_worker, "POST", "/v1/jobs", body=_json({"recipe": recipe}))
    assert status == 400 and body["error"]["code"] == "invalid_recipe"
    assert body["error"]["field"] == "controls[0].signal" and "over the limit" in body["error"]["message"]


def test_concurrent_uploads_are_bounded_and_the_slots_come_back(http_worker):
    import hashlib
    import time

    from brushwork.worker.server import MAX_CONCURRENT_UPLOADS

    host, port = http_worker.url.removeprefix("http://").rsplit(":", 1)
    digest = "ab" * 32
    slow = []
    for _ in range(MAX_CONCURRENT_UPLOADS):  # uploads that send their headers and then dawdle
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(f"PUT /v1/assets/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n"
                     f"Authorization: Bearer {http_worker.token}\r\n\r\n".encode())
        slow.append(sock)
    time.sleep(0.5)
    data = b"one more upload"
    status, headers, body = raw_request(http_worker, "PUT", f"/v1/assets/{hashlib.sha256(data).hexdigest()}", data)
    assert status == 429 and body["error"]["code"] == "busy" and headers["retry-after"]
    for sock in slow:
        sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, _, body = raw_request(http_worker, "PUT", f"/v1/assets/{hashlib.sha256(data).hexdigest()}", data)
        if status == 201:
            break
        time.sleep(0.1)
    assert status == 201
