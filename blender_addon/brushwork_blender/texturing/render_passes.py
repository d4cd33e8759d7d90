"""Depth, normals and material masks of a view by a 1-sample Cycles render of its passes.

The one way the add-on reads the scene from a camera (depth control, projection, multi-view,
region masks): it sees what the render sees (``hide_render`` objects are absent, objects hidden
only in the viewport are present, camera ray visibility is honoured, render modifier levels), and
it is faster than ray casting from Python (benchmarks/depth_bench.py). Blender 5.0: the
compositor is ``scene.compositing_node_group``; the passes are written by a File Output node as
float EXRs and read back (the Viewer image is not produced in background mode). Every setting
touched is restored afterwards.

Two ways to run it:
  - ``render_passes(...)``: synchronous (scripts, ``blender -b``, tests). The render runs on the
    calling (main) thread: 0.1-2 s on a big scene, so the UI must not call it.
  - ``request(..., then=callback)``: the UI way. The render runs as Blender's own render job
    (``render.render('INVOKE_DEFAULT')``, the job F12 starts: its thread, the UI stays live); the
    main thread only sets it up and, when ``bpy.app.is_job_running('RENDER')`` turns false, reads
    the files back (``poll``, driven by the jobs pump). Where timers never fire (background mode)
    ``request`` renders synchronously and calls back before it returns.

bpy, main thread only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np

MISS = 1e9  # Cycles writes 1e10 where a pixel's ray hits nothing
# A render job that has not even started after this long (another render held Blender, the
# operator was refused) is given up with a clear error.
START_TIMEOUT_S = 120.0


@dataclass
class Passes:
    depth: np.ndarray  # (h, w) float32 z-depth along the camera axis, inf = nothing; row 0 at the top
    normal: np.ndarray | None  # (h, w, 3) float32 world-space unit normals (0 where nothing)
    material_index: np.ndarray | None = None  # (h, w) int: k+1 where ``materials[k]`` is seen, 0 elsewhere
    seconds: dict = field(default_factory=dict)  # main-thread time of each part (setup, render, read)

    def material_mask(self, k: int) -> np.ndarray:
        """(h, w) bool: pixels whose first surface carries ``materials[k]``."""
        if self.material_index is None:
            raise ValueError("these passes were rendered without materials")
        return self.material_index == k + 1


def _check_camera(camera) -> None:
    if camera is None or getattr(camera, "type", None) != "CAMERA":
        raise ValueError(f"{getattr(camera, 'name', camera)!r} is not a camera object")
    if camera.data.type not in ("PERSP", "ORTHO"):
        raise ValueError(f"camera {camera.name!r}: {camera.data.type} cameras are not supported "
                         "(use perspective or orthographic)")


class _Setup:
    """A render prepared on the main thread: the scene set up for it, and how to undo that."""

    def __init__(self, scene, camera, size, normals: bool, materials, view_layer):
        import bpy

        self.started = time.perf_counter()
        self.scene, self.camera, self.normals = scene, camera, normals
        self.materials = list(materials or [])
        self.view_layer = view_layer or bpy.context.view_layer
        self.size = (int(size[0]), int(size[1]))
        self.tmp = tempfile.mkdtemp(prefix="brushwork-passes-")
        self.tree = bpy.data.node_groups.new("Brushwork Passes", "CompositorNodeTree")
        self.old: list[tuple] = []
        try:
            self._apply()
        except Exception:
            self.restore()
            raise
        self.seconds = {"setup": time.perf_counter() - self.started}

    def _set(self, owner, attr, value) -> None:
        self.old.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    def _apply(self) -> None:
        import bpy

        scene, tree, vl = self.scene, self.tree, self.view_layer
        out = tree.nodes.new("CompositorNodeOutputFile")
        out.directory = self.tmp
        out.file_name = "pass_"
        out.save_as_render = False  # raw values, no view transform
        out.format.media_type = "IMAGE"
        out.format.file_format = "OPEN_EXR"
        out.format.color_depth = "32"
        r, c = scene.render, scene.cycles
        w, h = self.size
        for owner, attr, value in [
            (r, "engine", "CYCLES"), (scene, "camera", self.camera),
            (r, "resolution_x", w), (r, "resolution_y", h), (r, "resolution_percentage", 100),
            (r, "pixel_aspect_x", 1.0), (r, "pixel_aspect_y", 1.0), (r, "use_border", False),
            (r, "use_single_layer", True), (r, "use_compositing", True), (r, "use_motion_blur", False),
            (c, "samples", 1), (c, "use_adaptive_sampling", False), (c, "use_denoising", False),
            (c, "max_bounces", 0),
            # The one sample goes through the pixel centre: exact depth there, and hard, exact
            # material masks (a wide filter would jitter it up to 0.75 px).
            (c, "pixel_filter_type", "BOX"), (c, "filter_width", 0.01),
            (vl, "use_pass_z", True), (vl, "use_pass_normal", self.normals or vl.use_pass_normal),
            (vl, "use_pass_material_index", bool(self.materials) or vl.use_pass_material_index),
            (scene, "compositing_node_group", tree),
        ]:
            self._set(owner, attr, value)
        if self.materials:
            # Material index pass = each material's pass_index: ours 1..k for the asked ones, 0
            # for every other material (restored afterwards).
            wanted = {m.name: k + 1 for k, m in enumerate(self.materials)}
            for mat in bpy.data.materials:
                self._set(mat, "pass_index", wanted.get(mat.name, 0))
        # A Render Layers node shows the sockets of the passes that are on when it is made.
        layers = tree.nodes.new("CompositorNodeRLayers")
        layers.scene = scene
        layers.layer = vl.name
        sockets = [("FLOAT", "depth", "Depth")]
        if self.normals:
            sockets.append(("VECTOR", "normal", "Normal"))
        if self.materials:
            sockets.append(("FLOAT", "material", "Material Index"))
        for kind, name, socket in sockets:
            item = out.file_output_items.new(kind, name)
            tree.links.new(layers.outputs[socket], out.inputs[item.name])

    def restore(self) -> None:
        import bpy

        for owner, attr, value in reversed(self.old):
            with suppress(AttributeError, TypeError, ValueError, ReferenceError):
                setattr(owner, attr, value)
        self.old = []
        if self.tree is not None:
            with suppress(ReferenceError):
                bpy.data.node_groups.remove(self.tree)
            self.tree = None

    def collect(self) -> Passes:
        """Restore the scene, then read the written passes (main thread; removes the files)."""
        self.restore()
        t0 = time.perf_counter()
        try:
            files = {name.split("_", 1)[1].rsplit(".", 1)[0]: os.path.join(self.tmp, name)
                     for name in os.listdir(self.tmp)}
            if "depth" not in files:
                raise RuntimeError(f"the Cycles render of {self.camera.name!r} wrote nothing (cancelled?)")
            depth = _read_exr(files["depth"], 1)[..., 0]
            depth[~np.isfinite(depth) | (depth >= MISS)] = np.inf
            normal = _read_exr(files["normal"], 3) if self.normals and "normal" in files else None
            index = None
            if self.materials and "material" in files:
                index = np.rint(_read_exr(files["material"], 1)[..., 0]).astype(np.int32)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.seconds["read"] = time.perf_counter() - t0
        return Passes(depth=depth.astype(np.float32), normal=normal, material_index=index,
                      seconds=dict(self.seconds))


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


def render_passes(scene, camera, size: tuple[int, int], *, normals: bool = False, materials=(),
                  view_layer=None) -> Passes:
    """Render ``camera``'s view at ``size`` = (w, h) with Cycles, 1 sample, on this thread, and
    return its depth (world normals when ``normals``; with ``materials``, which of them each pixel
    shows). Synchronous: for scripts and background mode (the UI uses ``request``)."""
    import bpy

    _check_camera(camera)
    setup = _Setup(scene, camera, size, normals, materials, view_layer)
    t0 = time.perf_counter()
    try:
        bpy.ops.render.render(write_still=False, layer=setup.view_layer.name, scene=scene.name)
    except Exception:
        setup.restore()
        shutil.rmtree(setup.tmp, ignore_errors=True)
        raise
    setup.seconds["render"] = time.perf_counter() - t0
    return setup.collect()


# ---- the UI way: Blender's render job ----------------------------------------------------------


@dataclass
class _Request:
    scene_name: str
    camera_name: str
    size: tuple[int, int]
    normals: bool
    material_names: list[str]
    then: Callable[[Passes | None, str], None]  # (passes, "") or (None, one-line error)
    setup: _Setup | None = None
    asked: float = field(default_factory=time.monotonic)
    main_thread_s: float = 0.0  # main-thread time spent on it, summed over the pump's slices
    cancelled: bool = False  # Cancel was pressed while it rendered: read nothing back


_queue: list[_Request] = []


def background() -> bool:
    """True where the render must run on the calling thread (timers never fire)."""
    from .. import jobs

    return jobs.run_sync_mode()


def request(scene, camera, size: tuple[int, int], *, normals: bool = False, materials=(),
            then: Callable[[Passes | None, str], None]) -> None:
    """Render the passes without blocking the UI and call ``then(passes, "")`` (or ``then(None,
    error)``) on the main thread when they are read. Raises ValueError at once for a bad camera.
    Requests run one after another (Blender renders one job at a time)."""
    _check_camera(camera)
    if background():
        try:
            passes = render_passes(scene, camera, size, normals=normals, materials=materials)
        except (RuntimeError, ValueError) as exc:
            then(None, str(exc))
            return
        then(passes, "")
        return
    _queue.append(_Request(scene.name, camera.name, (int(size[0]), int(size[1])), normals,
                           [m.name for m in materials], then))
    from .. import jobs

    jobs.ensure_pump()


def pending() -> int:
    return len(_queue)


def cancel_pending() -> int:
    """Drop the requests whose render has not started (``then(None, "cancelled")``), and make the
    one being rendered answer "cancelled" when it ends. Returns how many were affected."""
    affected = 0
    for req in list(_queue):
        affected += 1
        req.cancelled = True
        if req.setup is None:
            _queue.remove(req)
            req.then(None, "cancelled")
    return affected


def start_render_job(setup: _Setup) -> None:
    """Start Blender's render job for ``setup`` (F12's own path, on its thread) without opening a
    render window. A module attribute so the headless tests, where no window exists to start a
    job from, can put a synchronous render in its place."""
    import bpy

    window = next(iter(bpy.context.window_manager.windows), None)
    if window is None:
        raise RuntimeError("no window to start a render job from")
    view = bpy.context.preferences.view
    display = view.render_display_type
    view.render_display_type = "NONE"  # read when the job starts: no render window pops up
    try:
        with bpy.context.temp_override(window=window):
            result = bpy.ops.render.render("INVOKE_DEFAULT", write_still=False, layer=setup.view_layer.name,
                                           scene=setup.scene.name)
    finally:
        view.render_display_type = display
    if "RUNNING_MODAL" not in result and "FINISHED" not in result:
        raise RuntimeError(f"Blender refused to start the render ({', '.join(sorted(result))})")


def _render_busy() -> bool:
    import bpy

    return bool(bpy.app.is_job_running("RENDER"))


def poll() -> bool:
    """Advance the first request by one short main-thread step (called by the jobs pump). Returns
    True while requests remain."""
    import bpy

    if not _queue:
        return False
    req = _queue[0]
    t0 = time.perf_counter()
    try:
        if req.setup is None:
            if _render_busy():  # another render (the artist's F12, or ours) holds Blender
                if time.monotonic() - req.asked > START_TIMEOUT_S:
                    raise RuntimeError("Blender stayed busy rendering; try again when the render is done")
                return True
            scene, camera = bpy.data.scenes.get(req.scene_name), bpy.data.objects.get(req.camera_name)
            if scene is None or camera is None:
                raise RuntimeError(f"camera {req.camera_name!r} or its scene is gone")
            materials = [bpy.data.materials[n] for n in req.material_names if n in bpy.data.materials]
            req.setup = _Setup(scene, camera, req.size, req.normals, materials, None)
            try:
                start_render_job(req.setup)
            except Exception:
                req.setup.restore()
                raise
            return True
        if _render_busy():
            return True
        _queue.pop(0)
        if req.cancelled:
            raise RuntimeError("cancelled")
        passes = req.setup.collect()
    except (RuntimeError, ValueError, ReferenceError) as exc:
        if _queue and _queue[0] is req:
            _queue.pop(0)
        if req.setup is not None:
            req.setup.restore()
            shutil.rmtree(req.setup.tmp, ignore_errors=True)
        req.then(None, str(exc))
        return bool(_queue)
    finally:
        req.main_thread_s += time.perf_counter() - t0
    passes.seconds["main_thread"] = req.main_thread_s
    req.then(passes, "")
    return bool(_queue)


def camera_normal_picture(normal_world: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """World normals (h, w, 3) → a camera-space normal map as RGB in 0..1, the convention of
    ControlNet 1.1's normalbae model (BAE's ScanNet protocol, checked against the figure the
    annotator's README points to: red = facing LEFT, green = facing UP, blue = facing the
    camera). Pixels with no surface (zero normal) are black."""
    n = np.asarray(normal_world, dtype=np.float64)
    local = n @ np.asarray(rotation, dtype=np.float64)  # world → camera axes (x right, y up, z to viewer)
    rgb = np.stack([-local[..., 0], local[..., 1], local[..., 2]], axis=-1) * 0.5 + 0.5
    empty = np.linalg.norm(n, axis=-1) < 0.5
    rgb[empty] = 0.0
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
