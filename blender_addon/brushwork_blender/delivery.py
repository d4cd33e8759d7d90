"""Putting a finished result where it was asked for, and only there.

``deliver(record, pngs, recipe_json)`` applies a job's result to its targets (found by id in the
file the job was started in, see ``identity``). When that file is not open the result is kept on
disk with its record (``journal``) and applied when the file is opened again (a ``load_post``
handler); when a target is gone the pictures still go into the file (kept with a fake user) and
the record stays, retried after undo/redo and reload. It never writes into another file.

Main thread only (bpy). Returns a ``Note`` (level, text) for the report.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import bpy

from . import capture, identity, journal, pixels, props, results


@dataclass
class Note:
    level: str  # "INFO" or "WARNING"
    text: str


KEEP_PROP = "brushwork_keep"  # on a packed image Brushwork keeps (a mask): repacked when painted again


class TargetGone(Exception):
    """The target is not in the open file (deleted, or not there yet)."""


def image_for(png: bytes, stem: str, recipe_json: str):
    """The file's image of ``png`` (found by content hash), else a new one stored per the output
    policy. Results are kept with a fake user: an image nothing shows yet is still saved."""
    sha = hashlib.sha256(png).hexdigest()
    for image in bpy.data.images:
        if image.get(results.SHA_PROP) == sha:
            return image
    image = results.store_png(png, stem, recipe_json, props.preferences())
    image.use_fake_user = True
    return image


def _object(t: dict):
    obj = identity.find("OBJECT", t["id"], t["name"], unmarked_name=True)
    if obj is None:
        raise TargetGone(f"object {t['name']!r} is no longer in this file")
    return obj


def apply_texture(record: dict, pngs: list[bytes], recipe_json: str) -> Note:
    obj = _object(record["targets"][0])
    image = image_for(pngs[0], f"{obj.name}-texture", recipe_json)
    slot = record["params"].get("slot", 0)
    results.material_with_image(obj, image, slot=slot)
    text = f"texture on {obj.name!r} (material slot {slot + 1})"
    if len(obj.material_slots) > 1:
        return Note("WARNING", f"{text}; its other {len(obj.material_slots) - 1} slot(s) are unchanged")
    return Note("INFO", text)


def apply_projection(record: dict, pngs: list[bytes], recipe_json: str) -> Note:
    params = record["params"]
    frame = capture.CameraFrame.from_dict(params["frame"])
    present = [o for o in (identity.find("OBJECT", t["id"], t["name"], unmarked_name=True)
                           for t in record["targets"]) if o is not None]
    if not present:
        raise TargetGone(f"none of {', '.join(t['name'] for t in record['targets'])} is in this file any more")
    image = image_for(pngs[0], params.get("stem", "projection"), recipe_json)
    for obj in present:
        other_uvs = [uv.name for uv in obj.data.uv_layers if uv.name != results.PROJECTION_UV]
        results.project_uvs(obj, frame)
        mat = results.material_with_image(obj, image, uv_map=results.PROJECTION_UV)
        if params.get("bake") and other_uvs:
            baked = results.bake_to_uvs(obj, mat, other_uvs[0], (frame.width, frame.height), f"{obj.name}-bake-tmp")
            png = pixels.image_png(baked)
            bpy.data.images.remove(baked)
            results.material_with_image(obj, image_for(png, f"{obj.name}-baked", recipe_json), uv_map=other_uvs[0])
    gone = len(record["targets"]) - len(present)
    text = f"projected onto {', '.join(o.name for o in present)}"
    return Note("WARNING", f"{text}; {gone} object(s) are gone") if gone else Note("INFO", text)


def apply_inpaint(record: dict, pngs: list[bytes], recipe_json: str) -> Note:
    t = record["targets"][0]
    old = identity.find("IMAGE", t["id"], t["name"], unmarked_name=True)
    if old is None:
        raise TargetGone(f"image {t['name']!r} is no longer in this file")
    new = image_for(pngs[0], f"{old.name}-inpaint", recipe_json)
    keep_previous(old, new)
    return Note("INFO", f"inpainted {old.name!r} → {new.name!r} (the previous version is kept)")


def keep_previous(old, new) -> None:
    """``new`` replaces ``old`` everywhere; ``old`` stays in the file (fake user, its pixels packed
    if they exist nowhere else) and ``new`` remembers it: Brushwork > Previous Version goes back."""
    if old == new:
        return
    if old.packed_file is None and (old.is_dirty or old.source == "GENERATED" or not old.filepath):
        old.pack()
    new[results.PREVIOUS_PROP] = identity.uid(old)
    old.user_remap(new)  # moves the fake user too: set it again afterwards
    old.use_fake_user = True
    new.use_fake_user = True


APPLIERS = {"texture": apply_texture, "projection": apply_projection, "inpaint": apply_inpaint}


def _where(record: dict) -> str:
    path = record["file"].get("path")
    return os.path.basename(path) if path else "the unsaved file it was started in"


def deliver(record: dict, pngs: list[bytes], recipe_json: str) -> Note:
    """Apply the result in its own file, or keep it for later. Never raises for a missing target."""
    if not pngs:
        journal.forget(record)
        return Note("WARNING", "the worker returned no picture")
    if not identity.is_open(record["file"]):
        journal.keep(record, pngs, recipe_json)
        return Note("WARNING", f"result kept for {_where(record)} (not open): it is applied "
                               f"when that file is opened again ({journal.folder()})")
    if not identity.file_key(create=False):
        identity.adopt_file_key(record["file"]["key"])  # the file was saved before it had its key
    try:
        note = APPLIERS[record["action"]](record, pngs, recipe_json)
    except TargetGone as exc:
        kept = [image_for(png, f"{record['targets'][0]['name']}-result", recipe_json).name for png in pngs]
        journal.keep(record, pngs, recipe_json)
        return Note("WARNING", f"{exc}; the result is kept as image {kept[0]!r} "
                               "(applied if the target comes back: undo or reload)")
    journal.forget(record)
    return note


_kept_cache: tuple[float, int] = (0.0, 0)


def kept_here() -> int:
    """How many kept results wait for a target in the open file (for the panel; re-read at most
    every 2 s so drawing never lists the folder on each redraw)."""
    import time

    global _kept_cache
    now = time.monotonic()
    if now - _kept_cache[0] > 2.0:
        try:
            count = sum(1 for r in journal.load_all() if r.get("state") == "pending" and identity.is_open(r["file"]))
        except OSError:
            count = 0
        _kept_cache = (now, count)
    return _kept_cache[1]


def retry_pending() -> list[Note]:
    """Apply the kept results that belong to the open file and whose targets are here now."""
    notes = []
    for record in journal.load_all():
        if record.get("state") != "pending" or not identity.is_open(record["file"]):
            continue
        try:
            pngs = journal.kept_pngs(record)
        except OSError:
            continue
        note = deliver(record, pngs, record.get("recipe_json", ""))
        notes.append(Note(note.level, f"{record['label']}: {note.text}"))
    return notes


@bpy.app.handlers.persistent
def _on_file_loaded(*_args) -> None:
    from . import jobs

    for note in retry_pending():
        jobs.say(note.text)


@bpy.app.handlers.persistent
def _on_undo_redo(*_args) -> None:
    # Undo may bring a deleted target back; never from inside a pending delivery.
    from . import jobs

    for note in retry_pending():
        if note.level == "INFO":
            jobs.say(note.text)


@bpy.app.handlers.persistent
def _on_save(*_args) -> None:
    # A packed mask painted again after it was packed would be saved with its OLD pixels: repack.
    for image in bpy.data.images:
        if image.get(KEEP_PROP) and image.is_dirty:
            image.pack()


_HANDLERS = ((bpy.app.handlers.load_post, _on_file_loaded),
             (bpy.app.handlers.save_pre, _on_save), (bpy.app.handlers.undo_post, _on_undo_redo),
             (bpy.app.handlers.redo_post, _on_undo_redo))


def register() -> None:
    try:
        journal.use_folder(bpy.utils.extension_path_user(__package__, path="jobs", create=True))
    except (ValueError, AttributeError):  # run as a legacy add-on (not an extension)
        journal.use_folder(bpy.utils.user_resource("CONFIG", path="brushwork_jobs", create=True))
    for handlers, fn in _HANDLERS:
        if fn not in handlers:
            handlers.append(fn)


def unregister() -> None:
    for handlers, fn in _HANDLERS:
        if fn in handlers:
            handlers.remove(fn)
