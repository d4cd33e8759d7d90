"""kill -9 of the batch process mid-run: what is on disk is whole and verified, and a rerun makes
exactly the rest."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from batch_helpers import TINY, outputs, write_jsonl
from brushwork.batch.identity import verify_output
from brushwork.batch.report import REPORT_NAME, read_report
from brushwork.metadata import read_metadata

ROWS = 6


def done_lines(report) -> int:
    try:
        lines = report.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    count = 0
    for line in lines:
        with contextlib.suppress(ValueError):  # the line being written
            count += json.loads(line)["status"] == "done"
    return count


@pytest.mark.slow
def test_kill_9_mid_batch_loses_at_most_the_row_in_flight(models_env, tmp_path):
    # Rows of ~0.5 s each on the tiny model: long enough to be killed inside one.
    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "steps": 25, "prompt": "bricks", "seeds": f"1-{ROWS}"}])
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "brushwork", "batch", str(m), "--out", str(out), "--in-process"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while done_lines(out / REPORT_NAME) < 2:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    survivors = sorted(out.glob("*.png"))
    assert 2 <= len(survivors) < ROWS  # killed mid-batch
    for png in survivors:  # every visible file is whole and is its row's image
        assert not verify_output(png, read_metadata(png).recipe)

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = read_report(out / REPORT_NAME)
    assert sorted(r["row"] for r in report) == list(range(1, ROWS + 1))
    skipped = {r["output"] for r in report if r["status"] == "skipped"}
    assert skipped == {p.name for p in survivors}  # nothing made twice
    assert sum(r["status"] == "done" for r in report) == ROWS - len(survivors)
    assert len(outputs(out)) == ROWS
    assert sorted(read_metadata(p).recipe.seed for p in out.glob("*.png")) == list(range(1, ROWS + 1))
    assert not list(out.glob(".*.part"))
