"""Multi-view texturing against a REAL worker with tiny models (tests/blender/test_multiview_worker.py).

The installed extension starts the worker itself (environment set in its preferences), then:
sequential views in background mode (synchronous), the UI path (returns at once, pumped by hand as
the timer would), and the no-UV error.

Usage: python multiview_worker_checks.py EXTENSION.zip ENVIRONMENT_DIR
Env: BLENDER_USER_RESOURCES, BRUSHWORK_HOME, BRUSHWORK_MODEL_DIRS (tiny models), BRUSHWORK_WORKER_PORT=0.
"""

import importlib
import json
import sys
import time

import bpy
from check_steps import ADDON_PKG, install_addon, stepper

zip_path, environment = sys.argv[1:3]
PKG = ADDON_PKG
out = {}


step = stepper(out)


install_addon(zip_path)
jobs = importlib.import_module(PKG + ".jobs")
multiview = importlib.import_module(PKG + ".multiview_operators")
prefs = bpy.context.preferences.addons[PKG].preferences
prefs.worker_url = ""
prefs.environment = environment
prefs.output_policy = "PACK"

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
bw = scene.brushwork
bw.prompt, bw.model, bw.steps, bw.width, bw.height, bw.seed, bw.cfg = "mossy stone", "tiny-sd15", 2, 64, 64, 5, 5.0
bw.depth_model = "controlnet-tiny-depth"
mv = scene.brushwork_multiview
mv.source, mv.count, mv.top, mv.texture_size, mv.margin, mv.sequential = "ORBIT", 2, True, 64, 4, True

bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
cube = bpy.context.active_object
bpy.ops.mesh.primitive_plane_add(size=6, location=(0, 0, 0))
floor = bpy.context.active_object
bpy.ops.mesh.primitive_cube_add(size=1, location=(3, 3, 0.5))
bare = bpy.context.active_object
while bare.data.uv_layers:
    bare.data.uv_layers.remove(bare.data.uv_layers[0])


def select_only(*objs):
    for o in scene.objects:
        o.select_set(o in objs)
    bpy.context.view_layer.objects.active = objs[0]


def view_images():
    return sorted(i.name for i in bpy.data.images if i.name.endswith("-view") or "-view." in i.name)


@step("sync")
def _():
    select_only(cube, floor)
    result = bpy.ops.brushwork.texture_multiview()
    out["sync_result"] = sorted(result)
    out["sync_views_collection"] = sorted(o.name for o in bpy.data.collections["Brushwork Views"].objects)
    out["sync_view_images"] = view_images()
    recipes = [json.loads(bpy.data.images[n]["brushwork_recipe"]) for n in view_images()]
    out["sync_recipe_kinds"] = [[bool(r.get("init_image")), bool(r.get("mask")),
                                 [c["kind"] for c in r["controls"]]] for r in recipes]
    mats = {}
    for obj in (cube, floor):
        for slot in obj.material_slots:
            tex = slot.material.node_tree.nodes.get("Brushwork Multiview")
            uv = [n.uv_map for n in slot.material.node_tree.nodes if n.type == "UVMAP"]
            mats[obj.name] = [tex.image.name if tex else None, list(tex.image.size) if tex else None, uv]
    out["sync_materials"] = mats
    out["sync_uv_layers"] = {o.name: [uv.name for uv in o.data.uv_layers] for o in (cube, floor)}
    out["sync_summary"] = multiview.last_summary


@step("no_uv")
def _():
    select_only(bare)
    try:
        bpy.ops.brushwork.texture_multiview()
        out["no_uv_error"] = None
    except RuntimeError as exc:
        out["no_uv_error"] = str(exc)


@step("ui")
def _():
    # The UI path: the operator returns while its first view job runs on a thread; the pump
    # (by hand here: timers never fire in background mode) carries the chain to the bake.
    jobs.run_sync_mode = lambda: False
    select_only(cube)
    mv.count, mv.top, mv.sequential = 2, False, False
    before = view_images()
    bpy.ops.brushwork.texture_multiview()
    out["ui_active_after_return"] = len(jobs.active_jobs())
    out["ui_images_at_return"] = len(view_images()) - len(before)
    deadline = time.monotonic() + 120
    while jobs.active_jobs() and time.monotonic() < deadline:
        jobs.pump()
        time.sleep(0.05)
    out["ui_active_at_end"] = len(jobs.active_jobs())
    out["ui_new_view_images"] = len(view_images()) - len(before)
    out["ui_summary"] = multiview.last_summary
    jobs.run_sync_mode = lambda: bool(bpy.app.background)


@step("normal")
def _():
    # A normal control next to depth (the tiny set has no normal ControlNet: any SD 1.5 one fits).
    select_only(cube)
    mv.count, mv.top, mv.sequential, mv.use_normal = 1, False, True, True
    mv.normal_model = "controlnet-tiny-depth"
    before = set(view_images())
    result = bpy.ops.brushwork.texture_multiview()
    new = sorted(set(view_images()) - before)
    out["normal_result"] = sorted(result)
    recipe = json.loads(bpy.data.images[new[0]]["brushwork_recipe"])
    out["normal_control_kinds"] = [c["kind"] for c in recipe["controls"]]
    mv.use_normal = False


print("RESULT: " + json.dumps(out))
