"""Blender depth capture: a 1-sample Cycles Z render vs ray casting, and what the UI waits for.

depth_cycles_vs_raycast_ratio   seconds of texturing.render_passes (Cycles, 1 sample, Z pass read
                                back from an EXR) / seconds of the ray-cast depth the add-on used
                                before (one BVH of the evaluated scene + one ray per pixel; kept
                                here, as ``raycast_depth``, as the baseline), 512², on a
                                ~300k-triangle scene. Goal <= 1.0 (the issue: depth no slower than
                                a 1-sample Z render). Also reported: both absolute times, 1024²
                                times, the largest relative difference between the two depths.
depth_ui_stall_ms               the longest stretch the UI thread is busy per view render (512², 1024²)
                                the way the operators now render (render_passes.request): setting
                                the scene up, then (the render itself in Blender's render job, off
                                the UI thread) restoring it, two separate pump ticks; the pass
                                files are parsed by a reader thread. Goal <= 100 ms. Before: the
                                whole synchronous render (``sync_render_ms`` in the detail).
                                Headless bpy has no window to start the render job from, so the
                                job's own start (the INVOKE call) is not part of the figure.

Runs in the Blender environment (.venv-blender, real bpy): ``python -m benchmarks.depth_bench``
from the main environment re-runs itself there. Writes benchmarks/out/depth_bench.json.
Register in benchmarks/__main__.py SUITES as ("benchmarks.depth_bench", "run").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLENDER_PY = REPO / ".venv-blender" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
OUT = Path(__file__).resolve().parent / "out"
KEY = "depth_cycles_vs_raycast_ratio"
STALL_KEY = "depth_ui_stall_ms"


def _scene(target_triangles: int = 300_000):
    """Suzanne heads (subdivided) on a floor, ~``target_triangles`` triangles, and a camera."""
    import bpy
    from mathutils import Vector

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_plane_add(size=40)
    heads = 0
    total = 2
    while total < target_triangles:
        bpy.ops.mesh.primitive_monkey_add(location=((heads % 4) * 2.5 - 3.75, (heads // 4) * 2.5, 1.0))
        mod = bpy.context.active_object.modifiers.new("subsurf", "SUBSURF")
        mod.levels = mod.render_levels = 3
        total += 968 * 4 ** 3  # Suzanne: 968 triangles; subdivision level 3 quadruples them thrice
        heads += 1
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.location = (0.0, -9.0, 6.0)
    cam.rotation_euler = (Vector((0.0, 2.5, 0.5)) - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    tris = sum(len(o.evaluated_get(depsgraph).data.loop_triangles) if hasattr(o.data, "loop_triangles") else 0
               for o in scene.objects if o.type == "MESH")
    return scene, cam, tris


def raycast_depth(scene, camera, size):
    """The ray-cast z-depth the add-on used before it rendered depth (the baseline): one BVH of
    the viewport's evaluated scene, one ray per pixel centre."""
    import bpy
    import numpy as np
    from brushwork_blender import capture
    from mathutils.bvhtree import BVHTree

    depsgraph = bpy.context.evaluated_depsgraph_get()
    frame = capture.camera_frame(scene, camera, size, depsgraph)
    origin, direction, z_per_length = capture.camera_rays(frame)
    verts, tris, offset = [], [], 0
    for inst in depsgraph.object_instances:
        obj = inst.object
        if obj.type != "MESH" or (not inst.is_instance and not obj.original.visible_get()):
            continue
        mesh = obj.to_mesh()
        try:
            mesh.calc_loop_triangles()
            co = np.empty(len(mesh.vertices) * 3)
            mesh.vertices.foreach_get("co", co)
            m = np.array(inst.matrix_world)
            verts.append(co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])
            idx = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
            mesh.loop_triangles.foreach_get("vertices", idx)
            tris.append(idx.reshape(-1, 3) + offset)
            offset += len(mesh.vertices)
        finally:
            obj.to_mesh_clear()
    tree = BVHTree.FromPolygons(np.concatenate(verts).tolist(), np.concatenate(tris).tolist(), all_triangles=True)
    max_len = ((frame.clip_end - frame.clip_start) / z_per_length).reshape(-1).tolist()
    lengths = [tree.ray_cast(o, d, dist)[3] for o, d, dist in
               zip(origin.reshape(-1, 3).tolist(), direction.reshape(-1, 3).tolist(), max_len, strict=True)]
    depth = frame.clip_start + np.array(lengths, dtype=np.float64).reshape(frame.height, frame.width) * z_per_length
    depth[np.isnan(depth)] = np.inf
    return depth.astype(np.float32)


