"""Multi-view texturing core on scenes with known answers (run by tests/blender/test_multiview.py).

Truth is computed here independently of the add-on's raster/projection code: analytic ray-box
occlusion for the cube and plane, face normals for the cube's hidden faces, a 3D colour field
seen through Blender's own ray casts for the sphere views, and triangle centroids (exact points of
the UV map) for where the bake lands.
"""

import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO / "blender_addon"), str(REPO / "sdk")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from brushwork_blender import capture, pixels  # noqa: E402
from brushwork_blender.texturing import bake, render_passes, views  # noqa: E402
from check_steps import stepper  # noqa: E402
from mathutils import Matrix  # noqa: E402
from truth import ray_cast_depth  # noqa: E402

out = {}


step = stepper(out)


def fresh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def camera_at(scene, name, location, target, *, ortho_scale=None, lens=50.0):
    data = bpy.data.cameras.new(name)
    data.lens = lens
    if ortho_scale:
        data.type, data.ortho_scale = "ORTHO", ortho_scale
    data.clip_start, data.clip_end = 0.1, 200.0
    cam = bpy.data.objects.new(name, data)
    scene.collection.objects.link(cam)
    rot = views.look_at(np.array(location, float), np.array(target, float))
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, location
    cam.matrix_world = Matrix(m.tolist())
    scene.camera = cam
    bpy.context.view_layer.update()
    return cam


def solid(w, h, rgb):
    return np.broadcast_to(np.array(rgb, float), (h, w, 3)).copy()


def ray_hits_box(origins, targets, lo, hi):
    """Segments origin→target crossing the open box [lo, hi] (slab test, analytic)."""
    d = targets - origins
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - origins) / d
        t2 = (hi - origins) / d
    tmin = np.nanmax(np.minimum(t1, t2), axis=1)
    tmax = np.nanmin(np.maximum(t1, t2), axis=1)
    return (tmax > np.maximum(tmin, 0.0)) & (tmin < 1.0)


# 1. a cube in front of a plane, one perspective view ------------------------------------------
@step("occlusion")
def _occlusion():
    scene = fresh()
    bpy.ops.mesh.primitive_plane_add(size=10, location=(0, 0, 0))
    plane = bpy.context.active_object
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1.5))
    cube = bpy.context.active_object
    cam_loc = np.array([1.5, -7.0, 4.5])
    cam = camera_at(scene, "view", cam_loc, (0, 0, 0.5), lens=35.0)
    mv = bake.MultiViewBake(scene, [cube, plane], (128, 128))
    out["occ_targets"] = sorted(t.mesh_name for t in mv.targets)
    mv.add_view(cam, solid(160, 120, (1.0, 0.2, 0.1)))
    frame = capture.camera_frame(scene, cam, (160, 120))
    for target, blend in zip(mv.targets, mv.blends, strict=True):
        points, normals = target.world(target.placements[0][1])
        seen = blend.seen
        if target.mesh_name == cube.data.name:
            # Truth: a convex cube's face is hidden when it faces away from the camera.
            faces = np.round(normals).astype(int)
            hidden_seen, visible_share = 0, []
            for axis in range(3):
                for sign in (-1, 1):
                    on_face = faces[:, axis] == sign
                    center = np.array([0.0, 0.0, 1.5])
                    center[axis] += sign
                    facing = float(np.dot(np.eye(3)[axis] * sign, cam_loc - center)) > 0
                    if facing:
                        visible_share.append(float(seen[on_face].mean()))
                    else:
                        hidden_seen += int(seen[on_face].sum())
            out["cube_hidden_faces_seen_texels"] = hidden_seen
            out["cube_visible_faces_min_share"] = min(visible_share)
            out["cube_visible_faces"] = len(visible_share)
        else:
            px, z = frame.project(points)
            in_frame = (px[:, 0] > 3) & (px[:, 0] < 157) & (px[:, 1] > 3) & (px[:, 1] < 117) & (z > 0)
            origins = np.broadcast_to(cam_loc, points.shape)
            # Truth by analytic ray-box tests; a 4% shell around the cube leaves the boundary aside.
            deep = ray_hits_box(points, origins, np.array([-0.96, -0.96, 0.54]), np.array([0.96, 0.96, 2.46]))
            clear = ~ray_hits_box(points, origins, np.array([-1.04, -1.04, 0.46]), np.array([1.04, 1.04, 2.54]))
            out["plane_occluded_texels"] = int(deep.sum())
            out["plane_occluded_seen"] = int((deep & seen).sum())
            out["plane_clear_seen_share"] = float(seen[clear & in_frame].mean())
            out["plane_outside_frame_seen"] = int((seen & ~((px[:, 0] >= 0) & (px[:, 0] < 160) & (px[:, 1] >= 0)
                                                            & (px[:, 1] < 120))).sum())


