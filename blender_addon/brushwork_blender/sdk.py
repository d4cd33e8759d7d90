"""The stdlib-only Brushwork SDK modules, as this add-on sees them.

In the installed extension they are copies in ``vendor/brushwork`` (made by
``brushwork blender package``). Running from a source checkout (no ``vendor`` folder), the
``brushwork`` package on ``sys.path`` is used instead; only its stdlib-only modules are touched.
"""

from __future__ import annotations

import importlib
import importlib.util

_VENDORED = importlib.util.find_spec(__package__ + ".vendor") is not None
_BASE = (__package__ + ".vendor.brushwork") if _VENDORED else "brushwork"

recipe = importlib.import_module(_BASE + ".recipe")
errors = importlib.import_module(_BASE + ".errors")
assets = importlib.import_module(_BASE + ".assets")
openpose = importlib.import_module(_BASE + ".openpose")


def client_module():
    """The client module, imported on first use (it is the biggest of the copies)."""
    return importlib.import_module(_BASE + ".client")


def presets_module():
    return importlib.import_module(_BASE + ".presets")


Recipe = recipe.Recipe
Control = recipe.Control
BrushworkError = errors.BrushworkError
RecipeError = errors.RecipeError
WorkerError = errors.WorkerError
CancelledError = errors.CancelledError
content_ref = assets.content_ref
atomic_write_bytes = assets.atomic_write_bytes
vendored = _VENDORED
