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
render_passes = importlib.import_module(PKG + ".texturing.render_passes")
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


def pump_until_done(deadline_s=120.0):
    """Run the pump exactly as Blender's timer would (timers never fire in background mode): while
    it is registered, call it; when it returns None it is unregistered, and only a new
    ``ensure_pump`` brings it back. Returns how many times the timer stopped with work left."""
    deadline = time.monotonic() + deadline_s
    stalled = 0
    while bpy.app.timers.is_registered(jobs.pump) and time.monotonic() < deadline:
        interval = jobs.pump()
        if interval is None:
            bpy.app.timers.unregister(jobs.pump)
            stalled += bool(jobs.active_jobs() or render_passes.pending())
        else:
            time.sleep(min(interval, 0.05))
    return stalled


class SyncRenderJob:
    """Headless stand-in for Blender's render job (no window here to start F12's job from): the
    same render, run when the pump starts it; counts when that happens."""

    def __init__(self):
        self.calls = 0

    def __call__(self, setup):
        self.calls += 1
        bpy.ops.render.render(write_still=False, layer=setup.view_layer.name, scene=setup.scene.name)


@step("ui")
def _():
    # The UI path: the operator returns before any view is rendered or generated; the pump (by
    # hand here: timers never fire in background mode) starts each view's render job, reads it
    # back, runs the view's job on a thread, and carries the chain to the bake.
    jobs.run_sync_mode = lambda: False
    starter = SyncRenderJob()
    render_passes.start_render_job = starter
    select_only(cube)
    mv.count, mv.top, mv.sequential = 2, False, False
    mv.texture_size, mv.texture_height = 64, 32  # a non-square bake
    before = view_images()
    bpy.ops.brushwork.texture_multiview()
    out["ui_active_after_return"] = len(jobs.active_jobs())
    out["ui_renders_pending_after_return"] = render_passes.pending()
    out["ui_renders_started_in_operator"] = starter.calls
    out["ui_images_at_return"] = len(view_images()) - len(before)
    out["ui_pump_stopped_with_work_left"] = pump_until_done()
    out["ui_renders_started"] = starter.calls
    out["ui_active_at_end"] = len(jobs.active_jobs())
    out["ui_new_view_images"] = len(view_images()) - len(before)
    out["ui_summary"] = multiview.last_summary
    tex = cube.material_slots[0].material.node_tree.nodes.get("Brushwork Multiview")
    out["ui_texture_size"] = list(tex.image.size) if tex else None
    mv.texture_height = 0
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


@step("regions")
def _():
    # Material slots as regions, end to end through the worker (its engine runs the regions):
    # a cube whose -Y faces (towards the camera and the first orbit view) carry a material with a
    # region prompt.
    regions = importlib.import_module(PKG + ".regions")
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, -6, 1))
    box = bpy.context.active_object
    wall, rest = bpy.data.materials.new("Wall"), bpy.data.materials.new("Rest")
    wall.brushwork_region.prompt = "red bricks"
    box.data.materials.append(rest)
    box.data.materials.append(wall)
    for poly in box.data.polygons:
        poly.material_index = 1 if poly.normal.y < -0.5 else 0
    top = box.vertex_groups.new(name="Top")  # and the top face as a vertex-group region
    top.add([v.index for v in box.data.vertices if v.co.z > 0.9], 1.0, "REPLACE")
    entry = box.brushwork_group_regions.add()
    entry.vertex_group, entry.prompt = "Top", "mossy roof"
    cam_data = bpy.data.cameras.new("regions cam")
    cam = bpy.data.objects.new("regions cam", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (5.0, -11.0, 4.0)
    cam.rotation_euler = (box.location - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    scene.render.resolution_x = scene.render.resolution_y = 64
    bpy.context.view_layer.update()
    select_only(box)
    before = {i.name for i in bpy.data.images}
    out["regions_project_result"] = sorted(bpy.ops.brushwork.project_from_camera())
    made = sorted({i.name for i in bpy.data.images} - before)
    recipes = [json.loads(bpy.data.images[n]["brushwork_recipe"]) for n in made if bpy.data.images[n].get(
        "brushwork_recipe")]
    run = recipes[0] if recipes else {}
    out["regions_project_regions"] = [[r["prompt"], r["weight"]] for r in run.get("regions", [])]
    # the mask the Recipe names is the Material Index pass of the same view (rendered again here)
    passes = render_passes.render_passes(scene, cam, (64, 64), materials=[wall], groups=[(box.name, "Top")])
    fields = regions.region_fields([wall]) + [f for _, _, f in regions.group_regions([box])]
    want, _ = regions.regions_from_masks(fields, passes.material_index)
    out["regions_project_mask_matches"] = [r["mask"] for r in run.get("regions", [])] == [w["mask"] for w in want]
    # Generate Texture (UV space): the group's faces in the active slot as a UV-layout mask
    box.active_material_index = 0  # 'Rest': the top face is in it
    before = {i.name for i in bpy.data.images}
    out["regions_texture_result"] = sorted(bpy.ops.brushwork.generate_texture())
    made = sorted({i.name for i in bpy.data.images} - before)
    run = next((json.loads(bpy.data.images[n]["brushwork_recipe"]) for n in made
                if bpy.data.images[n].get("brushwork_recipe")), {})
    out["regions_texture_regions"] = [r["prompt"] for r in run.get("regions", [])]
    # the multi-view chain: each view that sees the wall carries its region
    mv.count, mv.top, mv.sequential = 2, False, True
    before = set(view_images())
    out["regions_multiview_result"] = sorted(bpy.ops.brushwork.texture_multiview())
    views_made = sorted(set(view_images()) - before)
    out["regions_multiview_views"] = [[r["prompt"] for r in json.loads(bpy.data.images[n]["brushwork_recipe"]).get(
        "regions", [])] for n in views_made]


print("RESULT: " + json.dumps(out))