# 2. a sphere seen from two opposite sides -----------------------------------------------------
def field(p):
    """A smooth 3D colour field: what a consistent painting looks like from any side."""
    return np.stack([0.5 + 0.35 * np.sin(2.1 * p[:, 0] + 0.3), 0.5 + 0.35 * np.sin(1.7 * p[:, 1] - 0.4),
                     0.5 + 0.35 * np.cos(1.9 * p[:, 2])], axis=-1)


def view_picture(scene, cam, size):
    """The field as the camera sees it: Blender's ray-cast depth → world points → colours."""
    depth = capture.camera_depth(scene, cam, size)
    frame = capture.camera_frame(scene, cam, size)
    origin, direction, z_per_len = capture.camera_rays(frame)
    length = (np.where(np.isfinite(depth), depth, frame.clip_start) - frame.clip_start) / z_per_len
    hit = origin + direction * length[..., None]
    pic = field(hit.reshape(-1, 3)).reshape(size[1], size[0], 3)
    pic[~np.isfinite(depth)] = 0.0
    return pic


@step("sphere")
def _sphere():
    scene = fresh()
    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=1.0)
    sphere = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    cams = [camera_at(scene, "east", (8, 0, 0), (0, 0, 0), ortho_scale=2.3),
            camera_at(scene, "west", (-8, 0, 0), (0, 0, 0), ortho_scale=2.3)]
    size = (256, 256)
    mv = bake.MultiViewBake(scene, [sphere], (256, 128))
    mv.add_view(cams[0], view_picture(scene, cams[0], size))
    # What the east view painted, seen from the north (the input of the next view's inpaint):
    # known on the east half (x > 0), unknown on the west; the known colours are the field's.
    north = camera_at(scene, "north", (0, 8, 0), (0, 0, 0), ortho_scale=2.3)
    picture, known = mv.known_picture(north, (128, 128))
    frame = capture.camera_frame(scene, north, (128, 128))
    origin, direction, z_per_len = capture.camera_rays(frame)
    depth = capture.camera_depth(scene, north, (128, 128))
    hit = origin + direction * ((np.where(np.isfinite(depth), depth, frame.clip_start) - frame.clip_start)
                                / z_per_len)[..., None]
    on = np.isfinite(depth)
    east, west = on & (hit[..., 0] > 0.25), on & (hit[..., 0] < -0.05)
    out["known_east_share"] = float(known[east].mean())
    out["known_west_share"] = float(known[west].mean())
    out["known_colour_max_err"] = float(np.abs(picture[east & known] - field(hit[east & known])).max())
    out["known_background"] = int((known & ~on).sum())
    mv.add_view(cams[1], view_picture(scene, cams[1], size))
    target, blend = mv.targets[0], mv.blends[0]
    out["sphere_coverage"] = float(blend.seen.mean())
    points, _ = target.world(target.placements[0][1])
    colors = blend.result()
    out["sphere_max_colour_error"] = float(np.abs(colors[blend.seen] - field(points[blend.seen])).max())
    # Seams: in the finished texture (the grazing band no view saw is filled), neighbouring texels
    # of one UV island: colour change per unit of surface distance across the boundary between
    # the views (the two texels' best views differ, or one is in the unseen band) vs inside one view.
    texture = mv.textures(margin=4)[0][0]
    h, w = target.raster.tri.shape
    index = -np.ones((h, w), int)
    index[target.raster.covered] = np.arange(target.texels)
    best = blend.best_view
    final = texture[target.raster.covered]
    grads_in, grads_across = [], []
    for a, b in ((index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])):
        ok = (a >= 0) & (b >= 0)
        a, b = a[ok], b[ok]
        dist = np.linalg.norm(points[a] - points[b], axis=1)
        # Leave out the poles: there the UV sphere squeezes a whole texel row into one point, so
        # texels 0.001 apart on the surface are far apart in UV (a per-distance measure explodes).
        keep = (dist > 1e-6) & (np.abs(points[a][:, 2]) < 0.98) & (np.abs(points[b][:, 2]) < 0.98)
        a, b, dist = a[keep], b[keep], dist[keep]
        grad = np.abs(final[a] - final[b]).max(axis=1) / dist
        same = (best[a] == best[b]) & (best[a] >= 0)
        grads_in.append(grad[same])
        grads_across.append(grad[~same])
    g_in, g_across = np.concatenate(grads_in), np.concatenate(grads_across)
    out["sphere_boundary_pairs"] = int(g_across.size)
    out["sphere_grad_inside_max"] = float(g_in.max())
    out["sphere_grad_across_max"] = float(g_across.max())
    out["sphere_grad_inside_p99"] = float(np.percentile(g_in, 99))
    out["sphere_grad_across_p99"] = float(np.percentile(g_across, 99))

    # 3. the bake lands in the sphere's own UV map, with padding ----------------------------
    uv_before = [uv.name for uv in sphere.data.uv_layers]
    report = mv.write(margin=6, stem="test")
    out["bake_report_lines"] = [s.line() for s in report.slots]
    out["bake_unseen_filled"] = report.unseen
    out["bake_uv_layers_unchanged"] = [uv.name for uv in sphere.data.uv_layers] == uv_before
    mat = sphere.material_slots[0].material
    uv_nodes = [n.uv_map for n in mat.node_tree.nodes if n.type == "UVMAP"]
    tex = mat.node_tree.nodes.get("Brushwork Multiview")
    out["bake_material_uv_maps"] = uv_nodes
    out["bake_base_color_linked"] = any(lk.to_socket.name == "Base Color" and lk.from_node == tex
                                        for lk in mat.node_tree.links)
    image = tex.image
    out["bake_image_size"] = list(image.size)
    baked = pixels.image_rgba(image)[..., :3]
    # Truth: each triangle's UV centroid shows the field at its 3D centroid (exact: both linear).
    mesh = sphere.data
    mesh.calc_loop_triangles()
    uv_data = mesh.uv_layers["UVMap"].data
    errs = []
    for tri in mesh.loop_triangles:
        uvc = np.mean([uv_data[i].uv for i in tri.loops], axis=0)
        pc = np.mean([mesh.vertices[v].co for v in tri.vertices], axis=0)
        x, y = int(uvc[0] * 256), int((1 - uvc[1]) * 128)
        if abs(pc[0]) < 0.15:  # the grazing band of both views: filled, not seen
            continue
        errs.append(float(np.abs(baked[y, x] - field(pc[None])[0]).max()))
    out["bake_centroid_max_err"] = max(errs)
    out["bake_centroids_checked"] = len(errs)
    # Padding: no texel anywhere is darker than the field's darkest colour (so no mip level can
    # average black in), and texels just outside the islands repeat the island's edge colour.
    out["bake_min_value"] = float(baked.min())
    covered = target.raster.covered
    ring = np.zeros_like(covered)
    ring[:, 1:] |= covered[:, :-1]
    ring[:, :-1] |= covered[:, 1:]
    ring[1:] |= covered[:-1]
    ring[:-1] |= covered[1:]
    ring &= ~covered
    out["bake_ring_texels"] = int(ring.sum())
    ys, xs = np.nonzero(ring)
    diffs = []
    for y, x in zip(ys, xs, strict=True):
        ny = slice(max(0, y - 1), y + 2)
        nx = slice(max(0, x - 1), x + 2)
        inside = baked[ny, nx][covered[ny, nx]]
        diffs.append(float(np.abs(inside.mean(axis=0) - baked[y, x]).max()))
    out["bake_ring_max_diff"] = max(diffs)


