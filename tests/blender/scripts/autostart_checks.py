"""No worker running: the add-on starts one with the python of the Brushwork environment set in
its preferences, then generates (run by tests/blender/test_autostart.py).

Usage: python autostart_checks.py EXTENSION.zip ENVIRONMENT_DIR
Env: BLENDER_USER_RESOURCES, BRUSHWORK_HOME (empty: no worker.json), BRUSHWORK_MODEL_DIRS.
"""

import json
import os
import sys
import time

import bpy

zip_path, environment = sys.argv[1:3]
PKG = "bl_ext.user_default.brushwork_blender"
out = {}
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
prefs = bpy.context.preferences.addons[PKG].preferences
prefs.environment = environment
prefs.worker_url = ""
scene = bpy.context.scene
for obj in list(scene.objects):
    bpy.data.objects.remove(obj)
bw = scene.brushwork
bw.prompt, bw.model, bw.steps, bw.width, bw.height, bw.seed = "tiles", "tiny-sd15", 2, 64, 64, 3
bpy.ops.mesh.primitive_plane_add()

# start_worker off: a clear error, and no worker is started
prefs.start_worker = False
try:
    bpy.ops.brushwork.generate_texture()
    out["no_start_error"] = ""
except RuntimeError as exc:
    out["no_start_error"] = str(exc)
out["worker_json_after_no_start"] = os.path.exists(os.path.join(os.environ["BRUSHWORK_HOME"], "state", "worker.json"))

prefs.start_worker = True
t0 = time.perf_counter()
try:
    bpy.ops.brushwork.generate_texture()
    out["error"] = ""
except RuntimeError as exc:
    out["error"] = str(exc)
out["seconds"] = time.perf_counter() - t0
mat = bpy.context.active_object.active_material
out["image"] = bool(mat and mat.node_tree.nodes.get("Brushwork Image") and mat.node_tree.nodes["Brushwork Image"].image)
with open(os.path.join(os.environ["BRUSHWORK_HOME"], "state", "worker.json")) as f:
    info = json.load(f)
out["worker_python"] = info.get("python", "")
out["worker_pid"] = info.get("pid")
print("RESULT: " + json.dumps(out))
