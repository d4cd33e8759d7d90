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
    main thread only sets it up and, when ``bpy.app.is_job_running('RENDER')`` turns false,
    restores the settings; a reader thread parses the pass files (``exr.read_exr``, numpy) and the next
    pump tick hands them over (``poll``, driven by the jobs pump). Where timers never fire (background mode)
    ``request`` renders synchronously and calls back before it returns.

bpy, main thread only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np

from . import exr

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

    def __init__(self, scene, camera, size, normals: bool, materials, view_layer, groups=()):
        import bpy

        self.started = time.perf_counter()
        self.scene, self.camera, self.normals = scene, camera, normals
        self.camera_name = camera.name
        self.materials = list(materials or [])
        self.groups = [(str(o), str(g)) for o, g in groups]  # (object name, vertex group name)
        self.made: list[tuple[str, object]] = []  # (kind, datablock) made for this render, removed after
        self.modifiers: list[tuple[str, str]] = []  # (object name, modifier name) added for it
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
            (vl, "use_pass_material_index", bool(self.materials or self.groups) or vl.use_pass_material_index),
            (scene, "compositing_node_group", tree),
        ]:
            self._set(owner, attr, value)
        self._group_materials()
        if self.materials:
            # Material index pass = each material's pass_index: ours 1..k for the asked ones, 0
            # for every other material (restored afterwards).
            wanted = {m.name: k + 1 for k, m in enumerate(self.materials) if m is not None}
            for mat in bpy.data.materials:
                if mat.pass_index != wanted.get(mat.name, 0):  # touch only what differs: each change is an update
                    self._set(mat, "pass_index", wanted.get(mat.name, 0))
        # A Render Layers node shows the sockets of the passes that are on when it is made.
        layers = tree.nodes.new("CompositorNodeRLayers")
        layers.scene = scene
        layers.layer = vl.name
        sockets = [("FLOAT", "depth", "Depth")]
        if self.normals:
            sockets.append(("VECTOR", "normal", "Normal"))
        if self.materials:  # (vertex-group regions add theirs in _group_materials)
            sockets.append(("FLOAT", "material", "Material Index"))
        for kind, name, socket in sockets:
            item = out.file_output_items.new(kind, name)
            tree.links.new(layers.outputs[socket], out.inputs[item.name])

    def _group_materials(self) -> None:
        """Vertex-group regions: for this render only, the faces of each (object, group) get a
        material of their own (a Geometry Nodes 'Set Material' modifier, render only, on faces
        whose vertices' mean weight is above 0.5), numbered after the asked materials."""
        import bpy

        for obj_name, group in self.groups:
            obj = bpy.data.objects.get(obj_name)
            if obj is None or obj.type != "MESH" or group not in obj.vertex_groups:
                mat = None  # nothing to mark: an index no pixel gets
            else:
                mat = bpy.data.materials.new(f"Brushwork region {obj_name}/{group}")
                self.made.append(("materials", mat))
                tree = _set_material_tree(group, mat)
                self.made.append(("node_groups", tree))
                mod = obj.modifiers.new("Brushwork region", "NODES")
                mod.node_group = tree
                mod.show_viewport = False  # the viewport never shows it; the render does
                self.modifiers.append((obj.name, mod.name))
            self.materials.append(mat)

    def restore(self) -> None:
        import bpy

        for owner, attr, value in reversed(self.old):
            with suppress(AttributeError, TypeError, ValueError, ReferenceError):
                setattr(owner, attr, value)
        self.old = []
        for obj_name, mod_name in self.modifiers:
            obj = bpy.data.objects.get(obj_name)
            mod = obj.modifiers.get(mod_name) if obj is not None else None
            if mod is not None:
                obj.modifiers.remove(mod)
        self.modifiers = []
        for kind, block in self.made:
            with suppress(ReferenceError, RuntimeError):
                getattr(bpy.data, kind).remove(block)
        self.made = []
        if self.tree is not None:
            with suppress(ReferenceError):
                bpy.data.node_groups.remove(self.tree)
            self.tree = None

    def collect(self) -> Passes:
        """Restore the scene, then read the written passes (main thread; removes the files)."""
        self.restore()
        return self.read()

    def read(self, *, bpy_ok: bool = True) -> Passes:
        """Read the written passes and remove the files. ``bpy_ok=False``: numpy only (fine on
        another thread); raises ValueError for a file only Blender's loader reads (files kept)."""
        t0 = time.perf_counter()
        done = False
        try:
            files = {name.split("_", 1)[1].rsplit(".", 1)[0]: os.path.join(self.tmp, name)
                     for name in os.listdir(self.tmp)}
            if "depth" not in files:
                done = True
                raise RuntimeError(f"the Cycles render of {self.camera_name!r} wrote nothing (cancelled?)")
            depth = exr.read_pass(files["depth"], 1, bpy_ok)[..., 0]
            depth[~np.isfinite(depth) | (depth >= MISS)] = np.inf
            normal = exr.read_pass(files["normal"], 3, bpy_ok) if self.normals and "normal" in files else None
            index = None
            if self.materials and "material" in files:
                index = np.rint(exr.read_pass(files["material"], 1, bpy_ok)[..., 0]).astype(np.int32)
            done = True
        finally:
            if done or bpy_ok:
                shutil.rmtree(self.tmp, ignore_errors=True)
        self.seconds["read"] = time.perf_counter() - t0
        return Passes(depth=depth.astype(np.float32), normal=normal, material_index=index,
                      seconds=dict(self.seconds))


