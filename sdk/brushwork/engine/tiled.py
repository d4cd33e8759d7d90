"""Large images: the routing, and the txt2img / img2img paths that refine and decode in tiles.

A model makes good pictures near the size it was trained at (its *native* size: 512 for SD 1.5,
1024 for SDXL; UNet ``sample_size`` x VAE scale factor). Asked for much more (either side over
``TILED_FACTOR`` tiles; a tile is the native size, at least ``MIN_TILE_LATENT`` latent pixels),
running the UNet and the VAE on the whole picture repeats subjects and needs memory that grows
with the area. The planner (``plan.py``) decides when a job is that large (``Plan.path``) and
``run_tiled`` runs one image of it as planned:

txt2img (the *upscale* path)
  1. *base*: the normal txt2img run at a native-ish size with the same aspect and seed (seamless
     when the recipe tiles, so the small picture is already a torus), with the controls scaled to
     that size;
  2. *upscale*: Lanczos to the asked size, wrap-padded first on the seamless axes so the filter sees
     the neighbours across the edge;
  3. *encode*, 4. *refine* at ``REFINE_STRENGTH``, 5. *decode*: as img2img below.

img2img (the init picture is already at the asked size)
  *encode*: the VAE encoder on overlapping tiles, feather-blended in latent space;
  *denoise* from the recipe's ``strength``, MultiDiffusion style: each step runs the UNet (and the
  ControlNets, each on its control picture's crop under the tile) on overlapping tiles
  and blends their noise predictions with feathered weights, then steps the scheduler once on the
  whole latent; *decode*: the VAE decoder on overlapping tiles, blended into a picture on the CPU.

inpaint: a crop around the mask runs the ordinary inpaint pipeline and is pasted back exactly
(``tiled_inpaint.py``).

Memory is bounded by one tile's activations plus the whole picture's latent and pixels (no full-
size activations anywhere). On the seamless axes every tile is cut with wrap-around indices, so the
edges are interior like any other place and the big texture still tiles. The networks run with
their ordinary padding here (the seamless patch would make each tile a torus of itself); blending
overlapping tiles hides each tile's border.

Progress counts over the whole job: (txt2img: the base steps,) one step for the encode, the
denoising steps, one step for the decode. Cancel is checked every tile. Everything runs from seeded
CPU generators in a fixed order: a rerun is pixel-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from .inputs import Inputs
from .plan import (
    MIN_TILE_LATENT,
    OVERLAP_FRACTION,
    REFINE_STRENGTH,
    TILED_FACTOR,
    ModelFacts,
    base_size,
    refine_steps,
    tile_starts,
    total_steps,
    wants_tiled,
)
from .progress import Progress, _Cancelled
from .run import Execution, run_one
from .seamless import seamless
from .tiled_denoise import (
    TileControls,
    decode_tiled,
    denoise_tiled,
    encode_masked_tiled,
    encode_tiled,
    latent_mask,
)
from .tiled_inpaint import inpaint_cropped
from .tiles import TileGrid, Tiling, feather


def native_size(pipe) -> int:
    """Pixels per side the model was trained at: UNet sample_size x VAE scale factor."""
    return ModelFacts.of_pipe(pipe, "").native


def tile_size(pipe) -> int:
    """Pixels per side of a tile: the native size, at least MIN_TILE_LATENT latent pixels."""
    return ModelFacts.of_pipe(pipe, "").tile


# ---- the job ------------------------------------------------------------------------------------


class TiledRun:
    """One large txt2img or img2img image through its tiled phases."""

    def __init__(self, job: Execution, *, seed: int, index: int,
                 on_progress: Callable[[Progress], Any] | None, cancel):
        self.job, self.seed, self.index = job, int(seed), index
        self.on_progress, self.cancel = on_progress, cancel
        self.pipe = job.pipe
        self.plan = job.plan
        self.axes = self.plan.seamless_axes
        self.scale = self.plan.vae_scale
        self.tile = self.plan.tile_latent  # latent pixels per tile side
        self.total = self.plan.progress_total
        self.done = 0

    def __call__(self) -> Image.Image:
        plan = self.plan
        if plan.start == "init":
            # img2img (and a big inpaint crop): the init picture (already at the asked size) is the
            # start; its own seed's noise, as the plain path's img2img.
            latents, extra, keep = self._encode(self.job.inputs.need_init())
        else:  # txt2img: a base pass at native size, upscaled
            base = self._base()
            big = upscale(base, plan.width, plan.height, self.axes)
            del base
            latents, extra, keep = self._encode(big)
            del big  # the full-size picture is not kept through the refine
        return self._denoise_and_decode(latents, extra, keep, plan.denoise_steps,
                                        self.seed + plan.refine_seed_offset)  # after a base pass: not its noise

    # ---- progress and cancel -----------------------------------------------------------------

    def _check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled()

    def _advance(self, preview: Image.Image | None = None) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(Progress(step=self.done, total=self.total, preview=preview, image_index=self.index))

    # ---- phases ------------------------------------------------------------------------------

    def _base(self) -> Image.Image:
        sub = self.plan.sub
        assert sub is not None  # a tiled txt2img plan carries its base pass
        width, height = sub.width, sub.height
        inputs = self.job.inputs
        small_inputs = Inputs(
            init=inputs.init.resize((width, height), Image.Resampling.LANCZOS) if inputs.init else None,
            mask=inputs.mask.resize((width, height), Image.Resampling.NEAREST) if inputs.mask else None,
            controls=[scale_control(p, (width, height)) for p in (inputs.controls or [])])
        small = replace(self.job, plan=sub, inputs=small_inputs)

        def relay(p: Progress) -> None:
            self.done = p.step
            if self.on_progress is not None:
                self.on_progress(Progress(step=p.step, total=self.total, preview=p.preview, image_index=self.index))

        with seamless(self.pipe, self.axes):
            image = run_one(small, seed=self.seed, index=self.index,
                            on_progress=relay if self.on_progress else None, cancel=self.cancel)
        self.done = sub.steps
        return image

    def _encode(self, picture: Image.Image):
        """(scaled latents, the 9-channel UNet's extra channels or None, the latent mask whose
        outside a 4-channel inpaint keeps or None); one progress step."""
        vae = self.pipe.vae
        latents = encode_tiled(vae, picture, self.scale, self.tile, self.axes, self._check)
        extra = keep = None
        # A 9-channel inpainting UNet's tiles get the mask and the masked picture (for txt2img /
        # img2img the mask is white everywhere: inpainting of the whole picture); a 4-channel UNet
        # inpainting keeps the unmasked places on the init picture every step.
        if self.plan.unet_extra or self.plan.keep_outside:
            mask = np.asarray(self.job.inputs.need_mask().convert("L")) >= 128
            keep = latent_mask(mask, self.scale)
            if self.plan.unet_extra:
                masked = encode_masked_tiled(vae, self.job.inputs.need_init(), mask, self.scale, self.tile, self.axes,
                                             self._check)
                extra, keep = torch.cat([keep, masked], dim=1), None
        self._advance()
        return latents, extra, keep

    def _denoise_and_decode(self, latents: torch.Tensor, extra: torch.Tensor | None, keep: torch.Tensor | None,
                            run_steps: int, seed: int) -> Image.Image:
        controls = TileControls(self.pipe, list(self.plan.controls), self.job.inputs.controls or [], self.scale) \
            if self.plan.controls else None
        latents = denoise_tiled(self.job, latents, run_steps=run_steps, seed=seed, tile=self.tile, axes=self.axes,
                                controls=controls, check=self._check, advance=self._advance,
                                want_previews=self.on_progress is not None, unet_extra=extra,
                                keep_outside=keep)
        image = decode_tiled(self.pipe.vae, latents, self.scale, self.tile, self.axes, self._check)
        self._advance()
        return image


def scale_control(picture, size: tuple[int, int]):
    """A full-size control picture at the base pass's ``size``: Lanczos for pictures, nearest
    neighbour for the inpaint control's float tensor."""
    if isinstance(picture, Image.Image):
        return picture.resize(size, Image.Resampling.LANCZOS)
    tensor = torch.as_tensor(picture).float()
    return torch.nn.functional.interpolate(tensor, size=(size[1], size[0]), mode="nearest")


