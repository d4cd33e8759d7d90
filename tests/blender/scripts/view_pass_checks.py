"""A view's render passes against truth computed here (run by tests/blender/test_view_passes.py).

  - material-slot region masks: a cube with three materials, an occluder, a floor sharing a
    region material and a render-hidden box, against analytic ray/box/plane hits per pixel centre;
    the Recipe regions built from them (mask PNGs byte-equal to the truth's);
  - the normal map's colours (ControlNet normalbae: red = facing left, green = up, blue = facing
    the camera) against a sphere's analytic normals, from an axis-aligned and a tilted camera;
  - the UI way of rendering (``render_passes.request`` + ``poll``): nothing happens inside the
    request, the scene is set up only while the render runs, the result equals the synchronous
    render, and a camera deleted meanwhile is a one-line error with the scene left as it was.
No worker.
"""

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO / "blender_addon"), str(REPO / "sdk")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from brushwork_blender import capture, jobs, operators, pixels, props, regions, ui  # noqa: E402
from brushwork_blender.texturing import exr, render_passes, views  # noqa: E402
from check_steps import stepper  # noqa: E402
from mathutils import Matrix  # noqa: E402
from truth import ray_box, ray_sphere  # noqa: E402

out = {}
step = stepper(out)
for module in (props, operators, ui, regions):  # the add-on's order: the regions panel nests in ui's
    module.register()


def fresh():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def camera_at(scene, name, location, target, lens=35.0):
    data = bpy.data.cameras.new(name)
    data.lens, data.clip_start, data.clip_end = lens, 0.1, 100.0
    cam = bpy.data.objects.new(name, data)
    scene.collection.objects.link(cam)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = views.look_at(np.array(location, float), np.array(target, float)), location
    cam.matrix_world = Matrix(m.tolist())
    scene.camera = cam
    bpy.context.view_layer.update()
    return cam


def material(name, prompt=""):
    mat = bpy.data.materials.new(name)
    mat.brushwork_region.prompt = prompt
    return mat


def box(lo, hi, mat, name):
    lo, hi = np.array(lo, float), np.array(hi, float)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=tuple((lo + hi) / 2))
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = tuple(hi - lo)
    obj.data.materials.append(mat)
    return obj


