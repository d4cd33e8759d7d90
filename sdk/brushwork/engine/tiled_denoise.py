"""The tiled phases of a large image: VAE encode, MultiDiffusion denoise (with ControlNets), decode.

Each phase runs its network on overlapping native-size tiles (``tiles.TileGrid``) and blends the
tiles' outputs with feathered weights; only the latent and the picture are ever full-size. On the
seamless axes the tiles are cut with wrap-around indices, so the picture's edges are interior
places like any other.

ControlNets on tiles: every control picture stays a full-size uint8 array (or the float tensor of
an inpaint control) and each tile's ControlNet sees exactly the crop of it under that tile, at the
pixel indices the tile covers in the picture (wrapping with it). Their residuals feed that tile's
UNet call, as diffusers' ControlNet pipelines do for the whole picture: per-net strength, start/end
over the run's own steps, several nets summed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .plan import control_steps
from .plan import denoise_steps as denoise_steps  # re-exported: callers count steps from here
from .progress import latent_to_rgb
from .regions import at_tile, regional_unet
from .samplers import make_scheduler
from .tiles import TileGrid, add_tile, cut_tile, pixel_index, pixels_under, rgb_tensor


def encode_tiled(vae, image: Image.Image, scale: int, tile: int, axes: str,
                 check: Callable[[], None] = lambda: None) -> torch.Tensor:
    """RGB picture -> scaled latents (1, C, H/scale, W/scale), encoded in overlapping tiles of
    ``tile`` latent pixels that wrap on ``axes``; the encoder's mode, so no randomness."""
    f = scale
    pixels = np.asarray(image.convert("RGB"))  # uint8 (H, W, 3): the only full-size copy

    def read(rows, cols):
        return rgb_tensor(pixels_under(pixels, rows, cols, f)) / 127.5 - 1.0

    return _encode_tiles(vae, image.height // f, image.width // f, read, tile, axes, check)


def encode_masked_tiled(vae, image: Image.Image, mask: np.ndarray, scale: int, tile: int, axes: str,
                        check: Callable[[], None] = lambda: None) -> torch.Tensor:
    """Scaled latents of the picture with its masked pixels (``mask``: bool, True = repaint) at 0
    on the [-1, 1] scale: the masked picture a 9-channel inpainting UNet takes, as diffusers'
    ``init_image * (mask < 0.5)``."""
    f = scale
    pixels = np.asarray(image.convert("RGB"))

    def read(rows, cols):
        keep = torch.from_numpy(~pixels_under(mask, rows, cols, f))
        return (rgb_tensor(pixels_under(pixels, rows, cols, f)) / 127.5 - 1.0) * keep

    return _encode_tiles(vae, image.height // f, image.width // f, read, tile, axes, check)


def latent_mask(mask: np.ndarray, scale: int) -> torch.Tensor:
    """(1, 1, H/scale, W/scale) float mask, 1 = repaint: diffusers' nearest-neighbour resize of the
    binary mask to latent size (for an integer factor: every ``scale``-th pixel)."""
    return torch.from_numpy(np.ascontiguousarray(mask[::scale, ::scale])).float()[None, None]


@torch.inference_mode()
def _encode_tiles(vae, height: int, width: int, read: Callable, tile: int, axes: str,
                  check: Callable[[], None]) -> torch.Tensor:
    grid = TileGrid(height, width, tile, axes)
    device = vae.device
    channels = int(vae.config.latent_channels)
    acc = torch.zeros(1, channels, height, width, dtype=torch.float32)
    weights = torch.zeros(1, 1, height, width, dtype=torch.float32)
    for rows, cols in grid:
        check()
        z = vae.encode(read(rows, cols).to(device, vae.dtype)).latent_dist.mode().float().cpu()
        add_tile(acc, z * grid.weight, rows, cols)
        add_tile(weights, grid.weight[None, None], rows, cols)
    latents = acc / weights
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents - shift) * float(vae.config.scaling_factor)


class TileControls:
    """The job's ControlNets, each fed the crop of its full-size control picture under a tile."""

    def __init__(self, pipe, controls: list, pictures: list, scale: int):
        module = getattr(pipe, "controlnet", None)
        nets = [] if module is None else list(getattr(module, "nets", None) or [module])
        if len(nets) != len(controls) or len(pictures) != len(controls):
            raise ValueError(f"{len(controls)} controls, {len(nets)} ControlNets, {len(pictures)} pictures")
        self.scale = scale
        self.entries = [(net, _as_array(picture), float(c.strength), float(c.start), float(c.end))
                        for net, c, picture in zip(nets, controls, pictures, strict=True)]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def residuals(self, x: torch.Tensor, t, step: int, of: int, rows: torch.Tensor, cols: torch.Tensor,
                  embeds: torch.Tensor, added: dict | None):
        """(down residuals, mid residual) of every net active at ``step`` of ``of``, summed; (None,
        None) when none is (start/end outside this step, or strength 0)."""
        down = mid = None
        for net, picture, strength, start, end in self.entries:
            if strength == 0.0 or step not in control_steps(start, end, of):  # plan.py: diffusers' rule
                continue
            cond = self._crop(picture, rows, cols).to(x.device, net.dtype)
            cond = cond.expand(x.shape[0], -1, -1, -1)  # the same picture for the CFG halves
            kwargs = {"added_cond_kwargs": added} if added is not None else {}
            d, m = net(x.to(net.dtype), t, encoder_hidden_states=embeds, controlnet_cond=cond,
                       conditioning_scale=strength, guess_mode=False, return_dict=False, **kwargs)
            down = list(d) if down is None else [a + b for a, b in zip(down, d, strict=True)]
            mid = m if mid is None else mid + m
        return down, mid

    def _crop(self, picture, rows, cols) -> torch.Tensor:
        if isinstance(picture, np.ndarray):  # uint8 (H, W, 3) -> float (1, 3, h, w) in [0, 1]
            return rgb_tensor(pixels_under(picture, rows, cols, self.scale)) / 255.0
        # float tensor (1, 3, H, W): the inpaint control
        return cut_tile(picture, pixel_index(rows, self.scale), pixel_index(cols, self.scale))


def _as_array(picture):
    if isinstance(picture, Image.Image):
        return np.asarray(picture.convert("RGB"))
    if isinstance(picture, np.ndarray):
        return torch.from_numpy(picture).float()
    return picture.float().cpu()


def conditioning(job, tile_side: int, device) -> tuple[torch.Tensor, dict | None, bool]:
    """(text embeddings, SDXL added conditioning or None, whether CFG runs) for one tile's UNet."""
    kw = job.prompt_kwargs
    guided = job.plan.cfg > 1.0
    cond = kw["prompt_embeds"]
    neg = kw.get("negative_prompt_embeds")
    embeds = torch.cat([neg, cond]) if guided else cond
    added = None
    if job.family == "sdxl":
        pooled = kw["pooled_prompt_embeds"]
        if guided:
            pooled = torch.cat([kw["negative_pooled_prompt_embeds"], pooled])
        side = tile_side  # each tile is a native-size picture of its own to the size conditioning
        time_ids = torch.tensor([[side, side, 0, 0, side, side]], dtype=embeds.dtype).repeat(pooled.shape[0], 1)
        added = {"text_embeds": pooled.to(device), "time_ids": time_ids.to(device)}
    return embeds.to(device), added, guided


def _start(scheduler, init: torch.Tensor, noise: torch.Tensor, timesteps, *, from_noise: bool) -> torch.Tensor:
    """The first latents: diffusers' inpaint pipelines start a strength-1 run from pure noise
    (``is_strength_max``); img2img pipelines always start from the init noised to the first step
    (tests/sdk/test_executor_vs_diffusers.py pins both)."""
    if from_noise:
        return (noise * scheduler.init_noise_sigma).float()
    return scheduler.add_noise(init, noise, timesteps[:1]).float()


@torch.inference_mode()
def denoise_tiled(job, init: torch.Tensor, *, run_steps: int, seed: int, tile: int, axes: str,
                  controls: TileControls | None = None, check: Callable[[], None] = lambda: None,
                  advance: Callable[[Image.Image | None], None] = lambda preview: None,
                  want_previews: bool = False, unet_extra: torch.Tensor | None = None,
                  keep_outside: torch.Tensor | None = None) -> torch.Tensor:
    """img2img over the whole latent ``init`` for the last ``run_steps`` of ``job.plan.steps``,
    MultiDiffusion style: every step runs the UNet (and the ControlNets) on overlapping tiles,
    blends their noise predictions with feathered weights and steps the scheduler once on the
    whole latent. The noise comes from a CPU generator seeded ``seed``. ``unet_extra``: latent-size
    channels appended to each tile's UNet input (a 9-channel inpainting UNet's mask and masked
    picture), as diffusers' inpaint pipelines append them after the ControlNets ran.
    ``keep_outside``: a latent mask (1 = repaint) for a 4-channel UNet inpainting: after every step
    the places outside it are reset to ``init`` noised to the next step's level, as diffusers'
    inpaint pipeline does for such UNets."""
    pipe, plan = job.pipe, job.plan
    unet, steps, device = pipe.unet, plan.steps, pipe.unet.device
    unet = regional_unet(job, unet)  # regions.py: per-region predictions blended by mask (else the UNet itself)
    scheduler = make_scheduler(plan.sampler, job.scheduler_config)
    scheduler.set_timesteps(steps, device=device)
    order = getattr(scheduler, "order", 1)
    start = (steps - run_steps) * order
    timesteps = scheduler.timesteps[start:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = randn_tensor(init.shape, generator=generator, dtype=torch.float32)
    inpainting = unet_extra is not None or keep_outside is not None
    latents = _start(scheduler, init, noise, timesteps, from_noise=inpainting and run_steps >= steps).to(device)
    if keep_outside is None:
        del noise
    else:
        keep_outside = keep_outside.to(device, torch.float32)
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    embeds, added, guided = conditioning(job, tile * scale, device)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    grid = TileGrid(latents.shape[-2], latents.shape[-1], tile, axes)
    weight = grid.weight.to(device)
    if unet_extra is not None:
        unet_extra = unet_extra.to(device, unet.dtype)
    weights = torch.zeros(1, 1, grid.height, grid.width, device=device)
    for rows, cols in grid:
        add_tile(weights, weight[None, None], rows, cols)
    cfg = plan.cfg
    for i, t in enumerate(timesteps):
        model_input = scheduler.scale_model_input(latents, t)
        prediction = torch.zeros_like(latents)
        for rows, cols in grid:
            check()
            x = cut_tile(model_input, rows, cols).to(unet.dtype)
            x = torch.cat([x, x]) if guided else x
            kwargs = {"added_cond_kwargs": added} if added is not None else {}
            if controls:
                down, mid = controls.residuals(x, t, i, len(timesteps), rows, cols, embeds, added)
                if down is not None:
                    kwargs.update(down_block_additional_residuals=down, mid_block_additional_residual=mid)
            if unet_extra is not None:
                extra = cut_tile(unet_extra, rows, cols)
                x = torch.cat([x, torch.cat([extra] * x.shape[0])], dim=1)
            at_tile(unet, rows, cols)  # which part of the region masks this tile sees
            out = unet(x, t, encoder_hidden_states=embeds, return_dict=False, **kwargs)[0].float()
            if guided:
                uncond, cond = out.chunk(2)
                out = uncond + cfg * (cond - uncond)
            add_tile(prediction, out * weight, rows, cols)
        del model_input
        prediction /= weights
        result = scheduler.step(prediction, t, latents, return_dict=True, **step_kwargs)
        latents = result.prev_sample
        if keep_outside is not None:
            proper = init if i == len(timesteps) - 1 else scheduler.add_noise(init, noise, timesteps[i + 1:i + 2])
            latents = (1 - keep_outside) * proper.to(device) + keep_outside * latents
        preview = None
        if want_previews:
            x0 = getattr(result, "pred_original_sample", None)
            preview = latent_to_rgb(x0 if x0 is not None else latents, job.family)
        advance(preview)
    return latents


@torch.inference_mode()
def decode_tiled(vae, latents: torch.Tensor, scale: int, tile: int, axes: str,
                 check: Callable[[], None] = lambda: None) -> Image.Image:
    """Scaled latents (1, C, h, w) -> RGB picture, decoded in overlapping tiles of ``tile`` latent
    pixels that wrap on ``axes``; the blend is accumulated on the CPU."""
    f = scale
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    latents = latents / float(vae.config.scaling_factor) + shift
    grid = TileGrid(latents.shape[-2], latents.shape[-1], tile, axes)
    height, width = grid.height * f, grid.width * f
    acc = torch.zeros(3, height, width, dtype=torch.float32)  # on the CPU, whatever the device
    weights = torch.zeros(1, height, width, dtype=torch.float32)
    pixel_weight = torch.kron(grid.weight, torch.ones(f, f))
    for rows, cols in grid:
        check()
        z = cut_tile(latents, rows, cols).to(vae.device, vae.dtype)
        x = vae.decode(z, return_dict=False)[0][0].float().clamp(-1, 1).cpu()
        prows, pcols = pixel_index(rows, f), pixel_index(cols, f)
        add_tile(acc, x * pixel_weight, prows, pcols)
        add_tile(weights, pixel_weight[None], prows, pcols)
    acc /= weights
    del weights
    # In place: at 4096² each float copy of the picture would be another 192 MiB.
    rgb = acc.add_(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    del acc
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")
