"""The add-on's only door to the worker: the bundled stdlib client.

``LinkSettings`` is a snapshot of the preferences taken on the main thread; ``run_recipe`` runs on
a job thread and never touches bpy.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from . import sdk
from .jobs import Outcome


@dataclass(frozen=True)
class LinkSettings:
    url: str = ""  # "" = find the local worker (worker.json), starting it if allowed
    python: str = ""  # the Brushwork environment's python, to start the worker with
    start: bool = True
    online_access: bool = False  # bpy.app.online_access, captured on the main thread
    client_key: str = ""  # this .blend's key: its jobs can be found again after Blender closes
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
    """A connected client (starting the worker with the environment's python when allowed).
    Job thread only: this may wait for a worker to start."""
    check_online_access(settings)
    client_mod = sdk.client_module()
    return client_mod.connect(settings.url or None, start=settings.start, python=settings.python or None,
                              client_key=settings.client_key or None)


def run_recipe(settings: LinkSettings, recipe, uploads: list[bytes], report, job, on_submitted=None) -> Outcome:
    """Upload ``uploads`` (content-addressed: only what the worker lacks), run ``recipe``, follow
    its progress and return the PNGs. ``job.cancel_event`` cancels it on the worker (checked
    about every 0.25 s). Errors come back as the engine's classes. Job thread only."""
    recipe.validate()
    client = connect(settings)
    for data in uploads:
        client.upload(data)
    if job.cancel_event.is_set():
        return Outcome(cancelled=True)
    remote = client.submit(recipe)
    job.remote_id = remote.id
    if on_submitted is not None:
        on_submitted(remote.id)  # the job's record learns the worker's id: a crash now loses nothing

    def on_progress(progress) -> None:
        report(int(progress.step), int(progress.total), progress.preview_png)

    result = remote.result(timeout=settings.timeout_s, on_progress=on_progress, cancel=job.cancel_event)
    return Outcome(pngs=list(result.png_bytes), recipe_json=result.recipe.to_json(), seeds=list(result.seeds))


def finished_jobs(settings: LinkSettings, keys: list[str], known_sha256: set[str], limit: int = 200,
                  skip: set[str] = frozenset()) -> Outcome:
    """Every finished job of the client ``keys`` (a file's keys) with results the file does not
    hold yet: ``Outcome.items`` = [(worker job id, [png], recipe json)]. Job thread only."""
    import json

    items = []
    for key in dict.fromkeys(k for k in keys if k):
        client = connect(LinkSettings(url=settings.url, python=settings.python, start=settings.start,
                                      online_access=settings.online_access, client_key=key))
        for info in client.history(limit=limit):
            if info.state != "done" or info.id in skip:
                continue
            ordered = sorted(info.results, key=lambda r: r.get("index", 0))
            wanted = [r["sha256"] for r in ordered if r["sha256"] not in known_sha256]
            if wanted:
                pngs = [client.fetch_result(sha) for sha in wanted]
                items.append((info.id, pngs, json.dumps(info.recipe or {})))
    return Outcome(items=items)
