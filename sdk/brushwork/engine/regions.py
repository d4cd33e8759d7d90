"""Regions: each region's prompt conditions only its area, by noise predictions blended by mask.

Method ("latent couple" / MultiDiffusion's region prompts): at every denoising step the UNet runs
once with the base prompt and once per active region with that region's prompt (batched in one
call when their embeddings have the same length), and the predictions are blended per latent pixel:

    eps = eps_base * (1 - sum_r w_r m_r) + sum_r w_r m_r * eps_r

``m_r`` is the region's mask at latent size (area average of the pixels under each latent pixel,
so soft edges stay soft), ``w_r`` its weight; where the weighted masks add up to more than 1 they
are scaled down to sum to 1 (overlapping regions share the place, never extrapolate). Both CFG
halves are blended alike; the unconditional half of a region uses its own negative prompt when it
has one (else the base's, which needs no extra pass). Since CFG is linear, the result is each
area's own guided prediction. A region acts only on its steps (``RegionPlan.steps``: a
ControlNet's start/end rule); a region whose mask is empty under the current view costs nothing.

Why this method and not attention masking: it needs nothing from inside the UNet, so it works
unchanged with every path Brushwork has (the diffusers pipelines, ControlNet residuals, which are
computed once with the base prompt and shared by every pass, the tiled path's UNet calls per tile,
9-channel inpainting UNets, SDXL's pooled embeddings and size conditioning: each region pass gets
its own pooled ``text_embeds``), and with no attention-processor surgery it cannot conflict with
LoRA layers, fused QKV, torch.compile or IP-Adapter processors. The cost: one more UNet batch entry
per active region per step (per CFG half only where the region has its own negative prompt).

A region's LoRAs (``Region.loras``) act in its passes only: its prompt is encoded with them active
(``encode_regions``) and its UNet passes, a call of their own, switch the UNet's peft adapters to
the recipe's plus the region's for that call and back (``_set_unet_adapters``).

How it hooks in: during one pipeline call (``run.run_one``) ``pipe.unet`` is replaced by a
``RegionalUNet`` that stands in for the real one (every attribute is the real UNet's); the tiled
denoise calls it per tile and says which tile (``at_tile``). Which part of the recipe's picture a
run's picture is comes from the plan (``RegionsPlan.window`` for an inpaint crop; otherwise the
whole picture, at the run's size: a tiled txt2img base pass is the picture made small).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..conditioning.images import has_real_alpha, open_image
from ..errors import BrushworkError
from ..recipe import Recipe
from .adapters import active_loras, apply_adapters
from .prompts import encode_prompts
from .regions_plan import RegionsPlan, check_mask_proportions, refuse_unsupported

# ---- what a run needs: masks (read before any model loads) and embeddings ---------------------


@dataclass
class RegionConds:
    """One region's text conditioning (batch of one), as ``encode_prompts`` gives it."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None  # SDXL
    negative: torch.Tensor | None  # its own negative prompt's (or the base's under its LoRAs); None: the base's
    negative_pooled: torch.Tensor | None
    adapters: tuple[tuple[str, float], ...] | None = None  # the UNet's LoRAs for its passes; None: the base's


@dataclass
class Regions:
    """The job's region masks (float [R, 1, H, W] in [0, 1] at the recipe's size, on the CPU) and
    conditionings (filled in once the pipeline is loaded); ``base_adapters``: the LoRAs active for
    the base prompt's passes (restored after each region pass that switched them)."""

    masks: torch.Tensor
    conds: list[RegionConds]
    base_adapters: tuple[tuple[str, float], ...] = ()


@dataclass
class RegionLoras:
    """Resolved LoRA files (path, weight): the recipe's own, each region's, and the embeddings, as
    ``adapters.apply_adapters`` takes them."""

    base: list[tuple[str, float]]
    regions: list[list[tuple[str, float]]]
    embeddings: list[tuple[str, str]]
    allow_pickle: bool = False


