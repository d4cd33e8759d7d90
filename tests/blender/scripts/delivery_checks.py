"""Where results land, and that nothing is lost (run by tests/blender/test_delivery.py), against a
REAL worker with the tiny models. The interactive path is driven by hand: the timer's pump
function is called by this script, file loads run Blender's load_post handlers, undo is real.

Usage: python delivery_checks.py PHASE EXTENSION.zip ENVIRONMENT_DIR WORKDIR
  PHASE "one": every check below; at the end it starts a job in crash.blend and dies (os._exit)
               without saving, once the worker has the job.
  PHASE "two": a new Blender session opens crash.blend and recovers that job onto its object.
"""

import json
import os
import sys
import time

import bpy
import numpy as np
from check_steps import ADDON_PKG, install_addon, stepper

phase, zip_path, environment, workdir = sys.argv[1:5]
PKG = ADDON_PKG
out = {}


step = stepper(out)


if phase == "one":
    install_addon(zip_path)
else:
    import addon_utils

    addon_utils.enable(PKG, default_set=True)
import importlib  # noqa: E402

jobs = importlib.import_module(PKG + ".jobs")
try:
    journal = importlib.import_module(PKG + ".journal")
except ImportError:  # an add-on without job records (kept so the checks also run on older versions)
    journal = None
pixels = importlib.import_module(PKG + ".pixels")
prefs = bpy.context.preferences.addons[PKG].preferences
prefs.worker_url, prefs.environment = "", environment


def path(name):
    return os.path.join(workdir, name)


