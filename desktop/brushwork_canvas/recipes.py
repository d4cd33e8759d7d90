"""Document + settings → a Recipe and the PNG bytes it references (no widgets, no network).

Images are referenced by ``sha256:`` content refs computed here, so the Recipe is complete before
any upload; the job thread uploads the bytes (the worker accepts only content refs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from brushwork.assets import content_ref
from brushwork.recipe import MAX_SEED, Control, Recipe
from PySide6.QtGui import QColor

from . import imaging
from .document import CanvasError, Document, Layer
from .pose import to_openpose

ACTIONS = ("generate", "refine", "inpaint", "live")
LIVE_PRESETS = ("live", "live-fast")
# Layers that make up "the visible image" that Refine and Inpaint start from.
PICTURE_KINDS = ("image", "sketch", "depth")


@dataclass
class JobSpec:
    action: str
    recipe: Recipe
    assets: dict[str, bytes] = field(default_factory=dict)  # content ref -> PNG bytes to upload
    live: bool = False


def preset_names() -> list[str]:
    """Names of the presets that load (bundled and the user's)."""
    from brushwork import presets

    return [p.name for p in presets.list_presets()]


def live_preset() -> str:
    names = preset_names()
    for name in LIVE_PRESETS:
        if name in names:
            return name
    return next((n for n in names if "live" in n), "")


def base_recipe(preset: str) -> Recipe:
    """The preset's Recipe (or plain defaults); raises PresetError for an unknown preset."""
    from brushwork import presets

    return presets.load_preset(preset).apply() if preset else Recipe()


def _apply(preset: str, changes: dict) -> Recipe:
    """Preset + overrides; the preset adds its prompt suffix, and its negative prompt stays
    unless the artist wrote one."""
    from brushwork import presets

    if not changes.get("negative_prompt"):
        changes.pop("negative_prompt", None)
    if not preset:
        return Recipe().replace(**changes)
    return presets.load_preset(preset).apply(**changes)


def visible_picture(doc: Document) -> bytes:
    """PNG of the visible picture layers over white (what Refine/Inpaint start from)."""
    stack = [(layer.image, layer.opacity) for layer in doc.layers if layer.visible and layer.kind in PICTURE_KINDS]
    return imaging.png_bytes(imaging.flatten(stack, doc.width, doc.height, QColor(255, 255, 255)))


def mask_picture(doc: Document) -> bytes:
    """PNG of every visible mask layer united: white = repaint. CanvasError when nothing is masked."""
    masks = [layer for layer in doc.layers if layer.kind == "mask" and layer.visible]
    if not masks:
        raise CanvasError("Inpaint needs a mask: add a mask layer and paint where the picture should change")
    union = None
    for layer in masks:
        painted = imaging.alpha_mask(layer.image, threshold=128)  # soft brush edges count from half
        union = painted if union is None else (union | painted)
    if not union.any():
        raise CanvasError("Inpaint: the mask is empty; paint on the mask layer where the picture should change")
    return imaging.png_bytes(imaging.from_array(union.astype("uint8") * 255))


# A photo (image layer) used as one of these controls first goes through the worker's estimator.
# canny needs none: the engine finds edges in a photo itself. Licences: docs/canvas.md.
ESTIMATOR_FOR_PHOTO = {"depth": "depth-anything", "pose": "openpose", "lineart": "lineart"}


def control_for(layer: Layer, doc: Document, assets: dict[str, bytes]) -> Control:
    c = layer.control
    common = dict(kind=c.kind, strength=float(c.strength), start=float(c.start), end=float(c.end), model=c.model)
    if layer.kind == "pose":
        if not any(p[2] > 0 for person in layer.people for p in person):
            raise CanvasError(f"{layer.name}: the pose layer has nobody in it; add a person or turn its control off")
        return Control(signal=to_openpose(layer.people, doc.width, doc.height), **common)
    preprocess = "none"
    if layer.kind == "sketch":
        # Sent as drawn (strokes on transparency): the engine reads lines from the alpha channel.
        png = imaging.png_bytes(layer.image)
    else:
        png = imaging.png_bytes(imaging.flatten([(layer.image, 1.0)], doc.width, doc.height, QColor(0, 0, 0)))
        if layer.kind == "image":
            preprocess = ESTIMATOR_FOR_PHOTO.get(c.kind, "none")
    ref = content_ref(png)
    assets[ref] = png
    return Control(image=ref, preprocess=preprocess, **common)


def build_job(doc: Document, action: str, *, seed: int | None = None) -> JobSpec:
    """The job for Generate / Refine / Inpaint / Live. Raises CanvasError, PresetError, RecipeError."""
    if action not in ACTIONS:
        raise CanvasError(f"unknown action {action!r}")
    s = doc.settings
    live = action == "live"
    preset = (live_preset() or s.preset) if live else s.preset
    changes = dict(prompt=s.prompt, negative_prompt=s.negative_prompt, width=doc.width, height=doc.height,
                   seed=seed if seed is not None else (int(s.seed) if s.seed_locked else None), tiling=s.tiling)
    if s.model:
        changes["model"] = s.model
    if not live:  # the live preset decides its own (few) steps and sampler
        changes.update(steps=int(s.steps), cfg=float(s.cfg), sampler=s.sampler)
    assets: dict[str, bytes] = {}
    if action in ("refine", "inpaint", "live"):
        init = visible_picture(doc)
        changes["init_image"] = content_ref(init)
        changes["strength"] = float(s.strength)
        assets[changes["init_image"]] = init
    if action == "inpaint":
        mask = mask_picture(doc)
        changes["mask"] = content_ref(mask)
        assets[changes["mask"]] = mask
    controls = [control_for(layer, doc, assets) for layer in doc.layers
                if layer.can_control and layer.control.enabled and layer.visible]
    changes["controls"] = controls
    recipe = _apply(preset, changes)
    recipe.validate()
    return JobSpec(action=action, recipe=recipe, assets=assets, live=live)


def random_seed() -> int:
    return random.randint(0, MAX_SEED)
