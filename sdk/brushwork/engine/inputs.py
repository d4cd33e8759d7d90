"""Turning a Recipe's references into pictures the pipelines take.

Size rules (documented for users in the Studio docstring):
  - the init image is resized to the recipe's width x height (LANCZOS) when it differs;
  - the mask must be exactly the init image's size (a stretched mask would repaint pixels the
    artist meant to keep): another size is an InputImageError naming both sizes;
  - control pictures are fitted to width x height by the conditioning layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from ..assets import AssetStore, read_ref
from ..conditioning import prepare_control
from ..conditioning.images import fit, open_image, to_rgb
from ..conditioning.masks import grow_mask, load_mask
from ..errors import RecipeError
from ..recipe import Control, Recipe, is_content_ref


def store_inputs(recipe: Recipe, store: AssetStore, *, allow_paths: bool = True) -> Recipe:
    """Copy every input's bytes into ``store`` and return the recipe with ``sha256:`` refs, so a
    result (and the PNG that carries its recipe) always names inputs a rerun can find."""

    def to_ref(ref: str) -> str:
        if is_content_ref(ref) and store.has(ref):
            return ref
        return store.put(read_ref(ref, store, allow_paths=allow_paths))

    return recipe.map_refs(to_ref)


@dataclass
class Inputs:
    """Decoded pictures for one run, all at the recipe's width x height."""

    init: Image.Image | None = None  # RGB
    mask: Image.Image | None = None  # L, 255 = repaint, after grow
    controls: list[Image.Image | object] = field(default_factory=list)  # PIL control pictures (or tensors)

    def need_init(self) -> Image.Image:
        """The init picture, for a plan that starts from one (img2img, inpaint)."""
        if self.init is None:
            raise RecipeError("init_image", "this task needs an init image")
        return self.init

    def need_mask(self) -> Image.Image:
        """The mask, for a plan that inpaints."""
        if self.mask is None:
            raise RecipeError("mask", "this task needs a mask")
        return self.mask


def read_inputs(recipe: Recipe, read: Callable[[str], bytes]) -> Inputs:
    size = recipe.generated_size
    out = Inputs()
    if recipe.init_image:
        original = to_rgb(open_image(read(recipe.init_image), what="init_image"))
        if recipe.mask:
            mask = load_mask(read(recipe.mask), original.size, what="mask")
            mask = grow_mask(mask, recipe.mask_grow)
            out.mask = mask.resize(size, Image.Resampling.NEAREST) if mask.size != size else mask
        out.init = fit(original, size)
    for i, control in enumerate(recipe.controls):
        out.controls.append(_control_picture(control, i, read, out, size))
    return out


def _control_picture(control: Control, index: int, read, inputs: Inputs, size):
    # The conditioning layer renders signals, runs estimators and builds the inpaint control
    # (init image with masked pixels at -1) from the job's own init image and mask.
    return prepare_control(control, read, size[0], size[1], init_image=inputs.init, mask=inputs.mask,
                           where=f"controls[{index}]")
