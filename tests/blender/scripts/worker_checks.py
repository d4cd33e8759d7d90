"""The add-on against a REAL worker with tiny models (run by tests/blender/test_worker_ops.py).

No worker runs at first: the add-on starts one with the python of the Brushwork environment set in
its preferences (as a user's first click does), then every operator runs against it.

Usage: python worker_checks.py EXTENSION.zip ENVIRONMENT_DIR WORKDIR
Env: BLENDER_USER_RESOURCES (temp), BRUSHWORK_HOME (empty), BRUSHWORK_MODEL_DIRS (the tiny models),
BRUSHWORK_WORKER_PORT=0 (the started worker picks a free port).
"""

import json
import os
import sys
import time

import bpy
import numpy as np
from check_steps import ADDON_PKG, install_addon, stepper

zip_path, environment, workdir = sys.argv[1:4]
PKG = ADDON_PKG
out = {}


step = stepper(out)


install_addon(zip_path)
import importlib  # noqa: E402

jobs = importlib.import_module(PKG + ".jobs")
results = importlib.import_module(PKG + ".results")
pixels = importlib.import_module(PKG + ".pixels")
prefs = bpy.context.preferences.addons[PKG].preferences
prefs.worker_url = ""
prefs.environment = environment

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
bw = scene.brushwork
bw.prompt, bw.model, bw.steps, bw.width, bw.height, bw.seed, bw.cfg = "red bricks", "tiny-sd15", 2, 64, 64, 5, 5.0
bw.depth_model = "controlnet-tiny-depth"
scene.render.resolution_x, scene.render.resolution_y = 64, 64

bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 0))
cube = bpy.context.active_object
bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, -1))
floor = bpy.context.active_object
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
scene.collection.objects.link(cam)
cam.location = (0, 0, 8)
scene.camera = cam


def select_only(*objs):
    for o in scene.objects:
        o.select_set(o in objs)
    bpy.context.view_layer.objects.active = objs[0]


WORKER_JSON = os.path.join(os.environ["BRUSHWORK_HOME"], "state", "worker.json")


@step("no_start")
def _():
    # 0. "start the worker" off and none running: one clear line, nothing started
    prefs.start_worker = False
    select_only(cube)
    try:
        bpy.ops.brushwork.generate_texture()
        out["no_start_error"] = ""
    except RuntimeError as exc:
        out["no_start_error"] = str(exc)
    out["no_start_worker_json"] = os.path.exists(WORKER_JSON)
    prefs.start_worker = True


@step("unsaved")
def _():
    # 1. unsaved .blend: the result is packed, carries its Recipe, and is on the cube's material.
    select_only(cube)
    t0 = time.perf_counter()
    res = bpy.ops.brushwork.generate_texture()
    out["unsaved_seconds"] = time.perf_counter() - t0
    out["unsaved_result"] = sorted(res)
    image = cube.active_material.node_tree.nodes["Brushwork Image"].image
    out["unsaved_packed"] = image.packed_file is not None
    out["unsaved_size"] = list(image.size)
    recipe = json.loads(image["brushwork_recipe"])
    out["unsaved_recipe"] = {k: recipe[k] for k in ("prompt", "model", "seed", "steps", "width", "height")}
    with open(WORKER_JSON) as f:
        info = json.load(f)
    out["worker_python"], out["worker_pid"], out["worker_url"] = info.get("python", ""), info.get("pid"), info["url"]


blend_path = os.path.join(workdir, "scene.blend")
bpy.ops.wm.save_as_mainfile(filepath=blend_path)


@step("saved")
def _():
    # 2. saved .blend: the PNG lands in //brushwork/ beside it, seamless asks for tiling xy.
    select_only(cube)
    bw.tiling = "xy"
    bpy.ops.brushwork.generate_texture()
    bw.tiling = "none"
    image = cube.active_material.node_tree.nodes["Brushwork Image"].image
    out["saved_filepath"] = image.filepath
    out["saved_file_exists"] = os.path.isfile(bpy.path.abspath(image.filepath))
    out["saved_folder_files"] = sorted(os.listdir(os.path.join(workdir, "brushwork")))
    out["saved_tiling"] = json.loads(image["brushwork_recipe"])["tiling"]
    with open(bpy.path.abspath(image.filepath), "rb") as f:
        out["saved_png_magic"] = f.read(8) == b"\x89PNG\r\n\x1a\n"


