"""Large images: the routing, and the txt2img / img2img paths that refine and decode in tiles.

A model makes good pictures near the size it was trained at (its *native* size: 512 for SD 1.5,
1024 for SDXL; UNet ``sample_size`` x VAE scale factor). Asked for much more (either side over
``TILED_FACTOR`` tiles; a tile is the native size, at least ``MIN_TILE_LATENT`` latent pixels),
running the UNet and the VAE on the whole picture repeats subjects and needs memory that grows
with the area. ``takes_tiled_path(job)`` says when a job is that large and
``run_tiled`` runs one image of it:

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

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from .inputs import Inputs
from .progress import Progress, _Cancelled
from .run import Job, run_one
from .seamless import seamless
from .tiled_denoise import (
    TileControls,
    decode_tiled,
    denoise_steps,
    denoise_tiled,
    encode_masked_tiled,
    encode_tiled,
    latent_mask,
)
from .tiled_inpaint import inpaint_cropped
from .tiles import OVERLAP_FRACTION, Tiling, feather, tile_starts

TILED_FACTOR = 2  # a side larger than this many times the native size takes the tiled path
REFINE_STRENGTH = 0.35  # how much of the upscaled picture the refine pass may repaint
# A tile is the model's native size, but never under this many latent pixels: SD's UNet halves a
# tile three times, so an 8-pixel tile is 1x1 at the bottom (no context), and each tile call pays a
# fixed overhead (the 64 px demo model took 25x longer at 512² in 121 tiles than in one piece).
MIN_TILE_LATENT = 32


def native_size(pipe) -> int:
    """Pixels per side the model was trained at: UNet sample_size x VAE scale factor."""
    sample = pipe.unet.config.get("sample_size", 64)
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def tile_size(pipe) -> int:
    """Pixels per side of a tile: the native size, at least MIN_TILE_LATENT latent pixels."""
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    return max(native_size(pipe), MIN_TILE_LATENT * scale)


def wants_tiled(width: int, height: int, tile: int) -> bool:
    """Larger than TILED_FACTOR tiles on a side (``tile``: ``tile_size``, the native size for
    SD 1.5 / SDXL)."""
    return max(width, height) > TILED_FACTOR * tile


def takes_tiled_path(job: Job) -> bool:
    """Whether ``job`` is large enough for the large-image paths (any task, with or without
    ControlNets, plain or 9-channel inpainting checkpoints)."""
    return wants_tiled(job.recipe.width, job.recipe.height, tile_size(job.pipe))


def base_size(width: int, height: int, native: int, multiple: int = 8) -> tuple[int, int]:
    """The base pass's size: the long side at native, the same aspect, multiples of ``multiple``."""
    scale = native / max(width, height)
    return tuple(max(multiple, int(round(side * scale / multiple)) * multiple) for side in (width, height))


def refine_steps(steps: int) -> int:
    return denoise_steps(steps, REFINE_STRENGTH)


def total_steps(steps: int, strength: float | None = None) -> int:
    """Progress total of a tiled job: txt2img (``strength`` None): base + refine + encode +
    decode; img2img: the denoising steps + encode + decode."""
    if strength is None:
        return steps + refine_steps(steps) + 2
    return denoise_steps(steps, strength) + 2


# ---- the job ------------------------------------------------------------------------------------


