"""Panels: the 3D View sidebar and the Image Editor sidebar, tab "Brushwork"."""

from __future__ import annotations

import bpy

from . import delivery, jobs, results


def draw_settings(layout, settings):
    col = layout.column(align=True)
    col.prop(settings, "prompt", text="")
    col.prop(settings, "negative_prompt", text="Negative")
    col = layout.column(align=True)
    row = col.row(align=True)
    row.prop(settings, "preset")
    row.operator_menu_enum("brushwork.apply_preset", "name", text="", icon="PRESET")
    col.prop(settings, "model")
    col.prop(settings, "sampler")
    row = col.row(align=True)
    row.prop(settings, "steps")
    row.prop(settings, "cfg")
    row = col.row(align=True)
    row.prop(settings, "width")
    row.prop(settings, "height")
    col.prop(settings, "seed")


def draw_jobs(layout):
    running = jobs.active_jobs()
    for job in running:
        row = layout.row(align=True)
        label = f"{job.label}: {job.step}/{job.total}" if job.total else f"{job.label}: waiting"
        row.progress(factor=job.fraction, type="BAR", text=label)
    kept = delivery.kept_here()
    if kept:
        layout.label(text=f"{kept} result(s) wait for their target (undo, reopen or Recover)", icon="INFO")
    if running:
        layout.operator("brushwork.cancel", icon="CANCEL")
    else:
        if jobs.last_messages:
            layout.label(text=jobs.last_messages[-1])
        layout.operator("brushwork.recover_results", icon="FILE_REFRESH")


class BRUSHWORK_PT_view3d(bpy.types.Panel):
    bl_label = "Brushwork"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Brushwork"

    def draw(self, context):
        settings = context.scene.brushwork
        layout = self.layout
        draw_settings(layout, settings)
        box = layout.box()
        box.label(text="Controls from the camera (Project From Camera)")
        row = box.row(align=True)
        row.prop(settings, "use_depth")
        row.prop(settings, "depth_strength", text="")
        row = box.row(align=True)
        row.prop(settings, "use_pose")
        row.prop(settings, "pose_strength", text="")
        if settings.use_depth:
            box.prop(settings, "depth_model")
        if settings.use_pose:
            box.prop(settings, "pose_model")
        row = box.row(align=True)
        row.prop(settings, "bone_map")
        row.operator("brushwork.edit_bone_map", text="", icon="TEXT")
        row = box.row(align=True)
        row.operator("brushwork.capture_depth", icon="CAMERA_DATA")
        row.operator("brushwork.capture_pose", icon="ARMATURE_DATA")
        col = layout.column(align=True)
        col.prop(settings, "tiling")
        col.operator("brushwork.generate_texture", icon="TEXTURE")
        col.separator()
        col.prop(settings, "bake_to_uvs")
        col.operator("brushwork.project_from_camera", icon="UV")
        draw_jobs(layout)


class BRUSHWORK_PT_image(bpy.types.Panel):
    bl_label = "Brushwork"
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Brushwork"

    def draw(self, context):
        settings = context.scene.brushwork
        layout = self.layout
        draw_settings(layout, settings)
        col = layout.column(align=True)
        col.prop(settings, "strength")
        col.operator("brushwork.add_inpaint_mask", icon="BRUSH_DATA")
        col.operator("brushwork.inpaint_texture", icon="IMAGE")
        image = getattr(context.space_data, "image", None)
        if image is not None and image.get("brushwork_recipe"):
            layout.operator("brushwork.load_recipe", icon="RECOVER_LAST")
        if image is not None and image.get(results.PREVIOUS_PROP):
            layout.operator("brushwork.previous_version", icon="LOOP_BACK")
        draw_jobs(layout)


CLASSES = (BRUSHWORK_PT_view3d, BRUSHWORK_PT_image)


# Blender's own helper: registers in order, unregisters in reverse.
register, unregister = bpy.utils.register_classes_factory(CLASSES)
