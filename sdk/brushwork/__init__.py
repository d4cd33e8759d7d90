"""Brushwork: Stable Diffusion for artists' own tools.

``import brushwork`` stays light (stdlib only): the engine (torch, diffusers) loads the first time
``Studio`` is touched, so Blender and the canvas can import this package without torch.
"""

from __future__ import annotations

from .errors import (
    AdapterError,
    AuthError,
    BrushworkError,
    CancelledError,
    InputImageError,
    MissingDependencyError,
    ModelError,
    ModelNotFoundError,
    OutOfMemoryError,
    PresetError,
    RecipeError,
    UnsafeCheckpointError,
    WorkerError,
)
from .recipe import Control, Embedding, Lora, Recipe, Reference, Region, Upscale

__version__ = "0.1.0"

__all__ = [
    "AdapterError", "AuthError", "BrushworkError", "CancelledError", "Control", "Embedding", "InputImageError",
    "Lora", "MissingDependencyError", "ModelError", "ModelNotFoundError", "OutOfMemoryError", "PresetError", "Recipe",
    "RecipeError", "Reference", "Region",
    "Studio", "Upscale", "UnsafeCheckpointError", "WorkerError", "batch", "connect", "__version__",
]


def __getattr__(name: str):
    # Lazy: keeps torch out of processes that only need recipes and the client.
    if name == "Studio":
        from .engine.studio import Studio

        return Studio
    if name == "batch":  # brushwork.batch(manifest, out=...): the package is callable (batch/__init__.py)
        import importlib

        return importlib.import_module(".batch", __name__)
    if name == "connect":
        from .client import connect

        return connect
    raise AttributeError(f"module 'brushwork' has no attribute {name!r}")
