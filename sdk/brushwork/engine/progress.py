"""Step progress, cancellation and cheap previews.

A preview is the *predicted clean latent* (x0) mapped to RGB with a fixed linear matrix: no VAE
decode, so it costs microseconds and works while the UNet owns the GPU. The noisy latent the
pipeline hands to its callback is mostly noise early on, so we capture x0 where the scheduler
computes it, by wrapping that one scheduler instance's ``step``.

On CUDA the preview never stalls the GPU queue: the small RGB picture is computed on the device,
copied into pinned memory without blocking, and handed to ``on_progress`` once a CUDA event says
the copy has landed: at the next step's callback at the latest, the last step's at once. A
synchronous ``.to("cpu")`` every step would make the CPU wait for the GPU to drain its queue, so
the next step's kernels would be launched onto an idle GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

# Rows = latent channels, columns = R, G, B (FIELD_NOTES). Output roughly in [-1, 1].
SD15_FACTORS = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
SD15_BIAS = [0.0, 0.0, 0.0]
SDXL_FACTORS = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
                [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
SDXL_BIAS = [0.1084, -0.0175, -0.0011]


@dataclass
class Progress:
    step: int  # 1-based, after this many steps
    total: int
    preview: Image.Image | None  # latent→RGB of the predicted x0, no VAE decode
    image_index: int = 0


class _Cancelled(Exception):
    """Raised inside the pipeline's step callback: unwinds before the VAE decode runs."""


def latent_to_rgb(latent: torch.Tensor, family: str, *, factors=None, bias=None) -> Image.Image:
    """A latent-sized RGB picture of one latent (C,H,W) or (1,C,H,W). ``factors``/``bias``
    override the family's (a model with its own VAE, like the bundled demo, ships its own)."""
    latent = latent[0] if latent.dim() == 4 else latent
    rgb = _rgb_tensor(latent.detach().to("cpu"), family, factors=factors, bias=bias).numpy()
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


def _rgb_tensor(latent: torch.Tensor, family: str, *, factors=None, bias=None) -> torch.Tensor:
    """(H, W, 3) uint8 on the latent's own device."""
    if latent.dim() == 4:
        latent = latent[0]
    if factors is None:
        factors, bias = (SDXL_FACTORS, SDXL_BIAS) if family == "sdxl" else (SD15_FACTORS, SD15_BIAS)
    bias = bias if bias is not None else [0.0, 0.0, 0.0]
    lat = latent.detach().to(torch.float32)[: len(factors)]
    matrix, offset = _factor_tensors(lat.device, tuple(map(tuple, factors[: lat.shape[0]])), tuple(bias))
    rgb = torch.einsum("chw,cr->hwr", lat, matrix) + offset
    return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@functools.lru_cache(maxsize=32)