# 1. material-slot regions ----------------------------------------------------------------------
@step("regions")
def _regions():
    scene = fresh()
    base, red, top = material("Base"), material("Red", "red bricks"), material("Top", "green grass")
    red.brushwork_region.negative_prompt, red.brushwork_region.weight = "moss", 0.8
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    for mat in (base, red, top):
        cube.data.materials.append(mat)
    for poly in cube.data.polygons:  # +X faces → Red, +Z → Top, the rest Base
        n = poly.normal
        poly.material_index = 1 if n.x > 0.5 else 2 if n.z > 0.5 else 0
    bpy.ops.mesh.primitive_plane_add(size=12.0, location=(0, 0, -1.0))
    bpy.context.active_object.data.materials.append(top)  # the floor shares the Top material
    box((1.5, -1.0, -1.0), (2.0, -0.5, 0.7), base, "occluder")  # hides part of the +X face
    hidden = box((-0.5, -3.0, -1.0), (0.5, -2.5, 2.0), red, "render hidden")
    hidden.hide_render = True  # Red, but not in the render: no region pixels
    cam = camera_at(scene, "view", (7.0, -6.0, 5.0), (0.0, 0.0, 0.0))
    size = (128, 96)
    mats = regions.region_materials([cube])
    out["region_materials"] = [m.name for m in mats]
    passes = render_passes.render_passes(scene, cam, size, materials=mats)
    out["pass_index_restored"] = [m.pass_index for m in (base, red, top)]

    # Truth: nearest of cube (face → material), occluder (Base), floor (Top), per pixel centre.
    frame = capture.camera_frame(scene, cam, size)
    origin, direction, _ = capture.camera_rays(frame)
    t_cube, face = ray_box(origin, direction, (-1, -1, -1), (1, 1, 1))
    cube_id = np.where(face == 1, 1, np.where(face == 5, 2, 0))
    t_occ, _ = ray_box(origin, direction, (1.5, -1.0, -1.0), (2.0, -0.5, 0.7))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = (-1.0 - origin[..., 2]) / direction[..., 2]
    hit = origin + t_floor[..., None] * direction
    t_floor = np.where((t_floor > 0) & (np.abs(hit[..., 0]) < 6) & (np.abs(hit[..., 1]) < 6), t_floor, np.inf)
    ts = np.stack([t_cube, t_occ, t_floor])
    ids = np.stack([cube_id, np.zeros_like(cube_id), np.full_like(cube_id, 2)])
    nearest = np.argmin(ts, axis=0)
    truth = np.take_along_axis(ids, nearest[None], axis=0)[0]
    truth[np.isinf(ts.min(axis=0))] = 0
    got = passes.material_index
    out["region_shape"] = list(got.shape)
    out["region_truth_counts"] = [int((truth == k).sum()) for k in (1, 2)]
    out["region_mismatch"] = int((got != truth).sum())
    out["region_occluded_red_pixels"] = int(((cube_id == 1) & (t_occ < t_cube) & np.isfinite(t_cube)).sum())
    t_hidden, _ = ray_box(origin, direction, (-0.5, -3.0, -1.0), (0.5, -2.5, 2.0))
    out["region_hidden_box_pixels"] = int(np.isfinite(t_hidden).sum())
    out["region_red_on_hidden_box"] = int((got[np.isfinite(t_hidden) & (t_hidden < ts.min(axis=0))] == 1).sum())

    # The Recipe's regions: one per seen material, mask PNG = the truth's, fields from the material.
    fields = regions.region_fields(mats)
    made, uploads = regions.regions_from_masks(fields, got)
    out["recipe_regions"] = [{k: v for k, v in r.items() if k != "mask"} for r in made]
    want = [pixels.encode_png(np.where(truth == k + 1, 255, 0).astype(np.uint8)) for k in range(2)]
    out["region_masks_equal_truth"] = [u == w for u, w in zip(uploads, want, strict=True)]
    out["region_mask_refs_match_uploads"] = [r["mask"] == regions.sdk.content_ref(u)
                                             for r, u in zip(made, uploads, strict=True)]
    recipe = regions.sdk.Recipe.from_dict({"prompt": "a house", "width": 128, "height": 96,
                                           "regions": made}).validate()
    out["recipe_region_prompts"] = [r.prompt for r in recipe.regions]
    # A material no view pixel shows gives no region.
    out["unseen_regions"] = len(regions.regions_from_masks(fields, np.zeros_like(got))[0])

    # A vertex group as a region: the -Y face's 4 vertices (its neighbours have 2 of 4: mean 0.5,
    # not above it), numbered after the materials; for that render only.
    front = cube.vertex_groups.new(name="Front")
    front.add([v.index for v in cube.data.vertices if v.co.y < -0.9], 1.0, "REPLACE")
    entry = cube.brushwork_group_regions.add()
    entry.vertex_group, entry.prompt = "Front", "a wooden door"
    groups = regions.group_regions([cube])
    out["group_fields"] = [[o, g, f["prompt"]] for o, g, f in groups]
    counts = (len(bpy.data.materials), len(bpy.data.node_groups), len(cube.modifiers))
    passes = render_passes.render_passes(scene, cam, size, materials=mats, groups=[(o, g) for o, g, _ in groups])
    out["group_left_nothing"] = (len(bpy.data.materials), len(bpy.data.node_groups), len(cube.modifiers)) == counts
    truth_g = truth.copy()
    truth_g[(nearest == 0) & np.isfinite(t_cube) & (face == 2)] = 3
    out["group_truth_pixels"] = int((truth_g == 3).sum())
    out["group_mismatch"] = int((passes.material_index != truth_g).sum())
    made, _ = regions.regions_from_masks(fields + [f for _, _, f in groups], passes.material_index)
    out["group_recipe_prompts"] = [r["prompt"] for r in made]


