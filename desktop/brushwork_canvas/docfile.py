"""The ``.bwcanvas`` document file: a zip holding ``manifest.json`` and PNGs (docs/canvas.md).

Written to a temporary file beside the target, fsynced, then renamed over it: a crash or a full
disk never leaves half a document where a whole one was. Reading checks everything and raises
``CanvasError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

from brushwork.assets import atomic_writer
from brushwork.errors import BrushworkError
from brushwork.recipe import Recipe

from . import imaging
from .document import (
    DEFAULTED_SETTINGS,
    LAYER_KINDS,
    UPSCALE_FACTORS,
    CanvasError,
    ControlSettings,
    Document,
    GenSettings,
    HistoryEntry,
    Layer,
    ReferenceSlot,
    RegionSettings,
    check_opacity,
    check_size,
    reference_image,
)
from .pose import PoseFormatError, from_openpose, to_openpose

FORMAT = "brushwork-canvas"
# 2: region layers (their prompt box in "region"), reference slots, the sampling fields the artist
# chose ("explicit") and the Upscale settings. Version 1 files open as they were (see _settings).
VERSION = 2
READS = (1, 2)
SUFFIX = ".bwcanvas"


def save_document(doc: Document, path: str | os.PathLike) -> Path:
    path = Path(path)
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "width": doc.width, "height": doc.height,
        "active": doc.active_id, "settings": doc.settings_dict(), "results_since": doc.results_since,
        "layers": [], "history": [], "references": [],
    }
    files: dict[str, bytes] = {}
    for layer in doc.layers:  # bottom first
        entry = {"id": layer.id, "kind": layer.kind, "name": layer.name, "visible": layer.visible,
                 "opacity": layer.opacity, "control": vars(layer.control).copy()}
        if layer.kind == "region":
            entry["region"] = vars(layer.region).copy()
        if layer.kind == "pose":
            entry["pose"] = to_openpose(layer.people, doc.width, doc.height)
        else:
            entry["file"] = f"layers/{layer.id}.png"
            files[entry["file"]] = imaging.png_bytes(layer.image)
        manifest["layers"].append(entry)
    for slot in doc.references:  # slot order
        name = f"references/{slot.id}.png"
        files[name] = imaging.png_bytes(slot.image)
        manifest["references"].append({"id": slot.id, "name": slot.name, "weight": slot.weight, "mode": slot.mode,
                                       "file": name})
    for item in doc.history:  # newest first
        entry = item.to_manifest()
        entry["file"] = f"history/{item.id}.png"
        files[entry["file"]] = item.png
        manifest["history"].append(entry)

    with atomic_writer(path) as raw, zipfile.ZipFile(raw, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1), compress_type=zipfile.ZIP_DEFLATED)
        for name, data in files.items():  # PNGs are compressed already
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return path


def load_document(path: str | os.PathLike, doc: Document | None = None) -> Document:
    """Read a document file into ``doc`` (replacing its content, clearing undo) or a new one."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = _manifest(zf, path)
            width, height = check_size(manifest.get("width"), manifest.get("height"))
            layers = [_layer(zf, entry, width, height, i) for i, entry in enumerate(_list(manifest, "layers"))]
            history = [_history(zf, entry, i) for i, entry in enumerate(_list(manifest, "history"))]
            references = [_reference(zf, entry, i) for i, entry in enumerate(_list(manifest, "references"))]
            settings = _settings(manifest.get("settings") or {})
            results_since = _results_since(manifest, history)
    except FileNotFoundError:
        raise CanvasError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise CanvasError(f"{path}: not a Brushwork canvas document ({exc})") from None
    except BrushworkError as exc:
        raise CanvasError(f"{path}: {exc}") from None

    if doc is None:
        doc = Document(width, height)
    doc.undo_stack.clear()
    doc.width, doc.height = width, height
    doc.layers, doc.history, doc.settings = layers, history, settings
    doc.references = references
    doc.results_since = results_since
    ids = {layer.id for layer in layers}
    doc.active_id = manifest.get("active") if manifest.get("active") in ids else (layers[-1].id if layers else None)
    doc.dirty = False
    doc.layers_changed.emit()
    doc.history_changed.emit()
    doc.settings_changed.emit()
    doc.references_changed.emit()
    return doc


