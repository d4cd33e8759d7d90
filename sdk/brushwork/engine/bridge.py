"""The engine's single doorway into brushwork.models (resolve, load, hash).

Keeping every call into the models layer here means the rest of the engine sees three plain
things: a cache key, a loaded pipeline with its family, and hashes/sources for the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..assets import file_sha256
from ..errors import ModelNotFoundError


@dataclass
class Resolved:
    key: str  # cache key: what the weights are
    ref: Any  # the models layer's ModelRef (or a Path in the fallback)
    source: str  # for metadata: hub id or path
    family: str | None = None
    variant: str | None = None


def _models():
    try:
        from ..models import loading, sources  # noqa: F401
    except ImportError:
        return None
    return sources, loading


def resolve(spec: str, kind: str, settings, *, allow_paths: bool = True, family: str | None = None) -> Resolved:
    """``kind``: checkpoint, controlnet, vae, lora, embedding."""
    models = _models()
    if models is not None:
        sources, _ = models
        kwargs = {"allow_paths": allow_paths}
        if family is not None:
            kwargs["family"] = family
        try:
            ref = sources.resolve(spec, kind, settings, **kwargs)
        except TypeError:
            kwargs.pop("family", None)
            ref = sources.resolve(spec, kind, settings, **kwargs)
        key = str(getattr(ref, "key", None) or getattr(ref, "path", None) or getattr(ref, "id", None) or spec)
        source = str(getattr(ref, "source", None) or getattr(ref, "id", None) or getattr(ref, "path", None) or spec)
        return Resolved(key=key, ref=ref, source=source, family=getattr(ref, "family", None),
                        variant=getattr(ref, "variant", None))
    if not spec:
        raise ModelNotFoundError(f"no {kind} given and no default configured")
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"{kind} {spec!r}: no such file or folder")
    return Resolved(key=str(path.resolve()), ref=path.resolve(), source=str(path))


def load_pipeline(resolved: Resolved, *, dtype: torch.dtype, device: str):
    """-> (txt2img pipeline on ``device``, family or None)."""
    models = _models()
    if models is not None:
        _, loading = models
        pipe = loading.load_pipeline(resolved.ref, torch_dtype=dtype, device=device)
        return pipe, resolved.family
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(resolved.ref), torch_dtype=dtype)
    return pipe.to(device), None


def load_controlnet(resolved: Resolved, *, dtype: torch.dtype, device: str):
    models = _models()
    if models is not None:
        return models[1].load_controlnet(resolved.ref, torch_dtype=dtype, device=device)
    from diffusers import ControlNetModel

    return ControlNetModel.from_pretrained(str(resolved.ref), torch_dtype=dtype).to(device)


def load_vae(resolved: Resolved, *, dtype: torch.dtype, device: str):
    models = _models()
    if models is not None:
        return models[1].load_vae(resolved.ref, torch_dtype=dtype, device=device)
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(str(resolved.ref), torch_dtype=dtype).to(device)


def model_hash(resolved: Resolved) -> str:
    models = _models()
    if models is not None and hasattr(models[1], "model_hash"):
        return models[1].model_hash(resolved.ref)
    path = Path(resolved.ref)
    if path.is_file():
        return file_sha256(path)
    import hashlib

    h = hashlib.sha256()  # a folder: hash of its weight files' hashes, in a stable order
    for weights in sorted(path.rglob("*.safetensors")):
        h.update(str(weights.relative_to(path)).encode() + file_sha256(weights).encode())
    return h.hexdigest()


def default_model(settings) -> str:
    for name in ("default_model", "model"):
        value = getattr(settings, name, None)
        if value:
            return str(value)
    return ""


def load_settings(settings):
    if settings is not None:
        return settings
    try:
        from ..models.settings import Settings
    except ImportError:
        return None
    return Settings.load()