@step("pose")
def _():
    # 2b. depth AND pose from the camera condition one picture (two ControlNets on the worker)
    arm = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for name, head, tail in (("DEF-spine.004", (0, 0, 1.2), (0, 0, 1.5)),
                             ("DEF-upper_arm.L", (0.3, 0, 1.2), (0.6, 0, 1.0)),
                             ("DEF-upper_arm.R", (-0.3, 0, 1.2), (-0.6, 0, 1.0))):
        bone = arm.data.edit_bones.new(name)
        bone.head, bone.tail = head, tail
    bpy.ops.object.mode_set(mode="OBJECT")
    # (camera views: through Project From Camera; a UV-space texture refuses them)
    select_only(cube)
    bw.use_depth, bw.use_pose, bw.pose_model = True, True, "controlnet-tiny-pose"
    try:
        res = bpy.ops.brushwork.project_from_camera()
    finally:
        bw.use_depth = bw.use_pose = False
        bpy.data.objects.remove(arm)
    out["pose_result"] = sorted(res)
    recipe = json.loads(cube.active_material.node_tree.nodes["Brushwork Image"].image["brushwork_recipe"])
    out["pose_kinds"] = [c["kind"] for c in recipe["controls"]]
    people = [c for c in recipe["controls"] if c["kind"] == "pose"][0]["signal"]["people"]
    out["pose_seen"] = sum(1 for c in people[0]["pose_keypoints_2d"][2::3] if c > 0)


@step("project")
def _():
    # 3. projection from the camera onto cube and floor, with a bake to the cube's own UVs.
    select_only(cube, floor)
    bw.bake_to_uvs = False
    res = bpy.ops.brushwork.project_from_camera()
    out["project_result"] = sorted(res)
    uv = cube.data.uv_layers.get("Brushwork Projection")
    out["project_uv_on_both"] = [o.data.uv_layers.get("Brushwork Projection") is not None for o in (cube, floor)]
    data = np.empty(len(uv.data) * 2, dtype=np.float32)
    uv.data.foreach_get("uv", data)
    data = data.reshape(-1, 2)
    out["project_uv_range"] = [float(data.min()), float(data.max())]
    # The top face's corners (z = 1, ±1, ±1) from a 50 mm camera 7 units above: analytic u, v.
    half = 1.0 / 7.0 / (36.0 / 50.0)  # tan-plane offset / frame width
    out["project_uv_expected_extent"] = [0.5 - half, 0.5 + half]
    mat = cube.active_material
    nodes = mat.node_tree.nodes
    out["project_material_uv"] = [n.uv_map for n in nodes if n.type == "UVMAP"]
    image = nodes["Brushwork Image"].image
    recipe = json.loads(image["brushwork_recipe"])
    depth = [c for c in recipe["controls"] if c["kind"] == "depth"]
    out["project_depth_control"] = {k: depth[0]["signal"][k] for k in ("width", "height", "format")} if depth else None
    out["project_depth_ref"] = depth[0]["signal"]["data"][:7] if depth else ""
    out["project_depth_near_far"] = [depth[0]["signal"]["near"], depth[0]["signal"]["far"]] if depth else None
    out["project_same_image_on_floor"] = floor.active_material.node_tree.nodes["Brushwork Image"].image == image


@step("bake")
def _():
    select_only(cube)
    bw.bake_to_uvs = True
    bpy.ops.brushwork.project_from_camera()
    bw.bake_to_uvs = False
    nodes = cube.active_material.node_tree.nodes
    out["bake_uv_map"] = [n.uv_map for n in nodes if n.type == "UVMAP"]
    baked = nodes["Brushwork Image"].image
    out["bake_image"] = [baked.name, list(baked.size), bool(baked.get("brushwork_recipe"))]
    px = pixels.image_rgba(baked)
    out["bake_nonblack"] = float(px[..., :3].mean())


