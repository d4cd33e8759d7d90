"""Preferences (how to reach the worker, where outputs go) and the per-scene generation settings."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import identity, link, sdk

# Choices and limits come from the Recipe itself (the vendored recipe module), never from copies.
SAMPLERS = sdk.recipe.SAMPLERS
# Blender enum identifiers cannot be empty: "none" stands for the Recipe's "" (no tiling).
TILING_ITEMS = [(mode or "none", label, description) for mode, label, description in (
    ("", "Off", "No seamless tiling"), ("x", "X", "Tiles left to right"), ("y", "Y", "Tiles top to bottom"),
    ("xy", "Both", "Tiles in both directions"))]
assert [m if m != "none" else "" for m, _, _ in TILING_ITEMS] == list(sdk.recipe.TILING_MODES)


def tiling_mode(settings) -> str:
    """The Recipe's tiling value for the scene settings' enum."""
    return "" if settings.tiling == "none" else settings.tiling


def tiling_item(mode: str) -> str:
    """The scene settings' enum identifier for a Recipe's tiling value."""
    return mode or "none"


class BrushworkPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    environment: StringProperty(
        name="Brushwork environment", subtype="DIR_PATH",
        description="The Python environment (.venv folder) where Brushwork is installed: the worker is "
                    "started with its python. Empty: use BRUSHWORK_PYTHON or an already running worker")
    worker_url: StringProperty(
        name="Worker URL", description="Empty: the local worker (found through its worker.json). "
                                       "A worker on another machine needs Blender's online access")
    start_worker: BoolProperty(name="Start the worker when needed", default=True)
    output_policy: EnumProperty(
        name="Save results",
        items=[("BLEND", "Next to the .blend",
                 "In a 'brushwork' folder beside the saved .blend; packed while it is unsaved"),
               ("FOLDER", "In a folder", "In the output folder below"),
               ("PACK", "Pack into the .blend", "Always packed into the .blend file")],
        default="BLEND")
    output_folder: StringProperty(name="Output folder", subtype="DIR_PATH")
    client_keys: StringProperty(
        name="Client keys", options={"HIDDEN"},
        description="JSON {file key: [.blend paths]}: every file's worker client key, so Recover Results "
                    "finds a file's jobs even when it was not saved after its first job")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "environment")
        col.prop(self, "worker_url")
        col.prop(self, "start_worker")
        col.prop(self, "output_policy")
        if self.output_policy == "FOLDER":
            col.prop(self, "output_folder")


def preferences(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


CLIENT_KEY_PROP = identity.FILE_KEY_PROP


def client_key(scene=None) -> str:
    """This file's worker client key, made on first use and saved with the .blend (a custom
    property on its scenes) and remembered in the preferences and the add-on's job folder: the
    worker shows a client only its own jobs, so the key is what finds them again after a crash."""
    path = identity.norm_path(bpy.data.filepath)
    key = identity.file_key(create=False)
    if not key:
        # A saved file that lost its key (Blender closed before it was saved with it) gets the key
        # remembered for its path back, so its earlier jobs stay its own.
        remembered = client_keys_for_path(path)
        key = remembered[-1] if remembered else identity.file_key()
        identity.adopt_file_key(key)
    remember_client_key(key, path)
    return key


def remember_client_key(key: str, path: str) -> None:
    import json

    from . import journal

    journal.remember_key(key, path)
    prefs = preferences()
    if prefs is None:
        return
    try:
        known = json.loads(prefs.client_keys or "{}")
    except ValueError:
        known = {}
    paths = known.setdefault(key, [])
    if path and path not in paths:
        paths.append(path)
    text = json.dumps(known)
    if text != prefs.client_keys:
        prefs.client_keys = text


def client_keys_for_file() -> list[str]:
    """Every key this file has had: its own, and those remembered for its path."""
    return list(dict.fromkeys([client_key(), *client_keys_for_path(identity.norm_path(bpy.data.filepath))]))


def client_keys_for_path(path: str) -> list[str]:
    import json

    from . import journal

    keys = journal.keys_for(path)
    prefs = preferences()
    try:
        known = json.loads(prefs.client_keys or "{}") if prefs else {}
    except ValueError:
        known = {}
    keys += [k for k, paths in known.items() if path and path in paths]
    return list(dict.fromkeys(keys))


def link_settings(context=None) -> link.LinkSettings:
    """Snapshot the preferences on the main thread for a job thread to use."""
    context = context or bpy.context
    prefs = preferences(context)
    key = client_key(context.scene)
    if prefs is None:
        return link.LinkSettings(online_access=bool(bpy.app.online_access), client_key=key)
    return link.LinkSettings(
        url=prefs.worker_url.strip(), python=link.environment_python(bpy.path.abspath(prefs.environment)),
        start=prefs.start_worker, online_access=bool(bpy.app.online_access), client_key=key)


class BrushworkSceneSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", default="")
    negative_prompt: StringProperty(name="Negative", default="")
    preset: StringProperty(name="Preset", description="A Brushwork preset name (e.g. texture-seamless); empty: none")
    model: StringProperty(name="Model",
                          description="Hub id, model name in your model folders, or empty for the default")
    seed: IntProperty(name="Seed", description="-1: random (the seed used is stored on the image)", default=-1, min=-1)
    steps: IntProperty(name="Steps", default=25, min=1, max=sdk.recipe.MAX_STEPS)
    cfg: FloatProperty(name="CFG", default=7.0, min=0.0, max=sdk.recipe.MAX_CFG)
    sampler: EnumProperty(name="Sampler", items=[(s, s, "") for s in SAMPLERS], default="Euler a")
    width: IntProperty(name="Width", default=512, min=sdk.recipe.MIN_SIDE, max=sdk.recipe.MAX_SIDE, step=8)
    height: IntProperty(name="Height", default=512, min=sdk.recipe.MIN_SIDE, max=sdk.recipe.MAX_SIDE, step=8)
    tiling: EnumProperty(name="Seamless", description="Which directions the texture tiles in without a seam",
                          items=TILING_ITEMS, default="none")
    use_depth: BoolProperty(name="Depth from camera",
                            description="Condition on the exact depth seen by the active camera (Project From Camera)")
    depth_strength: FloatProperty(name="Depth strength", default=1.0, min=0.0, max=2.0)
    depth_model: StringProperty(name="Depth ControlNet",
                                description="ControlNet id, path or name; empty: the model family's default")
    use_pose: BoolProperty(name="Pose from armatures",
                           description="Condition on the selected armatures' poses (OpenPose; Project From Camera)")
    pose_strength: FloatProperty(name="Pose strength", default=1.0, min=0.0, max=2.0)
    pose_model: StringProperty(name="Pose ControlNet",
                               description="ControlNet id, path or name; empty: the model family's default")
    bone_map: EnumProperty(
        name="Bone map",
        items=[("AUTO", "Auto", "The built-in map that finds the most bones"),
               ("RIGIFY", "Rigify", "Rigify rigs (DEF- bones or metarig names)"),
               ("MIXAMO", "Mixamo", "Mixamo rigs (any mixamorig prefix)"),
               ("TEXT", "Text block",
                "The JSON in the text block 'Brushwork Bone Map' (edit a copy of a built-in map)")],
        default="AUTO")
    strength: FloatProperty(name="Repaint strength", description="Denoising strength for inpainting",
                            default=0.8, min=0.01, max=1.0)
    bake_to_uvs: BoolProperty(name="Bake to existing UVs",
                              description="After projecting, bake the texture onto the mesh's own UV map")


CLASSES = (BrushworkPreferences, BrushworkSceneSettings)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register():
    _register_classes()
    bpy.types.Scene.brushwork = PointerProperty(type=BrushworkSceneSettings)


def unregister():
    del bpy.types.Scene.brushwork
    _unregister_classes()