def read_region_masks(recipe: Recipe, read: Callable[[str], bytes]) -> torch.Tensor | None:
    """Every region's mask as float [R, 1, H, W] (1 = the region) at the recipe's width x height,
    or None without regions. A mask with the picture's proportions but another size is resized
    (area average: a mask painted on a preview works); other proportions are an InputImageError
    (a stretched region would land somewhere else). Transparency, when the mask has it, is the
    region (a stroke on an empty layer); otherwise brightness. Raises before any model loads."""
    if not recipe.regions:
        return None
    refuse_unsupported(recipe)
    size = recipe.generated_size
    return torch.stack([_mask_tensor(read(r.mask), size, f"regions[{i}].mask")
                        for i, r in enumerate(recipe.regions)])


def _mask_tensor(data: bytes, size: tuple[int, int], what: str) -> torch.Tensor:
    img = open_image(data, what=what)
    check_mask_proportions(img.size, size, what)
    grey = img.convert("RGBA").getchannel("A") if has_real_alpha(img) else img.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.BOX)
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None]


def encode_regions(pipe, recipe: Recipe, family: str, loras: RegionLoras | None = None) -> list[RegionConds]:
    """Each region's prompt (with the recipe's negative prompt, which its chunks pad to) and,
    where it has one, its own negative prompt; cached like every prompt. A region with LoRAs is
    encoded with them active next to the recipe's (they may change the text encoders) and records
    the UNet adapters its passes use; the pipeline is left with the recipe's own LoRAs active."""
    conds = []
    switched = False
    for i, region in enumerate(recipe.regions):
        own = loras.regions[i] if loras is not None else []
        adapters = None
        if own:
            assert loras is not None
            apply_adapters(pipe, loras.base + own, loras.embeddings, allow_pickle=loras.allow_pickle)
            adapters, switched = tuple(sorted(active_loras(pipe).items())), True
        elif switched:
            assert loras is not None
            apply_adapters(pipe, loras.base, loras.embeddings, allow_pickle=loras.allow_pickle)
            switched = False
        pos = encode_prompts(pipe, region.prompt, recipe.negative_prompt, family=family)
        neg = encode_prompts(pipe, region.prompt, region.negative_prompt, family=family) \
            if region.negative_prompt.strip() else None
        if neg is None and adapters is not None:
            # its LoRAs change the unconditional half too (the text encoders and the UNet): the
            # recipe's negative prompt as encoded with them active
            neg = pos
        conds.append(RegionConds(embeds=pos["prompt_embeds"], pooled=pos.get("pooled_prompt_embeds"),
                                 negative=None if neg is None else neg["negative_prompt_embeds"],
                                 negative_pooled=None if neg is None else neg.get("negative_pooled_prompt_embeds"),
                                 adapters=adapters))
    if switched:
        assert loras is not None
        apply_adapters(pipe, loras.base, loras.embeddings, allow_pickle=loras.allow_pickle)
    return conds


def base_adapters(pipe) -> tuple[tuple[str, float], ...]:
    """The LoRAs active on ``pipe`` now (the recipe's own), for ``Regions.base_adapters``."""
    return tuple(sorted(active_loras(pipe).items()))


def _set_unet_adapters(unet, adapters: tuple[tuple[str, float], ...]) -> None:
    """Exactly ``adapters`` active in the UNet (as adapters._activate does for a ModelMixin)."""
    present = set(getattr(unet, "peft_config", None) or ())
    names = [n for n, _ in adapters if n in present]
    if names:
        unet.enable_lora()
        unet.set_adapters(names, [w for n, w in adapters if n in present])
    elif present:
        unet.disable_lora()


# ---- the stand-in UNet ----------------------------------------------------------------------------


@dataclass
class _Pass:
    half: int  # which CFG half's inputs it takes (0: the unconditional one when guided)
    embeds: torch.Tensor  # [1, seq, dim]
    pooled: torch.Tensor | None
    region: int | None  # None: the base prompt
    adapters: tuple[tuple[str, float], ...] | None = None  # the UNet's LoRAs for it; None: the base's