def _set_material_tree(group: str, material):
    """A Geometry Nodes tree: faces whose vertices' mean weight in vertex group ``group`` is
    above 0.5 get ``material``."""
    import bpy

    tree = bpy.data.node_groups.new("Brushwork region", "GeometryNodeTree")
    tree.interface.new_socket(name="Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket(name="Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = tree.nodes, tree.links
    given, result = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    weight = nodes.new("GeometryNodeInputNamedAttribute")
    weight.data_type = "FLOAT"
    weight.inputs["Name"].default_value = group
    above = nodes.new("FunctionNodeCompare")
    above.data_type, above.operation = "FLOAT", "GREATER_THAN"
    above.inputs["B"].default_value = 0.5
    setter = nodes.new("GeometryNodeSetMaterial")
    setter.inputs["Material"].default_value = material
    links.new(weight.outputs["Attribute"], above.inputs["A"])
    links.new(above.outputs["Result"], setter.inputs["Selection"])
    links.new(given.outputs[0], setter.inputs["Geometry"])
    links.new(setter.outputs["Geometry"], result.inputs[0])
    return tree


def render_passes(scene, camera, size: tuple[int, int], *, normals: bool = False, materials=(), groups=(),
                  view_layer=None) -> Passes:
    """Render ``camera``'s view at ``size`` = (w, h) with Cycles, 1 sample, on this thread, and
    return its depth (world normals when ``normals``; with ``materials`` and vertex-group
    ``groups`` = [(object name, group name)], which of them each pixel shows: index k+1 for the
    k-th of materials then groups). Synchronous: for scripts and background mode (the UI uses
    ``request``)."""
    import bpy

    _check_camera(camera)
    setup = _Setup(scene, camera, size, normals, materials, view_layer, groups)
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
    groups: list = field(default_factory=list)  # vertex-group regions: (object name, group name)
    setup: _Setup | None = None
    asked: float = field(default_factory=time.monotonic)
    main_thread_s: float = 0.0  # main-thread time spent on it, summed over the pump's slices
    cancelled: bool = False  # Cancel was pressed while it rendered: read nothing back
    reader: threading.Thread | None = None  # reads the pass files off the UI thread
    read_result: tuple | None = None  # (passes, None) or (None, exception) from the reader


_queue: list[_Request] = []


def background() -> bool:
    """True where the render must run on the calling thread (timers never fire)."""
    from .. import jobs

    return jobs.run_sync_mode()


def request(scene, camera, size: tuple[int, int], *, normals: bool = False, materials=(), groups=(),
            then: Callable[[Passes | None, str], None]) -> None:
    """Render the passes without blocking the UI and call ``then(passes, "")`` (or ``then(None,
    error)``) on the main thread when they are read. Raises ValueError at once for a bad camera.
    Requests run one after another (Blender renders one job at a time)."""
    _check_camera(camera)
    if background():
        try:
            passes = render_passes(scene, camera, size, normals=normals, materials=materials, groups=groups)
        except (RuntimeError, ValueError) as exc:
            then(None, str(exc))
            return
        then(passes, "")
        return
    _queue.append(_Request(scene.name, camera.name, (int(size[0]), int(size[1])), normals,
                           [m.name for m in materials], then, groups=[tuple(g) for g in groups]))
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


def _read_files(req: _Request) -> None:
    """Reader thread: the pass files → numpy (no bpy)."""
    try:
        req.read_result = (req.setup.read(bpy_ok=False), None)
    except Exception as exc:  # handed to the main thread, which reports it
        req.read_result = (None, exc)


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
            materials = [bpy.data.materials.get(n) for n in req.material_names]  # None keeps the numbering
            req.setup = _Setup(scene, camera, req.size, req.normals, materials, None, req.groups)
            try:
                start_render_job(req.setup)
            except Exception:
                req.setup.restore()
                raise
            return True
        if req.reader is None:
            if _render_busy():
                return True
            req.setup.restore()  # the render is over: the scene is the artist's again at once
            if req.cancelled:
                raise RuntimeError("cancelled")
            req.reader = threading.Thread(target=_read_files, args=(req,), name="brushwork-passes", daemon=True)
            req.reader.start()
            return True
        if req.reader.is_alive():
            return True
        _queue.pop(0)
        passes, error = req.read_result or (None, RuntimeError("the passes were not read"))
        if isinstance(error, ValueError):  # a file form only Blender's own loader reads
            passes = req.setup.read()
        elif error is not None:
            raise RuntimeError(f"reading the passes: {error}") from error
    except Exception as exc:  # never out of the pump (its timer would stop): one line to the caller
        if not isinstance(exc, RuntimeError | ValueError | ReferenceError):
            import traceback

            traceback.print_exc()
            exc = RuntimeError(f"unexpected {type(exc).__name__}: {exc}")
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
