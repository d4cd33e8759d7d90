"""The picture in docs/blender.md: multi-view texturing on the bundled demo model, end to end.

Run by hand (not a test): it installs the packaged extension into a throwaway Blender user folder,
lets it start a worker from the Brushwork environment, textures a sphere and a box on a floor from
4 orbit views + top (sequential inpainting, exact depth), renders the result from a new angle with
Cycles, and writes one PNG: the generated views on top, the render below.

    .venv/bin/brushwork blender package --out /tmp/bw.zip
    BLENDER_USER_RESOURCES=$(mktemp -d) BRUSHWORK_HOME=$(mktemp -d) BRUSHWORK_WORKER_PORT=0 \
      .venv-blender/bin/python tests/blender/scripts/multiview_demo_picture.py /tmp/bw.zip .venv \
      docs/screenshots/blender-multiview.png
"""

import importlib
import json
import os
import sys
import tempfile
import time

import bpy
import numpy as np

zip_path, environment, out_path = sys.argv[1:4]
PKG = "bl_ext.user_default.brushwork_blender"
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
pixels = importlib.import_module(PKG + ".pixels")
multiview = importlib.import_module(PKG + ".multiview_operators")
prefs = bpy.context.preferences.addons[PKG].preferences
prefs.worker_url, prefs.environment, prefs.output_policy = "", environment, "PACK"

scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
bw = scene.brushwork
bw.prompt, bw.model, bw.steps, bw.cfg, bw.sampler = "yellow checker", "demo", 20, 5.0, "Euler a"
bw.depth_strength = 0.5
bw.width = bw.height = 128
bw.seed = 7
mv = scene.brushwork_multiview
mv.source, mv.count, mv.top, mv.elevation, mv.texture_size, mv.sequential = "ORBIT", 4, True, 25.0, 256, True

bpy.ops.mesh.primitive_uv_sphere_add(segments=48, ring_count=24, radius=1.0, location=(-0.6, 0, 1.0))
bpy.ops.object.shade_smooth()
sphere = bpy.context.active_object
bpy.ops.mesh.primitive_cube_add(size=1.2, location=(1.2, 0.3, 0.6), rotation=(0, 0, 0.5))
box = bpy.context.active_object
for o in scene.objects:
    o.select_set(o in (sphere, box))
bpy.context.view_layer.objects.active = sphere

t0 = time.perf_counter()
bpy.ops.brushwork.texture_multiview()
elapsed = time.perf_counter() - t0
print("multiview:", multiview.last_summary, f"({elapsed:.1f} s)")
views = [i for i in bpy.data.images if "-view" in i.name]
views.sort(key=lambda i: i.name)

# Render the textured scene from an angle no view used.
bpy.ops.mesh.primitive_plane_add(size=12, location=(0, 0, 0))
cam = bpy.data.objects.new("shot", bpy.data.cameras.new("shot"))
scene.collection.objects.link(cam)
cam.location = (4.5, -5.5, 3.2)
from mathutils import Vector  # noqa: E402

cam.rotation_euler = (Vector((0.2, 0.1, 0.7)) - cam.location).to_track_quat("-Z", "Y").to_euler()
scene.camera = cam
sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
sun.data.energy = 3.0
sun.rotation_euler = (0.7, 0.2, 0.8)
scene.collection.objects.link(sun)
scene.world = scene.world or bpy.data.worlds.new("world")
scene.world.use_nodes = True
scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
scene.render.engine = "CYCLES"
scene.cycles.samples = 16
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 480, 320, 100
scene.render.image_settings.file_format = "PNG"
tmp = tempfile.mkdtemp()
scene.render.filepath = os.path.join(tmp, "shot.png")
bpy.ops.render.render(write_still=True)
shot = bpy.data.images.load(scene.render.filepath)
render = pixels.image_rgba(shot)[..., :3]

# Compose: the views (each shown at 96²) in a row above the render.
tile = 96
row = np.ones((tile + 8, render.shape[1], 3))
for k, image in enumerate(views[:5]):
    pic = pixels.image_rgba(image)[..., :3]
    idx = (np.arange(tile) * pic.shape[0] // tile)
    x0 = 8 + k * (tile + 4)
    row[4:4 + tile, x0:x0 + tile] = pic[idx][:, idx]
canvas = np.concatenate([row, render], axis=0)
with open(out_path, "wb") as f:
    f.write(pixels.encode_png(np.round(np.clip(canvas, 0, 1) * 255)))
print("RESULT: " + json.dumps({"summary": multiview.last_summary, "seconds": elapsed, "views": len(views)}))

# The worker outlives its clients on purpose: stop the one this run started.
try:
    with open(os.path.join(os.environ["BRUSHWORK_HOME"], "state", "worker.json")) as f:
        os.kill(int(json.load(f)["pid"]), 15)
except (OSError, ValueError, KeyError):
    pass
