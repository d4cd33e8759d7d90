"""Inpainting a large picture: repaint a crop around the mask, paste it back exactly.

An inpaint job far above the model's native size would run the UNet and the VAE on the whole
picture (memory that grows with the area; a 4096² SD 1.5 decode alone needs tens of GB) to change
what is usually a small part of it. Instead:

1. *crop*: the (grown) mask's bounding box, plus ``context`` pixels of surroundings on each side,
   at least a tile (the native size) on each side where the picture has room, in multiples of 8.
   On a seamless axis the box may run across the edge and continue on the other side (the picture
   is a torus); a crop that spans a whole seamless axis runs seamless on that axis.
2. *run*: the ordinary inpaint pipeline on the crop (its controls cropped with it), at the crop's
   own size when it is at most ``limit`` (2 tiles) on its long side; a bigger crop (a mask over
   much of a huge picture) goes through the tiled img2img phases of ``tiled.py`` at full
   resolution instead, the unmasked places held on the init picture at every step (4-channel
   UNets) or given as the masked picture (9-channel UNets), as diffusers' inpaint pipelines do.
3. *paste*: the repainted crop is blended into the original crop through the mask
   (``paste_back``: pixels outside the grown mask are the init image's, bit for bit) and written
   back in place. Everything outside the crop is never touched.

Memory: the full-size uint8 picture (and its copy for the result), the mask and the control
pictures; the networks see the crop only, or its tiles. Progress and cancel are the inpaint
pipeline's own (the tiled phases': encode, steps, decode).
A job whose mask is empty returns the init picture unchanged without running a step (nothing to
repaint; the plain path would paste every step's work away).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from ..conditioning.masks import paste_back
from .inputs import Inputs
from .plan import MULTIPLE, crop_window
from .run import Execution, run_one
from .seamless import seamless

__all__ = ["MULTIPLE", "crop_window", "inpaint_cropped", "mask_spans", "span"]


def span(used: np.ndarray, wrap: bool) -> tuple[int, int] | None:
    """(start, length) of the shortest run of indices holding every True in ``used``; on a wrap
    axis the run may cross the end (start + length > len). None when nothing is used."""
    where = np.flatnonzero(used)
    if where.size == 0:
        return None
    n = used.size
    if not wrap:
        return int(where[0]), int(where[-1] - where[0] + 1)
    # On a circle the shortest covering run is the complement of the longest empty gap.
    gaps = np.diff(np.append(where, where[0] + n))  # gap after each used index, to the next one
    widest = int(np.argmax(gaps))
    start = int(where[(widest + 1) % where.size])
    return start, int(n - gaps[widest] + 1)


def _take(array: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array[rows][:, cols])


def _crop_control(picture, rows, cols):
    """A control picture's crop: a PIL picture, or the inpaint control's float tensor."""
    if isinstance(picture, Image.Image):
        return Image.fromarray(_take(np.asarray(picture.convert("RGB")), rows, cols), "RGB")
    tensor = torch.as_tensor(picture)
    return tensor.index_select(-2, torch.from_numpy(rows)).index_select(-1, torch.from_numpy(cols)).contiguous()


def mask_spans(mask: Image.Image, axes: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(rows, cols) spans of the repaint pixels of a (grown) mask, for ``plan(mask_spans=)``."""
    repaint = np.asarray(mask.convert("L")) >= 128
    # (asarray: numpy's stubs cannot tell that any() over one axis of a 2-D array is an array)
    return span(np.asarray(repaint.any(axis=1)), "y" in axes), span(np.asarray(repaint.any(axis=0)), "x" in axes)


def inpaint_cropped(job: Execution, *, seed: int, index: int, on_progress=None, cancel=None,
                    run_large: Callable[[Execution], Image.Image]) -> Image.Image:
    """Image ``index`` of a large inpaint job (see the module doc) as its plan says: the crop
    (``plan.crop``) runs its own plan (``plan.sub``): in one piece, or with ``run_large`` (the
    tiled phases, ``tiled.TiledRun``). Raises progress._Cancelled."""
    plan, inputs = job.plan, job.inputs
    init = inputs.need_init().convert("RGB")
    if plan.crop is None or plan.sub is None:  # the mask is empty: nothing to repaint
        return init.copy()
    crop = plan.crop
    rows = np.arange(crop.y, crop.y + crop.height) % init.height
    cols = np.arange(crop.x, crop.x + crop.width) % init.width

    full = np.asarray(init)
    init_crop = Image.fromarray(_take(full, rows, cols), "RGB")
    mask_crop = Image.fromarray(_take(np.asarray(inputs.need_mask().convert("L")), rows, cols), "L")
    pictures = Inputs(init=init_crop, mask=mask_crop,
                      controls=[_crop_control(p, rows, cols) for p in (inputs.controls or [])])
    crop_job = replace(job, plan=plan.sub, inputs=pictures)
    if plan.sub.path == "tiled":  # too big for one piece: the tiled img2img phases, keeping the outside
        image = run_large(crop_job)
    else:
        with seamless(job.pipe, crop.axes):
            image = run_one(crop_job, seed=seed, index=index, on_progress=on_progress, cancel=cancel)
    image = image.convert("RGB")
    image = paste_back(init_crop, image, mask_crop, plan.mask_feather)
    out = full.copy()
    out[np.ix_(rows, cols)] = np.asarray(image)
    return Image.fromarray(out, "RGB")
