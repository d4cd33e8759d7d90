"""Preferences → Brushwork environment → its python starts the worker when none is running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from brushwork.addon_package import build_extension_zip

pytestmark = [pytest.mark.xdist_group("blender-autostart"), pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def test_addon_starts_the_worker_from_the_environment_set_in_preferences(bpy_run, tiny_models, tmp_path):
    zip_path = build_extension_zip(tmp_path / "brushwork_blender.zip")
    home = tmp_path / "home"
    env = {"BLENDER_USER_RESOURCES": str(tmp_path / "blender-user"), "BRUSHWORK_HOME": str(home),
           "BRUSHWORK_MODEL_DIRS": str(tiny_models.root), "BRUSHWORK_WORKER_PORT": "0"}
    result = None
    try:
        result = bpy_run("autostart_checks.py", str(zip_path), str(REPO / ".venv"), env=env, timeout=240)
    finally:
        pid = (result or {}).get("worker_pid")
        if pid is None:  # the script died after starting it: find it by its worker.json
            import json
            try:
                pid = json.loads((home / "state" / "worker.json").read_text())["pid"]
            except (OSError, ValueError, KeyError):
                pid = None
        if pid:
            _stop(int(pid))  # the worker outlives its clients on purpose: stop the one we started
    assert "no worker is running" in result["no_start_error"]
    assert result["worker_json_after_no_start"] is False
    assert result["error"] == ""
    assert result["image"] is True
    assert Path(result["worker_python"]).parent == REPO / ".venv" / "bin"
