"""The generation engine (torch + diffusers): ``Studio`` runs Recipes in this process.

``Studio``, ``Progress`` and ``Result`` load on first use, so the torch-free planner
(``brushwork.engine.plan``) can be imported without torch.
"""

import logging

# Without torchvision, transformers warns (once per class, on stderr) that it falls back to its
# PIL image processors. We use no image processors at all; the warning only alarms artists.
logging.getLogger("transformers.utils.import_utils").setLevel(logging.ERROR)

__all__ = ["Progress", "Result", "Studio"]


def __getattr__(name: str):
    if name == "Studio":
        from .studio import Studio

        return Studio
    if name == "Progress":
        from .progress import Progress

        return Progress
    if name == "Result":
        from .result import Result

        return Result
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
