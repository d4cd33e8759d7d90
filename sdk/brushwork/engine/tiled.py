"""Large images: a base pass at the model's own size, upscaled, then refined and decoded in tiles.

A model makes good pictures near the size it was trained at (its *native* size: 512 for SD 1.5,
1024 for SDXL; UNet ``sample_size`` x VAE scale factor). Asked for much more (either side over
``TILED_FACTOR`` x native), running the UNet and the VAE on the whole picture repeats subjects and
needs memory that grows with the area. The tiled path instead:

1. *base*: the normal txt2img run at a native-ish size with the same aspect and seed (seamless
   when the recipe tiles, so the small picture is already a torus);
2. *upscale*: Lanczos to the asked size, wrap-padded first on the seamless axes so the filter sees
   the neighbours across the edge;
3. *encode*: the VAE encoder on overlapping native-size tiles, feather-blended in latent space;
4. *refine*: img2img at ``REFINE_STRENGTH`` over the whole latent, MultiDiffusion style: each step
   runs the UNet on overlapping native-size tiles and blends their noise predictions with feathered
   weights, then steps the scheduler once on the whole latent;
5. *decode*: the VAE decoder on overlapping tiles, feather-blended into a float picture on the CPU.

Memory is bounded by one tile's activations plus the whole picture's latent and pixels (no full-
size activations anywhere). On the seamless axes every tile is cut from the latent with wrap-around
indices, so the edges are interior like any other place and the big texture still tiles. The
networks run with their ordinary padding here (the seamless patch would make each tile a torus of
itself); blending overlapping tiles hides each tile's border.

Progress counts over the whole job: the base steps, one step for the encode, the refine steps,
one step for the decode. Cancel is checked every tile. Everything runs from seeded CPU generators in
a fixed order: a rerun is pixel-identical.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .progress import Progress, _Cancelled, latent_to_rgb
from .run import Job, run_one
from .samplers import make_scheduler
from .seamless import seamless

TILED_FACTOR = 2  # a side larger than this many times the native size takes the tiled path
REFINE_STRENGTH = 0.35  # how much of the upscaled picture the refine pass may repaint
OVERLAP_FRACTION = 4  # tiles overlap by 1/4 of their side


def native_size(pipe) -> int:
    """Pixels per side the model was trained at: UNet sample_size x VAE scale factor."""
    sample = pipe.unet.config.get("sample_size", 64)
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def wants_tiled(width: int, height: int, native: int) -> bool:
    return max(width, height) > TILED_FACTOR * native


def base_size(width: int, height: int, native: int, multiple: int = 8) -> tuple[int, int]:
    """The base pass's size: the long side at native, the same aspect, multiples of ``multiple``."""
    scale = native / max(width, height)
    return tuple(max(multiple, int(round(side * scale / multiple)) * multiple) for side in (width, height))


def refine_steps(steps: int) -> int:
    return max(1, min(steps, int(steps * REFINE_STRENGTH)))


def total_steps(steps: int) -> int:
    """Progress total of a tiled job: base + refine + encode + decode."""
    return steps + refine_steps(steps) + 2


