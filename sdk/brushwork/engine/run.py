"""One image through one pipeline: scheduler, generator, callback and the task's arguments.

Every batch image is a separate call with its own ``torch.Generator`` seeded ``seed + i`` and a
fresh scheduler, so image i of a batch is reproduced pixel for pixel by running it alone. The
generator lives on the CPU: the initial noise is then the same on every device.

What the call does (task, sizes, strength, control ranges) is read off the job's ``Plan``
(``engine/plan.py``); nothing here decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .inputs import Inputs
from .noise import seed_generator
from .plan import Plan
from .progress import StepWatcher
from .references import ReferenceRun, attached, chain
from .regions import Regions, regional
from .samplers import make_scheduler


@dataclass
class Execution:
    """A Plan with what it runs on: the loaded pipeline, the prompt embeddings, the decoded pictures.
    Shared by the images of one generate() call; a sub-run (a base pass, an inpaint crop) is a copy
    with the sub-plan and its own pictures."""

    pipe: Any
    plan: Plan
    inputs: Inputs
    prompt_kwargs: dict  # prompt / embeds from engine.prompts (or plain strings)
    scheduler_config: dict
    preview_decoder: Any = None  # tiny-VAE previews (fast path), else linear latent→RGB
    regions: Regions | None = None  # region masks and prompts (regions.py); the plan says when they act
    references: ReferenceRun | None = None  # loaded IP-Adapters + image embeds (references.py)

    @property
    def family(self) -> str:
        return self.plan.family


def task_kwargs(job: Execution) -> dict:
    p, inp = job.plan, job.inputs
    kwargs: dict = {"num_inference_steps": p.steps, "guidance_scale": p.cfg, "output_type": "pil"}
    if p.pipeline_task == "txt2img":
        kwargs.update(height=p.height, width=p.width)
    if p.pipeline_task in ("img2img", "inpaint"):
        kwargs.update(image=inp.init, strength=p.strength)
    if p.pipeline_task == "inpaint":
        kwargs.update(mask_image=inp.mask, height=p.height, width=p.width)
    if p.controls:
        pictures = inp.controls
        single = len(p.controls) == 1
        # txt2img ControlNet pipelines take the control picture as `image`; the others have
        # `image` for the init picture and `control_image` for the controls.
        name = "image" if p.pipeline_task == "txt2img" else "control_image"
        kwargs[name] = pictures[0] if single else list(pictures)
        scales = [c.strength for c in p.controls]
        kwargs["controlnet_conditioning_scale"] = scales[0] if single else scales
        kwargs["control_guidance_start"] = [c.start for c in p.controls]
        kwargs["control_guidance_end"] = [c.end for c in p.controls]
    return kwargs


def run_one(job: Execution, *, seed: int, index: int, on_progress=None, cancel=None):
    """Generate image ``index`` of the job with ``seed``; raises progress._Cancelled."""
    scheduler = make_scheduler(job.plan.sampler, job.scheduler_config)
    watcher = StepWatcher(family=job.family, image_index=index, on_progress=on_progress, cancel=cancel,
                          preview_decoder=job.preview_decoder)
    watcher.watch(scheduler)
    job.pipe.scheduler = scheduler
    kwargs = {**task_kwargs(job), **job.prompt_kwargs,
              "generator": seed_generator(seed, job.pipe, scheduler)}  # fp32 noise at any dtype (noise.py)
    if on_progress is not None or cancel is not None:
        kwargs["callback_on_step_end"] = watcher
    # references: IP-Adapter processors in the UNet for this call only, scales per step (references.py)
    with attached(job.references, job.pipe, tuple(r.steps for r in job.plan.references)) as (extra, on_step):
        kwargs.update(extra)
        if on_step is not None:
            kwargs["callback_on_step_end"] = chain(on_step, kwargs.get("callback_on_step_end"))
        with torch.inference_mode(), regional(job):  # regions: the UNet blends per-region predictions
            out = job.pipe(**kwargs)
    return out.images[0]
