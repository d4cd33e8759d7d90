"""Brushwork for Blender: textures from prompts, exact scene depth and armature poses.

Generation runs in the local Brushwork worker; this extension builds Recipes and talks to the
worker through the bundled stdlib client (``vendor/brushwork``). It never imports torch or PIL.
Scripts: ``bpy.ops.brushwork.generate_texture()``, ``project_from_camera()``, ``capture_depth()``,
``capture_pose()``, ``inpaint_texture()``, ``cancel()``, ``texture_multiview()``; and
``capture.camera_depth(scene, camera, (w, h))`` for exact z-depth (as the render sees it) as a
numpy array. A material with ``material.brushwork_region.prompt`` is a region of every view.
"""

from __future__ import annotations

from . import (  # noqa: F401
    capture,
    image_operators,
    multiview_operators,
    operators,
    pose,
    props,
    regions,
    session_operators,
    ui,
)

# regions and multiview_operators after ui: their panels nest in ui's 3D View panel.
_MODULES = (props, operators, image_operators, session_operators, ui, regions, multiview_operators)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    from . import jobs

    jobs.cancel_all()
    for module in reversed(_MODULES):
        module.unregister()
