"""Material slots and vertex groups as regions: a material with a Brushwork prompt, or a vertex
group listed with one, conditions the part of a view where its faces are seen (the Recipe's
``regions``); the rest keeps the main prompt.

The mask of each comes from the same 1-sample Cycles render as the view's depth
(``render_passes``: the Material Index pass, each region numbered for that render; a vertex
group's faces get a material of their own for that render only), so it is exact at the pixel
centres and follows render visibility and occlusion like the depth does.

    material.brushwork_region.prompt = "mossy stones"   # empty = not a region
    r = obj.brushwork_group_regions.add(); r.vertex_group, r.prompt = "Roof", "clay tiles"
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import CollectionProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import pixels, sdk


class BrushworkRegionSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(
        name="Region prompt",
        description="What this material's faces show (a region of the picture; empty: the main prompt)")
    negative_prompt: StringProperty(name="Region negative", description="Empty: the main negative prompt")
    weight: FloatProperty(name="Region weight", description="How fully the region's prompt replaces the main one "
                                                            "inside it", default=1.0, min=0.0, max=2.0)


class BrushworkGroupRegion(bpy.types.PropertyGroup):
    vertex_group: StringProperty(name="Vertex group", description="Faces whose vertices' mean weight in it is "
                                                                   "above 0.5")
    prompt: StringProperty(name="Region prompt", description="What this vertex group's faces show")
    negative_prompt: StringProperty(name="Region negative", description="Empty: the main negative prompt")
    weight: FloatProperty(name="Region weight", default=1.0, min=0.0, max=2.0)


def group_regions(objects) -> list[tuple[str, str, dict]]:
    """(object name, vertex group, Region fields but the mask) of ``objects``' vertex-group
    regions that have a prompt and a group."""
    found = []
    for obj in objects:
        for r in getattr(obj, "brushwork_group_regions", ()):
            if r.prompt.strip() and r.vertex_group:
                found.append((obj.name, r.vertex_group, {
                    "prompt": r.prompt.strip(), "negative_prompt": r.negative_prompt,
                    "weight": round(float(r.weight), 4), "material": f"{obj.name}/{r.vertex_group}"}))
    return found


def uv_group_regions(obj, slot: int, size: tuple[int, int]) -> tuple[list[dict], list[bytes]]:
    """Recipe regions and mask PNGs for a texture laid out by ``obj``'s own UV map (Generate
    Texture): each vertex-group region's faces in material slot ``slot`` (mean weight > 0.5, as in
    a view's render), rasterised in that UV map at ``size`` = (w, h). A group with no face in the
    slot gives no region. Main thread (reads the mesh)."""
    groups = group_regions([obj])
    mesh = obj.data
    from .texturing.meshdata import own_uv_name
    from .texturing.uvraster import rasterize

    uv_name = own_uv_name(mesh)
    if not groups or uv_name is None:
        return [], []
    mesh.calc_loop_triangles()
    n_tri = len(mesh.loop_triangles)

    def get(collection, attr, count, dtype=np.int64):
        values = np.empty(count, dtype=dtype)
        collection.foreach_get(attr, values)
        return values

    tri_loops = get(mesh.loop_triangles, "loops", n_tri * 3).reshape(-1, 3)
    tri_poly = get(mesh.loop_triangles, "polygon_index", n_tri)
    tri_mat = get(mesh.loop_triangles, "material_index", n_tri)
    uv = get(mesh.uv_layers[uv_name].data, "uv", len(mesh.loops) * 2, np.float64).reshape(-1, 2)
    loop_vert = get(mesh.loops, "vertex_index", len(mesh.loops))
    starts = get(mesh.polygons, "loop_start", len(mesh.polygons))
    totals = get(mesh.polygons, "loop_total", len(mesh.polygons))
    regions, uploads = [], []
    for _obj_name, group_name, fields in groups:
        group = obj.vertex_groups.get(group_name)
        if group is None:
            continue
        weight = np.zeros(len(mesh.vertices))
        for v in mesh.vertices:  # weights live per vertex, in its group memberships
            for g in v.groups:
                if g.group == group.index:
                    weight[v.index] = g.weight
        face_mean = np.add.reduceat(weight[loop_vert], starts) / np.maximum(totals, 1) if len(starts) else weight[:0]
        chosen = (tri_mat == slot) & (face_mean[tri_poly] > 0.5)
        if not chosen.any():
            continue
        mask = rasterize(uv[tri_loops[chosen]], size).covered
        if not mask.any():
            continue
        region, png = _region(fields, mask)
        regions.append(region)
        uploads.append(png)
    return regions, uploads


def region_materials(objects) -> list:
    """The materials of ``objects``' slots that carry a region prompt (each once, slot order)."""
    seen, found = set(), []
    for obj in objects:
        for slot in getattr(obj, "material_slots", ()):
            mat = slot.material
            if mat is None or mat.name in seen:
                continue
            seen.add(mat.name)
            if mat.brushwork_region.prompt.strip():
                found.append(mat)
    return found


