"""Who a job's result is for: the .blend FILE and the object/material/image IN it, by identity.

Names change (rename mid-job) and several files can hold an object called "Cube", so a job never
finds its target by name. Instead:
  - the file has a key, ``brushwork_client_key``, a custom property on its scenes (saved with the
    .blend; it is also this file's worker client key, so its jobs can be listed again);
  - each target has an id, ``brushwork_id``, a custom property on the object / image (survives
    renames and save/reload; copied by Duplicate, so a duplicate is told apart by its name hint).

Main thread only (bpy).
"""

from __future__ import annotations

import os
import secrets

import bpy

FILE_KEY_PROP = "brushwork_client_key"
ID_PROP = "brushwork_id"


def norm_path(path: str) -> str:
    return os.path.normcase(os.path.abspath(path)) if path else ""


def file_key(*, create: bool = True) -> str:
    """This file's key (made on first use and put on every scene so any scene finds it)."""
    for scene in bpy.data.scenes:
        key = scene.get(FILE_KEY_PROP)
        if key:
            return str(key)
    if not create:
        return ""
    key = secrets.token_hex(16)
    adopt_file_key(key)
    return key


def adopt_file_key(key: str) -> None:
    for scene in bpy.data.scenes:
        scene[FILE_KEY_PROP] = key


def uid(idblock) -> str:
    """The id of an object/image/material, made on first use (a custom property: saved with the file)."""
    value = idblock.get(ID_PROP)
    if not value:
        value = secrets.token_hex(8)
        idblock[ID_PROP] = value
    return str(value)


_COLLECTIONS = {"OBJECT": "objects", "IMAGE": "images", "MATERIAL": "materials"}


def find(kind: str, ident: str, name_hint: str = "", *, unmarked_name: bool = False):
    """The ID block of ``kind`` carrying ``ident`` in the open file, or None. When a duplicate
    carries the same id, the one with the remembered name wins, else the oldest name.

    ``unmarked_name``: when nothing carries the id, a block with the remembered name and NO id at
    all is the target as the file was saved before the job stamped it (e.g. Blender crashed)."""
    collection = getattr(bpy.data, _COLLECTIONS[kind])
    found = [b for b in collection if b.get(ID_PROP) == ident]
    if not found:
        block = collection.get(name_hint) if unmarked_name and name_hint else None
        if block is not None and not block.get(ID_PROP):
            block[ID_PROP] = ident
            return block
        return None
    for block in found:
        if block.name == name_hint:
            return block
    return sorted(found, key=lambda b: b.name)[0]


def target(kind: str, idblock) -> dict:
    """A JSON-able reference to ``idblock`` (kind OBJECT/IMAGE/MATERIAL)."""
    return {"kind": kind, "id": uid(idblock), "name": idblock.name}


def file_ref() -> dict:
    """This open file, as a job remembers it: its key and its path ("" while unsaved)."""
    return {"key": file_key(), "path": norm_path(bpy.data.filepath)}


def is_open(ref: dict) -> bool:
    """Is the file ``ref`` the one open now? The key decides (it survives Save As); a file saved
    before it got its key (the key was made after the last save) is recognised by its path."""
    key = file_key(create=False)
    if key:
        return key == ref.get("key")
    return bool(ref.get("path")) and norm_path(bpy.data.filepath) == ref.get("path")
