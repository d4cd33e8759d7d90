"""Install the packaged extension zip into a throwaway Blender user folder and check it.

Usage: python install_checks.py EXTENSION.zip   (BLENDER_USER_RESOURCES must point at a temp dir)
"""

import importlib
import json
import os
import sys
import traceback

import bpy

zip_path = sys.argv[1]
out = {"user_resources": os.environ.get("BLENDER_USER_RESOURCES", "")}
PKG = "bl_ext.user_default.brushwork_blender"

try:
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    out["install_result"] = sorted(result)
except Exception as exc:  # reported, not raised: the test shows it
    out["install_error"] = f"{type(exc).__name__}: {exc}"
    traceback.print_exc()

out["enabled"] = PKG in bpy.context.preferences.addons
installed_dir = os.path.join(bpy.utils.user_resource("EXTENSIONS"), "user_default", "brushwork_blender")
out["installed_files"] = sorted(os.listdir(installed_dir)) if os.path.isdir(installed_dir) else []
out["installed_under_temp"] = installed_dir.startswith(out["user_resources"]) if out["user_resources"] else False

names = ["generate_texture", "capture_depth", "capture_pose", "project_from_camera", "inpaint_texture", "cancel",
         "add_inpaint_mask", "edit_bone_map"]
out["operators"] = {}
for name in names:
    try:
        getattr(bpy.ops.brushwork, name).get_rna_type()
        out["operators"][name] = True
    except (AttributeError, KeyError):
        out["operators"][name] = False
out["panels"] = [hasattr(bpy.types, n) for n in ("BRUSHWORK_PT_view3d", "BRUSHWORK_PT_image")]

