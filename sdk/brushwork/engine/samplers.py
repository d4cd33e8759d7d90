"""Sampler names artists know → diffusers schedulers, built from the model's own scheduler config.

The model's config carries what matters for correctness (beta schedule, prediction type,
timestep spacing); the sampler name only picks the algorithm and a few switches on top of it.
A fresh scheduler is built for every image: multistep schedulers keep state between steps, and a
batch image must be reproducible alone.
"""

from __future__ import annotations

from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LCMScheduler,
    UniPCMultistepScheduler,
)

from ..errors import RecipeError
from ..recipe import SAMPLERS

# name -> (scheduler class, config overrides)
_TABLE: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "Euler a": (EulerAncestralDiscreteScheduler, {}),
    "Euler": (EulerDiscreteScheduler, {}),
    "DPM++ 2M": (DPMSolverMultistepScheduler,
                 {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
    "DPM++ 2M Karras": (DPMSolverMultistepScheduler,
                        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "DDIM": (DDIMScheduler, {}),
    "UniPC": (UniPCMultistepScheduler, {}),
    "LCM": (LCMScheduler, {}),
    "Heun": (HeunDiscreteScheduler, {}),
}
assert set(_TABLE) == set(SAMPLERS), "every recipe sampler needs a scheduler"

# Overrides that only make sense for one algorithm must not leak into another one: schedulers
# built from a model whose default is, say, DPM++ carry its keys, which from_config ignores.
_KARRAS_CAPABLE = (DPMSolverMultistepScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler)


def make_scheduler(name: str, base_config: dict):
    """A new scheduler for sampler ``name`` from the model's scheduler config."""
    try:
        cls, overrides = _TABLE[name]
    except KeyError:
        raise RecipeError("sampler", f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}") from None
    config = dict(base_config)
    # A Karras setting saved in the model's config would silently change "DPM++ 2M" into the
    # Karras variant: the name decides.
    if cls in _KARRAS_CAPABLE and "use_karras_sigmas" not in overrides:
        config["use_karras_sigmas"] = False
    return cls.from_config(config, **overrides)


def scheduler_name(scheduler) -> str:
    """The sampler name for a scheduler instance (for messages and tests)."""
    karras = type(scheduler) in _KARRAS_CAPABLE and bool(scheduler.config.get("use_karras_sigmas", False))
    for name, (cls, overrides) in _TABLE.items():
        if type(scheduler) is cls and overrides.get("use_karras_sigmas", False) == karras:
            return name
    return type(scheduler).__name__


def recommend(family: str | None, variant: str | None, hub_id: str | None = None) -> dict:
    """{"steps", "cfg", "sampler"} to suggest for a model: the registry knows the published
    settings of known hub models and the rule per variant (LCM: 4 steps at CFG ~1.5 with the LCM
    sampler; Turbo: 1 step without CFG). Distilled models break with normal CFG and step counts."""
    from ..models.registry import recommended

    found = recommended(family, variant, hub_id)
    if found.get("sampler") not in _TABLE:  # the registry and the recipe must agree on names
        raise ValueError(f"registry recommends unknown sampler {found.get('sampler')!r}")
    return found
