"""The operators scripts and panels call. Each builds a Recipe on the main thread, hands the
network half to ``jobs`` and returns at once; results are applied on the main thread later (or
right away in background mode, where they run synchronously)."""

from __future__ import annotations

import json

import bpy

from . import capture, delivery, identity, jobs, journal, link, pixels, pose, props, regions, results, sdk
from .texturing import render_passes

DEPTH_IMAGE = "Brushwork Depth"
POSE_TEXT = "Brushwork Pose.json"


def _snap8(value: int) -> int:
    return max(64, int(round(value / 8)) * 8)


def base_recipe(settings, *, width=None, height=None, controls=(), **fields):
    """A Recipe from the scene's Brushwork settings; raises RecipeError/PresetError naming the
    problem. With a preset: its prompt suffix is added and its control defaults (start, end,
    ...) fill what the controls leave out; every field the panel shows wins over the preset."""
    data = dict(
        prompt=settings.prompt, negative_prompt=settings.negative_prompt, model=settings.model,
        sampler=settings.sampler, steps=settings.steps, cfg=round(settings.cfg, 4),
        width=_snap8(width or settings.width), height=_snap8(height or settings.height),
        seed=None if settings.seed < 0 else settings.seed, controls=[dict(c) for c in controls], **fields)
    if settings.preset:
        return sdk.presets_module().load_preset(settings.preset).apply(**data)
    return sdk.Recipe.from_dict(data).validate()


def bone_map_for(settings):
    """The bone map the settings ask for (None: pick the best built-in per armature)."""
    if settings.bone_map == "AUTO":
        return None
    if settings.bone_map == "TEXT":
        text = bpy.data.texts.get(pose.BONE_MAP_TEXT)
        if text is None:
            raise pose.BoneMapError(f"no text block named {pose.BONE_MAP_TEXT!r}: run 'Edit Bone Map' first")
        return pose.parse_bone_map(text.as_string())
    return pose.BONE_MAPS[settings.bone_map]


def _armatures(context):
    chosen = [o for o in context.selected_objects if o.type == "ARMATURE"]
    return chosen or [o for o in context.scene.objects if o.type == "ARMATURE" and o.visible_get()]


def depth_control(settings, depth, size) -> tuple[dict, bytes]:
    """The depth control (a Recipe dict) for a rendered z-depth, and its bytes to upload."""
    data = capture.depth_signal_bytes(depth)
    near, far = capture.depth_range(depth)
    return ({"kind": "depth", "strength": settings.depth_strength, "model": settings.depth_model,
             "signal": {"data": sdk.content_ref(data), "width": size[0], "height": size[1],
                        "format": "f32le", "near": near, "far": far, "invert": False}}, data)


def pose_controls(context, settings, size) -> list[dict]:
    """The pose control from the active camera when the settings ask for it (no render needed)."""
    if not settings.use_pose:
        return []
    armatures = _armatures(context)
    if not armatures:
        raise ValueError("pose control is on but the scene has no armature")
    scene = context.scene
    return [{"kind": "pose", "strength": settings.pose_strength, "model": settings.pose_model,
             "signal": pose.capture_openpose(scene, scene.camera, armatures, size, bone_map_for(settings))}]


def deferred_report(level: str, text: str) -> None:
    """Report after the operator has returned (a view render finished in the UI): the status
    line, the console, and a popup for errors and warnings."""
    jobs.say(text)
    if level != "INFO":
        jobs.notify(text, icon="ERROR" if level == "ERROR" else "INFO")