def ui_slices(scene, cam, size) -> dict:
    """Seconds of each part of the UI way (render_passes.request): the set-up tick and the restore
    tick on the UI thread, the render (Blender's render job; run here synchronously in its place)
    and the reading of the pass files (a reader thread) off it."""
    import bpy
    from brushwork_blender.texturing import render_passes

    setup = render_passes._Setup(scene, cam, size, False, (), None)
    t0 = time.perf_counter()
    bpy.ops.render.render(write_still=False, layer=setup.view_layer.name, scene=scene.name)
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    setup.restore()
    restore_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    setup.read(bpy_ok=False)
    return {"setup": setup.seconds["setup"], "restore": restore_s, "render_in_job": render_s,
            "read_in_thread": time.perf_counter() - t0}


def measure_inside_blender(quick: bool = False) -> dict:
    sys.path[:0] = [str(REPO / "blender_addon"), str(REPO / "sdk")]
    import numpy as np
    from brushwork_blender.texturing.render_passes import render_passes

    sys.path[:0] = [str(REPO)]
    from benchmarks.common import side_by_side

    scene, cam, tris = _scene(60_000 if quick else 300_000)
    result: dict = {"triangles": tris}
    sizes = [(512, 512)] if quick else [(512, 512), (1024, 1024)]
    for size in sizes:
        ray = raycast_depth(scene, cam, size)
        cyc = render_passes(scene, cam, size).depth
        both = np.isfinite(ray) & np.isfinite(cyc)
        t_cycles, t_ray = side_by_side(lambda s=size: render_passes(scene, cam, s),
                                       lambda s=size: raycast_depth(scene, cam, s),
                                       repeats=3 if quick else 5)
        slices = [ui_slices(scene, cam, size) for _ in range(3 if quick else 5)]
        result[f"{size[0]}"] = {
            "cycles_s": round(t_cycles, 3), "raycast_s": round(t_ray, 3), "ratio": round(t_cycles / t_ray, 3),
            "max_rel_diff": float((np.abs(ray[both] - cyc[both]) / ray[both]).max()),
            "same_misses": bool((np.isfinite(ray) == np.isfinite(cyc)).all()),
            "sync_render_ms": round(t_cycles * 1000, 1),
            "ui_setup_ms": round(max(s["setup"] for s in slices) * 1000, 1),
            "ui_restore_ms": round(max(s["restore"] for s in slices) * 1000, 1),
            "render_in_job_ms": round(sorted(s["render_in_job"] for s in slices)[len(slices) // 2] * 1000, 1),
            "read_in_thread_ms": round(max(s["read_in_thread"] for s in slices) * 1000, 1),
        }
    return result


def run(quick: bool = False, only: list[str] | None = None) -> list:
    from .common import Figure

    if only and KEY not in only and STALL_KEY not in only:
        return []
    if not BLENDER_PY.exists():
        return [Figure(KEY, None, note=f"{BLENDER_PY} is missing (./setup.sh --all)")]
    args = [str(BLENDER_PY), "-m", "benchmarks.depth_bench", "--inside-blender"] + (["--quick"] if quick else [])
    proc = subprocess.run(args, capture_output=True, text=True, cwd=str(REPO), timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DEPTH_BENCH: ")]
    if not lines:
        return [Figure(KEY, None, note=f"the Blender run failed: {proc.stderr[-500:]}")]
    data = json.loads(lines[-1][len("DEPTH_BENCH: "):])
    OUT.mkdir(exist_ok=True)
    (OUT / "depth_bench.json").write_text(json.dumps(data, indent=2))
    main = data["512"]
    note = f"{data['triangles']} triangles, 512²: Cycles {main['cycles_s']} s, ray cast {main['raycast_s']} s"
    big = data.get("1024", main)
    side = "1024²" if "1024" in data else "512²"
    # the longest UI-thread tick at any size measured (the first set-up of a run is the slowest)
    stall = max(max(d["ui_setup_ms"], d["ui_restore_ms"]) for k, d in data.items() if k != "triangles")
    stall_note = (f"{side}: set-up {big['ui_setup_ms']} ms, restore {big['ui_restore_ms']} ms on the UI thread; "
                  f"the render ({big['render_in_job_ms']} ms) in Blender's render job and the pass files "
                  f"({big['read_in_thread_ms']} ms) in a reader thread; before: {big['sync_render_ms']} ms synchronous")
    return [Figure(KEY, main["ratio"], "x", "<= 1.0", detail=data, note=note),
            Figure(STALL_KEY, stall, "ms", "<= 100", detail=big, note=stall_note)]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    if "--inside-blender" in sys.argv:
        print("DEPTH_BENCH: " + json.dumps(measure_inside_blender(quick)))
    else:
        for fig in run(quick):
            print(f"{fig.key}: {fig.value} {fig.unit} (goal {fig.goal}) {fig.note}")
            print(json.dumps(fig.detail, indent=2))