def _manifest(zf: zipfile.ZipFile, path: Path) -> dict:
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except KeyError:
        raise CanvasError("manifest.json is missing") from None
    except ValueError as exc:
        raise CanvasError(f"manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CanvasError(f"manifest.json does not describe a {FORMAT} document")
    if manifest.get("version") not in READS:
        raise CanvasError(f"document version {manifest.get('version')!r} is not one this canvas reads "
                          f"({', '.join(map(str, READS))}): written by a newer Brushwork?")
    return manifest


def _list(manifest: dict, key: str) -> list:
    value = manifest.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CanvasError(f"manifest.json: {key} must be a list of objects")
    return value


def _read(zf: zipfile.ZipFile, name: Any, what: str) -> bytes:
    if not isinstance(name, str):
        raise CanvasError(f"{what}: file name missing")
    try:
        return zf.read(name)
    except KeyError:
        raise CanvasError(f"{what}: {name} is missing from the document") from None


def _layer(zf: zipfile.ZipFile, entry: dict, width: int, height: int, i: int) -> Layer:
    where = f"layers[{i}]"
    kind = entry.get("kind")
    if kind not in LAYER_KINDS:
        raise CanvasError(f"{where}.kind must be one of {', '.join(LAYER_KINDS)}; got {kind!r}")
    try:
        control = ControlSettings(**(entry.get("control") or {}))
    except TypeError as exc:
        raise CanvasError(f"{where}.control: {exc}") from None
    control.validate() if control.enabled else None
    opacity = check_opacity(entry.get("opacity", 1.0), f"{where}.opacity")
    try:
        region = RegionSettings(**(entry.get("region") or {}))
        region.validate()
    except (TypeError, CanvasError) as exc:
        raise CanvasError(f"{where}.region: {exc}") from None
    layer = Layer(kind=kind, name=str(entry.get("name") or kind), visible=bool(entry.get("visible", True)),
                  opacity=opacity, control=control, region=region, id=str(entry.get("id") or f"layer{i}"))
    if kind == "pose":
        try:
            layer.people = from_openpose(entry.get("pose") or {"people": []}, width, height)
        except PoseFormatError as exc:
            raise CanvasError(f"{where}.pose: {exc}") from None
    else:
        image = imaging.image_from_bytes(_read(zf, entry.get("file"), where), f"{where} picture")
        if image.width() != width or image.height() != height:
            raise CanvasError(f"{where}: picture is {image.width()}x{image.height()}, the document is {width}x{height}")
        layer.image = image.convertToFormat(imaging.LAYER_FORMAT)
    return layer


def _history(zf: zipfile.ZipFile, entry: dict, i: int) -> HistoryEntry:
    where = f"history[{i}]"
    recipe = Recipe.from_dict(entry.get("recipe"), where=f"{where}.recipe").validate()
    png = _read(zf, entry.get("file"), where)
    return HistoryEntry(png=png, recipe=recipe, task=str(entry.get("task", recipe.task)),
                        created=float(entry.get("created", 0.0)), id=str(entry.get("id") or f"result{i}"),
                        job=str(entry.get("job") or ""))


def _reference(zf: zipfile.ZipFile, entry: dict, i: int) -> ReferenceSlot:
    where = f"references[{i}]"
    image = imaging.image_from_bytes(_read(zf, entry.get("file"), where), f"{where} picture")
    slot = ReferenceSlot(image=reference_image(image), name=str(entry.get("name") or "reference"),
                         weight=entry.get("weight", 0.6), mode=entry.get("mode", "style"),
                         id=str(entry.get("id") or f"reference{i}"))
    try:
        slot.validate()
    except CanvasError as exc:
        raise CanvasError(f"{where}: {exc}") from None
    return slot


def _settings(data: Any) -> GenSettings:
    if not isinstance(data, dict):
        raise CanvasError("manifest.json: settings must be an object")
    settings = GenSettings.from_dict(data)
    if "explicit" not in data:
        # Written before model defaults (format 1): the steps/CFG/sampler shown then are what ran.
        settings.explicit = list(DEFAULTED_SETTINGS)
    if not isinstance(settings.explicit, list) or not set(settings.explicit) <= set(DEFAULTED_SETTINGS):
        raise CanvasError(f"manifest.json: settings.explicit must list some of {', '.join(DEFAULTED_SETTINGS)}")
    for name in ("upscale_model", "reference_model"):
        if not isinstance(getattr(settings, name), str):
            raise CanvasError(f"manifest.json: settings.{name} must be a model name (text)")
    if settings.upscale_factor not in UPSCALE_FACTORS:
        raise CanvasError(f"manifest.json: settings.upscale_factor must be one of "
                          f"{', '.join(map(str, UPSCALE_FACTORS))}; got {settings.upscale_factor!r}")
    if isinstance(settings.upscale_refine, bool) or not isinstance(settings.upscale_refine, (int, float)) \
            or not 0.0 <= settings.upscale_refine <= 1.0:
        raise CanvasError("manifest.json: settings.upscale_refine must be from 0 to 1; "
                          f"got {settings.upscale_refine!r}")
    if settings.tiling not in ("", "x", "y", "xy"):
        raise CanvasError(f"manifest.json: settings.tiling must be one of '', 'x', 'y', 'xy'; got {settings.tiling!r}")
    if "tiling" not in data and settings.preset:
        # Written before the canvas had its own Seamless setting: the preset's tiling applied then.
        from .recipes import base_recipe

        try:
            settings.tiling = base_recipe(settings.preset).tiling
        except BrushworkError:
            pass  # an unknown preset says so when the artist generates
    return settings


def _results_since(manifest: dict, history: list[HistoryEntry]) -> float:
    """Files written before the key existed: results newer than the newest one in the file."""
    value = manifest.get("results_since", max((h.created for h in history), default=0.0))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise CanvasError(f"manifest.json: results_since must be a time in seconds, got {value!r}")
    return float(value)
