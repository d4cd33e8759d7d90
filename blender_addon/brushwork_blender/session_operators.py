"""Operators about the session rather than the scene: presets, recovering results, cancelling."""

from __future__ import annotations

import json

import bpy

from . import jobs, link, props, results, sdk


class BRUSHWORK_OT_recover_results(bpy.types.Operator):
    """Import this file's finished results it does not show yet (e.g. Blender closed mid-job)"""

    bl_idname = "brushwork.recover_results"
    bl_label = "Recover Results"

    def execute(self, context):
        try:
            settings = props.link_settings(context)
        except sdk.BrushworkError as exc:
            self.report({"ERROR"}, f"Brushwork: {exc}")
            return {"CANCELLED"}
        known = results.known_result_hashes()

        def work(report, job):
            return link.finished_results(settings, known)

        def apply(outcome):
            recipes = json.loads(outcome.recipe_json or "[]")
            for i, png in enumerate(outcome.pngs):
                recipe = json.dumps(recipes[i]) if i < len(recipes) else ""
                results.store_png(png, "recovered", recipe, props.preferences())
            jobs.last_messages.append(f"recovered {len(outcome.pngs)} image(s)")

        job = jobs.start("recover results", work, apply)
        if job.outcome is not None and job.outcome.error:
            self.report({"ERROR"}, f"Brushwork: recover results: {job.outcome.error}")
            return {"CANCELLED"}
        return {"FINISHED"}


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
            settings.seamless = fields["tiling"] == "xy"
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


CLASSES = (BRUSHWORK_OT_apply_preset, BRUSHWORK_OT_recover_results, BRUSHWORK_OT_cancel)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
