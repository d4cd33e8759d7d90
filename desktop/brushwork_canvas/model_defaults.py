"""The worker's models as the canvas knows them, and the defaults each one wants (issue 19).

The canvas never resolves models itself (it talks to the worker through the core only): the
worker's model list carries each pipeline's defaults — size, steps, CFG, sampler and where they
come from, the same ``models.defaults.defaults_for_ref`` that `brushwork generate --help` and
`brushwork models info` show. Here they are read into plain data; a worker that does not send
them simply leaves the panel's own values in charge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from brushwork.recipe import MAX_CFG, MAX_STEPS, SAMPLERS

# What the worker lists as super-resolution models (the Upscale dialog offers these besides Lanczos).
UPSCALER_KINDS = ("upscaler",)
# Models whose own sampling a preset must not replace (as `brushwork generate` decides too): the
# few-step variants, and the bundled demo (a 64 px toy trained for its own settings).
FEW_STEP_VARIANTS = ("turbo", "lcm", "few")
DEMO_NAME = "brushwork-demo"


@dataclass(frozen=True)
class ModelDefaults:
    width: int
    height: int
    steps: int
    cfg: float
    sampler: str
    why: str = ""  # where they come from ("brushwork-demo's own manifest", "sdxl turbo", ...)

    def describe(self) -> str:
        steps = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        return f"{self.width}×{self.height}, {steps}, CFG {self.cfg:g}, {self.sampler}"


def parse_defaults(data: Any) -> ModelDefaults | None:
    """A listing's ``defaults`` (or ``recommended``) object, or None when absent or not usable:
    the canvas then keeps the panel's values rather than guess."""
    if not isinstance(data, dict):
        return None
    try:
        width, height = int(data["width"]), int(data["height"])
        steps, cfg, sampler = int(data["steps"]), float(data["cfg"]), str(data["sampler"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (64 <= width <= 4096 and 64 <= height <= 4096 and 1 <= steps <= MAX_STEPS
            and math.isfinite(cfg) and 0 <= cfg <= MAX_CFG and sampler in SAMPLERS):
        return None
    why = data.get("why", data.get("from", ""))
    return ModelDefaults(width, height, steps, cfg, sampler, str(why or ""))


class ModelCatalog:
    """The worker's last model list: names per kind, and each pipeline's defaults."""

    def __init__(self, items: list[dict] | None = None):
        self.items: list[dict] = []
        self.set_items(items or [])

    def set_items(self, items: list) -> None:
        self.items = [m for m in items if isinstance(m, dict) and m.get("name")]

    def names(self, *kinds: str) -> list[str]:
        return sorted({str(m["name"]) for m in self.items if (m.get("kind") or "pipeline") in kinds})

    def _entry(self, model: str) -> dict | None:
        pipelines = [m for m in self.items if (m.get("kind") or "pipeline") == "pipeline"]
        if model:
            return next((m for m in pipelines if m["name"] == model), None)
        # No model chosen: the worker's default model, when the worker says which one it is.
        return next((m for m in pipelines if m.get("default") is True), None)

    def defaults_for(self, model: str) -> ModelDefaults | None:
        entry = self._entry(model.strip())
        if entry is None:
            return None
        return parse_defaults(entry.get("defaults")) or parse_defaults(entry.get("recommended"))

    def keeps_own_sampling(self, model: str) -> bool:
        """True when a preset's steps/CFG/sampler would wreck this model's pictures."""
        entry = self._entry(model.strip())
        return entry is not None and (entry.get("variant") in FEW_STEP_VARIANTS or entry["name"] == DEMO_NAME)

    def default_name(self) -> str:
        """The model an empty Model box runs on, when the worker says."""
        entry = self._entry("")
        return str(entry["name"]) if entry else ""
