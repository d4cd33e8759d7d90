"""The add-on's only door to the worker: the bundled stdlib client.

``LinkSettings`` is a snapshot of the preferences taken on the main thread; ``run_recipe`` runs on
a job thread and never touches bpy.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from . import sdk
from .jobs import Outcome

ENV_PYTHON = "BRUSHWORK_PYTHON"


@dataclass(frozen=True)
class LinkSettings:
    url: str = ""  # "" = find the local worker (worker.json), starting it if allowed
    python: str = ""  # the Brushwork environment's python, to start the worker with
    start: bool = True
    online_access: bool = False  # bpy.app.online_access, captured on the main thread
    timeout_s: float = 3600.0


def environment_python(env_path: str) -> str:
    """The python of a Brushwork environment folder (a venv) or the python file itself; ""
    when unset. Raises WorkerError naming the path when it is set but holds no python."""
    if not env_path:
        return ""
    path = Path(env_path).expanduser()
    if path.is_file():
        return str(path)
    names = ("Scripts/python.exe",) if sys.platform == "win32" else ("bin/python3", "bin/python")
    for name in names:
        if (path / name).is_file():
            return str(path / name)
    raise sdk.WorkerError(
        f"Brushwork environment {env_path!r} has no Python in it (expected {path / names[0]}); "
        "set it to the .venv folder where Brushwork is installed")


def is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_online_access(settings: LinkSettings) -> None:
    """Blender's "Allow Online Access" governs the internet. The local worker on loopback is not
    online access; a worker URL on another machine is, and is refused while it is off."""
    if settings.url and not is_loopback(settings.url) and not settings.online_access:
        raise sdk.WorkerError(
            f"worker URL {settings.url} is on another machine and Blender's online access is off "
            "(Preferences > System > Network > Allow Online Access)")


def connect(settings: LinkSettings):
    """A connected client (starting the worker when allowed). Job thread only."""
    check_online_access(settings)
    client_mod = sdk.client_module()
    if settings.python:
        # connect() reads the interpreter to start the worker with from this variable.
        os.environ[ENV_PYTHON] = settings.python
    return client_mod.connect(settings.url or None, start=settings.start)


def run_recipe(settings: LinkSettings, recipe, uploads: list[bytes], report, job) -> Outcome:
    """Upload ``uploads`` (content-addressed: only what the worker lacks), run ``recipe``, follow
    its progress and return the PNGs. Honours ``job.cancel_event``. Job thread only."""
    recipe.validate()
    client = connect(settings)
    for data in uploads:
        client.upload(data)
    if job.cancel_event.is_set():
        return Outcome(cancelled=True)
    remote = client.submit(recipe)
    job.on_cancel = remote.cancel
    if job.cancel_event.is_set():  # cancelled while submitting
        remote.cancel()
    done = threading.Event()
    try:
        for event in remote.events:
            if event.kind == "progress":
                data = event.data
                report(int(data.get("step", 0)), int(data.get("total", 0)), event.preview_png)
            if event.kind in ("result", "failed", "cancelled"):
                break
    finally:
        done.set()
    result = remote.result(timeout=settings.timeout_s)
    pngs = list(result.png_bytes)
    run_recipe_ = result.recipe
    return Outcome(
        pngs=pngs,
        recipe_json=run_recipe_.to_json() if hasattr(run_recipe_, "to_json") else str(run_recipe_),
        seeds=list(getattr(result, "seeds", []) or []),
    )
