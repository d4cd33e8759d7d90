"""Garbage in, 4xx out: thousands of hypothesis-made requests against a real worker process.

Whatever arrives (any method, path, header, body, JSON shape, or raw bytes on the socket), the
worker answers below 500 with a JSON message, and keeps answering afterwards.
"""

from __future__ import annotations

import json
import socket

import pytest
from brushwork import protocol
from brushwork.errors import BrushworkError
from brushwork.recipe import Recipe
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from worker_helpers import raw_request

pytestmark = [pytest.mark.xdist_group("worker-http"), pytest.mark.slow]

def fuzz(n: int):
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | \
    st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)

paths = st.sampled_from([
    "/v1/health", "/v1/assets/check", "/v1/assets/" + "a" * 64, "/v1/jobs", "/v1/jobs/0123456789abcdef",
    "/v1/jobs/0123456789abcdef/cancel", "/v1/events", "/v1/results/" + "b" * 64, "/v1/models",
    "/v1/history", "/v1/destinations", "/v1/", "/", "/v1/jobs/%00/cancel", "/v1/events?since=-5&timeout=-1e999",
    "/v1/history?limit=99999999999999999999", "/v1/events?since=1&job=zz&since=2",
]) | printable.map(lambda s: "/v1/" + s) | printable.map(lambda s: "/v1/events?" + s)

bodies = st.none() | st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())


def _check(status, body):
    assert 200 <= status < 500, (status, body)
    if status >= 400:
        assert isinstance(body, dict) and body["error"]["message"], body


@fuzz(800)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]), path=paths, body=bodies,
       client=st.none() | printable, version=st.none() | printable)
def test_any_request_gets_a_4xx_or_a_success_never_5xx(http_worker, method, path, body, client, version):
    headers = {}
    if client is not None:
        headers[protocol.H_CLIENT] = client
    if version is not None:
        headers[protocol.H_PROTOCOL] = version
    status, _, reply = raw_request(http_worker, method, path, body, headers)
    if method != "HEAD":
        _check(status, reply)
    else:
        assert status < 500


recipe_fields = st.sampled_from(list(Recipe.__dataclass_fields__) + ["controls", "loras", "unknown"])
recipe_like = st.dictionaries(recipe_fields, json_values, max_size=8)


def _valid_locally(recipe) -> bool:
    try:
        Recipe.from_dict(recipe).validate()
        return True
    except (BrushworkError, TypeError, ValueError, AttributeError, OverflowError):
        return False


@fuzz(300)
@given(recipe=recipe_like, live=json_values, destination=json_values)
def test_recipe_shaped_garbage_gets_400(http_worker, recipe, live, destination):
    # A recipe that is valid would be queued (and run): that is the jobs tests' business.
    assume(not _valid_locally(recipe))
    body = json.dumps({"recipe": recipe, "live": live, "destination": destination}).encode()
    status, _, reply = raw_request(http_worker, "POST", "/v1/jobs", body)
    assert status == 400, reply
    assert reply["error"]["message"]


@fuzz(200)
@given(noise=st.binary(min_size=1, max_size=2000))
def test_binary_noise_on_the_socket_never_kills_the_worker(http_worker, noise):
    host, port = http_worker.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        try:
            sock.sendall(noise + b"\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            reply = sock.recv(200)
        except (ConnectionResetError, BrokenPipeError):
            reply = b""
    if reply:
        assert reply.startswith(b"HTTP/1.")
        code = int(reply.split()[1])
        assert code < 500, reply


def test_worker_is_still_healthy_after_the_fuzzing(http_worker):
    status, _, body = raw_request(http_worker, "GET", "/v1/health")
    assert status == 200 and body["ok"]
    assert http_worker.proc.poll() is None
