"""The upscale step (``Plan.upscale``, planned in ``upscale_plan.py``): a super-resolution model
(or Lanczos), then the optional refine.

1. *super-resolution*: the model (``models/upscalers.py``; spandrel detects its architecture and
   native scale) runs on tiles of ``UpscalePlan.tile`` input pixels, each cut with ``margin``
   pixels of context that are cropped off after (Real-ESRGAN's ``tile`` / ``tile_pad``): memory is
   one tile's activations, and wherever the model's receptive field fits in the margin the tiled
   result is the whole-picture result. On the seamless axes the picture is wrap-padded by the
   margin first (and the pad cropped after), so the model sees across the edge as on the tiled
   texture. The model runs again until the picture is at least the asked size (a 2x model for 4x:
   twice; at most ``MAX_PASSES``), then Lanczos resizes it to the exact size (wrap-aware too).
   An empty model is Lanczos alone (``tiled.upscale``).
2. *refine* (``Upscale.refine`` > 0): img2img of the upscaled picture at that strength with the
   recipe's prompt, controls, regions (masks scaled to the upscaled size) and reference images,
   on the path its own plan says (tiled when large: ``tiled.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models.upscalers import Upscaler, load_upscaler, resolve_upscaler
from .inputs import Inputs
from .progress import _Cancelled
from .regions import Regions
from .run import Execution
from .tiled import scale_control
from .tiled import upscale as lanczos
from .upscale_plan import MAX_PASSES, UpscalePlan

# ---- super-resolution -----------------------------------------------------------------------------


def to_tensor(image: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor[0].clamp(0, 1).permute(1, 2, 0).mul(255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(array, "RGB")


def sr_tiled(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, scale: int, *, tile: int,
             margin: int, axes: str = "", check: Callable[[], None] | None = None) -> torch.Tensor:
    """``model`` (a (1, C, h, w) -> (1, C, h*scale, w*scale) network) over ``image`` in tiles of
    ``tile`` pixels with ``margin`` pixels of context each side, cropped off after; on ``axes``
    the picture wraps around. The result stays on the CPU in float32."""
    _, channels, height, width = image.shape
    pad_y = margin if "y" in axes else 0
    pad_x = margin if "x" in axes else 0
    if pad_x or pad_y:
        image = _wrap_pad(image, pad_y, pad_x)
    full_h, full_w = image.shape[-2:]
    out = torch.empty(1, channels, full_h * scale, full_w * scale)
    for y0 in range(0, full_h, tile):
        for x0 in range(0, full_w, tile):
            if check is not None:
                check()
            y1, x1 = min(full_h, y0 + tile), min(full_w, x0 + tile)
            cy0, cx0 = max(0, y0 - margin), max(0, x0 - margin)
            cy1, cx1 = min(full_h, y1 + margin), min(full_w, x1 + margin)
            part = model(image[..., cy0:cy1, cx0:cx1]).float().cpu()
            oy, ox = (y0 - cy0) * scale, (x0 - cx0) * scale
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                part[..., oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out[..., pad_y * scale:(pad_y + height) * scale, pad_x * scale:(pad_x + width) * scale]


def _wrap_pad(image: torch.Tensor, pad_y: int, pad_x: int) -> torch.Tensor:
    """Wrap-pad (repeating the picture, as the tiled texture does), any pad size."""
    _, _, height, width = image.shape
    rows = torch.arange(-pad_y, height + pad_y) % height
    cols = torch.arange(-pad_x, width + pad_x) % width
    return image[..., rows, :][..., cols]


def super_resolve(upscaler: Upscaler, image: Image.Image, width: int, height: int, plan: UpscalePlan, *,
                  device: str = "cpu", dtype: torch.dtype = torch.float32,
                  check: Callable[[], None] | None = None) -> Image.Image:
    """``image`` to exactly ``width`` x ``height`` through ``upscaler`` (as many passes as it takes
    to reach the size, at most MAX_PASSES), then Lanczos (wrap-aware on the plan's axes)."""
    model = upscaler.model
    run_dtype = dtype if (dtype == torch.float16 and model.supports_half) or dtype == torch.bfloat16 and \
        model.supports_bfloat16 else torch.float32
    model.to(device).to(run_dtype)

    def call(part: torch.Tensor) -> torch.Tensor:
        return model(part.to(device=device, dtype=run_dtype))

    tensor = to_tensor(image)
    for _ in range(MAX_PASSES):
        if tensor.shape[-1] >= width and tensor.shape[-2] >= height:
            break
        tensor = sr_tiled(call, tensor, upscaler.scale, tile=plan.tile, margin=plan.margin, axes=plan.axes,
                          check=check)
    picture = to_image(tensor)
    if picture.size == (width, height):
        return picture
    return lanczos(picture, width, height, plan.axes)


def upscale_picture(image: Image.Image, plan: UpscalePlan, upscaler: Upscaler | None, *, device: str = "cpu",
                    dtype: torch.dtype = torch.float32, check: Callable[[], None] | None = None) -> Image.Image:
    """One picture through the SR step of ``plan`` (no refine): the model, or Lanczos without one."""
    if upscaler is None:
        return lanczos(image, plan.width, plan.height, plan.axes)
    return super_resolve(upscaler, image, plan.width, plan.height, plan, device=device, dtype=dtype, check=check)


class UpscalerCache:
    """The last upscaler used, kept loaded (a Studio holds one; they are small next to SD)."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._model: Upscaler | None = None

    @staticmethod
    def check(recipe: Any, settings: Any, *, allow_paths: Any) -> None:
        """Find the recipe's upscaler (a pickle refused) before any model loads; loads nothing."""
        if recipe.upscale is not None and recipe.upscale.model:
            resolve_upscaler(recipe.upscale.model, settings, allow_paths=allow_paths)

    def get(self, model: str, settings: Any, *, allow_paths: Any, device: str) -> Upscaler | None:
        if not model:
            return None
        ref = resolve_upscaler(model, settings, allow_paths=allow_paths)
        if ref.key != self._key or self._model is None:
            self._model, self._key = None, None
            self._model, self._key = load_upscaler(ref, settings, device=device), ref.key
        return self._model


# ---- the step, as the Studio runs it ----------------------------------------------------------------


def upscale_step(studio: Any, job: Execution, images: list[Image.Image], *, refine_job: Callable[[], Execution] | None,
                 hashes: dict, sources: dict, on_progress=None, cancel=None) -> list[Image.Image]:
    """The upscale step of ``job.plan`` on each image of the job: SR (or Lanczos), then the
    refine (``refine_job()`` gives the img2img Execution to run it, built only when needed)."""
    plan: UpscalePlan = job.plan.upscale
    upscaler = studio.upscalers.get(plan.model, studio.settings, allow_paths=studio.model_paths,
                                    device=studio.device)
    if upscaler is not None:
        hashes["upscale.model"], sources["upscale.model"] = _hash(studio, upscaler), str(upscaler.path)

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise _Cancelled()

    dtype = getattr(getattr(studio, "fast", None), "dtype", torch.float32)
    out = []
    refine = refine_job() if plan.refine_plan is not None and refine_job is not None else None
    for index, (image, seed) in enumerate(zip(images, job.plan.seeds, strict=True)):
        big = upscale_picture(image, plan, upscaler, device=studio.device, dtype=dtype, check=check)
        if refine is not None:
            sub = replace(refine.plan, seeds=(seed,))
            pictures = zip(job.plan.controls, job.inputs.controls or [], strict=False)
            inputs = Inputs(init=big, controls=[scale_control(p, big.size) for c, p in pictures if c.kind != "inpaint"])
            big = studio._execute(replace(refine, plan=sub, inputs=inputs), _relay(on_progress, index), cancel)[0]
        out.append(big)
    return out


def _relay(on_progress, index: int):
    if on_progress is None:
        return None

    def relay(p):
        on_progress(replace(p, image_index=index))

    return relay


def _hash(studio: Any, upscaler: Upscaler) -> str:
    key = upscaler.ref.key
    hashes = getattr(studio, "_hashes", {})
    if key not in hashes:
        import hashlib

        digest = hashlib.sha256()
        with open(upscaler.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        hashes[key] = digest.hexdigest()
    return hashes[key]


def upscale_alone(recipe: Any) -> bool:
    """Task ``upscale`` without a refine: the Studio loads no diffusion model for it."""
    return recipe.task == "upscale" and recipe.upscale is not None and not recipe.upscale.refine


def run_upscale_alone(studio: Any, recipe: Any, inputs: Inputs, started: float, cancel=None):
    """The Studio's run of an ``upscale_alone`` recipe: the init picture through the SR step."""
    import time

    from .plan import ModelFacts, plan

    job_plan = plan(recipe, ModelFacts())  # the facts do not matter: no diffusion runs
    hashes = {where: ref.split(":", 1)[1] for where, ref in recipe.image_refs().items()}
    sources: dict[str, str] = {}
    job = Execution(pipe=None, plan=job_plan, inputs=inputs, prompt_kwargs={}, scheduler_config={})
    images = [inputs.need_init()] * len(job_plan.seeds)
    loaded = time.perf_counter()
    images = upscale_step(studio, job, images, refine_job=None, hashes=hashes, sources=sources, cancel=cancel)
    return studio._result(images, list(job_plan.seeds), recipe, hashes, sources, started, loaded)


def refine_execution(studio: Any, job: Execution, base: Any, controls: list, recipe: Any) -> Execution:
    """The img2img Execution of the refine (its pictures are set per image by ``upscale_step``):
    the job's model, VAE, adapters and prompt, the img2img pipeline with the recipe's
    ControlNets but the inpaint one (the refine covers the whole upscaled picture), the job's
    regions with their masks scaled to the upscaled size, and its reference images (the
    IP-Adapters sit in the UNet every pipeline of the model shares; their embeddings are the job's)."""
    refine_plan = job.plan.upscale.refine_plan
    nets = [net for control, net in zip(recipe.controls, controls, strict=True) if control.kind != "inpaint"]
    pipe = studio.pipelines.for_task(base, refine_plan.pipeline_task, nets)
    pipe.vae = job.pipe.vae
    return Execution(pipe=pipe, plan=refine_plan, inputs=Inputs(), prompt_kwargs=job.prompt_kwargs,
                     scheduler_config=job.scheduler_config, preview_decoder=job.preview_decoder,
                     regions=scaled_regions(job.regions, refine_plan.width, refine_plan.height),
                     references=job.references)


def scaled_regions(regions: Regions | None, width: int, height: int) -> Regions | None:
    """``regions`` with masks at ``width`` x ``height`` (bilinear: soft edges stay soft and a
    mask's edge moves by no more than a source pixel), the same prompts and LoRAs."""
    if regions is None:
        return None
    masks = regions.masks
    if tuple(masks.shape[-2:]) != (height, width):
        masks = F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
    return replace(regions, masks=masks)