def region_fields(materials) -> list[dict]:
    """Per material (in order): its Region fields except the mask (main thread: reads bpy)."""
    return [{"prompt": m.brushwork_region.prompt.strip(), "negative_prompt": m.brushwork_region.negative_prompt,
             "weight": round(float(m.brushwork_region.weight), 4), "material": m.name} for m in materials]


def regions_from_masks(fields: list[dict], material_index: np.ndarray | None) -> tuple[list[dict], list[bytes]]:
    """Recipe region dicts and the mask PNGs to upload, from the Material Index pass of a view
    rendered with the materials ``fields`` describes (k-th → index k+1). A material the view does
    not see gives no region. numpy only (any thread)."""
    if material_index is None or not fields:
        return [], []
    regions, uploads = [], []
    for k, f in enumerate(fields):
        mask = material_index == k + 1
        if not mask.any():
            continue
        region, png = _region(f, mask)
        regions.append(region)
        uploads.append(png)
    return regions, uploads


def _region(fields: dict, mask: np.ndarray) -> tuple[dict, bytes]:
    """A Recipe region dict from its fields (the material's name left out) and a boolean mask, with
    the mask PNG to upload (the dict names it by content)."""
    png = pixels.encode_png(np.where(mask, 255, 0).astype(np.uint8))
    region = {key: value for key, value in fields.items() if key != "material"}
    return dict(region, mask=sdk.content_ref(png)), png


class BRUSHWORK_OT_add_group_region(bpy.types.Operator):
    """Make the active vertex group of the active object a region (give it a prompt below)"""

    bl_idname = "brushwork.add_group_region"
    bl_label = "Add Vertex Group Region"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = context.active_object
        group = obj.vertex_groups.active if obj is not None and obj.type == "MESH" else None
        if group is None:
            self.report({"ERROR"}, "Brushwork: the active mesh has no active vertex group")
            return {"CANCELLED"}
        region = obj.brushwork_group_regions.add()
        region.vertex_group = group.name
        return {"FINISHED"}


class BRUSHWORK_OT_remove_group_region(bpy.types.Operator):
    """Stop using this vertex group as a region"""

    bl_idname = "brushwork.remove_group_region"
    bl_label = "Remove Vertex Group Region"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty()

    def execute(self, context):
        obj = context.active_object
        if obj is not None and 0 <= self.index < len(obj.brushwork_group_regions):
            obj.brushwork_group_regions.remove(self.index)
        return {"FINISHED"}


class BRUSHWORK_PT_regions(bpy.types.Panel):
    """The active object's material slots, each with its region prompt."""

    bl_label = "Regions (material slots, vertex groups)"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Brushwork"
    bl_parent_id = "BRUSHWORK_PT_view3d"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        obj = context.active_object
        layout = self.layout
        slots = [s for s in getattr(obj, "material_slots", ()) if s.material is not None]
        layout.label(text="A prompt makes its faces a region of every view", icon="INFO")
        if obj is not None and obj.type == "MESH":
            for i, region in enumerate(obj.brushwork_group_regions):
                box = layout.box()
                row = box.row(align=True)
                row.prop_search(region, "vertex_group", obj, "vertex_groups", text="", icon="GROUP_VERTEX")
                row.operator("brushwork.remove_group_region", text="", icon="X").index = i
                box.prop(region, "prompt", text="")
            layout.operator("brushwork.add_group_region", icon="GROUP_VERTEX")
        for slot in slots:
            box = layout.box()
            box.label(text=slot.material.name, icon="MATERIAL")
            region = slot.material.brushwork_region
            box.prop(region, "prompt", text="")
            if region.prompt.strip():
                row = box.row(align=True)
                row.prop(region, "negative_prompt", text="Negative")
                row.prop(region, "weight", text="")


CLASSES = (BrushworkRegionSettings, BrushworkGroupRegion, BRUSHWORK_OT_add_group_region,
           BRUSHWORK_OT_remove_group_region, BRUSHWORK_PT_regions)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register():
    _register_classes()
    bpy.types.Material.brushwork_region = PointerProperty(type=BrushworkRegionSettings)
    bpy.types.Object.brushwork_group_regions = CollectionProperty(type=BrushworkGroupRegion)


def unregister():
    del bpy.types.Object.brushwork_group_regions
    del bpy.types.Material.brushwork_region
    _unregister_classes()