# 4. material slots, linked duplicates, meshes without UVs -----------------------------------
@step("slots")
def _slots():
    scene = fresh()
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 0))
    cube = bpy.context.active_object
    red, blue = bpy.data.materials.new("Red"), bpy.data.materials.new("Blue")
    cube.data.materials.append(red)
    cube.data.materials.append(blue)
    for poly in cube.data.polygons:
        poly.material_index = 1 if poly.normal.z > 0.5 else 0
    twin = cube.copy()  # linked duplicate: same mesh
    scene.collection.objects.link(twin)
    twin.location = (0, 4, 0)
    twin.rotation_euler = (0, 0, math.pi)  # shows the other side to the camera
    bpy.ops.mesh.primitive_cube_add(size=1, location=(4, 0, 0))
    bare = bpy.context.active_object
    while bare.data.uv_layers:
        bare.data.uv_layers.remove(bare.data.uv_layers[0])
    cam = camera_at(scene, "view", (5, -9, 6), (0, 2, 0), lens=30.0)
    mv = bake.MultiViewBake(scene, [cube, twin, bare], (64, 64))
    out["slot_targets"] = sorted((t.mesh_name, t.slot, t.material_name, len(t.placements)) for t in mv.targets)
    out["slot_problems"] = mv.problems
    mv.add_view(cam, solid(96, 64, (0.2, 0.8, 0.3)))
    # The -Y face of the cube is seen on the cube; its +Y face only on the (turned) twin.
    side = mv.targets[[t.slot for t in mv.targets].index(0)]
    blend = mv.blends[mv.targets.index(side)]
    normals = side.local_normals
    out["twin_only_face_seen_share"] = float(blend.seen[normals[:, 1] > 0.9].mean())
    report = mv.write(margin=2, stem="slots")
    out["slot_materials"] = sorted(s.material.name for s in cube.material_slots)
    out["twin_materials"] = sorted(s.material.name for s in twin.material_slots)
    out["originals_kept"] = red.name in bpy.data.materials and blue.name in bpy.data.materials
    out["slot_report_summary"] = report.summary()
    # Unwrap on request: the bare cube gets a UV map and a texture.
    mv2 = bake.MultiViewBake(scene, [bare], (32, 32), unwrap=True)
    out["unwrap_uv_layers"] = [uv.name for uv in bare.data.uv_layers]
    out["unwrap_problems"] = mv2.problems
    out["unwrap_targets"] = len(mv2.targets)


