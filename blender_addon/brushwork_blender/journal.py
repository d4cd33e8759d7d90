"""A job's record on disk, so no result is ever lost or sent to the wrong file.

Each job writes ``<id>.json`` in the add-on's user folder when it starts (the file it is for, its
targets by id, what to do with the result) and adds the worker's job id once submitted. A result
that cannot be applied now (its file is not open, its object is gone) is kept beside the record as
PNGs until it can be. A crash loses nothing: the record and the worker's history hold the rest.

``keys.json`` remembers every file key with the path of its file, so a file saved before it got
its key (a crash before saving) still finds its jobs.

Plain files, stdlib only: safe to call from job threads (``set_remote_id``).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_folder: Path | None = None


def folder() -> Path:
    """The records' folder (the extension's user folder; set by ``use_folder`` at register)."""
    global _folder
    if _folder is None:
        _folder = Path(tempfile.gettempdir()) / "brushwork-blender-jobs"
    _folder.mkdir(parents=True, exist_ok=True)
    return _folder


def use_folder(path: str | os.PathLike) -> None:
    global _folder
    _folder = Path(path)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _path(record_id: str) -> Path:
    return folder() / f"{record_id}.json"


def new_record(action: str, label: str, file: dict, targets: list[dict], params: dict | None = None) -> dict:
    record = {"id": f"{int(time.time())}-{os.urandom(4).hex()}", "action": action, "label": label,
              "file": file, "targets": targets, "params": params or {}, "remote_id": "", "state": "running",
              "pngs": [], "recipe_json": "", "created": time.time()}
    save(record)
    remember_key(file.get("key", ""), file.get("path", ""))
    return record


def save(record: dict) -> None:
    with _lock:
        _write_json(_path(record["id"]), record)


def set_remote_id(record: dict, remote_id: str) -> None:
    """The worker's id for this job (from the job thread, right after submitting)."""
    record["remote_id"] = remote_id
    save(record)


def load_all() -> list[dict]:
    records = []
    for path in sorted(folder().glob("*.json")):
        if path.name == "keys.json":
            continue
        try:
            records.append(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError):
            continue
    return records


def keep(record: dict, pngs: list[bytes], recipe_json: str) -> list[Path]:
    """Keep a result beside its record until it can be applied. Returns the PNG paths."""
    paths = []
    for i, png in enumerate(pngs):
        path = folder() / f"{record['id']}-{i}.png"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(png)
        os.replace(tmp, path)
        paths.append(path)
    record.update(state="pending", pngs=[p.name for p in paths], recipe_json=recipe_json)
    save(record)
    return paths


def kept_pngs(record: dict) -> list[bytes]:
    return [(folder() / name).read_bytes() for name in record.get("pngs", [])]


def forget(record: dict) -> None:
    """The result is where it belongs (or the job failed): drop the record and its PNGs."""
    for name in [*record.get("pngs", []), f"{record['id']}.json"]:
        try:
            (folder() / name).unlink()
        except FileNotFoundError:
            pass


def remember_key(key: str, path: str) -> None:
    if not key:
        return
    with _lock:
        keys_path = folder() / "keys.json"
        try:
            keys = json.loads(keys_path.read_text("utf-8"))
        except (OSError, ValueError):
            keys = {}
        if key in keys and (not path or path in keys[key]):
            return
        keys.setdefault(key, [])
        if path:
            keys[key].append(path)
        _write_json(keys_path, keys)


def keys_for(path: str) -> list[str]:
    """Every file key ever used by the file at ``path``."""
    try:
        keys = json.loads((folder() / "keys.json").read_text("utf-8"))
    except (OSError, ValueError):
        return []
    return [key for key, paths in keys.items() if path and path in paths]
