"""The generation engine (torch + diffusers): ``Studio`` runs Recipes in this process."""

from .progress import Progress
from .result import Result
from .studio import Studio

__all__ = ["Progress", "Result", "Studio"]
