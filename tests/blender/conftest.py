"""Blender tests: real bpy 5.0.1 from .venv-blender, run as subprocesses of the main pytest.

Each script under ``scripts/`` does many checks in one bpy process (importing bpy costs ~1 s) and
prints one line ``RESULT: {json}``; the tests assert on that. A missing .venv-blender is a
FAILURE (with the command that creates it), never a skip: CI runs ``./setup.sh --all``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLENDER_PY = REPO / ".venv-blender" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
SCRIPTS = Path(__file__).resolve().parent / "scripts"
ADDON_SRC = REPO / "blender_addon"
SDK_SRC = REPO / "sdk"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/blender/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.blender)


@pytest.fixture(scope="session")
def blender_python() -> Path:
    if not BLENDER_PY.exists():
        pytest.fail(f"{BLENDER_PY} is missing: run `./setup.sh --all` to create .venv-blender with bpy 5.0.1",
                    pytrace=False)
    return BLENDER_PY


@pytest.fixture(scope="session")
def bpy_run(blender_python):
    """``bpy_run(script, *args, env=...)`` → the script's RESULT dict."""
    def run(script: str, *args: str, env: dict | None = None, timeout: float = 120.0) -> dict:
        return run_bpy(blender_python, script, *args, env=env, timeout=timeout)
    return run


def run_bpy(python: Path, script: str, *args: str, env: dict | None = None, timeout: float = 120.0) -> dict:
    """Run ``scripts/<script>`` in the Blender venv; return its RESULT json (fail with its output)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    full_env.update(env or {})
    proc = subprocess.run([str(python), str(SCRIPTS / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(REPO))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT: "):
            return json.loads(line[len("RESULT: "):])
    pytest.fail(f"{script} exited {proc.returncode} without a RESULT line\n--- stdout ---\n"
                f"{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}", pytrace=False)


class AddonSession:
    """A packaged add-on and the folders and environment for Blender runs that start their own
    worker (as an artist's first click does) on the tiny models; ``stop_worker`` ends that worker."""

    def __init__(self, root: Path, model_dirs: Path):
        from brushwork.addon_package import build_extension_zip

        self.zip_path = build_extension_zip(root / "brushwork_blender.zip")
        self.workdir = root / "work"
        self.workdir.mkdir()
        self.home = root / "home"
        self.environment = str(REPO / ".venv")  # the Brushwork environment the add-on starts workers from
        self.env = {"BLENDER_USER_RESOURCES": str(root / "blender-user"), "BRUSHWORK_HOME": str(self.home),
                    "BRUSHWORK_MODEL_DIRS": str(model_dirs), "BRUSHWORK_WORKER_PORT": "0"}

    def worker_pid(self) -> int | None:
        try:
            return int(json.loads((self.home / "state" / "worker.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def stop_worker(self) -> bool:
        """Stop the worker the add-on started; True if it was still running."""
        pid = self.worker_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        for _ in range(300):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        return True


@pytest.fixture(scope="module")
def addon_session(tiny_models, tmp_path_factory):
    session = AddonSession(tmp_path_factory.mktemp("blender-addon"), tiny_models.root)
    yield session
    session.stop_worker()
