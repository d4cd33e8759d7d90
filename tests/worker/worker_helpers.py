"""Helpers shared by the worker tests (imported as a plain module: tests/ has no packages)."""

from __future__ import annotations

import http.client
import json


def raw_request(worker, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                *, token: bool = True, timeout: float = 10.0):
    """One request with exactly these headers: (status, headers, parsed JSON or raw bytes)."""
    host, port = worker.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    all_headers = {"Authorization": f"Bearer {worker.token}"} if token else {}
    all_headers.update(headers or {})
    try:
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    hdrs = {k.lower(): v for k, v in resp.getheaders()}
    if hdrs.get("content-type") == "application/json" and data:
        data = json.loads(data)
    return resp.status, hdrs, data


def tiny_recipe(**changes):
    from brushwork import Recipe

    base = dict(prompt="a red brick wall", model="tiny-sd15", width=64, height=64, steps=3, seed=7, cfg=5.0)
    base.update(changes)
    return Recipe(**base)

