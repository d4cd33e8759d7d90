"""Loading weights: pipelines, ControlNets and VAEs from folders, single files and the hub.

torch and diffusers are imported inside the functions (importing this module stays cheap).
Single files load with NO network: ``from_single_file(config=<folder>, local_files_only=True)``
with a config folder derived from the file's own tensor shapes (see ``derive``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .. import paths
from ..errors import BrushworkError, ModelNotFoundError, OutOfMemoryError
from . import derive
from . import family as fam
from .sources import ModelRef

FP16_VARIANT = "fp16"


def _as_ref(ref, kind: str) -> ModelRef:
    """Accept a ModelRef, or a path / hub id (resolved with paths allowed, for scripts and tests)."""
    if isinstance(ref, ModelRef):
        return ref
    from .sources import resolve

    return resolve(str(ref), kind, None, allow_paths=True)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _fail(ref: ModelRef, exc: Exception) -> BrushworkError:
    """One line naming the model and the reason, whatever diffusers raised."""
    if isinstance(exc, BrushworkError):
        return exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return OutOfMemoryError(f"out of memory loading {ref.name or ref.describe()}: {text[:200]}")
    if isinstance(exc, (OSError, EnvironmentError)) and _offline():
        return ModelNotFoundError(
            f"{ref.name or ref.describe()}: not available offline ({text[:160]}); "
            f"get it with `brushwork models pull {ref.describe()}` where there is network")
    return fam.CorruptModelError(f"{ref.name or ref.describe()}: cannot load ({text[:240]})")


def pipeline_class(family: str | None):
    """The txt2img class of a family; unknown (a hub repo not yet downloaded): chosen by its index."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    if family is None:
        return DiffusionPipeline
    return StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline


def _check_supported(pipe, ref: ModelRef):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if not isinstance(pipe, (StableDiffusionPipeline, StableDiffusionXLPipeline)):
        raise fam.UnsupportedModelError(
            f"{ref.name or ref.describe()}: a {type(pipe).__name__}; Brushwork loads SD 1.5 and SDXL models")
    return pipe


def load_pipeline(model_ref, *, torch_dtype=None, device: str | None = None, vae_ref=None):
    """A txt2img StableDiffusionPipeline / StableDiffusionXLPipeline (no safety checker).

    The engine switches task (img2img, inpaint, ControlNet) with ``from_pipe`` on this one."""
    ref = _as_ref(model_ref, "pipeline")
    try:
        pipe = _load_pipeline(ref, torch_dtype)
    except BrushworkError:
        raise
    except Exception as exc:  # diffusers/transformers raise anything from ValueError to KeyError
        raise _fail(ref, exc) from exc
    if vae_ref is not None:
        pipe.vae = load_vae(vae_ref, torch_dtype=torch_dtype)
    if device:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _no_safety(family: str | None) -> dict:
    return {} if family == "sdxl" else {"safety_checker": None, "feature_extractor": None,
                                       "requires_safety_checker": False}


def _local(ref: ModelRef) -> Path:
    """The file or folder of a local ("folder" / "single_file") model: those always have one."""
    if ref.path is None:
        raise ModelNotFoundError(f"{ref.describe()}: not a local file or folder")
    return ref.path


def _load_pipeline(ref: ModelRef, torch_dtype):
    if ref.source == "folder":
        family = ref.family or fam.detect_folder(_local(ref)).family
        if family is None:
            cls_name = json.loads((_local(ref) / "model_index.json").read_text("utf-8")).get("_class_name")
            raise fam.UnsupportedModelError(
                f"{ref.name or ref.path}: a {cls_name} folder; Brushwork loads SD 1.5 and SDXL models")
        cls = pipeline_class(family)
        return cls.from_pretrained(str(ref.path), torch_dtype=torch_dtype, local_files_only=True,
                                   **_no_safety(family))
    if ref.source == "single_file":
        return _load_single_file(ref, torch_dtype)
    pipe = _from_hub(lambda **kw: pipeline_class(ref.family).from_pretrained(
        ref.id, torch_dtype=torch_dtype, **_no_safety(ref.family), **kw), ref)
    return _check_supported(pipe, ref)


def _from_hub(load, ref: ModelRef):
    """fp16 weights where the repo has them (half the download), else the full ones."""
    local = _offline()
    try:
        return load(variant=FP16_VARIANT, local_files_only=local)
    except (ValueError, OSError) as exc:
        if "variant" not in str(exc) and not isinstance(exc, OSError):
            raise
    return load(local_files_only=local)


