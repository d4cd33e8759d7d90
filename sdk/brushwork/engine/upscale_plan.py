"""How a Recipe's upscale step runs (``Recipe.upscale``), decided with the rest of its Plan.

``plan.plan`` hands a Recipe with an upscale step here: the job itself is planned as usual (or,
for task ``upscale``, is the init picture as it is: path ``upscale``, no diffusion), and the
Plan gets an ``UpscalePlan``: the super-resolution model (empty: Lanczos), the output size
(``Recipe.size``), the seamless axes kept, the SR tiling (input pixels per tile and the context
cropped off each tile), and the refine: its own img2img Plan at the upscaled size (plain, or tiled
when large) at ``Upscale.refine``, with the recipe's prompt, controls (not an inpaint one), regions
and reference images (on a tiled refine the tiled path's rule: no references). Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import RecipeError
from ..recipe import Recipe

if TYPE_CHECKING:
    from .plan import ModelFacts, Plan

# The SR model runs on tiles of SR_TILE x SR_TILE input pixels, each cut with SR_MARGIN pixels of
# context on every side that are cropped off after (Real-ESRGAN's tile / tile_pad): a pixel's
# result is exact wherever the model's receptive field fits in the margin, so no seams are
# blended, and memory is one tile's activations. Seamless axes are wrap-padded by the margin first.
SR_TILE = 256
SR_MARGIN = 32
MAX_PASSES = 3  # a 2x model asked for 8x runs 3 times (A1111 loops the same way), then resizes
REFINE_PLACEHOLDER = "(the upscaled picture)"  # the refine's init is made at run time
INPAINT_CONTROL_NOTE = "the inpaint ControlNet is not applied in the refine (its mask was filled by the job)"


@dataclass(frozen=True)
class UpscalePlan:
    model: str  # the SR model asked for; "" = Lanczos
    factor: float
    width: int  # the output size (Recipe.size)
    height: int
    axes: str  # seamless axes kept: wrap-padded before the SR model and the resize
    tile: int  # input pixels per SR tile side
    margin: int  # context pixels each side of a tile, cropped off after
    refine: float  # the refine's strength; 0: none
    refine_plan: Plan | None  # the img2img pass over the upscaled picture

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["refine_plan"] = self.refine_plan.to_dict() if self.refine_plan is not None else None
        return out

    def describe(self) -> str:
        how = f"with {self.model} (its own scale, then Lanczos to the size)" if self.model else "Lanczos"
        return (f"upscale x{self.factor:g} to {self.width}x{self.height} {how}; SR tiles {self.tile} px + "
                f"{self.margin} px context" + (f"; seamless {self.axes} kept" if self.axes else "")
                + (f"; refine at strength {self.refine:g}" if self.refine_plan is not None else "; no refine"))


def with_upscale(recipe: Recipe, facts: ModelFacts, mask_spans: Any,
                 plan_job: Callable[..., Plan]) -> Plan:
    """``recipe``'s Plan with its upscale step (``recipe.upscale`` is set)."""
    step = recipe.upscale
    assert step is not None
    if recipe.task == "upscale":
        job = _upscale_only(recipe, facts)
    else:
        job = plan_job(recipe.replace(upscale=None), facts, mask_spans=mask_spans)
    width, height = recipe.size
    refine_plan = None
    if step.refine > 0:
        steps = job.steps
        if int(steps * step.refine) < 1:
            raise RecipeError("upscale.refine", f"{step.refine:g} of {steps} steps runs no denoising step: use a "
                              f"refine of at least {-(-100 // steps) / 100:g} or more steps")
        # The refine is img2img of the upscaled picture: the recipe's prompt, controls, regions
        # (their masks scaled to the upscaled size by the executor) and reference images. An
        # inpaint control is left out: its picture marks the job's mask, which the job has filled.
        refine_recipe = recipe.replace(
            init_image=REFINE_PLACEHOLDER, mask=None, width=width, height=height, strength=float(step.refine),
            upscale=None, batch=1, controls=[c for c in recipe.controls if c.kind != "inpaint"])
        refine_plan = plan_job(refine_recipe, facts)
        if any(c.kind == "inpaint" for c in recipe.controls):
            refine_plan = replace(refine_plan, notes=(*refine_plan.notes, INPAINT_CONTROL_NOTE))
    return replace(job, upscale=UpscalePlan(model=step.model, factor=float(step.factor), width=width, height=height,
                                            axes=recipe.tiling or "", tile=SR_TILE, margin=SR_MARGIN,
                                            refine=float(step.refine), refine_plan=refine_plan))


def _upscale_only(recipe: Recipe, facts: ModelFacts) -> Plan:
    """Task ``upscale``: the job is the init picture as it is (no diffusion)."""
    from .plan import Plan

    width, height = int(recipe.width or 0), int(recipe.height or 0)
    seed = int(recipe.seed or 0)
    return Plan(task="upscale", pipeline_task="img2img", path="upscale", family=facts.family, width=width,
                height=height, steps=int(recipe.steps or 1), sampler=str(recipe.sampler or ""),
                cfg=float(recipe.cfg or 0.0), seeds=tuple(seed + i for i in range(recipe.batch)), strength=None,
                denoise_steps=0, seamless_axes=recipe.tiling or "", whole_picture_mask=False, grey_init=False,
                vae_scale=facts.vae_scale, tile=facts.tile, tile_grid=(1, 1), start="init", refine_seed_offset=0,
                unet_extra=False, keep_outside=False, paste_back=False, mask_feather=int(recipe.mask_feather),
                controls=(), progress_total=0, notes=("the init picture as it is: no diffusion before the upscale",))
