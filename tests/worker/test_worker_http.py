"""The protocol surface of a real worker process: auth, origins, versions, uploads, validation."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from brushwork import protocol
from brushwork.client import Client
from brushwork.errors import AuthError, BrushworkError, InputImageError, RecipeError
from worker_helpers import raw_request, tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-http")


def test_health_answers_with_the_protocol_version(http_worker):
    status, headers, body = raw_request(http_worker, "GET", "/v1/health")
    assert status == 200
    assert headers[protocol.H_PROTOCOL.lower()] == protocol.PROTOCOL_VERSION
    assert body["protocol"] == protocol.PROTOCOL_VERSION and body["ok"] is True
    assert body["pid"] == http_worker.proc.pid


def test_token_file_is_private(http_worker):
    path = http_worker.state_dir / protocol.TOKEN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(http_worker.token) >= 32


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer "}])
def test_requests_without_the_token_get_401(http_worker, headers):
    status, hdrs, body = raw_request(http_worker, "GET", "/v1/health", headers=headers, token=False)
    assert status == 401
    assert hdrs["www-authenticate"] == "Bearer"
    assert body["error"]["code"] == "unauthorized"
    assert "worker.token" in body["error"]["message"]


def test_client_with_a_wrong_token_raises_auth_error(http_worker):
    with pytest.raises(AuthError, match="token"):
        Client(http_worker.url, "not-the-token").health()


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:8000"}, {"Sec-Fetch-Site": "cross-site"}])
def test_requests_from_web_pages_are_refused_even_with_the_token(http_worker, headers):
    status, _, body = raw_request(http_worker, "GET", "/v1/health", headers=headers)
    assert status == 403
    assert body["error"]["code"] == "forbidden_origin"


def test_cors_preflight_is_refused(http_worker):
    status, _, _ = raw_request(http_worker, "OPTIONS", "/v1/jobs", token=False,
                               headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 403


def test_foreign_host_header_is_refused(http_worker):
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 still sends Host: evil.example.
    status, _, body = raw_request(http_worker, "GET", "/v1/health", headers={"Host": "evil.example:7861"})
    assert status == 403 and body["error"]["code"] == "forbidden_host"


def test_another_major_protocol_version_is_refused(http_worker):
    status, _, body = raw_request(http_worker, "GET", "/v1/health", headers={protocol.H_PROTOCOL: "2.0"})
    assert status == 400
    assert body["error"]["code"] == "protocol_mismatch"
    assert "1.0" in body["error"]["message"] and "2.0" in body["error"]["message"]
    status, _, _ = raw_request(http_worker, "GET", "/v1/health", headers={protocol.H_PROTOCOL: "1.7"})
    assert status == 200  # minor versions only add fields


@pytest.mark.parametrize("method,path,expected", [
    ("GET", "/", 404), ("GET", "/v2/health", 404), ("GET", "/v1/nothing", 404), ("DELETE", "/v1/health", 405),
    ("GET", "/v1/jobs/not-a-job-id", 400), ("GET", "/v1/jobs/0123456789abcdef", 404),
    ("POST", "/v1/jobs/0123456789abcdef/cancel", 404), ("GET", "/v1/results/abc", 400),
    ("GET", "/v1/results/" + "0" * 64, 404), ("GET", "/v1/events?since=abc", 400),
    ("GET", "/v1/events?since=0&timeout=nan", 400),
])
def test_unknown_or_malformed_paths_are_4xx_with_a_message(http_worker, method, path, expected):
    status, _, body = raw_request(http_worker, method, path)
    assert status == expected
    assert body["error"]["message"]


def test_uploads_are_addressed_by_hash_and_sent_only_when_missing(http_worker):
    client = http_worker.client()
    data = os.urandom(1000)
    ref = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.missing([ref]) == [ref]
    assert client.upload(data) == ref
    assert client.missing([ref]) == []
    # A second upload of the same bytes asks first and sends nothing: still the same ref.
    assert client.upload(data) == ref


def test_upload_whose_bytes_do_not_match_the_hash_is_refused(http_worker):
    status, _, body = raw_request(http_worker, "PUT", "/v1/assets/" + "ab" * 32, b"something else")
    assert status == 400 and body["error"]["code"] == "hash_mismatch"
    assert http_worker.client().missing(["sha256:" + "ab" * 32])


def test_absurd_content_length_is_refused_before_reading(http_worker):
    status, _, body = raw_request(http_worker, "PUT", "/v1/assets/" + "cd" * 32, None,
                                  headers={"Content-Length": str(10**15)})
    assert status == 413 and body["error"]["code"] == "too_large"
    status, _, body = raw_request(http_worker, "POST", "/v1/jobs", None,
                                  headers={"Content-Length": str(protocol.MAX_JSON_BYTES + 1)})
    assert status == 413
    for bad in ("-1", "12abc", "1e3"):
        status, _, _ = raw_request(http_worker, "POST", "/v1/jobs", None, headers={"Content-Length": bad})
        assert status == 400, bad


def test_chunked_bodies_are_refused(http_worker):
    status, _, body = raw_request(http_worker, "POST", "/v1/jobs", b"5\r\nhello\r\n0\r\n\r\n",
                                  headers={"Transfer-Encoding": "chunked"})
    assert status == 411 and "Content-Length" in body["error"]["message"]


@pytest.mark.parametrize("body,code", [
    (b"{not json", "bad_json"), (b"\xff\xfe\x00", "bad_json"), (b"[1, 2]", "bad_json"),
    (b'{"recipe": {"steps": "many"}}', "invalid_recipe"), (b'{"recipe": 5}', "invalid_recipe"),
    (b'{"recipe": {"steps": 1e308}}', "invalid_recipe"),
    (b'{"recipe": {"width": 10000000000000000000000}}', "invalid_recipe"),
    (b'{"recipe": {}, "live": "yes"}', "bad_request"), (b'{"recipe": {}, "surprise": 1}', "bad_request"),
    (b'{"recipe": {"nope": 1}}', "invalid_recipe"), (b"{}", "invalid_recipe"),
    (b'{"recipe": {}, "destination": "/etc"}', "bad_destination"),
    (b'[' * 100000 + b']' * 100000, "bad_json"),
])
def test_garbage_job_submissions_get_400_with_a_message(http_worker, body, code):
    status, _, reply = raw_request(http_worker, "POST", "/v1/jobs", body, headers={"Content-Type": "application/json"})
    assert status == 400, reply
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]


@pytest.mark.parametrize("changes,where", [
    ({"model": "/etc/passwd"}, "model"), ({"model": "../models/x"}, "model"),
    ({"model": "https://example.com/x.safetensors"}, "model"), ({"model": "C:\\models\\x.safetensors"}, "model"),
    ({"vae": "~/vae"}, "vae"), ({"loras": [{"name": "/tmp/evil.safetensors"}]}, "loras[0].name"),
])
def test_models_must_be_names_never_paths_or_urls(http_worker, changes, where):
    with pytest.raises(RecipeError) as info:
        http_worker.client().submit(tiny_recipe(**changes))
    assert info.value.field == where


def test_images_must_be_uploaded_refs_never_paths(http_worker, tmp_path):
    client = http_worker.client()
    recipe = tiny_recipe(init_image="/etc/hostname")
    status, _, body = raw_request(http_worker, "POST", "/v1/jobs", protocol.encode_json({"recipe": recipe.to_dict()}))
    assert status == 400 and body["error"]["code"] == "bad_image"
    assert "upload" in body["error"]["message"]
    missing = tiny_recipe(init_image="sha256:" + "e" * 64)
    with pytest.raises(InputImageError, match="not uploaded"):
        client.submit(missing)


def test_unknown_destination_names_the_known_ones(http_worker):
    client = http_worker.client()
    assert client.destinations() == ["default"]
    with pytest.raises(BrushworkError, match="known: default") as info:
        client.submit(tiny_recipe(), destination="/home/someone/Desktop")
    assert info.value.code == "bad_destination"
