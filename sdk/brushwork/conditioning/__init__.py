"""Conditioning: turning a Recipe's controls, masks and signals into what the pipelines take.

numpy + PIL only (torch only inside ``inpaint_control_tensor`` and the optional estimators), so
this package can be tested and used without the engine.

``prepare_control(control, read, width, height)`` is the one entry point the engine calls per
ControlNet: it dispatches on the control's kind, raw ``signal`` and ``preprocess`` estimator.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from ..errors import InputImageError
from ..recipe import Control
from .depth import depth_signal_to_image, depth_to_image
from .estimators import ESTIMATORS, MissingDependencyError, estimator_table, run_estimator
from .images import MAX_PIXELS, fit, open_image, to_rgb
from .lines import canny, canny_image, lineart_image, looks_like_edge_map, scribble_image
from .masks import grow_mask, inpaint_control_array, load_mask, paste_back
from .pose import render_openpose

__all__ = [
    "ESTIMATORS", "MAX_PIXELS", "MissingDependencyError", "canny", "depth_to_image", "estimator_table",
    "grow_mask", "inpaint_control_array", "inpaint_control_tensor", "load_mask", "open_image", "paste_back",
    "prepare_control", "render_openpose",
]

Reader = Callable[[str], bytes]


def prepare_control(control: Control, read: Reader, width: int, height: int, *,
                    init_image: Image.Image | None = None, mask: Image.Image | None = None,
                    where: str = "control"):
    """The control input for one ControlNet at ``width`` x ``height``.

    Returns an RGB PIL image for every kind but ``inpaint``, which returns the float tensor the
    control_v11p_sd15_inpaint convention needs (see ``inpaint_control_tensor``); for it pass the
    job's ``init_image`` and binary ``mask`` (or give the control its own image, masked by
    ``mask``).
    - ``signal``: depth (raw floats) or pose (OpenPose JSON) rendered here;
    - ``preprocess`` other than "none": an estimator runs on the image (a photo);
    - else the image is taken as the control picture, normalised for its kind: sketches become
      white-on-black lines (scribble, lineart), a photo given for canny gets edge detection.
    """
    size = (int(width), int(height))
    if control.kind == "inpaint":
        source = init_image
        if control.image:
            source = to_rgb(open_image(read(control.image), what=f"{where}.image"))
        if source is None or mask is None:
            raise InputImageError(f"{where}: an inpaint control needs the init image and the mask")
        return inpaint_control_tensor(fit(source.convert("RGB"), size), fit(mask, size, Image.Resampling.NEAREST))

    if control.signal is not None:
        if control.kind == "depth":
            return depth_signal_to_image(control.signal, read, size)
        if control.kind == "pose":
            # Keypoints without a canvas size are taken to be in output pixels.
            return render_openpose(control.signal, canvas_w=size[0], canvas_h=size[1], size=size)
        raise InputImageError(f"{where}.signal: raw signals exist for depth and pose only")

    if not control.image:
        raise InputImageError(f"{where}: a {control.kind} control needs an image or a signal")
    img = open_image(read(control.image), what=f"{where}.image")
    if control.preprocess and control.preprocess != "none":
        return run_estimator(control.preprocess, to_rgb(img), size, where=f"{where}.preprocess")
    if control.kind == "normal":  # a normal map (normalbae colours) is the control picture as it is
        return fit(to_rgb(img), size)
    if control.kind == "scribble":
        return scribble_image(img, size)
    if control.kind == "lineart":
        return lineart_image(img, size)
    rgb = to_rgb(img, background=(0, 0, 0))  # a control picture's empty areas mean "nothing": black
    if control.kind == "canny" and not looks_like_edge_map(rgb):
        return canny_image(rgb, size)
    return fit(rgb, size)


def inpaint_control_tensor(image: Image.Image, mask: Image.Image):
    """torch float32 (1, 3, H, W): RGB in [0, 1] with masked pixels -1, as diffusers' docs build
    it for control_v11p_sd15_inpaint. Pass it as the ControlNet's control image."""
    import torch

    return torch.from_numpy(inpaint_control_array(image, mask))


__all__ += ["depth_signal_to_image", "lineart_image", "scribble_image", "canny_image"]