class TiledRun:
    """One large txt2img or img2img image through its tiled phases."""

    def __init__(self, job: Job, *, seed: int, index: int, on_progress: Callable[[Progress], Any] | None,
                 cancel):
        self.job, self.seed, self.index = job, int(seed), index
        self.on_progress, self.cancel = on_progress, cancel
        self.pipe = job.pipe
        self.recipe = job.recipe
        self.axes = self.recipe.tiling or ""
        self.scale = int(getattr(self.pipe, "vae_scale_factor", 8))
        self.native = native_size(self.pipe)
        self.tile = tile_size(self.pipe) // self.scale  # latent pixels per tile side
        # img2img, and inpaint of a crop too big to run in one piece (tiled_inpaint.py), start
        # from the init picture; txt2img from its base pass.
        self.img2img = self.recipe.task in ("img2img", "inpaint")
        # A 9-channel inpainting UNet's tiles get the mask and the masked picture (for txt2img /
        # img2img the Studio made the mask white everywhere: inpainting of the whole picture);
        # a 4-channel UNet inpainting keeps the unmasked places on the init picture every step.
        self.nine_channels = int(self.pipe.unet.config.get("in_channels", 4)) == 9
        self.keeps_outside = self.recipe.task == "inpaint" and not self.nine_channels
        self.strength = float(self.recipe.strength if job.strength is None else job.strength)
        self.total = total_steps(self.recipe.steps, self.strength if self.img2img else None)
        self.done = 0

    def __call__(self) -> Image.Image:
        if self.img2img:
            # img2img: the init picture (already resized to the asked size) is the start; its own
            # seed's noise, as the plain path's img2img.
            latents, extra, keep = self._encode(self.job.inputs.init)
            return self._denoise_and_decode(latents, extra, keep, denoise_steps(self.recipe.steps, self.strength),
                                            self.seed)
        base = self._base()
        big = upscale(base, self.recipe.width, self.recipe.height, self.axes)
        del base
        latents, extra, keep = self._encode(big)
        del big  # the full-size picture is not kept through the refine
        return self._denoise_and_decode(latents, extra, keep, refine_steps(self.recipe.steps),
                                        self.seed + 1)  # not the base pass's noise

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
        width, height = base_size(self.recipe.width, self.recipe.height, self.native)
        inputs = self.job.inputs
        small_inputs = Inputs(
            init=inputs.init.resize((width, height), Image.Resampling.LANCZOS) if inputs.init else None,
            mask=inputs.mask.resize((width, height), Image.Resampling.NEAREST) if inputs.mask else None,
            controls=[scale_control(p, (width, height)) for p in (inputs.controls or [])])
        small = replace(self.job, recipe=self.recipe.replace(width=width, height=height), inputs=small_inputs)

        def relay(p: Progress) -> None:
            self.done = p.step
            if self.on_progress is not None:
                self.on_progress(Progress(step=p.step, total=self.total, preview=p.preview, image_index=self.index))

        with seamless(self.pipe, self.axes):
            image = run_one(small, seed=self.seed, index=self.index,
                            on_progress=relay if self.on_progress else None, cancel=self.cancel)
        self.done = self.recipe.steps
        return image

    def _encode(self, picture: Image.Image):
        """(scaled latents, the 9-channel UNet's extra channels or None, the latent mask whose
        outside a 4-channel inpaint keeps or None); one progress step."""
        vae = self.pipe.vae
        latents = encode_tiled(vae, picture, self.scale, self.tile, self.axes, self._check)
        extra = keep = None
        if self.nine_channels or self.keeps_outside:
            mask = np.asarray(self.job.inputs.mask.convert("L")) >= 128
            keep = latent_mask(mask, self.scale)
            if self.nine_channels:
                masked = encode_masked_tiled(vae, self.job.inputs.init, mask, self.scale, self.tile, self.axes,
                                             self._check)
                extra, keep = torch.cat([keep, masked], dim=1), None
        self._advance()
        return latents, extra, keep

    def _denoise_and_decode(self, latents: torch.Tensor, extra: torch.Tensor | None, keep: torch.Tensor | None,
                            run_steps: int, seed: int) -> Image.Image:
        controls = TileControls(self.pipe, self.job.controls, self.job.inputs.controls or [], self.scale) \
            if self.job.controls else None
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
    filter reads across the edge from the other side, as it would on the tiled texture."""
    pad = 4  # Lanczos reads 3 source pixels each side when enlarging
    pad_x = pad if "x" in axes else 0
    pad_y = pad if "y" in axes else 0
    if not (pad_x or pad_y):
        return image.resize((width, height), Image.Resampling.LANCZOS)
    array = np.pad(np.asarray(image.convert("RGB")), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="wrap")
    box = (pad_x, pad_y, pad_x + image.width, pad_y + image.height)
    return Image.fromarray(array, "RGB").resize((width, height), Image.Resampling.LANCZOS, box=box)


def run_tiled(job: Job, *, seed: int, index: int, on_progress=None, cancel=None) -> Image.Image:
    """Image ``index`` of a large job (``takes_tiled_path``): txt2img and img2img in tiles, inpaint
    on a crop around the mask, pasted back. Raises progress._Cancelled."""
    if job.recipe.task == "inpaint":
        tile = tile_size(job.pipe)

        def run_large(crop_job: Job) -> Image.Image:  # a crop over 2 tiles: refined in tiles
            return TiledRun(crop_job, seed=seed, index=index, on_progress=on_progress, cancel=cancel)()

        return inpaint_cropped(job, seed=seed, index=index, tile=tile, limit=TILED_FACTOR * tile,
                               on_progress=on_progress, cancel=cancel, run_large=run_large)
    return TiledRun(job, seed=seed, index=index, on_progress=on_progress, cancel=cancel)()


# The tile geometry lives in tiles.py and the phases in tiled_denoise.py; these names stay
# importable from here (tests, benchmarks and older imports use them).
__all__ = ["OVERLAP_FRACTION", "REFINE_STRENGTH", "TILED_FACTOR", "TiledRun", "Tiling", "base_size",
           "decode_tiled", "encode_tiled", "feather", "native_size", "refine_steps", "run_tiled",
           "scale_control", "takes_tiled_path", "tile_size", "tile_starts", "total_steps", "upscale", "wants_tiled"]
