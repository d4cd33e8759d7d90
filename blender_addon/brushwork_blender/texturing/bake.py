"""The multi-view bake: views (camera + picture) → textures in each mesh's own UV map, per slot.

    bake = MultiViewBake(scene, objects, (1024, 1024))     # texels of every slot's own UVs
    for camera, picture in views:                          # picture: float (h, w, 3), row 0 on top
        bake.add_view(camera, picture)                     # occlusion-aware, angle-weighted
    report = bake.write()                                  # fill + padding, images, materials

``known_picture(camera, size)`` gives what the views added so far show from a new camera (and a
mask of what they do not cover): the input for generating the next view by inpainting.

bpy, main thread only; the maths lives in the numpy modules next to this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import capture
from . import fill, meshdata
from .blend import ViewBlend
from .projection import sample_colors, sample_view


@dataclass
class PreparedView:
    """A view ready for the numpy steps: its camera frame and depth at the picture's size."""

    name: str
    frame: capture.CameraFrame
    depth: np.ndarray


@dataclass
class SlotReport:
    objects: list[str]
    mesh: str
    slot: int
    material: str
    uv_map: str
    image: str
    texels: int
    seen: int
    filled_without_view: int
    kept_existing: int = 0  # texels no view saw that kept the slot's existing texture

    def line(self) -> str:
        share = 100.0 * self.seen / self.texels if self.texels else 0.0
        kept = f", {self.kept_existing} kept from the existing texture" if self.kept_existing else ""
        return (f"{', '.join(self.objects)} slot {self.slot + 1} ({self.material}) → {self.image!r} in UV map "
                f"{self.uv_map!r}: {share:.1f}% of {self.texels} texels seen, {self.filled_without_view} filled "
                f"from their neighbours{kept}")