# 4b. hidden texels keep what they had: an existing texture on the slot ------------------------
@step("keep")
def _keep():
    scene = fresh()
    bpy.ops.mesh.primitive_plane_add(size=4)
    plane = bpy.context.active_object
    old = bpy.data.images.new("old", 16, 16)
    old.pixels.foreach_set(np.tile([0.1, 0.2, 0.9, 1.0], 16 * 16).astype(np.float32))
    mat = bpy.data.materials.new("Paint")
    mat.use_nodes = True
    tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = old
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    plane.data.materials.append(mat)
    # An orthographic view of the plane's left half only (x < 0), from straight above.
    cam = camera_at(scene, "view", (-1.0, 0, 5), (-1.0, 0, 0), ortho_scale=2.0)
    mv = bake.MultiViewBake(scene, [plane], (32, 32))
    mv.add_view(cam, solid(64, 64, (0.9, 0.8, 0.1)))
    texture, seen, filled, kept = mv.textures(margin=2)[0]
    target = mv.targets[0]
    points, _ = target.world(target.placements[0][1])
    colours = texture[target.raster.covered]
    right = points[:, 0] > 0.2  # truth: never in the view's frame
    left = (points[:, 0] < -0.2) & (points[:, 0] > -1.8) & (np.abs(points[:, 1]) < 0.8)  # inside the frame
    out["keep_right_max_diff_from_old"] = float(np.abs(colours[right] - [0.1, 0.2, 0.9]).max())
    out["keep_left_max_diff_from_view"] = float(np.abs(colours[left] - [0.9, 0.8, 0.1]).max())
    out["keep_counts"] = [filled, kept, int(right.sum())]
    report = mv.write(margin=2, stem="keep")
    out["keep_line"] = report.slots[0].line()
    out["keep_material"] = plane.material_slots[0].material.name


