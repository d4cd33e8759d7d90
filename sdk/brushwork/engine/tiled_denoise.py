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
    inpaint pipeline does for such UNets.

    The steps below follow a diffusers pipeline's ``__call__``; the test of each against the
    pipeline it mirrors is tests/sdk/test_executor_vs_diffusers.py."""
    pipe, plan = job.pipe, job.plan
    device = pipe.unet.device
    # 1. The scheduler and the timesteps of the last run_steps (img2img's get_timesteps)
    scheduler, timesteps = _timesteps(plan.sampler, job.scheduler_config, plan.steps, run_steps, device)
    # 2. The noise (a CPU generator seeded `seed`) and the first latents (prepare_latents)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = randn_tensor(init.shape, generator=generator, dtype=torch.float32)
    inpainting = unet_extra is not None or keep_outside is not None
    latents = _start(scheduler, init, noise, timesteps, from_noise=inpainting and run_steps >= plan.steps).to(device)
    if keep_outside is None:
        del noise  # only the kept-outside reset needs it again; at large sizes it is a full latent
    else:
        keep_outside = keep_outside.to(device, torch.float32)
    # 3. The text conditioning and the tiled noise predictor (UNet, ControlNets, regions, CFG)
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    grid = TileGrid(latents.shape[-2], latents.shape[-1], tile, axes)
    predict = _TiledPrediction(job, conditioning(job, tile * scale, device), grid, controls, unet_extra, check)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    # 4. The denoising loop
    for i, t in enumerate(timesteps):
        prediction = predict(scheduler.scale_model_input(latents, t), t, i, len(timesteps))
        result = scheduler.step(prediction, t, latents, return_dict=True, **step_kwargs)
        latents = result.prev_sample
        if keep_outside is not None:  # 4-channel inpaint: outside the mask follows the init
            latents = _keep_outside(scheduler, latents, init, noise, keep_outside, timesteps, i)
        advance(_preview(result, latents, job.family) if want_previews else None)
    return latents


def _timesteps(sampler: str, scheduler_config, steps: int, run_steps: int, device):
    """(scheduler, timesteps): the scheduler set for ``steps``, and its timesteps from where a run
    of the last ``run_steps`` begins (diffusers' img2img ``get_timesteps``)."""
    scheduler = make_scheduler(sampler, scheduler_config)
    scheduler.set_timesteps(steps, device=device)
    start = (steps - run_steps) * getattr(scheduler, "order", 1)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler, scheduler.timesteps[start:]


class _TiledPrediction:
    """One step's noise prediction over the whole latent: the UNet (regions.py: per-region
    predictions blended by mask; the ControlNets' residuals; a 9-channel UNet's extra channels)
    on every tile, classifier-free guidance per tile, blended with the feathered tile weights."""

    def __init__(self, job, conditioned: tuple, grid: TileGrid, controls: TileControls | None,
                 unet_extra: torch.Tensor | None, check: Callable[[], None]):
        self.unet = regional_unet(job, job.pipe.unet)
        device = job.pipe.unet.device
        self.embeds, self.added, self.guided = conditioned
        self.cfg = job.plan.cfg
        self.grid, self.controls, self.check = grid, controls, check
        self.extra = unet_extra.to(device, self.unet.dtype) if unet_extra is not None else None
        self.weight = grid.weight.to(device)
        self.weights = torch.zeros(1, 1, grid.height, grid.width, device=device)
        for rows, cols in grid:
            add_tile(self.weights, self.weight[None, None], rows, cols)

    def __call__(self, model_input: torch.Tensor, t, step: int, of: int) -> torch.Tensor:
        prediction = torch.zeros_like(model_input)
        for rows, cols in self.grid:
            self.check()
            add_tile(prediction, self._tile(model_input, t, step, of, rows, cols) * self.weight, rows, cols)
        prediction /= self.weights
        return prediction

    def _tile(self, model_input: torch.Tensor, t, step: int, of: int, rows, cols) -> torch.Tensor:
        x = cut_tile(model_input, rows, cols).to(self.unet.dtype)
        x = torch.cat([x, x]) if self.guided else x
        kwargs: dict = {"added_cond_kwargs": self.added} if self.added is not None else {}
        if self.controls:
            down, mid = self.controls.residuals(x, t, step, of, rows, cols, self.embeds, self.added)
            if down is not None:
                kwargs.update(down_block_additional_residuals=down, mid_block_additional_residual=mid)
        if self.extra is not None:  # after the ControlNets, as the inpaint pipelines concatenate
            extra = cut_tile(self.extra, rows, cols)
            x = torch.cat([x, torch.cat([extra] * x.shape[0])], dim=1)
        at_tile(self.unet, rows, cols)  # which part of the region masks this tile sees
        out = self.unet(x, t, encoder_hidden_states=self.embeds, return_dict=False, **kwargs)[0].float()
        if self.guided:
            uncond, cond = out.chunk(2)
            out = uncond + self.cfg * (cond - uncond)
        return out


def _keep_outside(scheduler, latents, init, noise, keep_outside, timesteps, i: int) -> torch.Tensor:
    """After step ``i``: outside the mask the init noised to the next step's level (the init
    itself after the last step), inside it the denoised latents (diffusers' 4-channel inpaint)."""
    proper = init if i == len(timesteps) - 1 else scheduler.add_noise(init, noise, timesteps[i + 1:i + 2])
    return (1 - keep_outside) * proper.to(latents.device) + keep_outside * latents


def _preview(result, latents: torch.Tensor, family: str) -> Image.Image:
    """A latent-sized preview of the step: its predicted clean sample where the scheduler gives one."""
    x0 = getattr(result, "pred_original_sample", None)
    return latent_to_rgb(x0 if x0 is not None else latents, family)


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
