"""The generation engine (torch + diffusers): ``Studio`` runs Recipes in this process."""

import logging

# Without torchvision, transformers warns (once per class, on stderr) that it falls back to its
# PIL image processors. We use no image processors at all; the warning only alarms artists.
logging.getLogger("transformers.utils.import_utils").setLevel(logging.ERROR)

from .progress import Progress  # noqa: E402
from .result import Result  # noqa: E402
from .studio import Studio  # noqa: E402

__all__ = ["Progress", "Result", "Studio"]