def _checkpoint_shapes(ref: ModelRef) -> dict:
    if ref.extra.get("pickle"):
        from diffusers.loaders.single_file_utils import load_single_file_checkpoint

        state = load_single_file_checkpoint(str(ref.path))
        return {k: list(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    return fam.read_safetensors_header(_local(ref)).shapes


def _load_single_file(ref: ModelRef, torch_dtype):
    shapes = _checkpoint_shapes(ref)
    info = fam.detect_checkpoint_keys(shapes, None, _local(ref).name)
    assert info.family is not None  # detect_checkpoint_keys raises for checkpoints of no known family
    config = derive.pipeline_config_folder(shapes, info.family)
    cls = pipeline_class(info.family)
    return cls.from_single_file(str(ref.path), config=str(config), local_files_only=True,
                                torch_dtype=torch_dtype, **_no_safety(info.family))


def _load_component(ref: ModelRef, cls, single_file_config, *, torch_dtype, device):
    """One model class from a folder, a single file (config derived from its tensor shapes by
    ``single_file_config(shapes) -> folder``, so no network) or the hub; errors made plain."""
    try:
        if ref.source == "folder":
            model = cls.from_pretrained(str(ref.path), torch_dtype=torch_dtype, local_files_only=True)
        elif ref.source == "single_file":
            config = single_file_config(_checkpoint_shapes(ref))
            model = cls.from_single_file(str(ref.path), config=str(config), local_files_only=True,
                                         torch_dtype=torch_dtype)
        else:
            model = _from_hub(lambda **kw: cls.from_pretrained(ref.id, torch_dtype=torch_dtype, **kw), ref)
    except BrushworkError:
        raise
    except Exception as exc:
        raise _fail(ref, exc) from exc
    return model.to(device) if device else model


def load_controlnet(model_ref, *, torch_dtype=None, device: str | None = None, family: str | None = None):
    ref = _as_ref(model_ref, "controlnet")
    from diffusers import ControlNetModel

    def config(shapes: dict) -> Path:
        if not any(k.startswith("control_model.") or k.startswith("input_hint_block.") for k in shapes):
            raise fam.UnsupportedModelError(
                f"{_local(ref).name}: not an original-layout ControlNet file; use its diffusers folder")
        net_family = family or _controlnet_family(shapes)
        return derive.component_config_folder(f"controlnet-{net_family}", derive.controlnet_config(shapes, net_family))

    return _load_component(ref, ControlNetModel, config, torch_dtype=torch_dtype, device=device)


def _controlnet_family(shapes: dict) -> str:
    return "sdxl" if any(".label_emb." in f".{k}" for k in shapes) else "sd15"


def load_vae(model_ref, *, torch_dtype=None, device: str | None = None, family: str | None = None):
    ref = _as_ref(model_ref, "vae")
    from diffusers import AutoencoderKL

    def config(shapes: dict) -> Path:
        prefix = "first_stage_model." if any(k.startswith("first_stage_model.") for k in shapes) else ""
        return derive.component_config_folder("vae", derive.vae_config(shapes, family or "sd15", prefix=prefix))

    return _load_component(ref, AutoencoderKL, config, torch_dtype=torch_dtype, device=device)


# ---- hashes ----------------------------------------------------------------------------------

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def weight_files(ref: ModelRef) -> list[Path]:
    """The files whose bytes ARE the model, in a fixed order (configs excluded)."""
    if ref.path is None:
        folder = _hub_snapshot(ref)
        if folder is None:
            raise ModelNotFoundError(f"{ref.describe()}: not downloaded, so it has no hash yet")
        root = folder
    elif ref.path.is_file():
        return [ref.path]
    else:
        root = ref.path
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise ModelNotFoundError(f"{ref.describe()}: no weight files inside")
    return files


def _hub_snapshot(ref: ModelRef) -> Path | None:
    from .sources import hub_cached_file

    if ref.id is None:  # a local file or folder: no snapshot
        return None
    for marker in ("model_index.json", "config.json"):
        found = hub_cached_file(ref.id, marker)
        if found:
            return Path(found).parent
    return None


def _cache_file() -> Path:
    return paths.state_dir() / "model-hashes.json"


def file_hash(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so a 7 GB checkpoint is read once."""
    path = Path(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_path = _cache_file()
    try:
        cache = json.loads(cache_path.read_text("utf-8"))
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    cache[key] = digest
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache), "utf-8")
    tmp.replace(cache_path)
    return digest


def model_hash(model_ref) -> str:
    """sha256 hex of the weights: of the file itself, or for a folder of the component weight
    files' relative names and hashes in sorted order."""
    ref = _as_ref(model_ref, "pipeline") if not isinstance(model_ref, (ModelRef, Path)) else model_ref
    if isinstance(ref, Path):
        ref = ModelRef("pipeline", ref, "single_file" if ref.is_file() else "folder", name=ref.name)
    files = weight_files(ref)
    if ref.path is not None and ref.path.is_file():
        return file_hash(ref.path)
    root = ref.path if ref.path is not None else _hub_snapshot(ref)
    if root is None:  # weight_files found it a moment ago
        raise ModelNotFoundError(f"{ref.describe()}: no longer in the hub cache")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(root).as_posix()}\0{file_hash(f)}\n".encode())
    return h.hexdigest()
