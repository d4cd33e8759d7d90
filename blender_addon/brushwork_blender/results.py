"""Where generated pictures go in Blender: files next to the .blend (or packed), images that
remember their Recipe, materials that show them, and the camera-projection UV map.

Main thread only (bpy).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import bpy
import numpy as np

from . import capture, sdk

RECIPE_PROP = "brushwork_recipe"  # custom property on images: the Recipe JSON as run
SHA_PROP = "brushwork_sha256"  # custom property on images: sha256 of the PNG the worker made
PREVIOUS_PROP = "brushwork_previous"  # on an inpainted image: the id of the image it replaced
INPUT_PROP = "brushwork_input"  # on a kept input picture (mask, depth): the sha256: reference Recipes use
PROJECTION_UV = "Brushwork Projection"
OUTPUT_SUBFOLDER = "brushwork"


def _safe_stem(text: str, fallback: str = "brushwork") -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:40]
    return stem or fallback


def output_folder(prefs) -> Path | None:
    """The folder results are written to, or None when they are to be packed into the .blend.

    Policies: BLEND = ``//brushwork/`` beside the saved .blend (packed while it is unsaved);
    FOLDER = the folder set in preferences; PACK = always packed into the .blend."""
    policy = getattr(prefs, "output_policy", "BLEND") if prefs else "BLEND"
    if policy == "PACK":
        return None
    if policy == "FOLDER" and getattr(prefs, "output_folder", ""):
        return Path(bpy.path.abspath(prefs.output_folder))
    if bpy.data.filepath:
        return Path(bpy.data.filepath).parent / OUTPUT_SUBFOLDER
    return None


def _unique_path(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.png"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.png"
        n += 1
    return path


def store_png(png: bytes, stem: str, recipe_json: str, prefs=None, *, name: str | None = None):
    """Write ``png`` per the output policy and return a bpy image of it carrying its Recipe.

    The file is written atomically; when packing, a temporary file is loaded, packed and removed,
    so nothing is left outside the .blend."""
    folder = output_folder(prefs)
    stem = _safe_stem(stem)
    if folder is not None:
        path = _unique_path(folder, stem)
        sdk.atomic_write_bytes(path, png)
        image = bpy.data.images.load(str(path), check_existing=False)
        if bpy.data.filepath:
            try:
                image.filepath = bpy.path.relpath(str(path))
            except ValueError:  # another drive on Windows: keep the absolute path
                pass
    else:
        fd, tmp = tempfile.mkstemp(prefix=f"{stem}-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(png)
            image = bpy.data.images.load(tmp, check_existing=False)
            image.pack()
            image.filepath_raw = f"//{stem}.png"
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    image.name = name or stem
    image[RECIPE_PROP] = recipe_json
    image[SHA_PROP] = hashlib.sha256(png).hexdigest()
    return image


def known_result_hashes() -> set[str]:
    return {img[SHA_PROP] for img in bpy.data.images if img.get(SHA_PROP)}


def recipe_of(image):
    """The Recipe stored on an image by Brushwork, or None."""
    text = image.get(RECIPE_PROP) if image is not None else None
    return sdk.Recipe.from_json(text) if text else None


def material_with_image(obj, image, *, uv_map: str | None = None, name: str | None = None, slot: int | None = None):
    """A material showing ``image`` as base colour (through ``uv_map`` when given), put in material
    slot ``slot`` (default: the active one; the old material stays in the file). Returns it."""
    mat = bpy.data.materials.new(name or f"Brushwork {image.name}")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None) or nodes.new("ShaderNodeBsdfPrincipled")
    tex = nodes.new("ShaderNodeTexImage")
    tex.name = tex.label = "Brushwork Image"
    tex.image = image
    tex.location = (bsdf.location.x - 320, bsdf.location.y)
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    if uv_map:
        uv = nodes.new("ShaderNodeUVMap")
        uv.uv_map = uv_map
        uv.location = (tex.location.x - 220, tex.location.y)
        links.new(uv.outputs["UV"], tex.inputs["Vector"])
        # Outside the camera frame the projection has nothing to show: clip rather than repeat.
        tex.extension = "CLIP"
    nodes.active = tex
    index = obj.active_material_index if slot is None else slot
    if obj.material_slots and index < len(obj.material_slots):
        previous = obj.material_slots[index].material
        if previous is not None and previous.users <= 1:
            previous.use_fake_user = True  # nothing else uses it: keep it in the file, not purged on save
        obj.material_slots[index].material = mat
    else:
        obj.data.materials.append(mat)
    return mat


def project_uvs(obj, frame: capture.CameraFrame, uv_name: str = PROJECTION_UV):
    """A UV map on mesh ``obj`` that puts each vertex where the camera sees it (u, v in 0..1 across
    the frame). Linear across each face, like Blender's UV Project: subdivide big faces seen at
    a grazing angle for an exact fit."""
    mesh = obj.data
    uv_layer = mesh.uv_layers.get(uv_name) or mesh.uv_layers.new(name=uv_name, do_init=False)
    if uv_layer is None:
        raise RuntimeError(f"{obj.name}: cannot add another UV map (a mesh has at most 8)")
    n_verts, n_loops = len(mesh.vertices), len(mesh.loops)
    co = np.empty(n_verts * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    world = co.reshape(-1, 3) @ np.array(obj.matrix_world.to_3x3(), dtype=np.float64).T + \
        np.array(obj.matrix_world.translation, dtype=np.float64)
    uv_vert = capture.pixel_uvs(frame, world)
    uv_vert = np.nan_to_num(uv_vert, nan=-1.0)  # behind the camera: outside the image
    loop_vert = np.empty(n_loops, dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", loop_vert)
    uv_layer.data.foreach_set("uv", uv_vert[loop_vert].astype(np.float32).reshape(-1))
    mesh.update()
    return uv_layer


def bake_to_uvs(obj, source_material, target_uv: str, size: tuple[int, int], name: str):
    """Bake what ``source_material`` shows (through its projection UVs) into a new image laid out on
    the mesh's own UV map ``target_uv``, with Cycles (emission bake, 1 sample). Returns the image."""
    scene = bpy.context.scene
    mesh = obj.data
    if target_uv not in mesh.uv_layers:
        raise RuntimeError(f"{obj.name} has no UV map named {target_uv!r} to bake to")
    image = bpy.data.images.new(name, width=size[0], height=size[1], alpha=False)
    mat = source_material
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    tex = nodes.get("Brushwork Image")
    out = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    old_surface = out.inputs["Surface"].links[0].from_socket if out.inputs["Surface"].links else None
    emit = nodes.new("ShaderNodeEmission")
    links.new(tex.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    target = nodes.new("ShaderNodeTexImage")
    target.image = image
    nodes.active = target
    previous_active_uv = mesh.uv_layers.active.name if mesh.uv_layers.active else None
    mesh.uv_layers.active = mesh.uv_layers[target_uv]
    engine, samples = scene.render.engine, None
    try:
        scene.render.engine = "CYCLES"
        samples = scene.cycles.samples
        scene.cycles.samples = 1
        with bpy.context.temp_override(selected_objects=[obj], active_object=obj, object=obj):
            bpy.ops.object.bake(type="EMIT", margin=4, use_clear=True)
    finally:
        scene.render.engine = engine
        if samples is not None:
            scene.cycles.samples = samples
        nodes.remove(target)
        nodes.remove(emit)
        if old_surface is not None:
            links.new(old_surface, out.inputs["Surface"])
        if previous_active_uv:
            mesh.uv_layers.active = mesh.uv_layers[previous_active_uv]
    return image


def keep_depth_input(data: bytes, ref: str, width: int, height: int, name: str):
    """Keep a depth control (raw f32le, as uploaded) in the .blend: a float image, R = depth (-1
    where nothing was hit), packed (OpenEXR, exact floats) with a fake user, carrying the
    ``sha256:`` reference the Recipe uses. ``depth_input_bytes`` gives the bytes back."""
    for image in bpy.data.images:
        if image.get(INPUT_PROP) == ref:
            return image
    depth = np.frombuffer(data, dtype="<f4").reshape(height, width)
    rgba = np.zeros((height, width, 4), dtype=np.float32)
    rgba[..., 0] = np.where(np.isfinite(depth), depth, -1.0)
    rgba[..., 3] = 1.0
    image = bpy.data.images.new(name, width=width, height=height, float_buffer=True, alpha=False)
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).reshape(-1))
    image.update()
    image.pack()
    image.use_fake_user = True
    image[INPUT_PROP] = ref
    return image


def depth_input_bytes(image) -> bytes:
    """The exact f32le bytes of a depth kept by ``keep_depth_input``."""
    w, h = image.size
    buf = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(buf)
    red = buf.reshape(h, w, 4)[::-1, :, 0]
    return np.ascontiguousarray(np.where(red < 0, np.inf, red), dtype="<f4").tobytes()


def recipe_json(recipe) -> str:
    return json.dumps(recipe.to_dict() if hasattr(recipe, "to_dict") else recipe, ensure_ascii=False)
