"""Texels of an object's own UV map, per material slot, with their surface positions and normals.

bpy (main thread only). The geometry is the evaluated mesh (modifiers count, as in the render);
UV maps survive evaluation by name. Objects sharing one mesh (linked duplicates) make ONE target
per slot with several placements: the texture lives on the shared mesh, every placement is seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .uvraster import TexelRaster, rasterize


class NoUVError(ValueError):
    """A mesh without a UV map to bake into (and no unwrap asked for)."""


@dataclass
class SlotTarget:
    """One material slot of one mesh: its texels in ``uv_name`` at ``size``."""

    mesh_name: str
    slot: int
    material_name: str | None
    uv_name: str
    size: tuple[int, int]
    tri_corners: np.ndarray  # (t, 3, 3) object-space corner positions of the slot's triangles
    tri_normals: np.ndarray  # (t, 3, 3) their corner (split) normals
    tri_uvs: np.ndarray  # (t, 3, 2) their UVs in ``uv_name``
    placements: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (object name, 4×4 world matrix)
    raster: TexelRaster | None = None  # set by rasterize()
    local_points: np.ndarray | None = None  # (n, 3) object space, per covered texel
    local_normals: np.ndarray | None = None  # (n, 3)

    @property
    def texels(self) -> int:
        return 0 if self.local_points is None else int(self.local_points.shape[0])

    def rasterize(self) -> str | None:
        """Find the texels (numpy only: fine on a job thread). Returns a problem line when the slot
        covers no texel, else None."""
        if self.raster is not None:
            return None
        raster = rasterize(self.tri_uvs, self.size)
        if not raster.covered.any():
            return (f"{self.placements[0][0]}: slot {self.slot + 1} covers no texel of UV map {self.uv_name!r} at "
                    f"{self.size[0]}×{self.size[1]} (its UVs are degenerate or outside 0..1)")
        self.local_points = raster.interpolate(self.tri_corners)
        normals = raster.interpolate(self.tri_normals)
        self.local_normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        self.raster = raster
        return None

    def world(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Texel points and unit normals in world space for one placement."""
        m = np.asarray(matrix, dtype=np.float64)
        pts = self.local_points @ m[:3, :3].T + m[:3, 3]
        nrm = self.local_normals @ np.linalg.inv(m[:3, :3])  # inverse transpose, applied to rows
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        return pts, nrm


def own_uv_name(mesh) -> str | None:
    """The UV map to bake into: the one rendered (active_render), else the active one; never the
    add-on's own projection map."""
    from ..results import PROJECTION_UV

    # Names starting with "." are Blender's internal attributes (e.g. UV selection), not UV maps.
    layers = [uv for uv in mesh.uv_layers if uv.name != PROJECTION_UV and not uv.name.startswith(".")]
    if not layers:
        return None
    for uv in layers:
        if uv.active_render:
            return uv.name
    active = mesh.uv_layers.active
    return active.name if active is not None and any(uv.name == active.name for uv in layers) else layers[0].name


def _triangles(obj, depsgraph, uv_name: str):
    """(corner positions (t,3,3), corner normals (t,3,3), corner UVs (t,3,2), material index (t,))
    in object space, from the evaluated mesh."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        n_tri = len(mesh.loop_triangles)
        uv_layer = mesh.uv_layers.get(uv_name)
        if uv_layer is None:
            raise NoUVError(f"{obj.name}: the UV map {uv_name!r} does not survive its modifiers")
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
        loops = np.empty(n_tri * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("loops", loops)
        verts = np.empty(n_tri * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", verts)
        normals = np.empty(n_tri * 9, dtype=np.float64)
        mesh.loop_triangles.foreach_get("split_normals", normals)
        mat = np.empty(n_tri, dtype=np.int64)
        mesh.loop_triangles.foreach_get("material_index", mat)
        uv = np.empty(len(mesh.loops) * 2, dtype=np.float64)
        uv_layer.data.foreach_get("uv", uv)
        uv = uv.reshape(-1, 2)
        return (co[verts].reshape(-1, 3, 3), normals.reshape(-1, 3, 3), uv[loops].reshape(-1, 3, 2), mat)
    finally:
        evaluated.to_mesh_clear()


def slot_targets(objects, depsgraph, size: tuple[int, int], *, unwrap: bool = False,
                 rasterize_now: bool = True) -> tuple[list[SlotTarget], list[str]]:
    """One target per (mesh, material slot that has triangles) of the given mesh objects; linked
    duplicates share their mesh's targets. Returns (targets, problems): a mesh without UVs is a
    problem line unless ``unwrap`` (then it gets a Smart UV Project map named 'UVMap').
    ``rasterize_now`` False leaves the (numpy) rasterising to ``SlotTarget.rasterize``."""
    targets: dict[tuple[str, int], SlotTarget] = {}
    problems: list[str] = []
    seen_meshes: dict[str, list[SlotTarget]] = {}
    for obj in objects:
        if obj.type != "MESH":
            continue
        mesh = obj.data
        matrix = np.array(obj.matrix_world, dtype=np.float64)
        if mesh.name in seen_meshes:
            for target in seen_meshes[mesh.name]:
                target.placements.append((obj.name, matrix))
            continue
        uv_name = own_uv_name(mesh)
        if uv_name is None and unwrap:
            uv_name = _smart_unwrap(obj)
        if uv_name is None:
            problems.append(f"{obj.name}: mesh {mesh.name!r} has no UV map to bake into "
                            "(unwrap it, or turn on 'Unwrap meshes without UVs')")
            seen_meshes[mesh.name] = []
            continue
        try:
            corners, corner_normals, uvs, mat = _triangles(obj, depsgraph, uv_name)
        except NoUVError as exc:
            problems.append(str(exc))
            seen_meshes[mesh.name] = []
            continue
        made = []
        for slot in sorted(set(mat.tolist())):
            sel = mat == slot
            material = obj.material_slots[slot].material if slot < len(obj.material_slots) else None
            target = SlotTarget(mesh.name, int(slot), material.name if material else None, uv_name, tuple(size),
                                corners[sel], corner_normals[sel], uvs[sel], [(obj.name, matrix)])
            problem = target.rasterize() if rasterize_now else None
            if problem:
                problems.append(problem)
                continue
            targets[(mesh.name, int(slot))] = target
            made.append(target)
        seen_meshes[mesh.name] = made
    return list(targets.values()), problems


def _smart_unwrap(obj) -> str:
    """Give ``obj`` a UV map by Smart UV Project (on request only) and return its name."""
    import bpy

    mesh = obj.data
    uv = mesh.uv_layers.new(name="UVMap")
    mesh.uv_layers.active = uv
    name = uv.name  # read it now: edit mode reallocates the layers, leaving ``uv`` dangling
    with bpy.context.temp_override(active_object=obj, object=obj, selected_objects=[obj],
                                   selected_editable_objects=[obj]):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project(island_margin=0.02)
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
    return name
