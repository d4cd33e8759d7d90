"""Depth and normals of a view by a 1-sample Cycles render of its Z and Normal passes.

Faster than ray casting the scene from Python (see benchmarks/depth_bench.py) and it sees what the
render sees: ``hide_render`` objects are absent, objects hidden only in the viewport are present,
camera ray visibility is honoured. Blender 5.0: the compositor is ``scene.compositing_node_group``;
the passes are written by a File Output node as float EXRs and read back (the Viewer image is not
produced in background mode). Every scene setting touched is restored afterwards.

bpy, main thread only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import numpy as np

MISS = 1e9  # Cycles writes 1e10 where a pixel's ray hits nothing


@dataclass
class Passes:
    depth: np.ndarray  # (h, w) float32 z-depth along the camera axis, inf = nothing; row 0 at the top
    normal: np.ndarray | None  # (h, w, 3) float32 world-space unit normals (0 where nothing)


@contextmanager
def _temporarily(pairs):
    """Set (owner, attribute, value) triples, restoring the old values on exit (in reverse)."""
    old = []
    try:
        for owner, attr, value in pairs:
            old.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, value)
        yield
    finally:
        for owner, attr, value in reversed(old):
            with suppress(AttributeError, TypeError, ValueError):
                setattr(owner, attr, value)


def _read_exr(path: str, channels: int) -> np.ndarray:
    import bpy

    image = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = image.size
        buf = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(buf)
    finally:
        bpy.data.images.remove(image)
    return buf.reshape(h, w, 4)[::-1, :, :channels].copy()  # Blender stores bottom-up


def render_passes(scene, camera, size: tuple[int, int], *, normals: bool = False, view_layer=None) -> Passes:
    """Render ``camera``'s view at ``size`` = (w, h) with Cycles, 1 sample, and return its depth
    (and world normals when ``normals``)."""
    import bpy

    w, h = int(size[0]), int(size[1])
    if camera is None or camera.type != "CAMERA":
        raise ValueError(f"{getattr(camera, 'name', camera)!r} is not a camera object")
    view_layer = view_layer or bpy.context.view_layer
    tmp = tempfile.mkdtemp(prefix="brushwork-passes-")
    tree = bpy.data.node_groups.new("Brushwork Passes", "CompositorNodeTree")
    try:
        out = tree.nodes.new("CompositorNodeOutputFile")
        out.directory = tmp
        out.file_name = "pass_"
        out.save_as_render = False  # raw values, no view transform
        out.format.media_type = "IMAGE"
        out.format.file_format = "OPEN_EXR"
        out.format.color_depth = "32"
        r, c = scene.render, scene.cycles
        settings = [
            (r, "engine", "CYCLES"), (scene, "camera", camera),
            (r, "resolution_x", w), (r, "resolution_y", h), (r, "resolution_percentage", 100),
            (r, "pixel_aspect_x", 1.0), (r, "pixel_aspect_y", 1.0), (r, "use_border", False),
            (r, "use_single_layer", True), (r, "use_compositing", True), (r, "use_motion_blur", False),
            (c, "samples", 1), (c, "use_adaptive_sampling", False), (c, "use_denoising", False),
            (c, "max_bounces", 0), (c, "device", c.device),
            (view_layer, "use_pass_z", True), (view_layer, "use_pass_normal", normals or view_layer.use_pass_normal),
            (scene, "compositing_node_group", tree),
        ]
        with _temporarily(settings):
            # A Render Layers node shows the sockets of the passes that are on when it is made.
            layers = tree.nodes.new("CompositorNodeRLayers")
            layers.scene = scene
            layers.layer = view_layer.name
            item = out.file_output_items.new("FLOAT", "depth")
            tree.links.new(layers.outputs["Depth"], out.inputs[item.name])
            if normals:
                item = out.file_output_items.new("VECTOR", "normal")
                tree.links.new(layers.outputs["Normal"], out.inputs[item.name])
            bpy.ops.render.render(write_still=False, layer=view_layer.name, scene=scene.name)
        files = {name.split("_", 1)[1].rsplit(".", 1)[0]: os.path.join(tmp, name) for name in os.listdir(tmp)}
        if "depth" not in files:
            raise RuntimeError(f"the Cycles depth render of {camera.name!r} wrote nothing")
        depth = _read_exr(files["depth"], 1)[..., 0]
        depth[~np.isfinite(depth) | (depth >= MISS)] = np.inf
        normal = None
        if normals and "normal" in files:
            normal = _read_exr(files["normal"], 3)
        return Passes(depth=depth.astype(np.float32), normal=normal)
    finally:
        bpy.data.node_groups.remove(tree)
        shutil.rmtree(tmp, ignore_errors=True)


def camera_normal_picture(normal_world: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """World normals (h, w, 3) → a camera-space normal map as RGB in 0..1, the convention of
    ControlNet 1.1's normalbae model (ScanNet's: blue = facing the camera, green = up, red = left).
    Pixels with no surface (zero normal) are black."""
    n = np.asarray(normal_world, dtype=np.float64)
    local = n @ np.asarray(rotation, dtype=np.float64)  # world → camera axes (x right, y up, z to viewer)
    rgb = np.stack([-local[..., 0], local[..., 1], local[..., 2]], axis=-1) * 0.5 + 0.5
    empty = np.linalg.norm(n, axis=-1) < 0.5
    rgb[empty] = 0.0
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