# 4c. PBR maps from the baked albedo --------------------------------------------------------------
@step("pbr")
def _pbr():
    scene = fresh()
    bpy.ops.mesh.primitive_plane_add(size=2)  # its UVs: u along +x, v along +y
    plane = bpy.context.active_object
    cam = camera_at(scene, "view", (0, 0, 5), (0, 0, 0), ortho_scale=2.0)
    ramp = np.broadcast_to(np.linspace(0.1, 0.9, 64)[None, :, None], (64, 64, 3)).copy()  # brighter to +x
    mv = bake.MultiViewBake(scene, [plane], (32, 32))
    mv.add_view(cam, ramp)
    mv.write(margin=2, stem="pbr", pbr=True)
    mat = plane.material_slots[0].material
    nodes = mat.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    rough_from = bsdf.inputs["Roughness"].links[0].from_node
    normal_from = bsdf.inputs["Normal"].links[0].from_node
    out["pbr_wiring"] = [rough_from.name, normal_from.type, normal_from.space, normal_from.uv_map,
                         normal_from.inputs["Color"].links[0].from_node.name]
    normal = pixels.image_rgba(nodes["Brushwork Normal"].image)[..., :3]
    rough = pixels.image_rgba(nodes["Brushwork Roughness"].image)[..., 0]
    height = pixels.image_rgba(nodes["Brushwork Height"].image)[..., 0]
    mid = normal[8:24, 8:24]
    # Truth: height rises with u (x), so the surface tilts towards -u: red below 0.5, green 0.5.
    out["pbr_normal_mid"] = [float(mid[..., 0].mean()), float(mid[..., 1].mean()), float(mid[..., 2].mean())]
    out["pbr_height_rises_with_u"] = bool(height[16, 24] > height[16, 8])
    out["pbr_rougher_where_dark"] = bool(rough[16, 8] > rough[16, 24])
    out["pbr_colorspaces"] = sorted({nodes[f"Brushwork {k}"].image.colorspace_settings.name
                                     for k in ("Normal", "Roughness", "Height")})