# 1b. vertex-group regions of a UV-space texture (Generate Texture) -----------------------------
@step("uv_regions")
def _uv_regions():
    fresh()
    bpy.ops.mesh.primitive_plane_add(size=2.0)
    plane = bpy.context.active_object
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.subdivide(number_cuts=1)  # 4 faces; the plane's UVs cover 0..1 (x → u)
    bpy.ops.object.mode_set(mode="OBJECT")
    plane.data.materials.append(material("Paint"))
    left = plane.vertex_groups.new(name="Left")  # the left faces: all 4 vertices at x <= 0
    left.add([v.index for v in plane.data.vertices if v.co.x < 0.1], 1.0, "REPLACE")
    entry = plane.brushwork_group_regions.add()
    entry.vertex_group, entry.prompt = "Left", "blue paint"
    made, uploads = regions.uv_group_regions(plane, 0, (64, 32))
    truth = np.zeros((32, 64), dtype=np.uint8)
    truth[:, :32] = 255  # u < 0.5: texel centres (x + 0.5) / 64 for x < 32
    out["uv_region_prompts"] = [r["prompt"] for r in made]
    out["uv_region_mask_is_left_half"] = [u == pixels.encode_png(truth) for u in uploads]
    out["uv_region_other_slot"] = len(regions.uv_group_regions(plane, 1, (64, 32))[0])


# 2. normal colours ------------------------------------------------------------------------------
@step("normals")
def _normals():
    scene = fresh()
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, segments=128, ring_count=64)
    bpy.ops.object.shade_smooth()
    for name, location in (("straight", (0.0, -6.0, 0.0)), ("tilted", (4.0, -5.0, 3.0))):
        cam = camera_at(scene, name, location, (0.0, 0.0, 0.0), lens=50.0)
        size = (96, 96)
        passes = render_passes.render_passes(scene, cam, size, normals=True)
        frame = capture.camera_frame(scene, cam, size)
        pic = render_passes.camera_normal_picture(passes.normal, frame.rotation)
        origin, direction, _ = capture.camera_rays(frame)
        t = ray_sphere(origin, direction, (0, 0, 0), 1.0)
        on = np.isfinite(t)
        n_world = origin + t[..., None] * direction  # centre at 0, radius 1: the point is the normal
        facing = -np.einsum("hwk,hwk->hw", np.where(on[..., None], n_world, 0), direction)
        # camera axes from the camera object itself (x right, y up, z towards the viewer)
        rot = np.array(cam.matrix_world.to_3x3().normalized())
        local = np.where(on[..., None], n_world, 0) @ rot
        truth = np.stack([0.5 - local[..., 0] / 2, 0.5 + local[..., 1] / 2, 0.5 + local[..., 2] / 2], axis=-1)
        inner = on & (facing > 0.3)  # away from the silhouette, where a pixel straddles the edge
        out[f"normal_{name}_max_err"] = float(np.abs(pic[inner] - truth[inner]).max())
        out[f"normal_{name}_background_black"] = bool((pic[~on] == 0).all())
        if name == "straight":
            rows, cols = np.nonzero(on)
            mid_row = int(np.median(rows))
            left, right = cols[rows == mid_row].min(), cols[rows == mid_row].max()
            out["sphere_left_rgb"] = [float(v) for v in pic[mid_row, left + 1]]
            out["sphere_right_rgb"] = [float(v) for v in pic[mid_row, right - 1]]
            mid_col = int(np.median(cols))
            out["sphere_top_rgb"] = [float(v) for v in pic[rows[cols == mid_col].min() + 1, mid_col]]
            out["sphere_centre_rgb"] = [float(v) for v in pic[48, 48]]
    # a plane square to the camera: the flat normal-map colour
    scene = fresh()
    bpy.ops.mesh.primitive_plane_add(size=50.0, rotation=(np.pi / 2, 0.0, 0.0))  # faces -Y
    cam = camera_at(scene, "front", (0.0, -5.0, 0.0), (0.0, 0.0, 0.0))
    passes = render_passes.render_passes(scene, cam, (32, 24), normals=True)
    pic = render_passes.camera_normal_picture(passes.normal, capture.camera_frame(scene, cam, (32, 24)).rotation)
    out["plane_facing_rgb_range"] = [[float(pic[..., c].min()), float(pic[..., c].max())] for c in range(3)]


# 2b. the pass files read by numpy (read_exr) equal Blender's own image loader ------------------
@step("exr")
def _exr():
    import os

    scene = fresh()
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0)
    bpy.context.active_object.data.materials.append(material("Ball", "a ball"))
    cam = camera_at(scene, "view", (3.0, -4.0, 2.0), (0.0, 0.0, 0.0))
    setup = render_passes._Setup(scene, cam, (40, 24), True, [bpy.data.materials["Ball"]], None)
    bpy.ops.render.render(write_still=False, layer=setup.view_layer.name, scene=scene.name)
    diffs = {}
    for name in sorted(os.listdir(setup.tmp)):
        path = os.path.join(setup.tmp, name)
        mine = exr.read_pass(path, 3)
        blender = exr.read_pass_bpy(path, 3)
        same_inf = np.array_equal(np.isinf(mine), np.isinf(blender))
        finite = np.isfinite(blender)
        diffs[name] = [same_inf, float(np.abs(mine[finite] - blender[finite]).max())]
    setup.collect()
    out["exr_files"] = diffs


