"""docs/protocol.md's limits table states every named limit with its current value."""

from __future__ import annotations

from pathlib import Path

from brushwork import protocol
from brushwork.worker import history, hub, outputs, server

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _row(name: str) -> str:
    rows = [line for line in DOC.read_text("utf-8").splitlines() if line.startswith("|") and f"`{name}" in line]
    assert rows, f"docs/protocol.md has no limits row for {name}"
    return rows[0]


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


def test_every_limit_is_in_the_docs_with_its_value():
    expected = {
        "protocol.MAX_JSON_BYTES": _size(protocol.MAX_JSON_BYTES),
        "protocol.MAX_UPLOAD_BYTES": _size(protocol.MAX_UPLOAD_BYTES),
        "worker.server.MAX_CONCURRENT_UPLOADS": f"| {server.MAX_CONCURRENT_UPLOADS} |",
        'worker.server.MAX_SIGNAL_BYTES["pose"]': _size(server.MAX_SIGNAL_BYTES["pose"]),
        'worker.server.MAX_SIGNAL_BYTES["depth"]': _size(server.MAX_SIGNAL_BYTES["depth"]),
        "worker.server.MAX_NAME_CHARS": f"{server.MAX_NAME_CHARS} chars",
        "worker.server.MAX_PATH_CHARS": f"{server.MAX_PATH_CHARS} chars",
        "worker.hub.MAX_QUEUED_PER_CLIENT": f"| {hub.MAX_QUEUED_PER_CLIENT} |",
        "worker.hub.MAX_QUEUED_TOTAL": f"| {hub.MAX_QUEUED_TOTAL} |",
        "worker.hub.KEEP_FINISHED": f"| {hub.KEEP_FINISHED} |",
        "protocol.EVENT_RING_SIZE": f"| {protocol.EVENT_RING_SIZE} |",
        "protocol.MAX_LONG_POLL_S": f"{protocol.MAX_LONG_POLL_S:g} s",
        "worker.outputs.MIN_FREE_BYTES": _size(outputs.MIN_FREE_BYTES),
        "worker.history.BUSY_TIMEOUT_S": f"{history.BUSY_TIMEOUT_S:g} s",
        "worker.history.HISTORY_KEEP_JOBS": f"{history.HISTORY_KEEP_JOBS:,}",
    }
    for name, value in expected.items():
        assert value in _row(name), f"{name}: the docs do not say {value!r}: {_row(name)}"
