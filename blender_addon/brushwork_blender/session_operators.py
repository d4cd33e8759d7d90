"""Operators about the session rather than the scene: presets, recovering results, cancelling."""

from __future__ import annotations

import bpy

from . import delivery, identity, jobs, journal, link, pixels, props, results, sdk


class BRUSHWORK_OT_recover_results(bpy.types.Operator):
    """Bring in this file's finished results it does not hold yet (Blender closed or crashed mid-job,
    the file was reloaded, or they ran from another Blender) and re-apply them to their targets"""

    bl_idname = "brushwork.recover_results"
    bl_label = "Recover Results"

    def execute(self, context):
        try:
            settings = props.link_settings(context)
        except sdk.BrushworkError as exc:
            self.report({"ERROR"}, f"Brushwork: {exc}")
            return {"CANCELLED"}
        keys = props.client_keys_for_file()
        known = results.known_result_hashes()
        running = {job.remote_id for job in jobs.active_jobs()}  # the pump delivers those itself
        mine = {r["remote_id"]: r for r in journal.load_all() if r.get("remote_id") and identity.is_open(r["file"])}

        def work(report, job):
            return link.finished_jobs(settings, keys, known, skip=running)

        def apply(outcome):
            return recover(outcome.items, mine)

        job = jobs.start("recover results", work, apply)
        if job.outcome is None:
            self.report({"INFO"}, "Brushwork: looking for finished results")
            return {"FINISHED"}
        if job.outcome.error:
            self.report({"ERROR"}, f"Brushwork: recover results: {job.outcome.error}")
            return {"CANCELLED"}
        level, text = job.note or ("INFO", "done")
        self.report({level}, f"Brushwork: {text}")
        return {"FINISHED"}


def recover(items, records: dict):
    """Main thread: re-apply each finished job through its record when the file has one (the
    material, projection or inpainted image it was for), else keep it as an image; then retry the
    kept results of this file."""
    applied, imported, notes = 0, 0, []
    for remote_id, pngs, recipe in items:
        record = records.get(remote_id)
        if record is not None:
            note = delivery.deliver(record, pngs, recipe)
            applied += note.level == "INFO"
            if note.level != "INFO":
                notes.append(note.text)
        else:
            for png in pngs:
                delivery.image_for(png, "recovered", recipe)
                imported += 1
    for note in delivery.retry_pending():
        applied += note.level == "INFO"
    text = f"recovered {applied} result(s) onto their targets, {imported} more image(s)"
    if notes:
        return delivery.Note("WARNING", f"{text}; {'; '.join(notes)}")
    return delivery.Note("INFO", text if applied or imported else "no finished results to recover")


_preset_items_cache: list = []  # Blender needs the enum strings kept alive


def _preset_items(self, context):
    items = [("NONE", "None", "No preset")]
    try:
        items += [(p.name, p.name, p.description) for p in sdk.presets_module().list_presets()]
    except sdk.BrushworkError:
        pass
    _preset_items_cache[:] = items
    return _preset_items_cache


class BRUSHWORK_OT_apply_preset(bpy.types.Operator):
    """Use a Brushwork preset: its values fill the panel (and stay editable)"""

    bl_idname = "brushwork.apply_preset"
    bl_label = "Apply Preset"
    bl_property = "name"

    name: bpy.props.EnumProperty(name="Preset", items=_preset_items)

    def execute(self, context):
        settings = context.scene.brushwork
        if self.name == "NONE":
            settings.preset = ""
            self.report({"INFO"}, "Brushwork: no preset (the panel's values are used as they are)")
            return {"FINISHED"}
        try:
            preset = sdk.presets_module().load_preset(self.name)
        except sdk.BrushworkError as exc:
            self.report({"ERROR"}, f"Brushwork: {exc}")
            return {"CANCELLED"}
        fields = preset.fields
        for key in ("negative_prompt", "model", "sampler", "steps", "cfg", "width", "height"):
            if key in fields and (fields[key] or key not in ("negative_prompt", "model")):
                setattr(settings, key, fields[key])
        if "tiling" in fields:
            settings.tiling = props.tiling_item(fields["tiling"])
        for kind in ("depth", "pose"):
            defaults = preset.control_defaults.get(kind, {})
            if "strength" in defaults:
                setattr(settings, f"{kind}_strength", defaults["strength"])
            if defaults.get("model"):
                setattr(settings, f"{kind}_model", defaults["model"])
        settings.use_depth = settings.use_depth or "depth" in preset.control_defaults
        settings.use_pose = settings.use_pose or "pose" in preset.control_defaults
        settings.preset = preset.name
        self.report({"INFO"}, f"Brushwork: preset {preset.name}: {preset.description}")
        return {"FINISHED"}


class BRUSHWORK_OT_cancel(bpy.types.Operator):
    """Cancel every running Brushwork job (the worker stops at its next step)"""

    bl_idname = "brushwork.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        n = jobs.cancel_all()
        self.report({"INFO"}, f"Brushwork: cancelling {n} job(s)" if n else "Brushwork: nothing to cancel")
        return {"FINISHED"}


class BRUSHWORK_OT_load_recipe(bpy.types.Operator):
    """Put the Recipe a Brushwork image was made with back into the panel, to re-run or vary it"""

    bl_idname = "brushwork.load_recipe"
    bl_label = "Use Its Recipe"

    image: bpy.props.StringProperty(name="Image", description="Empty: the image shown in the Image Editor")

    def execute(self, context):
        image = pixels.target_image(self.image, context)
        if image is None:
            self.report({"ERROR"}, "Brushwork: no image to read a Recipe from")
            return {"CANCELLED"}
        try:
            recipe = results.recipe_of(image)
        except sdk.BrushworkError as exc:
            self.report({"ERROR"}, f"Brushwork: '{image.name}' has a Recipe this version cannot read: {exc}")
            return {"CANCELLED"}
        if recipe is None:
            self.report({"ERROR"}, f"Brushwork: '{image.name}' was not made by Brushwork (no Recipe on it)")
            return {"CANCELLED"}
        s = context.scene.brushwork
        s.prompt, s.negative_prompt, s.model = recipe.prompt, recipe.negative_prompt, recipe.model
        for name in ("sampler", "steps", "cfg", "width", "height"):
            value = getattr(recipe, name)
            if value is not None:  # a field the recipe left to the model keeps the panel's value
                setattr(s, name, value)
        s.tiling = props.tiling_item(recipe.tiling)
        s.seed = -1 if recipe.seed is None else recipe.seed
        # The prompt already holds the preset's suffix: keep the name for the record only if it
        # would not add the suffix twice.
        s.preset = ""
        for control in recipe.controls:
            if control.kind in ("depth", "pose"):
                setattr(s, f"{control.kind}_strength", control.strength)
                setattr(s, f"{control.kind}_model", control.model)
                setattr(s, f"use_{control.kind}", True)
        self.report({"INFO"}, f"Brushwork: Recipe of '{image.name}' loaded (seed {s.seed})")
        return {"FINISHED"}


CLASSES = (BRUSHWORK_OT_apply_preset, BRUSHWORK_OT_recover_results, BRUSHWORK_OT_load_recipe, BRUSHWORK_OT_cancel)


# Blender's own helper: registers in order, unregisters in reverse.
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register():
    _register_classes()
    delivery.register()  # the job folder and the load/undo handlers that apply kept results


def unregister():
    delivery.unregister()
    _unregister_classes()