class RegionalUNet:
    """Stands in for a UNet during one denoising run (see the module doc)."""

    def __init__(self, unet, regions: Regions, plan: Any):
        self.unet = unet
        self.regions = regions
        self.plan: RegionsPlan = plan.regions
        self.picture = (int(plan.height), int(plan.width))  # the run's picture, in pixels
        self.vae_scale = int(plan.vae_scale)
        self.tile: tuple[torch.Tensor, torch.Tensor] | None = None  # latent rows, cols (tiled path)
        self.step = -1
        self._last_t: float | None = None
        self._latent_masks: dict[tuple[int, int], torch.Tensor] = {}

    def __getattr__(self, name: str):  # config, dtype, device, add_embedding, ...: the real UNet's
        if name == "unet":  # not set yet (copy, pickle): no endless lookup
            raise AttributeError(name)
        return getattr(self.unet, name)

    # ---- masks ------------------------------------------------------------------------------

    def _picture_masks(self) -> torch.Tensor:
        """[R, 1, h, w] weighted masks over the run's picture, in pixels."""
        masks = self.regions.masks
        if self.plan.window is not None:  # an inpaint crop: that part of the picture (wrapping)
            x, y, w, h = self.plan.window
            rows = torch.arange(y, y + h) % masks.shape[-2]
            cols = torch.arange(x, x + w) % masks.shape[-1]
            masks = masks.index_select(-2, rows).index_select(-1, cols)
        if tuple(masks.shape[-2:]) != self.picture:  # the tiled txt2img base pass: the picture made small
            masks = F.interpolate(masks, size=self.picture, mode="area")
        weights = torch.tensor([r.weight for r in self.plan.items], dtype=torch.float32)
        return masks * weights[:, None, None, None]

    def _masks_at(self, height: int, width: int) -> torch.Tensor:
        """[R, 1, height, width] weighted masks at latent size (area average), cached."""
        key = (height, width)
        if key not in self._latent_masks:
            self._latent_masks[key] = F.interpolate(self._picture_masks(), size=key, mode="area")
        return self._latent_masks[key]

    def _view(self, sample: torch.Tensor) -> torch.Tensor:
        if self.tile is None:
            return self._masks_at(sample.shape[-2], sample.shape[-1])
        rows, cols = self.tile
        whole = self._masks_at(self.picture[0] // self.vae_scale, self.picture[1] // self.vae_scale)
        return whole.index_select(-2, rows.cpu()).index_select(-1, cols.cpu())

    # ---- the call ---------------------------------------------------------------------------

    def _count_step(self, timestep) -> None:
        # A new timestep value is a new step: tiles of one step share it, and Heun's two calls of a
        # step come as t_i, t_i (its schedule repeats each timestep), so it counts steps exactly.
        t = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) else float(timestep)
        if t != self._last_t:
            self.step += 1
            self._last_t = t

    def __call__(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, **kwargs):
        self._count_step(timestep)
        masks = self._view(sample)
        active = [(k, r.index) for k, r in enumerate(self.plan.items)
                  if self.step in r.steps and bool(masks[k].any())]
        if not active:
            return self.unet(sample, timestep, encoder_hidden_states, **kwargs)
        batch = sample.shape[0]
        if batch not in (1, 2):
            raise BrushworkError(f"regions expect one picture per UNet call (2 with CFG), got a batch of {batch}")
        guided = batch == 2  # diffusers' and the tiled path's CFG order: [unconditional, conditional]
        added = kwargs.get("added_cond_kwargs") or {}
        base_pooled = added.get("text_embeds")
        passes = [_Pass(h, encoder_hidden_states[h:h + 1], None if base_pooled is None else base_pooled[h:h + 1], None)
                  for h in range(batch)]
        cond_half = batch - 1
        for _, index in active:
            c = self.regions.conds[index]
            passes.append(_Pass(cond_half, c.embeds, c.pooled, index, c.adapters))
            if guided and c.negative is not None:
                passes.append(_Pass(0, c.negative, c.negative_pooled, index, c.adapters))
        eps = self._run(passes, sample, timestep, kwargs, encoder_hidden_states.dtype)
        return_dict = kwargs.get("return_dict", True)
        out = self._blend(passes, eps, masks, active, batch).to(eps[0].dtype)
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=out)
        return (out,)

    def _run(self, passes: list[_Pass], sample, timestep, kwargs: dict, dtype: torch.dtype) -> list[torch.Tensor]:
        """Each pass's prediction [1, C, h, w]: one UNet call per group of equally long embeddings."""
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(passes):
            groups.setdefault((p.embeds.shape[1], p.adapters), []).append(i)
        eps: list[torch.Tensor | None] = [None] * len(passes)
        for (_, adapters), members in groups.items():
            halves = torch.tensor([passes[i].half for i in members], device=sample.device)
            call = {k: _pick(v, halves, sample.shape[0]) for k, v in kwargs.items() if k != "return_dict"}
            if "added_cond_kwargs" in call and passes[members[0]].pooled is not None:
                pooled = torch.cat([passes[i].pooled for i in members])
                call["added_cond_kwargs"] = {**call["added_cond_kwargs"],
                                             "text_embeds": pooled.to(sample.device, _pooled_dtype(kwargs))}
            embeds = torch.cat([passes[i].embeds for i in members]).to(sample.device, dtype)
            t = _pick(timestep, halves, sample.shape[0])
            if adapters is None:
                out = self.unet(sample.index_select(0, halves), t, embeds, return_dict=False, **call)[0]
            else:  # the region's LoRAs for this call only
                _set_unet_adapters(self.unet, adapters)
                try:
                    out = self.unet(sample.index_select(0, halves), t, embeds, return_dict=False, **call)[0]
                finally:
                    _set_unet_adapters(self.unet, self.regions.base_adapters)
            for j, i in enumerate(members):
                eps[i] = out[j:j + 1]
        return [e for e in eps if e is not None]

    @staticmethod
    def _blend(passes: list[_Pass], eps: list[torch.Tensor], masks: torch.Tensor, active, batch: int) -> torch.Tensor:
        weights = masks[[k for k, _ in active]].to(eps[0].device, torch.float32)  # [A, 1, h, w]
        total = weights.sum(0, keepdim=True)
        weights = weights / total.clamp(min=1.0)  # overlaps never add up to more than 1
        rest = 1.0 - weights.sum(0)
        halves = []
        for h in range(batch):
            base = eps[h].float()  # the first passes are the base prompt's, one per half
            blended = base * rest
            for a, (_, index) in enumerate(active):
                own = next((e for p, e in zip(passes, eps, strict=True) if p.region == index and p.half == h), None)
                blended = blended + weights[a] * (base if own is None else own.float())
            halves.append(blended)
        return torch.cat(halves)


