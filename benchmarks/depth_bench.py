"""Blender depth capture: a 1-sample Cycles Z render vs the add-on's ray-cast depth, same view.

depth_cycles_vs_raycast_ratio   seconds of texturing.render_passes (Cycles, 1 sample, Z pass read
                                back from an EXR) / seconds of capture.camera_depth (one BVH of the
                                evaluated scene + one ray per pixel), 512², on a ~300k-triangle
                                scene. Goal <= 1.0 (the issue: depth no slower than a 1-sample Z
                                render). Also reported: both absolute times, 1024² times, the
                                largest relative difference between the two depths.

Runs in the Blender environment (.venv-blender, real bpy): ``python -m benchmarks.depth_bench``
from the main environment re-runs itself there. Writes benchmarks/out/depth_bench.json.
Register in benchmarks/__main__.py SUITES as ("benchmarks.depth_bench", "run").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLENDER_PY = REPO / ".venv-blender" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
OUT = Path(__file__).resolve().parent / "out"
KEY = "depth_cycles_vs_raycast_ratio"


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


def measure_inside_blender(quick: bool = False) -> dict:
    sys.path[:0] = [str(REPO / "blender_addon"), str(REPO / "sdk")]
    import numpy as np
    from brushwork_blender import capture
    from brushwork_blender.texturing.render_passes import render_passes

    sys.path[:0] = [str(REPO)]
    from benchmarks.common import side_by_side

    scene, cam, tris = _scene(60_000 if quick else 300_000)
    result: dict = {"triangles": tris}
    sizes = [(512, 512)] if quick else [(512, 512), (1024, 1024)]
    for size in sizes:
        ray = capture.camera_depth(scene, cam, size)
        cyc = render_passes(scene, cam, size).depth
        both = np.isfinite(ray) & np.isfinite(cyc)
        t_cycles, t_ray = side_by_side(lambda s=size: render_passes(scene, cam, s),
                                       lambda s=size: capture.camera_depth(scene, cam, s),
                                       repeats=3 if quick else 5)
        result[f"{size[0]}"] = {
            "cycles_s": round(t_cycles, 3), "raycast_s": round(t_ray, 3), "ratio": round(t_cycles / t_ray, 3),
            "max_rel_diff": float((np.abs(ray[both] - cyc[both]) / ray[both]).max()),
            "same_misses": bool((np.isfinite(ray) == np.isfinite(cyc)).all()),
        }
    return result


def run(quick: bool = False, only: list[str] | None = None) -> list:
    from .common import Figure

    if only and KEY not in only:
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
    return [Figure(KEY, main["ratio"], "x", "<= 1.0", detail=data, note=note)]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    if "--inside-blender" in sys.argv:
        print("DEPTH_BENCH: " + json.dumps(measure_inside_blender(quick)))
    else:
        for fig in run(quick):
            print(f"{fig.key}: {fig.value} {fig.unit} (goal {fig.goal}) {fig.note}")
            print(json.dumps(fig.detail, indent=2))