def new_file(name, objects=("Cube",)):
    """A saved .blend with a cube per name, a camera and the Brushwork settings for tiny models."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    bw = scene.brushwork
    bw.prompt, bw.model, bw.steps, bw.width, bw.height, bw.seed, bw.cfg = "red bricks", "tiny-sd15", 2, 64, 64, 5, 5.0
    bw.depth_model = "controlnet-tiny-depth"
    for i, obj_name in enumerate(objects):
        bpy.ops.mesh.primitive_cube_add(size=2, location=(3 * i, 0, 0))
        bpy.context.active_object.name = obj_name
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.location = (0, 0, 8)
    scene.camera = cam
    os.makedirs(os.path.dirname(path(name)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=path(name))


def select_only(*objs):
    for o in bpy.context.scene.objects:
        o.select_set(o in objs)
    bpy.context.view_layer.objects.active = objs[0]


def brushwork_image(obj):
    mat = obj.active_material
    node = mat.node_tree.nodes.get("Brushwork Image") if mat and mat.node_tree else None
    return node.image if node else None


def interactive(on=True):
    jobs.run_sync_mode = (lambda: False) if on else (lambda: bool(bpy.app.background))


def pump_until_done(timeout=120):
    deadline = time.monotonic() + timeout
    while jobs.active_jobs() and time.monotonic() < deadline:
        jobs.pump()
        time.sleep(0.05)


def pending():
    return [r for r in journal.load_all() if r.get("state") == "pending"] if journal else []


def one_line_error(fn):
    try:
        fn()
    except RuntimeError as exc:
        return str(exc)
    return ""


if phase == "one":
    new_file("b/B.blend")  # B also has a "Cube"
    new_file("a/A.blend")

    @step("rename")
    def _():
        # Rename mid-job, and another object takes the old name: the result follows the object.
        interactive()
        cube = bpy.data.objects["Cube"]
        select_only(cube)
        bpy.ops.brushwork.generate_texture()
        job = jobs.active_jobs()[0]
        cube.name = "Rock"
        bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 5, 0))
        bpy.context.active_object.name = "Cube"
        pump_until_done()
        interactive(False)
        out["rename_outcome"] = [job.outcome.error, job.note] if job.outcome else "still running"
        out["rename_on_renamed"] = brushwork_image(bpy.data.objects["Rock"]) is not None
        out["rename_on_namesake"] = brushwork_image(bpy.data.objects["Cube"]) is not None
        bpy.data.objects.remove(bpy.data.objects["Cube"])
        bpy.data.objects["Rock"].name = "Cube"
        bpy.ops.wm.save_mainfile()

    @step("switch")
    def _():
        # Start in A, open B (it has a "Cube" too) before the result comes: B is never touched;
        # the result is kept on disk with its record and lands in A's Cube when A is opened again.
        interactive()
        select_only(bpy.data.objects["Cube"])
        bpy.data.objects["Cube"].active_material_index = 0
        images_before = {i.name for i in bpy.data.images}
        bpy.context.scene.brushwork.seed = 6  # each check its own picture (equal PNGs are one image)
        bpy.ops.brushwork.generate_texture()
        bpy.ops.wm.open_mainfile(filepath=path("b/B.blend"))
        pump_until_done()
        interactive(False)
        out["switch_b_cube_image"] = brushwork_image(bpy.data.objects["Cube"]) is not None
        out["switch_b_images"] = sorted(i.name for i in bpy.data.images)
        out["switch_b_folder"] = os.path.isdir(path("b/brushwork"))
        out["switch_pending"] = len(pending())
        out["switch_note"] = jobs.last_messages[-1]
        bpy.ops.wm.open_mainfile(filepath=path("a/A.blend"))  # load_post applies it
        image = brushwork_image(bpy.data.objects["Cube"])
        out["switch_a_new_image"] = image is not None and image.name not in images_before
        out["switch_a_file"] = bool(image) and os.path.isfile(bpy.path.abspath(image.filepath))
        out["switch_pending_after"] = len(pending())
        bpy.ops.wm.save_mainfile()

    @step("gone")
    def _():
        # The object is deleted while its job runs: the picture is kept in the file (fake user)
        # and on disk; undo brings the object back and the result goes onto it.
        interactive()
        cube = bpy.data.objects["Cube"]
        cube.data.materials.clear()
        select_only(cube)
        bpy.context.scene.brushwork.seed = 7
        bpy.ops.ed.undo_push(message="before")
        bpy.ops.brushwork.generate_texture()
        bpy.ops.object.delete()
        bpy.ops.ed.undo_push(message="delete")
        pump_until_done()
        interactive(False)
        job_note = jobs.last_messages[-1]
        out["gone_note"] = job_note
        kept = [i for i in bpy.data.images if i.name.startswith("Cube-result")]
        out["gone_kept_fake_user"] = [i.use_fake_user for i in kept]
        out["gone_pending"] = len(pending())
        bpy.ops.ed.undo()
        bpy.ops.ed.undo()  # before the delete: the cube is back, the undo handler applies the result
        cube = bpy.data.objects.get("Cube")
        out["gone_back_with_result"] = cube is not None and brushwork_image(cube) is not None
        out["gone_pending_after"] = len(pending())

    @step("undo")
    def _():
        # A result applied by the pump is its own undo step: undo takes back the result only (the
        # artist's last edit stays), redo brings it back.
        interactive()
        cube = bpy.data.objects["Cube"]
        cube.data.materials.clear()
        select_only(cube)
        bpy.context.scene.brushwork.seed = 8
        bpy.ops.ed.undo_push(message="start")
        bpy.ops.brushwork.generate_texture()
        empty = bpy.data.objects.new("ArtistEdit", None)
        bpy.context.scene.collection.objects.link(empty)
        bpy.ops.ed.undo_push(message="artist edit")
        pump_until_done()
        interactive(False)
        out["undo_applied"] = brushwork_image(bpy.data.objects["Cube"]) is not None
        bpy.ops.ed.undo()
        out["undo_edit_kept"] = "ArtistEdit" in bpy.data.objects
        out["undo_result_gone"] = brushwork_image(bpy.data.objects["Cube"]) is None
        bpy.ops.ed.redo()
        out["redo_result_back"] = brushwork_image(bpy.data.objects["Cube"]) is not None
        bpy.data.objects.remove(bpy.data.objects["ArtistEdit"])

    @step("reports")
    def _():
        scene = bpy.context.scene
        cube = bpy.data.objects["Cube"]
        select_only(cube)
        # several material slots: the active one gets the texture and the report says the rest did not
        cube.data.materials.clear()
        for n in range(3):
            cube.data.materials.append(bpy.data.materials.new(f"slot{n}"))
        cube.active_material_index = 1
        bpy.ops.brushwork.generate_texture()
        out["slots_note"] = jobs.last_messages[-1]
        out["slots_materials"] = [s.material.name for s in cube.material_slots]
        out["slots_old_kept"] = bpy.data.materials["slot1"].use_fake_user
        # no UVs: refused, nothing submitted
        bpy.ops.mesh.primitive_cube_add(size=1, location=(0, -5, 0))
        bare = bpy.context.active_object
        bare.name = "Bare"
        while bare.data.uv_layers:
            bare.data.uv_layers.remove(bare.data.uv_layers[0])
        out["no_uv_error"] = one_line_error(bpy.ops.brushwork.generate_texture)
        out["no_uv_material"] = len(bare.material_slots)
        # nothing selected
        for o in scene.objects:
            o.select_set(False)
        bpy.context.view_layer.objects.active = None
        out["nothing_error"] = one_line_error(bpy.ops.brushwork.generate_texture)
        out["nothing_project_error"] = one_line_error(bpy.ops.brushwork.project_from_camera)
        # worker gone (an address where nothing answers)
        select_only(cube)
        prefs.worker_url = "http://127.0.0.1:9"
        out["worker_gone_error"] = one_line_error(bpy.ops.brushwork.generate_texture)
        # the same through the interactive path: the pump reports it, and no record is left behind
        records_before = len(journal.load_all()) if journal else 0
        interactive()
        bpy.ops.brushwork.generate_texture()
        pump_until_done()
        interactive(False)
        out["worker_gone_interactive"] = jobs.last_messages[-1]
        out["worker_gone_records_left"] = (len(journal.load_all()) if journal else 0) - records_before
        prefs.worker_url = ""
        out["recover_nothing_note"] = ""
        bpy.ops.brushwork.recover_results()
        out["recover_nothing_note"] = jobs.last_messages[-1]

    @step("camera_space")
    def _():
        # A UV-space texture is refused with camera-space controls; Project From Camera uses the
        # render's aspect for its depth control.
        scene = bpy.context.scene
        bw = scene.brushwork
        select_only(bpy.data.objects["Cube"])
        bw.use_depth = True
        out["uv_depth_error"] = one_line_error(bpy.ops.brushwork.generate_texture)
        bw.use_depth = False
        scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
        bpy.ops.brushwork.project_from_camera()
        image = brushwork_image(bpy.data.objects["Cube"])
        depth = [c for c in json.loads(image["brushwork_recipe"])["controls"] if c["kind"] == "depth"][0]["signal"]
        out["project_depth_size"] = [depth["width"], depth["height"]]
        out["project_image_size"] = list(image.size)
        # the depth the Recipe refers to is in the file, exactly (packed float image), after a reload
        bpy.ops.wm.save_mainfile()
        bpy.ops.wm.open_mainfile(filepath=path("a/A.blend"))
        results = importlib.import_module(PKG + ".results")
        kept = [i for i in bpy.data.images if i.get("brushwork_input") == depth["data"]]
        import hashlib
        out["project_depth_kept"] = [
            "sha256:" + hashlib.sha256(results.depth_input_bytes(i)).hexdigest() == depth["data"] for i in kept]

    @step("inpaint")
    def _():
        # Inpaint with packing on, save, reload: the previous picture (original pixels), the painted
        # mask and the new version are all in the file; Previous Version goes back.
        prefs.output_policy = "PACK"
        source = bpy.data.images.new("wall", 64, 64)
        rgba = np.zeros((64, 64, 4), np.float32)
        rgba[..., 1], rgba[..., 3] = np.linspace(0, 1, 64)[:, None], 1.0
        pixels.set_image_rgba(source, rgba)
        source.pack()
        before = np.round(pixels.image_rgba(source) * 255)
        mat = bpy.data.materials.new("wall-mat")
        mat.use_nodes = True
        tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
        tex.image = source
        bpy.data.objects["Cube"].data.materials.append(mat)
        bpy.ops.brushwork.add_inpaint_mask(image="wall")
        mask = bpy.data.images["wall mask"]
        m = np.zeros((64, 64, 4), np.float32)
        m[:, 32:, :3], m[..., 3] = 1.0, 1.0
        pixels.set_image_rgba(mask, m)  # painted, never saved by the artist
        bw = bpy.context.scene.brushwork
        bw.model = "tiny-sd15-inpaint"
        bpy.ops.brushwork.inpaint_texture(image="wall")
        bw.model = "tiny-sd15"
        pixels.set_image_rgba(mask, 1.0 - m)  # the artist repaints the live mask afterwards
        bpy.ops.wm.save_mainfile()
        bpy.ops.wm.open_mainfile(filepath=path("a/A.blend"))
        new_recipe = json.loads(bpy.data.images["wall-inpaint"]["brushwork_recipe"])
        used = [i for i in bpy.data.images if i.get("brushwork_input") == new_recipe["mask"]]
        out["inpaint_used_mask"] = [float(pixels.image_rgba(i)[:, 40:, 0].mean()) for i in used]
        out["inpaint_init_ref_on_old"] = bpy.data.images["wall"].get("brushwork_input") == new_recipe["init_image"]
        old = bpy.data.images.get("wall")
        out["inpaint_old_kept"] = old is not None
        if old is not None:
            out["inpaint_old_same_pixels"] = float(np.abs(np.round(pixels.image_rgba(old) * 255) - before).max())
        mask = bpy.data.images.get("wall mask")
        out["inpaint_mask_kept"] = mask is not None and float(pixels.image_rgba(mask)[:, :24, 0].mean())
        shown = bpy.data.materials["wall-mat"].node_tree.nodes["Image Texture"].image
        out["inpaint_material_shows"] = shown.name if shown else None
        bpy.ops.brushwork.previous_version(image=shown.name)
        back = bpy.data.materials["wall-mat"].node_tree.nodes["Image Texture"].image
        out["inpaint_previous_back"] = back.name if back else None
        out["inpaint_new_still_there"] = shown.name in bpy.data.images
        prefs.output_policy = "BLEND"
        bpy.ops.wm.save_mainfile()

    @step("key")
    def _():
        key = bpy.context.scene.get("brushwork_client_key")
        bpy.ops.wm.open_mainfile(filepath=path("a/A.blend"))
        out["key_saved_with_file"] = bool(key) and bpy.context.scene.get("brushwork_client_key") == key
        out["key_in_prefs"] = key in json.loads(prefs.client_keys or "{}")

    # The crash: a saved file that has never had a job (no key, no ids on disk); a job starts, the
    # worker takes it, Blender dies without saving.
    new_file("crash/crash.blend")
    out["forbidden_loaded"] = sorted(m for m in ("torch", "diffusers", "PIL", "transformers") if m in sys.modules)
    print("RESULT: " + json.dumps(out), flush=True)
    interactive()
    select_only(bpy.data.objects["Cube"])
    bpy.context.scene.brushwork.prompt = "lost in a crash"
    bpy.ops.brushwork.generate_texture()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r.get("remote_id") for r in journal.load_all()):
        time.sleep(0.05)
    os._exit(0)

else:
    @step("crash")
    def _():
        bpy.ops.wm.open_mainfile(filepath=path("crash/crash.blend"))
        out["crash_file_key_before"] = bool(bpy.context.scene.get("brushwork_client_key"))
        record = [r for r in journal.load_all() if r.get("remote_id")][0]
        sdk = importlib.import_module(PKG + ".sdk")
        client = sdk.client_module().connect(None, start=False, client_key=record["file"]["key"])
        deadline = time.monotonic() + 120
        finished = ("done", "failed", "cancelled")
        while client.job(record["remote_id"]).state not in finished and time.monotonic() < deadline:
            time.sleep(0.1)
        bpy.ops.brushwork.recover_results()
        out["crash_note"] = jobs.last_messages[-1]
        image = brushwork_image(bpy.data.objects["Cube"])
        out["crash_applied_prompt"] = json.loads(image["brushwork_recipe"])["prompt"] if image else None
        out["crash_records_left"] = len([r for r in journal.load_all() if r["id"] == record["id"]])
        bpy.ops.brushwork.recover_results()
        out["crash_again_note"] = jobs.last_messages[-1]
    print("RESULT: " + json.dumps(out), flush=True)