def submit_job(link_settings, file: dict, label, recipe, uploads, action: str, targets: list[dict],
               params: dict | None, report) -> bool:
    """Submit ``recipe`` with a record of its targets (``journal``); ``report(level, text)`` says
    what happened in one line. Returns False when it failed (at once, or synchronously)."""
    try:
        recipe.validate()
    except sdk.BrushworkError as exc:
        report("ERROR", f"Brushwork: {exc}")
        return False
    record = journal.new_record(action, label, file, targets, params)

    def work(report_progress, job):
        return link.run_recipe(link_settings, recipe, uploads, report_progress, job,
                               on_submitted=lambda remote_id: journal.set_remote_id(record, remote_id))

    def apply(outcome):
        return delivery.deliver(record, outcome.pngs, outcome.recipe_json)

    job = jobs.start(label, work, apply, on_failure=lambda _outcome: journal.forget(record), file=record["file"])
    if job.outcome is None:
        report("INFO", f"Brushwork: {label}: submitted")
        return True
    if job.outcome.cancelled:
        report("ERROR", f"Brushwork: {label}: cancelled")
        return False
    if job.outcome.error:
        report("ERROR", f"Brushwork: {label}: {job.outcome.error}")
        return False
    level, text = job.note or ("INFO", "done")
    report(level, f"Brushwork: {label}: {text}")
    return True


class JobOperator:
    """Shared: submit a recipe with a record of its targets (``journal``), report what happened
    in one line, finish synchronously where timers never fire."""

    def submit(self, context, label, recipe, uploads, action: str, targets: list[dict], params: dict | None = None):
        try:
            settings = props.link_settings(context)
        except sdk.BrushworkError as exc:
            return self.fail(str(exc))
        ok = submit_job(settings, identity.file_ref(), label, recipe, uploads, action, targets, params,
                        lambda level, text: self.report({level}, text))
        return {"FINISHED"} if ok else {"CANCELLED"}

    def fail(self, message):
        self.report({"ERROR"}, f"Brushwork: {message}")
        return {"CANCELLED"}


# Camera views: they line up with a picture taken from the camera, not with a UV layout.
CAMERA_SPACE_REFUSAL = ("'{kinds}' is a camera view and a UV-space texture does not line up with it (the "
                        "picture is laid out by the mesh's UVs, not as the camera sees it): use Project From "
                        "Camera for camera-conditioned textures, or turn it off")


class BRUSHWORK_OT_generate_texture(JobOperator, bpy.types.Operator):
    """Generate a texture from the prompt and put it on the active object's material"""

    bl_idname = "brushwork.generate_texture"
    bl_label = "Generate Texture"
    bl_options = {"REGISTER"}

    def execute(self, context):
        settings = context.scene.brushwork
        obj = context.active_object
        if obj is None or obj.type != "MESH":
            return self.fail("select a mesh object to put the texture on")
        if not obj.data.uv_layers:
            return self.fail(f"{obj.name!r} has no UV map, so a texture cannot be laid on it: unwrap it "
                             "(Edit Mode > UV > Unwrap) or use Project From Camera")
        kinds = [name for name, on in (("Depth from camera", settings.use_depth),
                                       ("Pose from armatures", settings.use_pose)) if on]
        if kinds:
            return self.fail(CAMERA_SPACE_REFUSAL.format(kinds="' and '".join(kinds)))
        slot = obj.active_material_index if obj.material_slots else 0
        try:
            # vertex-group regions, as masks in the UV layout the texture is laid out by
            region_dicts, uploads = regions.uv_group_regions(obj, slot, (_snap8(settings.width),
                                                                         _snap8(settings.height)))
            recipe = base_recipe(settings, tiling=props.tiling_mode(settings), regions=region_dicts)
        except sdk.BrushworkError as exc:
            return self.fail(str(exc))
        return self.submit(context, f"texture for {obj.name}", recipe, uploads, "texture",
                           [identity.target("OBJECT", obj)], {"slot": slot})