# 3. the UI way: request → poll (start the render job) → poll (read back) ----------------------
@step("ui")
def _ui():
    scene = fresh()
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cam = camera_at(scene, "view", (5.0, -4.0, 3.0), (0.0, 0.0, 0.0))
    scene.render.engine = "BLENDER_EEVEE"
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    sync = render_passes.render_passes(scene, cam, (64, 48))
    started = []

    def start(setup):  # headless: no window to start F12's job from, so the same render here
        started.append((scene.render.engine, scene.render.resolution_x, scene.camera.name))
        bpy.ops.render.render(write_still=False, layer=setup.view_layer.name, scene=setup.scene.name)

    jobs.run_sync_mode = lambda: False
    render_passes.start_render_job = start
    got = []
    render_passes.request(scene, cam, (64, 48), then=lambda passes, error: got.append((passes, error)))
    out["ui_after_request"] = [render_passes.pending(), len(started), len(got), scene.render.engine]
    polls = 0
    while render_passes.pending() and polls < 400:
        render_passes.poll()
        polls += 1
        time.sleep(0.01)  # the pump's interval, shortened: the reader thread parses the files meanwhile
    out["ui_polls"] = polls
    out["ui_started_with"] = [list(s) for s in started]
    passes, error = got[0]
    out["ui_error"] = error
    out["ui_same_as_sync"] = bool(np.array_equal(passes.depth, sync.depth))
    out["ui_restored"] = [scene.render.engine, scene.render.resolution_x, scene.compositing_node_group is None]
    out["ui_main_thread_parts"] = sorted(k for k in passes.seconds)
    # Cancel: a request not started yet is dropped; one being rendered reads nothing back.
    render_passes.request(scene, cam, (64, 48), then=lambda passes, error: got.append((passes, error)))
    out["ui_cancel_waiting"] = [render_passes.cancel_pending(), got[-1][0] is None, got[-1][1],
                                render_passes.pending()]
    render_passes.request(scene, cam, (64, 48), then=lambda passes, error: got.append((passes, error)))
    render_passes.poll()  # the render job starts (here: runs)
    render_passes.cancel_pending()
    render_passes.poll()
    out["ui_cancel_rendering"] = [got[-1][0] is None, got[-1][1], render_passes.pending(), scene.render.engine]
    # An operator the old way round (Capture Depth): it returns before rendering; the pump, run
    # as Blender's timer runs it, renders and fills the image.
    scene.brushwork.width = scene.brushwork.height = 64
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    started.clear()
    result = bpy.ops.brushwork.capture_depth()
    out["ui_operator"] = [sorted(result), len(started), "Brushwork Depth" in bpy.data.images,
                          render_passes.pending(), bpy.app.timers.is_registered(jobs.pump)]
    ticks = 0
    while bpy.app.timers.is_registered(jobs.pump) and ticks < 400:
        if jobs.pump() is None:
            bpy.app.timers.unregister(jobs.pump)
        ticks += 1
        time.sleep(0.01)
    image = bpy.data.images.get("Brushwork Depth")
    want = render_passes.render_passes(scene, cam, capture.fit_size(scene, 64)).depth
    near = float(want[np.isfinite(want)].min())
    out["ui_operator_done"] = [len(started), image is not None and list(image.size),
                               image is not None and abs(image["brushwork_near"] - near)]
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    # The camera goes away between the request and the render: one line, nothing changed.
    got.clear()
    render_passes.request(scene, cam, (64, 48), then=lambda passes, error: got.append((passes, error)))
    bpy.data.objects.remove(cam)
    render_passes.poll()
    out["ui_gone"] = [got[0][0] is None, got[0][1], render_passes.pending(), scene.render.engine,
                      len(bpy.data.node_groups)]
    jobs.run_sync_mode = lambda: bool(bpy.app.background)


print("RESULT: " + json.dumps(out))