if out["enabled"]:
    addon = importlib.import_module(PKG)
    sdk = importlib.import_module(PKG + ".sdk")
    out["vendored"] = sdk.vendored
    out["recipe_module"] = sdk.recipe.__name__
    client = sdk.client_module()
    out["client_module"] = client.__name__
    prefs = bpy.context.preferences.addons[PKG].preferences
    out["prefs"] = {k: getattr(prefs, k) for k in ("environment", "worker_url", "start_worker", "output_policy")}
    out["scene_settings"] = bpy.context.scene.brushwork.steps

    # The operators work from the installed copy: exact depth of a perpendicular plane.
    scene = bpy.context.scene  # (read_factory_settings would also reset preferences: not used)
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_plane_add(size=100)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    cam.location = (0, 0, 4)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = 160, 120
    scene.brushwork.width = scene.brushwork.height = 64
    bpy.ops.brushwork.capture_depth()
    depth_image = bpy.data.images.get("Brushwork Depth")
    out["depth_image"] = [list(depth_image.size), depth_image.get("brushwork_near"), depth_image.get("brushwork_far")]

    # Background mode runs synchronously, so a failure is an error right here, in one line.
    prefs = bpy.context.preferences.addons[PKG].preferences
    prefs.worker_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    scene.brushwork.prompt = "bricks"
    bpy.context.view_layer.objects.active = scene.objects["Plane"]
    images_before = len(bpy.data.images)
    try:
        bpy.ops.brushwork.generate_texture()
        out["unreachable_error"] = ""
    except RuntimeError as exc:
        out["unreachable_error"] = str(exc)
    out["images_added_on_failure"] = len(bpy.data.images) - images_before

    # A worker on another machine needs Blender's online access (off here): refused, clearly.
    prefs.worker_url = "http://192.0.2.1:7861"
    try:
        bpy.ops.brushwork.generate_texture()
        out["online_error"] = ""
    except RuntimeError as exc:
        out["online_error"] = str(exc)

    # A Brushwork environment folder without a python is named in the error.
    prefs.worker_url = ""
    prefs.environment = "/nonexistent/brushwork-env"
    try:
        bpy.ops.brushwork.generate_texture()
        out["env_error"] = ""
    except RuntimeError as exc:
        out["env_error"] = str(exc)

    # Unhappy paths of the operators: one clear line each, nothing half made.
    def error_of(op, **kwargs):
        try:
            op(**kwargs)
            return ""
        except RuntimeError as exc:
            return str(exc).strip()

    prefs.environment = ""
    for obj in scene.objects:
        obj.select_set(False)
    unhappy = {"project_no_selection": error_of(bpy.ops.brushwork.project_from_camera)}
    scene.objects["Plane"].select_set(True)
    cam.data.type = "PANO"
    unhappy["depth_panorama"] = error_of(bpy.ops.brushwork.capture_depth)
    unhappy["project_panorama"] = error_of(bpy.ops.brushwork.project_from_camera)
    cam.data.type = "PERSP"
    cam.rotation_euler = (3.14159, 0, 0)  # looking up at the empty sky
    unhappy["project_sees_nothing"] = error_of(bpy.ops.brushwork.project_from_camera)
    cam.rotation_euler = (0, 0, 0)
    unhappy["pose_no_armature"] = error_of(bpy.ops.brushwork.capture_pose)
    rig = bpy.data.objects.new("rig", bpy.data.armatures.new("rig"))
    scene.collection.objects.link(rig)
    scene.brushwork.bone_map = "TEXT"
    unhappy["bone_map_text_missing"] = error_of(bpy.ops.brushwork.capture_pose)
    scene.brushwork.bone_map = "AUTO"
    bpy.data.objects.remove(rig)
    scene.camera = None
    unhappy["depth_no_camera"] = error_of(bpy.ops.brushwork.capture_depth)
    unhappy["project_no_camera"] = error_of(bpy.ops.brushwork.project_from_camera)
    scene.camera = cam
    bpy.data.images.new("odd", 60, 64)
    bpy.data.images.new("odd mask", 60, 64)
    unhappy["inpaint_odd_size"] = error_of(bpy.ops.brushwork.inpaint_texture, image="odd")
    bpy.data.images.new("wall", 64, 64)
    unhappy["inpaint_no_mask"] = error_of(bpy.ops.brushwork.inpaint_texture, image="wall")
    bpy.data.images.new("wall mask", 32, 32)
    unhappy["inpaint_mask_size"] = error_of(bpy.ops.brushwork.inpaint_texture, image="wall")
    unhappy["inpaint_no_image"] = error_of(bpy.ops.brushwork.inpaint_texture, image="nope")
    scene.brushwork.steps = 5
    scene.brushwork.width = 64
    scene.brushwork.sampler = "Euler a"
    scene.brushwork.cfg = 7.0
    unhappy["cancel_nothing"] = error_of(bpy.ops.brushwork.cancel)
    scene.brushwork.preset = "no-such-preset"
    scene.objects["Plane"].select_set(True)
    bpy.context.view_layer.objects.active = scene.objects["Plane"]
    unhappy["unknown_preset"] = error_of(bpy.ops.brushwork.generate_texture)
    scene.brushwork.preset = ""

    # Presets travel in the zip: applying one fills the panel; its prompt suffix joins the prompt.
    operators = importlib.import_module(PKG + ".operators")
    bpy.ops.brushwork.apply_preset(name="texture-seamless")
    s = scene.brushwork
    out["preset_settings"] = [s.preset, s.sampler, s.steps, s.tiling, s.negative_prompt[:4]]
    rna = type(s).bl_rna.properties
    out["panel_limits"] = {"steps": rna["steps"].hard_max, "cfg": rna["cfg"].hard_max,
                           "width": [rna["width"].hard_min, rna["width"].hard_max],
                           "samplers": [item.identifier for item in rna["sampler"].enum_items],
                           "tiling": [item.identifier for item in rna["tiling"].enum_items]}
    s.prompt = "mossy stone"
    recipe = operators.base_recipe(s, tiling="xy")
    out["preset_recipe"] = [recipe.preset, recipe.prompt, recipe.steps]
    bpy.ops.brushwork.apply_preset(name="pose-character")
    out["preset_pose"] = [s.use_pose, s.height]
    recipe = operators.base_recipe(s, controls=[{"kind": "pose", "strength": 0.5, "signal": {
        "people": [], "canvas_width": 64, "canvas_height": 64}}])
    out["preset_pose_control"] = [recipe.controls[0].strength, recipe.controls[0].end]
    bpy.ops.brushwork.apply_preset(name="NONE")
    out["preset_cleared"] = s.preset
    unhappy["load_recipe_plain_image"] = error_of(bpy.ops.brushwork.load_recipe, image="wall")
    out["unhappy"] = unhappy

    # An image remembers its Recipe: loading it fills the panel for a re-run or a variation.
    made = bpy.data.images.new("made", 64, 64)
    made["brushwork_recipe"] = json.dumps({"prompt": "old bricks", "negative_prompt": "blur", "model": "m1",
                                           "seed": 1234, "steps": 17, "cfg": 6.5, "width": 320, "height": 192,
                                           "tiling": "xy", "sampler": "DDIM", "controls": [
                                               {"kind": "pose", "strength": 0.7, "model": "cn-pose",
                                                "signal": {"people": [], "canvas_width": 64, "canvas_height": 64}}]})
    bpy.ops.brushwork.load_recipe(image="made")
    s = scene.brushwork
    out["loaded_recipe"] = [s.prompt, s.negative_prompt, s.model, s.seed, s.steps, round(s.cfg, 3), s.width,
                            s.height, s.tiling, s.sampler, s.use_pose, round(s.pose_strength, 3), s.pose_model]
    s.use_pose = False
    # A recipe that left steps, CFG and size to its model (null) keeps the panel's values for them.
    unset = bpy.data.images.new("unset", 64, 64)
    unset["brushwork_recipe"] = json.dumps({"prompt": "new bricks", "steps": None, "cfg": None, "width": None,
                                            "height": None, "sampler": None, "seed": 5})
    out["load_unset"] = sorted(bpy.ops.brushwork.load_recipe(image="unset"))
    out["loaded_unset"] = [s.prompt, s.seed, s.steps, round(s.cfg, 3), s.width, s.height, s.sampler]

    out["forbidden_loaded"] = sorted(m for m in ("torch", "diffusers", "PIL", "transformers") if m in sys.modules)

    bpy.ops.preferences.addon_disable(module=PKG)
    out["disabled_clean"] = not hasattr(bpy.types, "BRUSHWORK_PT_view3d") and not hasattr(bpy.types.Scene, "brushwork")

print("RESULT: " + json.dumps(out))
