"""Where a model comes from: ``resolve(ref, kind, settings) -> ModelRef`` (stdlib + huggingface_hub).

Order for a name: the user's model dirs (A1111 / ComfyUI / plain folders) -> the Hugging Face
cache -> the hub (unless offline). An empty pipeline ref means the configured default, then the
bundled demo model. Paths are accepted only with ``allow_paths`` (the worker passes False: clients
name models, they never point the worker at files). Pickles are refused unless opted in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ModelNotFoundError, UnsafeCheckpointError
from . import bundled, modeldirs, registry
from . import family as fam

# How model paths are taken: True (any path), "absolute" (absolute paths only), False (none).
PathPolicy = bool | Literal["absolute"]

KINDS = ("pipeline", "controlnet", "vae", "lora", "embedding")
_KIND_ALIASES = {"checkpoint": "pipeline", "model": "pipeline"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_NOUN = {"pipeline": "model", "controlnet": "ControlNet", "vae": "VAE", "lora": "LoRA",
         "embedding": "embedding"}


@dataclass
class ModelRef:
    kind: str  # one of KINDS
    location: str | Path  # a Path (folder / single file) or a hub repo id
    source: str  # "folder" | "single_file" | "hub"
    family: str | None = None  # "sd15", "sdxl", "sd2" or None (unknown until loaded)
    variant: str = "base"
    name: str = ""  # what a user sees and types
    cached: bool = False  # hub models: already in the HF cache
    extra: dict = field(default_factory=dict)  # e.g. {"lora": hub id} for LCM-LoRA variants

    @property
    def path(self) -> Path | None:
        return self.location if isinstance(self.location, Path) else None

    @property
    def id(self) -> str | None:
        return None if isinstance(self.location, Path) else str(self.location)

    @property
    def key(self) -> str:
        """What the weights are (for caches): the resolved path, or hub:<id>."""
        return str(self.location.resolve()) if isinstance(self.location, Path) else f"hub:{self.location}"

    def describe(self) -> str:
        """For metadata and messages: a hub id, or the path."""
        return str(self.location)


def _noun(kind: str) -> str:
    return _NOUN.get(kind, kind)


def _settings(settings):
    if settings is not None:
        return settings
    from .settings import Settings

    return Settings.load()


def resolve(ref: str | None, kind: str, settings=None, *, allow_paths: PathPolicy = True,
            family: str | None = None) -> ModelRef:
    """Find the model ``ref`` of ``kind``. ``family``: the base model's, to refuse mismatches
    (an SDXL LoRA on an SD 1.5 model) and to pick a ControlNet by kind name ("depth").
    ``allow_paths``: True takes any path (relative ones against the working folder, as a user at a
    shell expects), "absolute" only absolute paths (the worker: a bare name must never reach a file
    that happens to sit in its working folder), False none."""
    kind = _KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    settings = _settings(settings)
    ref = (ref or "").strip()
    if not ref:
        if kind != "pipeline":
            raise ModelNotFoundError(f"no {_noun(kind)} given")
        return _default_pipeline(settings)
    found = _resolve(ref, kind, settings, allow_paths=allow_paths, family=family)
    if family and found.family and kind != "pipeline" and found.family != family:
        raise ModelNotFoundError(
            f"{_noun(kind)} {ref!r} is for {found.family} models, but the model is {family}")
    return found


def _default_pipeline(settings) -> ModelRef:
    if settings.default_model:
        return resolve(settings.default_model, "pipeline", settings, allow_paths=True)
    demo = _demo_weights()
    if demo is not None:
        return _from_path(demo, "pipeline", settings, name=_demo_name())
    raise ModelNotFoundError(
        "no model given and no default set: pass --model NAME_OR_ID, set default_model in "
        f"settings.toml, or BRUSHWORK_DEFAULT_MODEL (e.g. {registry.default_model().hub_id})")


def _demo_name() -> str:
    return bundled.NAME


def _demo_weights() -> Path | None:
    """The shipped demo pipeline, or None where this install lacks its weights."""
    return bundled.weights_dir()


def _resolve(ref: str, kind: str, settings, *, allow_paths: PathPolicy, family: str | None) -> ModelRef:
    if modeldirs.check_name(ref) is not None and settings.model_dirs:
        hit = modeldirs.find_by_name(settings.model_dirs, kind, ref, accept=lambda p: _fits(p, kind))
        if hit is not None:
            return _from_path(hit, kind, settings, name=ref)
    if kind == "pipeline" and ref in {"demo", _demo_name()} and (demo := _demo_weights()) is not None:
        return _from_path(demo, "pipeline", settings, name=_demo_name())
    as_path = Path(ref).expanduser()
    path_like = as_path.is_absolute() or ref.startswith((".", "~")) or "\\" in ref
    if (allow_paths is True and (path_like or as_path.exists())) or (
            allow_paths == "absolute" and as_path.is_absolute()):
        if not as_path.exists():
            raise ModelNotFoundError(f"{_noun(kind)} {ref!r}: no such file or folder")
        return _from_path(as_path, kind, settings, name=as_path.name)
    if path_like:
        raise ModelNotFoundError(
            f"{_noun(kind)} {ref!r}: paths are not accepted here; put it in a model folder and use its name")
    if Path(ref).suffix.lower() in modeldirs.WEIGHT_EXTS:  # a file name is never a hub id
        where = ", ".join(str(d) for d in settings.model_dirs) or "no model folders configured"
        raise ModelNotFoundError(f"{_noun(kind)} {ref!r} not found (no such file; model folders: {where})")
    if kind == "controlnet" and registry.is_control_kind(ref):
        ref = registry.controlnet_id(family, ref)  # a kind name: the family's public ControlNet
    if _HUB_ID.match(ref):
        return _from_hub(ref, kind, settings)
    where = ", ".join(str(d) for d in settings.model_dirs) or "no model folders configured"
    raise ModelNotFoundError(f"{_noun(kind)} {ref!r} not found (looked in: {where})")


_CONFIG_CLASS_KIND = {"ControlNetModel": "controlnet", "AutoencoderKL": "vae"}


def _fits(path: Path, kind: str) -> bool:
    """In a plain folder every kind sits side by side: check the content, not just the name."""
    if path.is_dir():
        if kind not in ("controlnet", "vae") or not modeldirs.is_component_folder(path):
            return True
        try:
            cls = json.loads((path / "config.json").read_text("utf-8")).get("_class_name", "")
        except (OSError, ValueError, AttributeError):
            return True  # let loading report the broken config by name
        return _CONFIG_CLASS_KIND.get(str(cls)) == kind
    if path.suffix.lower() != ".safetensors":
        return True
    try:
        found = fam.classify_keys(fam.read_safetensors_header(path).shapes)
    except ModelNotFoundError:
        return True  # let resolution report the corrupt file by name
    return found is None or found == kind


def _from_path(path: Path, kind: str, settings, name: str) -> ModelRef:
    display = name  # what the user typed (or the listing's name): messages and metadata show it
    if path.is_dir():
        from .folder_pickles import refuse_folder_pickles  # issue 18: pickles in folders refused by name

        refuse_folder_pickles(path, settings.allow_pickle)
        info = _folder_family(path, kind)
        return ModelRef(kind, path, "folder", info.family, info.variant, display)
    suffix = path.suffix.lower()
    if suffix in modeldirs.PICKLE_EXTS:
        if not settings.allow_pickle:
            raise UnsafeCheckpointError(
                f"{path.name}: a pickle checkpoint ({suffix}) can run arbitrary code when loaded, so it is "
                "refused; convert it to .safetensors (safer, and loads faster), or if you trust its source "
                "opt in with BRUSHWORK_ALLOW_PICKLE=1 or allow_pickle = true in settings.toml")
        hint = fam.variant_hint(path.name) or "base"
        return ModelRef(kind, path, "single_file", None, hint, display, extra={"pickle": True})
    if suffix != ".safetensors":
        raise ModelNotFoundError(f"{path.name}: unsupported model format {suffix or '(none)'}; use .safetensors")
    header = fam.read_safetensors_header(path)
    if kind == "pipeline":
        info = fam.detect_checkpoint_keys(header.shapes, header.metadata, path.name)
    elif kind in ("lora", "embedding"):
        info = fam.FamilyInfo(fam.detect_lora_family(header.shapes, header.metadata))
    else:
        info = fam.FamilyInfo(None)
    return ModelRef(kind, path, "single_file", info.family, info.variant, display)


def _folder_family(path: Path, kind: str) -> fam.FamilyInfo:
    if kind == "pipeline" and not modeldirs.is_pipeline_folder(path):
        raise ModelNotFoundError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
    if kind in ("controlnet", "vae") and not modeldirs.is_component_folder(path):
        raise ModelNotFoundError(f"{path}: not a diffusers {_noun(kind)} folder (no config.json)")
    if kind in ("lora", "embedding"):
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise ModelNotFoundError(f"{path}: no .safetensors {_noun(kind)} inside")
        return fam.FamilyInfo(fam.detect_lora_family(fam.read_safetensors_header(files[0]).shapes))
    return fam.detect_folder(path)


def _from_hub(repo_id: str, kind: str, settings) -> ModelRef:
    marker = "model_index.json" if kind == "pipeline" else "config.json"
    cached_file = hub_cached_file(repo_id, marker) if kind in ("pipeline", "controlnet", "vae") else None
    cached = cached_file is not None or (kind in ("lora", "embedding") and hub_repo_cached(repo_id))
    if settings.offline and not cached:
        raise ModelNotFoundError(
            f"{_noun(kind)} {repo_id!r} is not downloaded and Brushwork is offline; get it with "
            f"`brushwork models pull {repo_id}` on a machine with network, or use a local .safetensors file")
    known = registry.known(repo_id)
    family, variant = (known.family, known.variant) if known else (None, "base")
    if cached_file is not None and known is None:
        try:
            info = fam.detect_folder(Path(cached_file).parent)
            family, variant = info.family, info.variant
        except ModelNotFoundError:
            pass
    if known is None:
        variant = fam.variant_hint(repo_id) or variant
    return ModelRef(kind, repo_id, "hub", family, variant, repo_id, cached=cached)


def hub_cached_file(repo_id: str, filename: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # invalid ids and odd cache states mean "not cached"
        return None
    return found if isinstance(found, str) else None


def hub_repo_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    return folder.is_dir() and any(folder.iterdir())


def list_models(settings=None, kinds: tuple[str, ...] = KINDS) -> list[ModelRef]:
    """Everything usable: model dirs (each kind), the HF cache, the demo. Broken files are skipped
    here (``brushwork models info NAME`` says why one does not load)."""
    settings = _settings(settings)
    out: list[ModelRef] = []
    for kind in kinds:
        for name, path in modeldirs.list_models(settings.model_dirs, kind):
            if not _fits(path, kind):
                continue
            try:
                out.append(_from_path(path, kind, settings, name=name))
            except (ModelNotFoundError, UnsafeCheckpointError):
                continue
    out.extend(m for m in list_hub_cache() if m.kind in kinds)
    demo = _demo_weights()
    if demo is not None and "pipeline" in kinds:
        try:
            out.append(_from_path(demo, "pipeline", settings, name=_demo_name()))
        except ModelNotFoundError:
            pass
    return out


def list_hub_cache() -> list[ModelRef]:
    """Diffusers models other tools (or we) downloaded into the standard HF cache."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return []
    cache = Path(constants.HF_HUB_CACHE)
    out = []
    for repo_dir in sorted(cache.glob("models--*")):
        repo_id = repo_dir.name[len("models--"):].replace("--", "/")
        snapshots = sorted((repo_dir / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)
        if not snapshots:
            continue
        snap = snapshots[-1]
        kind = _hub_kind(snap)
        if kind is None:
            continue
        try:
            info = fam.detect_folder(snap) if kind != "lora" else fam.FamilyInfo(None)
        except ModelNotFoundError:
            info = fam.FamilyInfo(None)
        out.append(ModelRef(kind, repo_id, "hub", info.family, info.variant, repo_id, cached=True))
    return out


def _hub_kind(snapshot: Path) -> str | None:
    if (snapshot / "model_index.json").exists():
        return "pipeline"
    config = snapshot / "config.json"
    if config.exists():
        try:
            cls = str(json.loads(config.read_text("utf-8")).get("_class_name", ""))
        except (OSError, ValueError):
            return None
        return {"ControlNetModel": "controlnet", "AutoencoderKL": "vae"}.get(cls)
    if any(p.name.endswith(".safetensors") and "lora" in p.name.lower() for p in snapshot.iterdir()):
        return "lora"
    return None
