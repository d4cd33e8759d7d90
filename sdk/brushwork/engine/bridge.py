"""The engine's single doorway into brushwork.models (resolve, load, hash).

Keeping every call into the models layer here means the rest of the engine sees three plain
things: a cache key, a loaded module with its family, and hashes/sources for the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import loading, sources
from ..models.sources import ModelRef


@dataclass
class Resolved:
    key: str  # cache key: what the weights are (resolved path or hub:<id>)
    ref: ModelRef
    source: str  # for metadata and messages: hub id or path
    name: str  # what the user typed or sees
    family: str | None = None
    variant: str | None = None

    @property
    def location(self) -> str:
        """A file path where there is one (LoRAs, embeddings), else the hub id."""
        return str(self.ref.path if self.ref.path is not None else self.ref.location)


def resolve(spec: str, kind: str, settings, *, allow_paths: sources.PathPolicy = True,
            family: str | None = None) -> Resolved:
    """``kind``: pipeline, controlnet, vae, lora, embedding. An empty pipeline spec means the
    configured default model (then the bundled demo)."""
    ref = sources.resolve(spec, kind, settings, allow_paths=allow_paths, family=family)
    return Resolved(key=ref.key, ref=ref, source=ref.describe(), name=ref.name or ref.describe(),
                    family=ref.family, variant=ref.variant)


def load_pipeline(resolved: Resolved, *, dtype: torch.dtype, device: str):
    """-> (txt2img pipeline on ``device``, family or None)."""
    return loading.load_pipeline(resolved.ref, torch_dtype=dtype, device=device), resolved.family


def load_controlnet(resolved: Resolved, *, dtype: torch.dtype, device: str, family: str | None = None):
    return loading.load_controlnet(resolved.ref, torch_dtype=dtype, device=device, family=family)


def load_vae(resolved: Resolved, *, dtype: torch.dtype, device: str, family: str | None = None):
    return loading.load_vae(resolved.ref, torch_dtype=dtype, device=device, family=family)


def model_hash(resolved: Resolved) -> str:
    return loading.model_hash(resolved.ref)


def load_settings(settings):
    if settings is not None:
        return settings
    from ..models.settings import Settings

    return Settings.load()
