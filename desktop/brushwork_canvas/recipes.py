"""Document + settings → a Recipe and the PNG bytes it references (no widgets, no network).

Images are referenced by ``sha256:`` content refs computed here, so the Recipe is complete before
any upload; the job thread uploads the bytes (the worker accepts only content refs).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from brushwork import recipe as recipe_module
from brushwork.assets import content_ref
from brushwork.recipe import MAX_SEED, Control, Recipe, Reference, Region, Upscale
from PySide6.QtGui import QColor

from . import imaging
from .document import DEFAULTED_SETTINGS, UPSCALE_FACTORS, CanvasError, Document, Layer, check_size
from .model_defaults import ModelDefaults
from .pose import to_openpose

ACTIONS = ("generate", "refine", "inpaint", "live", "upscale")
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


def region_for(layer: Layer, assets: dict[str, bytes]) -> Region:
    """A region layer as a Recipe region: its paint's alpha as a grey mask (white = the region, soft
    brush edges kept soft), with the layer's prompt box."""
    r = layer.region
    if not r.prompt.strip():
        raise CanvasError(f"{layer.name}: the region has no prompt; write what its area shows, or hide the layer")
    alpha = imaging.rgba_array(layer.image)[:, :, 3]
    if not alpha.any():
        raise CanvasError(f"{layer.name}: nothing is painted on the region; paint its area, or hide the layer")
    png = imaging.png_bytes(imaging.from_array(alpha))
    ref = content_ref(png)
    assets[ref] = png
    return Region(mask=ref, prompt=r.prompt, negative_prompt=r.negative_prompt, weight=float(r.weight),
                  start=float(r.start), end=float(r.end))


def regions_of(doc: Document, assets: dict[str, bytes], *, skip_unfinished: bool = False) -> list[Region]:
    """The visible region layers as Recipe regions. ``skip_unfinished`` (Live): a region still
    being made (no prompt yet, nothing painted yet) is left out instead of refusing every pass."""
    layers = [layer for layer in doc.layers if layer.kind == "region" and layer.visible]
    if skip_unfinished:
        layers = [layer for layer in layers
                  if layer.region.prompt.strip() and imaging.rgba_array(layer.image)[:, :, 3].any()]
    return [region_for(layer, assets) for layer in layers]


def references_of(doc: Document, assets: dict[str, bytes]) -> list[Reference]:
    out = []
    for slot in doc.references:
        png = imaging.png_bytes(slot.image)
        ref = content_ref(png)
        assets[ref] = png
        out.append(Reference(image=ref, weight=float(slot.weight), mode=slot.mode,
                             model=doc.settings.reference_model.strip()))
    return out


def sampling(doc: Document, defaults: ModelDefaults | None, *, shown: bool = False) -> dict:
    """Steps, CFG and sampler for the Recipe: what the artist chose; the rest is left unset (None)
    for the worker to fill from the model that actually runs (Recipe.MODEL_DEFAULTED). With
    ``shown``, the values the panel shows instead: the unset ones as the worker listed the model's
    defaults, else the panel's own."""
    s = doc.settings
    panel = {"steps": int(s.steps), "cfg": float(s.cfg), "sampler": s.sampler}
    values: dict = {}
    for name in DEFAULTED_SETTINGS:
        if name in s.explicit:
            values[name] = panel[name]
        elif not shown and _LEAVES_DEFAULTS:
            values[name] = None
        elif defaults is not None:
            values[name] = getattr(defaults, name)
        else:
            values[name] = panel[name]
    return values


# A Recipe that may leave sampling fields to the model (issue 19); older SDKs need every value.
_LEAVES_DEFAULTS = hasattr(recipe_module, "MODEL_DEFAULTED")


def upscaled_size(doc: Document) -> tuple[int, int]:
    """The document's size after the Upscale action (CanvasError past the Recipe's limits)."""
    factor = doc.settings.upscale_factor
    if factor not in UPSCALE_FACTORS:
        raise CanvasError(f"upscale factor must be one of {', '.join(map(str, UPSCALE_FACTORS))}; got {factor!r}")
    size = Upscale(factor=float(factor)).output_size(doc.width, doc.height)
    try:
        return check_size(*size)
    except CanvasError:
        raise CanvasError(f"Upscale: {doc.width}x{doc.height} x {factor} would be {size[0]}x{size[1]}; "
                          "a document is at most 4096 on a side") from None


def build_upscale(doc: Document, defaults: ModelDefaults | None = None) -> JobSpec:
    """The Upscale action: the visible picture as the init image, enlarged by the chosen model
    (empty = Lanczos) with strength 0 (task "upscale"); with a refine strength, a tiled img2img
    pass at it follows, with the prompt, the region layers and the references."""
    s = doc.settings
    upscaled_size(doc)
    refine = float(s.upscale_refine)
    init = visible_picture(doc)
    assets = {content_ref(init): init}
    changes = dict(prompt=s.prompt, negative_prompt=s.negative_prompt, width=doc.width, height=doc.height,
                   seed=int(s.seed) if s.seed_locked else None, tiling=s.tiling, init_image=content_ref(init),
                   strength=0.0, upscale=Upscale(model=s.upscale_model, factor=float(s.upscale_factor), refine=refine),
                   **sampling(doc, defaults))
    if s.model:
        changes["model"] = s.model
    if refine > 0:  # the refine is the job's only diffusion: regions and references act in it
        changes["references"] = references_of(doc, assets)
        changes["regions"] = regions_of(doc, assets)
    recipe = _apply(s.preset if refine > 0 else "", changes)
    recipe.validate()
    return JobSpec(action="upscale", recipe=recipe, assets=assets)


def build_job(doc: Document, action: str, *, seed: int | None = None,
              defaults: ModelDefaults | None = None) -> JobSpec:
    """The job for Generate / Refine / Inpaint / Live / Upscale. ``defaults``: the chosen model's
    (from the worker) for the sampling fields the artist left alone. Raises CanvasError,
    PresetError, RecipeError."""
    if action not in ACTIONS:
        raise CanvasError(f"unknown action {action!r}")
    if action == "upscale":
        return build_upscale(doc, defaults)
    s = doc.settings
    live = action == "live"
    preset = (live_preset() or s.preset) if live else s.preset
    changes = dict(prompt=s.prompt, negative_prompt=s.negative_prompt, width=doc.width, height=doc.height,
                   seed=seed if seed is not None else (int(s.seed) if s.seed_locked else None), tiling=s.tiling)
    if s.model:
        changes["model"] = s.model
    if not live:  # the live preset decides its own (few) steps and sampler
        changes.update(sampling(doc, defaults))
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
    changes["regions"] = regions_of(doc, assets, skip_unfinished=live)
    changes["references"] = references_of(doc, assets)
    recipe = _apply(preset, changes)
    recipe.validate()
    return JobSpec(action=action, recipe=recipe, assets=assets, live=live)


def random_seed() -> int:
    return random.randint(0, MAX_SEED)