def after_view_render(operator, scene, camera, size, then, *, materials=(), groups=(), normals=False) -> set:
    """Render ``camera``'s passes (in the UI: Blender's render job, the UI stays live), then
    ``then(passes, report) -> bool`` on the main thread. ``report(level, text)`` goes to the
    operator while it runs (background mode: all of it happens before this returns), afterwards to
    the status line and a popup. Returns the operator's result."""
    state = {"result": None, "returned": False}

    def report(level: str, text: str) -> None:
        if state["returned"]:
            deferred_report(level, text)
        else:
            operator.report({level}, text)

    def done(passes, error: str) -> None:
        ok = False
        if error:
            report("ERROR", f"Brushwork: {error}")
        else:
            try:
                ok = then(passes, report)
            except (ValueError, RuntimeError, pose.BoneMapError, sdk.BrushworkError) as exc:
                report("ERROR", f"Brushwork: {exc}")
        state["result"] = {"FINISHED"} if ok else {"CANCELLED"}

    try:
        render_passes.request(scene, camera, size, normals=normals, materials=materials, groups=groups, then=done)
    except ValueError as exc:
        operator.report({"ERROR"}, f"Brushwork: {exc}")
        return {"CANCELLED"}
    state["returned"] = True
    if state["result"] is not None:  # rendered synchronously (background mode)
        return state["result"]
    operator.report({"INFO"}, f"Brushwork: rendering {camera.name!r}'s view…")
    return {"FINISHED"}


class BRUSHWORK_OT_project_from_camera(JobOperator, bpy.types.Operator):
    """Generate from the camera's exact depth and project the picture onto the selected meshes;
    materials with a region prompt condition the part of the picture where they are seen"""

    bl_idname = "brushwork.project_from_camera"
    bl_label = "Project From Camera"
    bl_options = {"REGISTER"}

    def execute(self, context):
        settings = context.scene.brushwork
        scene = context.scene
        meshes = [o for o in context.selected_objects if o.type == "MESH"]
        if not meshes:
            return self.fail("select the meshes to project onto")
        if scene.camera is None:
            return self.fail("the scene has no active camera to project from")
        size = capture.fit_size(scene, max(settings.width, settings.height))
        camera = scene.camera
        try:
            frame = capture.camera_frame(scene, camera, size)
            poses = pose_controls(context, settings, size)
            link_settings = props.link_settings(context)
            base_recipe(settings, width=size[0], height=size[1], controls=poses)  # its errors now, not later
        except (ValueError, pose.BoneMapError, sdk.BrushworkError) as exc:
            return self.fail(str(exc))
        materials, groups = regions.region_materials(meshes), regions.group_regions(meshes)
        fields = regions.region_fields(materials) + [f for _, _, f in groups]  # the render's numbering
        targets = [identity.target("OBJECT", o) for o in meshes]
        file, scene_name = identity.file_ref(), scene.name
        params = {"frame": frame.to_dict(), "bake": settings.bake_to_uvs, "stem": f"{camera.name}-projection"}
        depth_name = f"{camera.name}-depth"

        def then(passes, report) -> bool:
            view_scene = bpy.data.scenes.get(scene_name)
            if view_scene is None:
                raise RuntimeError(f"scene {scene_name!r} is gone")
            # Projection is depth-conditioned by definition: the picture must fit the geometry.
            control, data = depth_control(view_scene.brushwork, passes.depth, size)
            if control["signal"]["near"] is None:
                raise ValueError(f"camera {depth_name[:-6]!r} sees no surface to project onto")
            region_dicts, region_uploads = regions.regions_from_masks(fields, passes.material_index)
            recipe = base_recipe(view_scene.brushwork, width=size[0], height=size[1], controls=[control, *poses],
                                 regions=region_dicts)
            # The depth the Recipe refers to stays in the .blend (a packed float image), not only on the worker.
            results.keep_depth_input(data, control["signal"]["data"], size[0], size[1], depth_name)
            return submit_job(link_settings, file, "camera projection", recipe, [data, *region_uploads],
                              "projection", targets, params, report)

        return after_view_render(self, scene, camera, size, then, materials=materials,
                                 groups=[(o, g) for o, g, _ in groups])


def no_camera(operator) -> set:
    operator.report({"ERROR"}, "Brushwork: the scene has no active camera")
    return {"CANCELLED"}