# 5. the Cycles depth / normal passes follow render visibility --------------------------------
@step("passes")
def _passes():
    scene = fresh()
    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 0, 0.5))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(2, 0, 0.6))
    render_hidden = bpy.context.active_object
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(-2, 0, 0.6))
    eye_hidden = bpy.context.active_object
    bpy.ops.mesh.primitive_cone_add(radius1=0.6, location=(0, 2, 0.6))
    no_camera_rays = bpy.context.active_object
    cam = camera_at(scene, "view", (0, -7, 5), (0, 0.5, 0.3), lens=30.0)
    # Everything visible: the Cycles Z pass and Blender's own ray casts (truth.py) agree.
    p = render_passes.render_passes(scene, cam, (96, 72))
    ray = ray_cast_depth(scene, cam, (96, 72))
    both = np.isfinite(ray) & np.isfinite(p.depth)
    out["passes_same_misses"] = bool((np.isfinite(ray) == np.isfinite(p.depth)).all())
    out["passes_max_rel_diff"] = float((np.abs(ray[both] - p.depth[both]) / ray[both]).max())
    render_hidden.hide_render = True
    eye_hidden.hide_set(True)
    no_camera_rays.visible_camera = False
    engine_before = scene.render.engine
    p = render_passes.render_passes(scene, cam, (96, 72), normals=True)
    out["passes_settings_restored"] = scene.render.engine == engine_before and scene.compositing_node_group is None
    frame = capture.camera_frame(scene, cam, (96, 72))

    def pixel_of(obj):
        px, _ = frame.project(np.array([obj.location]))
        return int(px[0, 1]), int(px[0, 0])

    # Truth: the plane's depth at a pixel is where the pixel's ray meets z = 0.
    origin, direction, z_per_len = capture.camera_rays(frame)
    t_plane = -origin[..., 2] / direction[..., 2]
    plane_depth = frame.clip_start + t_plane * z_per_len
    y, x = pixel_of(render_hidden)
    out["render_hidden_is_plane_depth"] = float(abs(p.depth[y, x] - plane_depth[y, x]) / plane_depth[y, x])
    y, x = pixel_of(no_camera_rays)
    out["camera_invisible_is_plane_depth"] = float(abs(p.depth[y, x] - plane_depth[y, x]) / plane_depth[y, x])
    y, x = pixel_of(eye_hidden)
    out["eye_hidden_in_front_of_plane"] = bool(p.depth[y, x] < plane_depth[y, x] - 0.3)
    # Normals: the floor faces up (+Z world) → green-dominant camera-space map; the cube's -Y face
    # faces the camera → blue-dominant.
    pic = render_passes.camera_normal_picture(p.normal, frame.rotation)
    out["normal_floor_rgb"] = [float(v) for v in pic[66, 10]]
    # The operator writes the same picture for the active camera, at the panel's size.
    from brushwork_blender import multiview_operators, props, ui

    for module in (props, ui, multiview_operators):  # the add-on's order: the panel nests in ui's
        module.register()
    scene.brushwork.width = scene.brushwork.height = 96
    scene.render.resolution_x, scene.render.resolution_y = 96, 72
    scene.camera = cam
    out["capture_normal_result"] = sorted(bpy.ops.brushwork.capture_normal())
    captured = pixels.image_rgba(bpy.data.images["Brushwork Normal"])[..., :3]
    out["capture_normal_size"] = list(captured.shape[:2])
    out["capture_normal_max_diff"] = float(np.abs(captured - pic).max())
    out["capture_normal_colorspace"] = bpy.data.images["Brushwork Normal"].colorspace_settings.name
    cube_front = frame.project(np.array([[0.0, -0.5, 0.3]]))[0][0]
    out["normal_cube_front_rgb"] = [float(v) for v in pic[int(cube_front[1]), int(cube_front[0])]]
    # camera-space truth for the floor: world +Z in camera axes
    up_cam = np.array([0.0, 0.0, 1.0]) @ frame.rotation
    # normalbae colours: red = left (-x), green = up (+y), blue = towards the viewer (+z)
    out["normal_floor_truth"] = [float(0.5 - up_cam[0] * 0.5), float(0.5 + up_cam[1] * 0.5),
                                 float(0.5 + up_cam[2] * 0.5)]


# 6. orbit views --------------------------------------------------------------------------------
@step("orbit")
def _orbit():
    placed = views.orbit_views((1.0, 2.0, 0.5), 1.5, 4, elevation_deg=20.0, top=True)
    out["orbit_names"] = [v.name for v in placed]
    # every view looks at the centre: the camera's -Z axis points at it
    errs = []
    for v in placed:
        to_center = np.array([1.0, 2.0, 0.5]) - v.location
        errs.append(float(np.linalg.norm(-v.rotation[:, 2] - to_center / np.linalg.norm(to_center))))
        errs.append(float(abs(np.linalg.det(v.rotation) - 1.0)))
    out["orbit_max_err"] = max(errs)
    out["orbit_first_on_minus_y"] = bool(placed[0].location[1] < 2.0 and abs(placed[0].location[0] - 1.0) < 1e-9)


print("RESULT: " + json.dumps(out))