def _factor_tensors(device: torch.device, factors: tuple, bias: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The factors on ``device``, made once. A plain torch.tensor(..., device="cuda") copies from
    pageable memory, which waits for the whole GPU queue: exactly the stall previews must avoid."""
    matrix, offset = torch.tensor(factors, dtype=torch.float32), torch.tensor(bias, dtype=torch.float32)
    if device.type != "cuda":
        return matrix.to(device), offset.to(device)
    return (matrix.pin_memory().to(device, non_blocking=True), offset.pin_memory().to(device, non_blocking=True))


class _InFlight:
    """One preview on its way from the GPU: a non-blocking copy into pinned memory, then an event."""

    def __init__(self, step: int, total: int, rgb: torch.Tensor):
        self.step, self.total = step, total
        self._source = rgb  # kept alive until the copy has run
        self.host = torch.empty(rgb.shape, dtype=torch.uint8, pin_memory=True)
        self.host.copy_(rgb, non_blocking=True)
        self.copied = torch.cuda.Event()
        self.copied.record()  # on the current stream, after the copy

    def image(self) -> Image.Image:
        self.copied.synchronize()  # waits for this copy only, not for later queued work
        return Image.fromarray(np.ascontiguousarray(self.host.numpy()), "RGB")


class StepWatcher:
    """Builds the pipeline's ``callback_on_step_end`` for one image.

    Checks ``cancel`` every step (raising ``_Cancelled`` so the decode never runs) and, only when
    someone listens, turns the step's x0 into a preview.
    """

    def __init__(self, *, family: str, image_index: int,
                 on_progress: Callable[[Progress], Any] | None, cancel: Any | None,
                 preview_decoder: Callable[[torch.Tensor], Image.Image] | None = None):
        self.family = family
        self.preview_decoder = preview_decoder  # a tiny VAE, when the fast path has one
        self.image_index = image_index
        self.on_progress = on_progress
        self.cancel = cancel
        self.steps_seen = 0
        self._x0: torch.Tensor | None = None
        self._in_flight: _InFlight | None = None  # a CUDA preview not yet handed over

    def cancelled(self) -> bool:
        return self.cancel is not None and bool(self.cancel.is_set())

    def watch(self, scheduler) -> None:
        """Capture x0 from this scheduler instance's steps (only if anyone wants previews)."""
        if self.on_progress is None:
            return
        original_step = scheduler.step

        # wraps(): pipelines inspect step()'s signature to decide whether to pass `generator`
        # and `eta`; without it an ancestral sampler would silently draw from the global RNG.
        @functools.wraps(original_step)
        def step(*args, **kwargs):
            out = original_step(*args, **kwargs)
            self._x0 = _predicted_x0(scheduler, out)
            return out

        scheduler.step = step  # instance attribute: this scheduler is built for one image only

    def __call__(self, pipe, i: int, t, callback_kwargs: dict) -> dict:
        self.steps_seen += 1
        if self.cancelled():
            raise _Cancelled()
        if self.on_progress is not None:
            self._hand_over()  # the previous step's CUDA preview, if any: in step order
            latent = self._x0 if self._x0 is not None else callback_kwargs.get("latents")
            total = int(getattr(pipe, "num_timesteps", 0) or 0) or (i + 1)
            if latent is not None and self.preview_decoder is None and latent.device.type == "cuda":
                self._in_flight = _InFlight(i + 1, total, _rgb_tensor(latent, self.family))
                if i + 1 >= total:  # no later step to deliver the last one
                    self._hand_over()
                return callback_kwargs
            preview = None
            if latent is not None:
                decode = self.preview_decoder or (lambda x: latent_to_rgb(x, self.family))
                preview = decode(latent)
            self.on_progress(Progress(step=i + 1, total=total, preview=preview,
                                      image_index=self.image_index))
        return callback_kwargs

    def _hand_over(self) -> None:
        pending, self._in_flight = self._in_flight, None
        if pending is not None and self.on_progress is not None:
            self.on_progress(Progress(step=pending.step, total=pending.total, preview=pending.image(),
                                      image_index=self.image_index))


def _predicted_x0(scheduler, out) -> torch.Tensor | None:
    # Pipelines call step(..., return_dict=False): a tuple whose second item, where the
    # scheduler has one, is x0 (Euler, Euler a, Heun, DDIM, LCM).
    if isinstance(out, tuple):
        x0 = out[1] if len(out) > 1 and isinstance(out[1], torch.Tensor) else None
        prev = out[0] if out else None
    else:
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None:
            x0 = getattr(out, "denoised", None)  # LCM
        prev = getattr(out, "prev_sample", None)
    if x0 is None:
        # DPM-Solver++ and UniPC convert the model output to x0 and keep it for the next step.
        predicts_x0 = (getattr(scheduler.config, "algorithm_type", "").endswith("++")
                       or getattr(scheduler.config, "predict_x0", False))
        outputs = getattr(scheduler, "model_outputs", None)
        if predicts_x0 and outputs and outputs[-1] is not None:
            x0 = outputs[-1]
    return x0 if x0 is not None else prev