def show_depth(depth, size) -> tuple[float | None, float | None]:
    """Put a depth map into the float image 'Brushwork Depth' (near bright); returns (near, far)."""
    image = pixels.sized_image(DEPTH_IMAGE, size, float_buffer=True)
    pixels.set_image_rgba(image, pixels.depth_preview(depth))
    near, far = capture.depth_range(depth)
    image["brushwork_near"] = -1.0 if near is None else near
    image["brushwork_far"] = -1.0 if far is None else far
    return near, far


class BRUSHWORK_OT_capture_depth(bpy.types.Operator):
    """Capture the exact depth seen by the active camera (as the render sees the scene) into the
    'Brushwork Depth' image"""

    bl_idname = "brushwork.capture_depth"
    bl_label = "Capture Depth"
    bl_options = {"REGISTER"}

    def execute(self, context):
        scene, settings = context.scene, context.scene.brushwork
        if scene.camera is None:
            return no_camera(self)
        size = capture.fit_size(scene, max(settings.width, settings.height))

        def then(passes, report) -> bool:
            near, far = show_depth(passes.depth, size)
            if near is None:
                report("WARNING", "Brushwork: the camera sees nothing")
            else:
                report("INFO", f"Brushwork: depth {size[0]}×{size[1]}, near {near:.3g}, far {far:.3g}")
            return True

        return after_view_render(self, scene, scene.camera, size, then)


class BRUSHWORK_OT_capture_pose(bpy.types.Operator):
    """Capture the armatures' poses as OpenPose keypoints seen by the active camera"""

    bl_idname = "brushwork.capture_pose"
    bl_label = "Capture Pose"
    bl_options = {"REGISTER"}

    def execute(self, context):
        scene, settings = context.scene, context.scene.brushwork
        if scene.camera is None:
            return no_camera(self)
        armatures = _armatures(context)
        if not armatures:
            self.report({"ERROR"}, "Brushwork: no armature to capture")
            return {"CANCELLED"}
        size = capture.fit_size(scene, max(settings.width, settings.height))
        try:
            data = pose.capture_openpose(scene, scene.camera, armatures, size, bone_map_for(settings))
        except (ValueError, pose.BoneMapError) as exc:
            self.report({"ERROR"}, f"Brushwork: {exc}")
            return {"CANCELLED"}
        text = bpy.data.texts.get(POSE_TEXT) or bpy.data.texts.new(POSE_TEXT)
        text.from_string(json.dumps(data, indent=1))
        seen = sum(1 for person in data["people"] for c in person["pose_keypoints_2d"][2::3] if c > 0)
        self.report({"INFO"}, f"Brushwork: {len(data['people'])} pose(s), {seen} keypoints seen → text '{POSE_TEXT}'")
        return {"FINISHED"}


class BRUSHWORK_OT_edit_bone_map(bpy.types.Operator):
    """Copy a built-in bone map into the 'Brushwork Bone Map' text block to edit it"""

    bl_idname = "brushwork.edit_bone_map"
    bl_label = "Edit Bone Map"

    source: bpy.props.EnumProperty(items=[("RIGIFY", "Rigify", ""), ("MIXAMO", "Mixamo", "")], default="RIGIFY")

    def execute(self, context):
        text = bpy.data.texts.get(pose.BONE_MAP_TEXT) or bpy.data.texts.new(pose.BONE_MAP_TEXT)
        text.from_string(json.dumps(pose.BONE_MAPS[self.source], indent=1))
        context.scene.brushwork.bone_map = "TEXT"
        self.report({"INFO"}, f"Brushwork: edit the text block '{pose.BONE_MAP_TEXT}'")
        return {"FINISHED"}


CLASSES = (
    BRUSHWORK_OT_generate_texture, BRUSHWORK_OT_project_from_camera, BRUSHWORK_OT_capture_depth,
    BRUSHWORK_OT_capture_pose, BRUSHWORK_OT_edit_bone_map,
)


# Blender's own helper: registers in order, unregisters in reverse.
register, unregister = bpy.utils.register_classes_factory(CLASSES)
