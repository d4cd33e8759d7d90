"""One image through one pipeline: scheduler, generator, callback and the task's arguments.

Every batch image is a separate call with its own ``torch.Generator`` seeded ``seed + i`` and a
fresh scheduler, so image i of a batch is reproduced pixel for pixel by running it alone. The
generator lives on the CPU: the initial noise is then the same on every device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..recipe import Recipe
from .inputs import Inputs
from .progress import StepWatcher
from .samplers import make_scheduler


@dataclass
class Job:
    """Everything shared by the images of one generate() call."""

    pipe: Any
    family: str
    task: str  # the pipeline's task: txt2img, img2img, inpaint
    recipe: Recipe
    inputs: Inputs
    prompt_kwargs: dict  # prompt / embeds from engine.prompts (or plain strings)
    scheduler_config: dict
    controls: list  # the recipe's Control entries that have a loaded ControlNet, in order
    preview_decoder: Any = None  # tiny-VAE previews (fast path), else linear latent→RGB
    strength: float | None = None  # overrides the recipe's (txt2img on an inpainting checkpoint)


def task_kwargs(job: Job) -> dict:
    r, inp = job.recipe, job.inputs
    kwargs: dict = {"num_inference_steps": r.steps, "guidance_scale": r.cfg, "output_type": "pil"}
    if job.task == "txt2img":
        kwargs.update(height=r.height, width=r.width)
    if job.task in ("img2img", "inpaint"):
        kwargs.update(image=inp.init, strength=r.strength if job.strength is None else job.strength)
    if job.task == "inpaint":
        kwargs.update(mask_image=inp.mask, height=r.height, width=r.width)
    if job.controls:
        pictures = inp.controls
        single = len(job.controls) == 1
        # txt2img ControlNet pipelines take the control picture as `image`; the others have
        # `image` for the init picture and `control_image` for the controls.
        name = "image" if job.task == "txt2img" else "control_image"
        kwargs[name] = pictures[0] if single else list(pictures)
        scales = [float(c.strength) for c in job.controls]
        kwargs["controlnet_conditioning_scale"] = scales[0] if single else scales
        kwargs["control_guidance_start"] = [float(c.start) for c in job.controls]
        kwargs["control_guidance_end"] = [float(c.end) for c in job.controls]
    return kwargs


def run_one(job: Job, *, seed: int, index: int, on_progress=None, cancel=None):
    """Generate image ``index`` of the job with ``seed``; raises progress._Cancelled."""
    scheduler = make_scheduler(job.recipe.sampler, job.scheduler_config)
    watcher = StepWatcher(family=job.family, image_index=index, on_progress=on_progress, cancel=cancel,
                          preview_decoder=job.preview_decoder)
    watcher.watch(scheduler)
    job.pipe.scheduler = scheduler
    kwargs = {**task_kwargs(job), **job.prompt_kwargs,
              "generator": torch.Generator("cpu").manual_seed(int(seed))}
    if on_progress is not None or cancel is not None:
        kwargs["callback_on_step_end"] = watcher
    with torch.inference_mode():
        out = job.pipe(**kwargs)
    return out.images[0]