@step("inpaint")
def _():
    # 4. inpaint: a mask painted white on the right half repaints only that half.
    source = bpy.data.images.new("wall", 64, 64)
    rgba = np.zeros((64, 64, 4), np.float32)
    rgba[..., 0], rgba[..., 3] = np.linspace(0, 1, 64)[None, :], 1.0
    pixels.set_image_rgba(source, rgba)
    bpy.ops.brushwork.add_inpaint_mask(image="wall")
    mask = bpy.data.images["wall mask"]
    m = np.zeros((64, 64, 4), np.float32)
    m[:, 32:, :3] = 1.0
    m[..., 3] = 1.0
    pixels.set_image_rgba(mask, m)
    before = np.round(pixels.image_rgba(source) * 255)
    bw.model = "tiny-sd15-inpaint"
    res = bpy.ops.brushwork.inpaint_texture(image="wall")
    bw.model = "tiny-sd15"
    out["inpaint_result"] = sorted(res)
    new = bpy.data.images.get("wall-inpaint")
    out["inpaint_image_made"] = new is not None
    if new is not None:
        after = np.round(pixels.image_rgba(new) * 255)
        out["inpaint_left_max_diff"] = float(np.abs(after[:, :28, :3] - before[:, :28, :3]).max())
        out["inpaint_right_mean_diff"] = float(np.abs(after[:, 36:, :3] - before[:, 36:, :3]).mean())
        out["inpaint_recipe_task"] = bool(json.loads(new["brushwork_recipe"])["mask"])


@step("async")
def _():
    # 5. the UI path: the operator returns at once, a pump applies the result (timers do not fire
    #    here, so the test pumps by hand exactly as the timer would).
    jobs.run_sync_mode = lambda: False
    select_only(cube)
    bw.steps = 3
    t0 = time.perf_counter()
    bpy.ops.brushwork.generate_texture()
    out["async_return_seconds"] = time.perf_counter() - t0
    out["async_active_after_return"] = len(jobs.active_jobs())
    job = jobs.active_jobs()[0]
    steps_seen = set()
    deadline = time.monotonic() + 60
    while jobs.active_jobs() and time.monotonic() < deadline:
        jobs.pump()
        steps_seen.add(job.step)
        time.sleep(0.05)
    out["async_outcome"] = [job.outcome.error, job.outcome.cancelled, len(job.outcome.pngs)] if job.outcome else None
    out["async_steps_seen_max"] = max(steps_seen)
    out["async_total"] = job.total
    out["async_preview"] = bpy.data.images.get("Brushwork Preview") is not None

    # 6. cancel: a long job, cancelled right after submitting, ends cancelled; the worker stays up.
    bw.steps, bw.width, bw.height = 200, 128, 128
    def names():
        return {i.name for i in bpy.data.images} - {"Brushwork Preview"}
    images_before = names()
    bpy.ops.brushwork.generate_texture()
    job = jobs.active_jobs()[0]
    deadline = time.monotonic() + 60
    while job.step < 1 and job.outcome is None and time.monotonic() < deadline:  # until it really runs
        jobs.pump()
        time.sleep(0.02)
    bpy.ops.brushwork.cancel()
    while jobs.active_jobs() and time.monotonic() < deadline:
        jobs.pump()
        time.sleep(0.05)
    out["cancel_outcome"] = [job.outcome.error, job.outcome.cancelled] if job.outcome else None
    out["cancel_step_reached"] = job.step
    out["cancel_images_added"] = sorted(names() - images_before)
    bw.steps, bw.width, bw.height = 2, 64, 64
    jobs.run_sync_mode = lambda: bool(bpy.app.background)


@step("recover")
def _():
    # 7. Blender "closed" while a job ran: the job (same .blend client key) finished on the worker;
    #    Recover Results imports it, once.
    sdk = importlib.import_module(PKG + ".sdk")
    client_mod = sdk.client_module()
    key = scene["brushwork_client_key"]
    client = client_mod.connect(out["worker_url"], client_key=key)
    client.generate(sdk.Recipe(prompt="lost job", model="tiny-sd15", width=64, height=64, steps=2, seed=9))
    before = {i.name for i in bpy.data.images}
    bpy.ops.brushwork.recover_results()
    added = {i.name for i in bpy.data.images} - before
    out["recover_added"] = sorted(added)
    out["recover_recipe_prompt"] = [json.loads(bpy.data.images[n]["brushwork_recipe"])["prompt"] for n in added]
    bpy.ops.brushwork.recover_results()
    out["recover_again_added"] = sorted({i.name for i in bpy.data.images} - before - added)


out["forbidden_loaded"] = sorted(m for m in ("torch", "diffusers", "PIL", "transformers") if m in sys.modules)
print("RESULT: " + json.dumps(out))
