"""The pipeline cache: load each base model once, derive every task from it without reloading.

A *base* is the txt2img pipeline of one model (weights on the device). Img2img, inpaint and the
ControlNet variants are built from it with ``PipelineClass.from_pipe``, which shares the very
same UNet / VAE / text encoder objects, so switching task costs no load and no memory. Bases live
in an LRU within a byte budget; ControlNets and VAE overrides are cached by their reference.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diffusers import (
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)

from ..errors import OutOfMemoryError
from .memory import module_bytes, pipeline_bytes, release_cached_memory

log = logging.getLogger(__name__)

# (family, task, with ControlNet) -> pipeline class
PIPELINE_CLASSES: dict[tuple[str, str, bool], type[Any]] = {
    ("sd15", "txt2img", False): StableDiffusionPipeline,
    ("sd15", "img2img", False): StableDiffusionImg2ImgPipeline,
    ("sd15", "inpaint", False): StableDiffusionInpaintPipeline,
    ("sd15", "txt2img", True): StableDiffusionControlNetPipeline,
    ("sd15", "img2img", True): StableDiffusionControlNetImg2ImgPipeline,
    ("sd15", "inpaint", True): StableDiffusionControlNetInpaintPipeline,
    ("sdxl", "txt2img", False): StableDiffusionXLPipeline,
    ("sdxl", "img2img", False): StableDiffusionXLImg2ImgPipeline,
    ("sdxl", "inpaint", False): StableDiffusionXLInpaintPipeline,
    ("sdxl", "txt2img", True): StableDiffusionXLControlNetPipeline,
    ("sdxl", "img2img", True): StableDiffusionXLControlNetImg2ImgPipeline,
    ("sdxl", "inpaint", True): StableDiffusionXLControlNetInpaintPipeline,
}


def family_of(pipe, declared: str | None = None) -> str:
    """sd15 or sdxl: what the loader declared, else what the pipeline's parts say (two text
    encoders and time-id embeddings mean SDXL)."""
    if declared in ("sd15", "sdxl"):
        return declared
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    if (getattr(getattr(pipe, "unet", None), "config", None) is not None
            and pipe.unet.config.get("addition_embed_type") == "text_time"):
        return "sdxl"
    return "sd15"


@dataclass
class LoadedBase:
    key: str  # what identifies the weights (resolved path or repo id)
    family: str
    pipe: Any  # the txt2img pipeline; owns the shared components
    scheduler_config: dict  # the model's own, before any sampler replaced it
    original_vae: Any
    model_ref: Any = None
    nbytes: int = 0
    loaded_at: float = field(default_factory=time.time)
    derived: dict = field(default_factory=dict)  # (task, controlnet keys) -> pipeline
    # Whether it is a 9-channel inpainting checkpoint is a planner fact: plan.ModelFacts.nine_channels.


class PipelineCache:
    """Thread-safe LRU of bases plus caches of ControlNets and VAEs (by reference)."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = int(budget_bytes)
        self._bases: OrderedDict[str, LoadedBase] = OrderedDict()
        self._controlnets: OrderedDict[str, Any] = OrderedDict()
        self._vaes: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.RLock()
        self.base_loads = 0  # how many times a base was read from disk (tests prove reuse)
        self.controlnet_loads = 0

    # ---- bases --------------------------------------------------------------------------

    def base(self, key: str, load: Callable[[], tuple[Any, str | None, Any]],
             estimate_bytes: int = 0) -> LoadedBase:
        """The cached base for ``key``, loading it with ``load() -> (pipe, family, model_ref)``."""
        with self._lock:
            entry = self._bases.get(key)
            if entry is not None:
                self._bases.move_to_end(key)
                return entry
            self._evict_for(estimate_bytes, keep=None)
            try:
                pipe, family, model_ref = load()
            except OutOfMemoryError:
                if not (self._bases or self._controlnets or self._vaes):
                    raise
                # The budget is a guess; the device's memory is the truth. Make room, retry once.
                log.info("out of memory loading %s: unloading the other models and retrying", key)
                self.unload(None)
                pipe, family, model_ref = load()
            self.base_loads += 1
            entry = LoadedBase(key=key, family=family_of(pipe, family), pipe=pipe,
                               scheduler_config=dict(pipe.scheduler.config), original_vae=pipe.vae,
                               model_ref=model_ref, nbytes=pipeline_bytes(pipe))
            self._bases[key] = entry
            self._evict_for(0, keep=key)
            return entry

    def for_task(self, base: LoadedBase, task: str, controlnets: list[tuple[str, Any]]):
        """The pipeline for ``task`` with these (key, model) ControlNets, sharing base's parts."""
        key = (task, tuple(k for k, _ in controlnets))
        with self._lock:
            pipe = base.derived.get(key)
            if pipe is not None:
                return pipe
            cls = PIPELINE_CLASSES[(base.family, task, bool(controlnets))]
            kwargs = {}
            if controlnets:
                models = [m for _, m in controlnets]
                kwargs["controlnet"] = models[0] if len(models) == 1 else models
            if type(base.pipe) is cls and not kwargs:
                pipe = base.pipe
            else:
                pipe = cls.from_pipe(base.pipe, **kwargs)
                pipe.set_progress_bar_config(disable=True)  # from_pipe does not carry it over
            # Derived pipelines of many ControlNet combinations are cheap (shared modules) but
            # unbounded: keep the most recent few.
            if len(base.derived) >= 16:
                base.derived.pop(next(iter(base.derived)))
            base.derived[key] = pipe
            return pipe

    # ---- ControlNets and VAEs ------------------------------------------------------------

    def controlnet(self, key: str, load: Callable[[], Any]):
        with self._lock:
            net = self._controlnets.get(key)
            if net is None:
                self._evict_for(0, keep=None)
                net = load()
                self.controlnet_loads += 1
                self._controlnets[key] = net
            else:
                self._controlnets.move_to_end(key)
            return net

    def vae(self, key: str, load: Callable[[], Any]):
        with self._lock:
            vae = self._vaes.get(key)
            if vae is None:
                vae = load()
                self._vaes[key] = vae
                while len(self._vaes) > 4:
                    self._vaes.popitem(last=False)
            else:
                self._vaes.move_to_end(key)
            return vae

    # ---- bookkeeping ----------------------------------------------------------------------

    def used_bytes(self) -> int:
        return (sum(b.nbytes for b in self._bases.values())
                + module_bytes(*self._controlnets.values(), *self._vaes.values()))

    def _evict_for(self, incoming: int, keep: str | None) -> None:
        """Drop least-recently-used ControlNets, then bases, until ``incoming`` more fits."""
        while self.used_bytes() + incoming > self.budget_bytes:
            if self._controlnets:
                key, _ = self._controlnets.popitem(last=False)
                self._forget_derived(key)
                log.info("unloading ControlNet %s (memory budget)", key)
            else:
                victims = [k for k in self._bases if k != keep]
                if not victims:
                    break  # the one model we need is bigger than the budget: run anyway
                log.info("unloading %s (memory budget)", victims[0])
                del self._bases[victims[0]]
            release_cached_memory()

    def _forget_derived(self, controlnet_key: str) -> None:
        """Drop derived pipelines holding this ControlNet, or its memory would never be freed."""
        for base in self._bases.values():
            for key in [k for k in base.derived if controlnet_key in k[1]]:
                del base.derived[key]

    def loaded(self) -> list[dict]:
        with self._lock:
            models = [{"kind": "model", "key": b.key, "family": b.family, "bytes": b.nbytes,
                       "tasks": sorted({t for t, _ in b.derived})} for b in self._bases.values()]
            models += [{"kind": "controlnet", "key": k, "bytes": module_bytes(m)}
                       for k, m in self._controlnets.items()]
            models += [{"kind": "vae", "key": k, "bytes": module_bytes(m)} for k, m in self._vaes.items()]
            return models

    def unload(self, key: str | None = None) -> int:
        """Unload one model/ControlNet/VAE by key, or everything (None). Returns how many."""
        with self._lock:
            count = 0
            for store in (self._bases, self._controlnets, self._vaes):
                for k in [k for k in store if key is None or k == key]:
                    del store[k]
                    self._forget_derived(k)
                    count += 1
        release_cached_memory()
        return count