def upscale(image: Image.Image, width: int, height: int, axes: str) -> Image.Image:
    """Lanczos to (width, height); on the seamless axes the picture is wrap-padded first so the
    filter reads across the edge from the other side, as it would on the tiled texture. (The
    upscale step also shrinks with it: a 4x model's output to 3x.)"""
    # Lanczos reads 3 source pixels each side when enlarging, 3 x the shrink ratio when shrinking.
    pad = max(4, math.ceil(3 * max(image.width / width, image.height / height)) + 1)
    pad_x = pad if "x" in axes else 0
    pad_y = pad if "y" in axes else 0
    if not (pad_x or pad_y):
        return image.resize((width, height), Image.Resampling.LANCZOS)
    array = np.pad(np.asarray(image.convert("RGB")), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="wrap")
    box = (pad_x, pad_y, pad_x + image.width, pad_y + image.height)
    return Image.fromarray(array, "RGB").resize((width, height), Image.Resampling.LANCZOS, box=box)


def run_tiled(job: Execution, *, seed: int, index: int, on_progress=None, cancel=None) -> Image.Image:
    """Image ``index`` of a large job as planned (``Plan.path`` tiled or cropped_inpaint): txt2img
    and img2img in tiles, inpaint on a crop around the mask, pasted back. Raises progress._Cancelled."""
    if job.plan.path == "cropped_inpaint":

        def run_large(crop_job: Execution) -> Image.Image:  # a crop over 2 tiles: refined in tiles
            return TiledRun(crop_job, seed=seed, index=index, on_progress=on_progress, cancel=cancel)()

        return inpaint_cropped(job, seed=seed, index=index, on_progress=on_progress, cancel=cancel,
                               run_large=run_large)
    return TiledRun(job, seed=seed, index=index, on_progress=on_progress, cancel=cancel)()


# The tile geometry lives in plan.py / tiles.py and the phases in tiled_denoise.py; these names stay
# importable from here (tests, benchmarks and older imports use them).
__all__ = ["MIN_TILE_LATENT", "OVERLAP_FRACTION", "REFINE_STRENGTH", "TILED_FACTOR", "TileGrid", "TiledRun",
           "Tiling", "base_size", "decode_tiled", "encode_tiled", "feather", "native_size", "refine_steps",
           "run_tiled", "scale_control", "tile_size", "tile_starts", "total_steps", "upscale", "wants_tiled"]