# ---- tiles --------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, overlap: int, wrap: bool) -> tuple[int, list[int]]:
    """(tile size, starts) covering ``length``; on a wrap axis tiles may run past the end and
    continue at the start. A wrap axis no longer than a tile gets two copies shifted by half, so
    neither copy's border lands unblended on any place (the edge included)."""
    if length <= tile:
        return length, ([0, length // 2] if wrap and length > 1 else [0])
    stride = max(1, tile - overlap)
    if wrap:
        n = math.ceil(length / stride)
        return tile, [round(i * length / n) for i in range(n)]
    n = math.ceil((length - tile) / stride) + 1
    return tile, [round(i * (length - tile) / (n - 1)) for i in range(n)]


def feather(size: int, overlap: int) -> torch.Tensor:
    """1-D weights rising linearly over ``overlap`` at both ends, never zero."""
    i = torch.arange(size, dtype=torch.float32)
    ramp = torch.minimum(i + 1, size - i) / float(max(1, overlap) + 1)
    return ramp.clamp(max=1.0)


class Tiling:
    """Overlapping tiles over an (H, W) grid, wrapping on the seamless axes."""

    def __init__(self, height: int, width: int, tile: int, axes: str):
        overlap = max(1, tile // OVERLAP_FRACTION)
        self.height, self.width = height, width
        self.wrap_y, self.wrap_x = "y" in axes, "x" in axes
        self.th, self.ys = tile_starts(height, tile, overlap, self.wrap_y)
        self.tw, self.xs = tile_starts(width, tile, overlap, self.wrap_x)
        self.weight = feather(self.th, overlap)[:, None] * feather(self.tw, overlap)[None, :]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def __iter__(self):
        for y in self.ys:
            for x in self.xs:
                rows = torch.arange(y, y + self.th) % self.height
                cols = torch.arange(x, x + self.tw) % self.width
                yield rows, cols


def _cut(full: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return full.index_select(-2, rows.to(full.device)).index_select(-1, cols.to(full.device))


def _add(acc: torch.Tensor, part: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> None:
    """acc[..., rows, cols] += part (rows/cols may wrap; each index appears once per tile)."""
    rows, cols = rows.to(acc.device), cols.to(acc.device)
    grid = rows[:, None] * acc.shape[-1] + cols[None, :]
    flat = acc.reshape(*acc.shape[:-2], -1)
    flat.index_add_(-1, grid.reshape(-1), part.reshape(*part.shape[:-2], -1).to(acc.dtype))


# ---- the job ------------------------------------------------------------------------------------


class TiledRun:
    """One large image through the base / upscale / encode / refine / decode phases."""

    def __init__(self, job: Job, *, seed: int, index: int, on_progress: Callable[[Progress], Any] | None,
                 cancel):
        self.job, self.seed, self.index = job, int(seed), index
        self.on_progress, self.cancel = on_progress, cancel
        self.pipe = job.pipe
        self.recipe = job.recipe
        self.axes = self.recipe.tiling or ""
        self.scale = int(getattr(self.pipe, "vae_scale_factor", 8))
        self.native = native_size(self.pipe)
        self.tile = self.native // self.scale  # latent pixels per tile side
        self.total = total_steps(self.recipe.steps)
        self.done = 0
        self.device = self.pipe.unet.device

    def __call__(self) -> Image.Image:
        base = self._base()
        big = upscale(base, self.recipe.width, self.recipe.height, self.axes)
        del base
        latents = self._encode(big)
        del big
        latents = self._refine(latents)
        return self._decode(latents)

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
        small = replace(self.job, recipe=self.recipe.replace(width=width, height=height))

        def relay(p: Progress) -> None:
            self.done = p.step
            if self.on_progress is not None:
                self.on_progress(Progress(step=p.step, total=self.total, preview=p.preview, image_index=self.index))

        with seamless(self.pipe, self.axes):
            image = run_one(small, seed=self.seed, index=self.index,
                            on_progress=relay if self.on_progress else None, cancel=self.cancel)
        self.done = self.recipe.steps
        return image

    @torch.inference_mode()
    def _encode(self, image: Image.Image) -> torch.Tensor:
        vae, f = self.pipe.vae, self.scale
        pixels = np.asarray(image.convert("RGB"))  # uint8 (H, W, 3): the only full-size copy
        tiling = Tiling(image.height // f, image.width // f, self.tile, self.axes)
        channels = int(vae.config.latent_channels)
        acc = torch.zeros(1, channels, tiling.height, tiling.width, dtype=torch.float32)
        weights = torch.zeros(1, 1, tiling.height, tiling.width, dtype=torch.float32)
        for rows, cols in tiling:
            self._check()
            prow = (rows[:, None] * f + torch.arange(f)[None, :]).reshape(-1).numpy()
            pcol = (cols[:, None] * f + torch.arange(f)[None, :]).reshape(-1).numpy()
            tile = pixels[prow][:, pcol]
            x = torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
            z = vae.encode(x.to(self.device, vae.dtype)).latent_dist.mode().float().cpu()
            _add(acc, z * tiling.weight, rows, cols)
            _add(weights, tiling.weight[None, None], rows, cols)
        latents = acc / weights
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        self._advance()
        return (latents - shift) * float(vae.config.scaling_factor)

    def _conditioning(self) -> tuple[torch.Tensor, dict | None, bool]:
        kw = self.job.prompt_kwargs
        guided = float(self.recipe.cfg) > 1.0
        cond = kw["prompt_embeds"]
        neg = kw.get("negative_prompt_embeds")
        embeds = torch.cat([neg, cond]) if guided else cond
        added = None
        if self.job.family == "sdxl":
            pooled = kw["pooled_prompt_embeds"]
            if guided:
                pooled = torch.cat([kw["negative_pooled_prompt_embeds"], pooled])
            side = self.tile * self.scale
            time_ids = torch.tensor([[side, side, 0, 0, side, side]], dtype=embeds.dtype).repeat(pooled.shape[0], 1)
            added = {"text_embeds": pooled.to(self.device), "time_ids": time_ids.to(self.device)}
        return embeds.to(self.device), added, guided

    @torch.inference_mode()
    def _refine(self, init: torch.Tensor) -> torch.Tensor:
        unet, steps = self.pipe.unet, self.recipe.steps
        scheduler = make_scheduler(self.recipe.sampler, self.job.scheduler_config)
        scheduler.set_timesteps(steps, device=self.device)
        order = getattr(scheduler, "order", 1)
        start = (steps - refine_steps(steps)) * order
        timesteps = scheduler.timesteps[start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
        generator = torch.Generator("cpu").manual_seed(self.seed + 1)  # not the base pass's noise
        noise = randn_tensor(init.shape, generator=generator, dtype=torch.float32)
        latents = scheduler.add_noise(init, noise, timesteps[:1]).to(self.device, torch.float32)
        del noise, init
        embeds, added, guided = self._conditioning()
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        tiling = Tiling(latents.shape[-2], latents.shape[-1], self.tile, self.axes)
        weight = tiling.weight.to(self.device)
        weights = torch.zeros(1, 1, tiling.height, tiling.width, device=self.device)
        for rows, cols in tiling:
            _add(weights, weight[None, None], rows, cols)
        for i, t in enumerate(timesteps):
            model_input = scheduler.scale_model_input(latents, t)
            prediction = torch.zeros_like(latents)
            for rows, cols in tiling:
                self._check()
                x = _cut(model_input, rows, cols).to(unet.dtype)
                x = torch.cat([x, x]) if guided else x
                kwargs = {"added_cond_kwargs": added} if added is not None else {}
                out = unet(x, t, encoder_hidden_states=embeds, return_dict=False, **kwargs)[0].float()
                if guided:
                    uncond, cond = out.chunk(2)
                    out = uncond + float(self.recipe.cfg) * (cond - uncond)
                _add(prediction, out * weight, rows, cols)
            del model_input
            prediction /= weights
            result = scheduler.step(prediction, t, latents, return_dict=True, **step_kwargs)
            latents = result.prev_sample
            preview = None
            if self.on_progress is not None:
                x0 = getattr(result, "pred_original_sample", None)
                preview = latent_to_rgb(x0 if x0 is not None else latents, self.job.family)
            self._advance(preview)
        return latents

    def _decode(self, latents: torch.Tensor) -> Image.Image:
        image = decode_tiled(self.pipe.vae, latents, self.scale, self.tile, self.axes, self._check)
        self._advance()
        return image


@torch.inference_mode()
def decode_tiled(vae, latents: torch.Tensor, scale: int, tile: int, axes: str,
                 check: Callable[[], None] = lambda: None) -> Image.Image:
    """Scaled latents (1, C, h, w) -> RGB picture, decoded in overlapping tiles of ``tile`` latent
    pixels that wrap on ``axes``; the blend is accumulated on the CPU."""
    f = scale
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    latents = latents / float(vae.config.scaling_factor) + shift
    tiling = Tiling(latents.shape[-2], latents.shape[-1], tile, axes)
    height, width = tiling.height * f, tiling.width * f
    acc = torch.zeros(3, height, width, dtype=torch.float32)  # on the CPU, whatever the device
    weights = torch.zeros(1, height, width, dtype=torch.float32)
    pixel_weight = torch.kron(tiling.weight, torch.ones(f, f))
    for rows, cols in tiling:
        check()
        z = _cut(latents, rows, cols).to(vae.device, vae.dtype)
        x = vae.decode(z, return_dict=False)[0][0].float().clamp(-1, 1).cpu()
        prows = (rows[:, None] * f + torch.arange(f)[None, :]).reshape(-1)
        pcols = (cols[:, None] * f + torch.arange(f)[None, :]).reshape(-1)
        _add(acc, x * pixel_weight, prows, pcols)
        _add(weights, pixel_weight[None], prows, pcols)
    acc /= weights
    del weights
    rgb = ((acc + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


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
    """Generate image ``index`` of a large txt2img job; raises progress._Cancelled."""
    return TiledRun(job, seed=seed, index=index, on_progress=on_progress, cancel=cancel)()