def _pooled_dtype(kwargs: dict) -> torch.dtype:
    return kwargs["added_cond_kwargs"]["text_embeds"].dtype


def _pick(value, halves: torch.Tensor, batch: int):
    """``value`` (a UNet keyword argument) for the passes: tensors batched like the sample take
    the rows of the passes' halves; lists, tuples and dicts of them likewise; anything else as is."""
    if isinstance(value, torch.Tensor):
        if value.ndim >= 1 and value.shape[0] == batch:
            return value.index_select(0, halves.to(value.device))
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_pick(v, halves, batch) for v in value)
    if isinstance(value, dict):
        return {k: _pick(v, halves, batch) for k, v in value.items()}
    return value


# ---- installing it -----------------------------------------------------------------------------


def regional_unet(job, unet):
    """``unet`` itself when the job has no regions, else a RegionalUNet over it for the job's plan."""
    if getattr(job, "regions", None) is None or getattr(job.plan, "regions", None) is None:
        return unet
    return RegionalUNet(unet, job.regions, job.plan)


def at_tile(unet, rows: torch.Tensor, cols: torch.Tensor) -> None:
    """Tell a RegionalUNet which latent rows/columns of the run's picture the next call covers."""
    if isinstance(unet, RegionalUNet):
        unet.tile = (rows, cols)


@contextmanager
def regional(job) -> Iterator[RegionalUNet | None]:
    """Inside the block ``job.pipe.unet`` blends the job's regions (nothing changes without)."""
    pipe = job.pipe
    unet = pipe.unet
    stand_in = regional_unet(job, unet)
    if stand_in is unet:
        yield None
        return
    # object.__setattr__: DiffusionPipeline.__setattr__ would record the stand-in in the config
    object.__setattr__(pipe, "unet", stand_in)
    try:
        yield stand_in
    finally:
        object.__setattr__(pipe, "unet", unet)