@dataclass
class BakeReport:
    slots: list[SlotReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    views: int = 0

    @property
    def unseen(self) -> int:
        return sum(s.filled_without_view for s in self.slots)

    def summary(self) -> str:
        if not self.slots:
            return "nothing baked: " + ("; ".join(self.problems) or "no mesh selected")
        texels = sum(s.texels for s in self.slots)
        seen = sum(s.seen for s in self.slots)
        kept = sum(s.kept_existing for s in self.slots)
        text = (f"{len(self.slots)} texture(s) from {self.views} view(s): {100.0 * seen / max(texels, 1):.1f}% of "
                f"texels seen, {self.unseen} filled from neighbours"
                + (f", {kept} kept from existing textures" if kept else ""))
        return text + (f"; {len(self.problems)} problem(s): " + "; ".join(self.problems) if self.problems else "")


class MultiViewBake:
    def __init__(self, scene, objects, size: tuple[int, int], *, unwrap: bool = False, power: float = 3.0,
                 depsgraph=None, keep_existing: bool = True, defer: bool = False):
        """Reads the meshes (bpy: main thread). ``defer``: the texels are found later, by the first
        numpy step (``prepare_texels``), e.g. on a job thread."""
        self.scene = scene
        self.size = (int(size[0]), int(size[1]))
        self.power = power
        self.depsgraph = depsgraph if depsgraph is not None else capture.evaluated_depsgraph()
        self.targets, self.problems = meshdata.slot_targets(objects, self.depsgraph, self.size, unwrap=unwrap,
                                                            rasterize_now=not defer)
        # Hidden texels keep what they had: the slot's current base-colour image through this UV map.
        self._existing_raw = [existing_image(t) if keep_existing else None for t in self.targets]
        self.blends: list[ViewBlend] = []
        self.existing: list[np.ndarray | None] = []
        self.views = 0
        if not defer:
            self.prepare_texels()
        self._depths: dict[tuple[str, int, int], np.ndarray] = {}

    def prepare_texels(self) -> None:
        """Rasterise the targets' UVs and set up the per-texel state (numpy only; once)."""
        if self.blends or not self.targets:
            return
        kept, raws = [], []
        for target, raw in zip(self.targets, self._existing_raw, strict=True):
            problem = target.rasterize()
            if problem:
                self.problems.append(problem)
                continue
            kept.append(target)
            raws.append(raw)
        self.targets = kept
        self.blends = [ViewBlend(t.texels, 3) for t in kept]
        self.existing = [None if raw is None else _resize_nearest(raw, t.size) for t, raw in zip(kept, raws,
                                                                                                  strict=True)]

    # ---- views ---------------------------------------------------------------------------
    # prepare_view touches bpy (main thread); add_view / known_picture with a PreparedView are
    # numpy only, so the operator runs them on a job thread.

    def view_depth(self, camera, size: tuple[int, int]) -> np.ndarray:
        """The z-depth of ``camera`` at ``size`` by a 1-sample Cycles render (cached per camera
        and size; synchronous: the operator renders through ``render_passes.request`` instead)."""
        key = (camera.name, int(size[0]), int(size[1]))
        if key not in self._depths:
            from .render_passes import render_passes

            self._depths[key] = render_passes(self.scene, camera, size).depth
        return self._depths[key]

    def prepare_view(self, camera, size: tuple[int, int], depth: np.ndarray | None = None) -> PreparedView:
        """The camera's frame and depth at ``size`` (bpy: main thread)."""
        size = (int(size[0]), int(size[1]))
        frame = capture.camera_frame(self.scene, camera, size, self.depsgraph)
        return PreparedView(camera.name, frame, self.view_depth(camera, size) if depth is None else depth)

    def _samples(self, view: PreparedView):
        self.prepare_texels()
        for index, target in enumerate(self.targets):
            for _name, matrix in target.placements:
                points, normals = target.world(matrix)
                yield index, sample_view(view.frame, view.depth, points, normals, power=self.power)

    def add_view(self, view, picture: np.ndarray, depth: np.ndarray | None = None) -> int:
        """Project ``picture`` (float (h, w, >=3), row 0 at the top, the camera's full frame) onto
        every target texel the view sees. ``view``: a PreparedView, or a camera object (then
        prepared here, on the main thread). Returns how many texels it reached."""
        picture = np.asarray(picture, dtype=np.float64)
        h, w = picture.shape[:2]
        if not isinstance(view, PreparedView):
            view = self.prepare_view(view, (w, h), depth)
        if (view.frame.width, view.frame.height) != (w, h):
            raise ValueError(f"view {view.name!r} is {view.frame.width}×{view.frame.height}, the picture {w}×{h}")
        reached = 0
        for index, sample in self._samples(view):
            seen = sample.seen
            colors = np.zeros((len(seen), 3))
            colors[seen] = sample_colors(picture[..., :3], sample)
            self.blends[index].add(colors, sample.weight)
            reached += int(np.count_nonzero(seen))
        self.views += 1
        return reached

    def known_picture(self, view, size: tuple[int, int] | None = None,
                      close_px: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """What the views so far painted, seen from ``view`` (a PreparedView, or a camera and
        ``size``): (picture (h, w, 3), known (h, w) bool). Unknown pixels hold a smooth fill (a hint
        for an inpaint)."""
        if not isinstance(view, PreparedView):
            view = self.prepare_view(view, size)
        w, h = view.frame.width, view.frame.height
        total = np.zeros((h, w, 3))
        count = np.zeros((h, w))
        for index, sample in self._samples(view):
            blend = self.blends[index]
            ok = sample.seen & blend.seen
            if not ok.any():
                continue
            colors = blend.result()[ok]
            px = np.clip(sample.pixel[ok].astype(np.int64), 0, [w - 1, h - 1])
            np.add.at(total, (px[:, 1], px[:, 0]), colors)
            np.add.at(count, (px[:, 1], px[:, 0]), 1.0)
        known = count > 0
        picture = np.where(known[..., None], total / np.maximum(count, 1.0)[..., None], 0.0)
        # Texels are sparser than pixels up close: close the pin holes between splats on surfaces.
        picture, closed = fill.dilate(picture, known, close_px)
        known = closed & np.isfinite(view.depth)
        return fill.push_pull(picture, known), known

    # ---- results -------------------------------------------------------------------------

    def textures(self, margin: int = 8) -> list[tuple[np.ndarray, int, int, int]]:
        """Per target: (texture (h, w, 3) float, texels seen, island texels filled from their
        neighbours, island texels that kept the existing texture). Where the slot already showed a
        texture through this UV map, texels the views saw weakly lean on it and unseen ones keep it."""
        self.prepare_texels()
        out = []
        for target, blend, existing in zip(self.targets, self.blends, self.existing, strict=True):
            w, h = target.size
            image = np.zeros((h, w, 3))
            covered = target.raster.covered
            confidence = np.zeros((h, w))
            conf = blend.confidence()
            seen = int(np.count_nonzero(blend.seen))
            if existing is None:
                image[covered] = blend.result()
                confidence[covered] = conf
                texture, unseen = fill.finish_texture(image, confidence, covered, margin)
                out.append((texture, seen, unseen, 0))
                continue
            before = existing[covered]
            image[covered] = conf[:, None] * blend.result(before) + (1.0 - conf[:, None]) * before
            confidence[covered] = 1.0
            texture, _ = fill.finish_texture(image, confidence, covered, margin)
            out.append((texture, seen, 0, int(np.count_nonzero(~blend.seen))))
        return out

    def write(self, *, margin: int = 8, stem: str = "multiview", recipe_json: str = "", prefs=None,
              assign: bool = True, pbr: bool = False, textures: list | None = None) -> BakeReport:
        """Store each target's texture as an image and (``assign``) put it on a copy of the slot's
        material, read through the mesh's own UV map; with ``pbr`` also height / normal /
        roughness maps derived from it, wired into the material. ``textures``: what ``textures(margin)``
        returned, computed earlier (e.g. on a job thread). Returns the report."""
        import bpy

        from .. import pixels, results

        report = BakeReport(problems=list(self.problems), views=self.views)
        if textures is None:
            textures = self.textures(margin)
        for target, (texture, seen, unseen, kept) in zip(self.targets, textures, strict=True):
            png = pixels.encode_png(np.round(np.clip(texture, 0.0, 1.0) * 255.0))
            name = f"{target.mesh_name}-{target.material_name or 'slot' + str(target.slot + 1)}-{stem}"
            image = results.store_png(png, name, recipe_json, prefs)
            material_name = target.material_name or "(no material)"
            if assign:
                material = _textured_material(bpy.data.materials.get(target.material_name or ""), image, target.uv_name)
                material_name = material.name
                if pbr:
                    _write_pbr(material, texture, name, target.uv_name, recipe_json, prefs)
                for obj_name, _matrix in target.placements:
                    obj = bpy.data.objects.get(obj_name)
                    if obj is None:
                        continue
                    if target.slot < len(obj.material_slots):
                        obj.material_slots[target.slot].material = material
                    else:
                        obj.data.materials.append(material)
            report.slots.append(SlotReport([n for n, _ in target.placements], target.mesh_name, target.slot,
                                           material_name, target.uv_name, image.name, target.texels, seen, unseen,
                                           kept))
        return report


def _write_pbr(material, texture: np.ndarray, name: str, uv_name: str, recipe_json: str, prefs) -> None:
    from .. import pixels, results
    from . import pbr as pbr_mod

    maps = pbr_mod.derive(texture)

    def store(array, suffix):
        png = pixels.encode_png(np.round(np.clip(array, 0.0, 1.0) * 255.0))
        return results.store_png(png, f"{name}-{suffix}", recipe_json, prefs)

    pbr_mod.wire_into(material, store(maps.normal, "normal"), store(maps.roughness, "roughness"),
                      store(maps.height, "height"), uv_name)


def _resize_nearest(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    rows = (np.arange(h) * rgb.shape[0]) // h
    cols = (np.arange(w) * rgb.shape[1]) // w
    return rgb[rows][:, cols, :3].astype(np.float64)


def existing_image(target: meshdata.SlotTarget) -> np.ndarray | None:
    """The slot's current base colour image (h, w, 3), when it is read through the target's UV map
    (or the default one, which is the render UV map the target uses); None otherwise."""
    import bpy

    from .. import pixels

    material = bpy.data.materials.get(target.material_name or "")
    if material is None or not material.use_nodes or material.node_tree is None:
        return None
    bsdf = next((n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    links = bsdf.inputs["Base Color"].links if bsdf is not None else ()
    node = links[0].from_node if links else None
    if node is None or node.type != "TEX_IMAGE" or node.image is None:
        return None
    vector = node.inputs["Vector"].links
    if vector and not (vector[0].from_node.type == "UVMAP" and vector[0].from_node.uv_map in ("", target.uv_name)):
        return None
    try:
        return pixels.image_rgba(node.image)[..., :3].copy()
    except ValueError:  # an image without pixels (missing file)
        return None


TEXTURE_NODE = "Brushwork Multiview"


def _textured_material(original, image, uv_name: str):
    """A copy of ``original`` (or a new material) whose Principled BSDF base colour is ``image``
    read through UV map ``uv_name``. The original stays in the file, untouched."""
    import bpy

    if original is not None:
        mat = original.copy()
        stem = original.name.split(" Brushwork")[0]  # a re-run: "Wood Brushwork.001", not "... Brushwork Brushwork"
        mat.name = f"{stem} Brushwork"
    else:
        mat = bpy.data.materials.new(f"Brushwork {image.name}")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        out = next((n for n in nodes if n.type == "OUTPUT_MATERIAL"), None) or nodes.new("ShaderNodeOutputMaterial")
        links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    tex = nodes.get(TEXTURE_NODE)  # a re-run: the copy already has our node; reuse it, never stack another
    if tex is None or tex.type != "TEX_IMAGE":
        tex = nodes.new("ShaderNodeTexImage")
        tex.name = tex.label = TEXTURE_NODE
        tex.location = (bsdf.location.x - 320, bsdf.location.y)
    tex.image = image
    vector = tex.inputs["Vector"].links
    uv = vector[0].from_node if vector and vector[0].from_node.type == "UVMAP" else None
    if uv is None:
        uv = nodes.new("ShaderNodeUVMap")
        uv.location = (tex.location.x - 220, tex.location.y)
        links.new(uv.outputs["UV"], tex.inputs["Vector"])
    uv.uv_map = uv_name
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    nodes.active = tex
    return mat
