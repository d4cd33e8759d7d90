"""Super-resolution upscalers: find one (``resolve_upscaler``) and load it (``load_upscaler``).

An upscaler is one weights file that ``spandrel`` recognises (ESRGAN / Real-ESRGAN, the compact
Real-ESRGAN, SwinIR, HAT, DAT, OmniSR, SPAN, ... detected from the state dict's keys and shapes).
Where it comes from, in order:
  - a name in the model folders: A1111's ``models/ESRGAN``, ``RealESRGAN``, ``SwinIR``, ``HAT``,
    ``DAT``, ComfyUI's ``models/upscale_models``, or a plain model folder (``4x-UltraSharp``);
  - a path (where paths are allowed, as for every other model);
  - a hub id: ``owner/repo`` (its one .safetensors file) or ``owner/repo/FILE.safetensors``,
    downloaded into the Hugging Face cache (only what is cached when offline).
``.safetensors`` loads by default; ``.pth`` / ``.pt`` / ``.ckpt`` only with the pickle opt-in
(BRUSHWORK_ALLOW_PICKLE=1 or ``allow_pickle = true``), exactly like checkpoints.

torchvision: spandrel declares it, but only two restoration architectures (LaMa inpainting and
RestoreFormer face restoration, neither an upscaler) import it, at import time, and spandrel's
package imports every architecture. PyPI's torchvision cannot import beside a CPU build of torch
(and, installed, it breaks diffusers' imports), so Brushwork does not install it. Where it cannot
be imported, ``_import_spandrel`` lends spandrel a stand-in holding just those three names for
the duration of its import (each raises a clear error if ever called) and removes it again, so no
other library ever sees a fake torchvision. With a working torchvision it is simply used.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, ModelNotFoundError, UnsafeCheckpointError
from . import modeldirs
from .sources import PathPolicy

KIND = "upscaler"
# Where A1111 (models/ESRGAN, RealESRGAN, SwinIR, HAT, DAT) and ComfyUI (models/upscale_models)
# keep upscalers, relative to a model dir or its ``models`` folder; the dir itself last.
SUBDIRS = ("ESRGAN", "RealESRGAN", "SwinIR", "HAT", "DAT", "upscale_models")
SAFE_EXTS = (".safetensors",)
PICKLE_EXTS = (".pth", ".pt", ".ckpt")
EXTS = SAFE_EXTS + PICKLE_EXTS
PICKLE_HINT = ("can run arbitrary code when loaded, so it is refused; convert it to .safetensors (chaiNNer and "
               "spandrel can), or if you trust its source opt in with BRUSHWORK_ALLOW_PICKLE=1 or "
               "allow_pickle = true in settings.toml")


@dataclass(frozen=True)
class UpscalerRef:
    """Where an upscaler's weights are: a file, or a file in a hub repo (downloaded on load)."""

    name: str  # what the user typed: messages and metadata show it
    path: Path | None = None
    repo: str | None = None
    filename: str | None = None

    @property
    def key(self) -> str:
        """What the weights are (for caches)."""
        return str(self.path.resolve()) if self.path is not None else f"hub:{self.repo}/{self.filename}"

    @property
    def pickle(self) -> bool:
        return Path(self.filename or (self.path.name if self.path else "")).suffix.lower() in PICKLE_EXTS


@dataclass
class Upscaler:
    """A loaded upscaler: ``model`` is spandrel's ImageModelDescriptor (call it on a (1, 3, H, W)
    tensor in [0, 1]); ``scale`` its native factor; ``architecture`` what spandrel detected."""

    model: Any
    scale: int
    architecture: str
    ref: UpscalerRef
    path: Path  # the file that was loaded (for hashing)

    def describe(self) -> str:
        return f"{self.ref.name} ({self.architecture}, {self.scale}x)"


# ---- resolving -----------------------------------------------------------------------------------


def resolve_upscaler(ref: str, settings=None, *, allow_paths: PathPolicy = True) -> UpscalerRef:
    """Find upscaler ``ref`` (name, path or hub id) without loading it; pickles are refused here,
    before anything loads, unless opted in. Raises ModelNotFoundError / UnsafeCheckpointError."""
    settings = _settings(settings)
    ref = (ref or "").strip()
    if not ref:
        raise ModelNotFoundError("no upscaler given (an empty upscale model means Lanczos)")
    found = _resolve(ref, settings, allow_paths)
    if found.pickle and not settings.allow_pickle:
        what = found.path.name if found.path is not None else f"{found.repo}/{found.filename}"
        raise UnsafeCheckpointError(f"upscaler {what}: a pickle file ({Path(what).suffix}) {PICKLE_HINT}")
    return found


def _resolve(ref: str, settings, allow_paths: PathPolicy) -> UpscalerRef:
    if modeldirs.check_name(ref) is not None and settings.model_dirs:
        hit = find_in_folders(settings.model_dirs, ref)
        if hit is not None:
            return UpscalerRef(name=ref, path=hit)
    as_path = Path(ref).expanduser()
    path_like = as_path.is_absolute() or ref.startswith((".", "~")) or "\\" in ref
    if (allow_paths is True and (path_like or as_path.exists())) or (
            allow_paths == "absolute" and as_path.is_absolute()):
        if not as_path.is_file():
            raise ModelNotFoundError(f"upscaler {ref!r}: no such file")
        _check_ext(as_path.name)
        return UpscalerRef(name=as_path.name, path=as_path)
    if path_like:
        raise ModelNotFoundError(f"upscaler {ref!r}: paths are not accepted here; put it in a model folder "
                                 "(e.g. models/ESRGAN or upscale_models) and use its name")
    parts = ref.split("/")
    if len(parts) in (2, 3) and all(parts) and modeldirs.check_name(ref) is not None:
        return _from_hub(ref, settings)
    where = ", ".join(str(d) for d in settings.model_dirs) or "no model folders configured"
    raise ModelNotFoundError(f"upscaler {ref!r} not found (looked in: {where})")


def _check_ext(filename: str) -> None:
    suffix = Path(filename).suffix.lower()
    if suffix not in EXTS:
        raise ModelNotFoundError(f"upscaler {filename}: unsupported format {suffix or '(none)'}; use .safetensors")


def search_folders(root: Path) -> list[Path]:
    """Where upscalers live under one model dir (A1111, ComfyUI or plain), the dir itself last."""
    root = Path(root).expanduser()
    found = [base / sub for base in (root, root / "models") for sub in SUBDIRS if (base / sub).is_dir()]
    return [*found, root] if root.is_dir() else found


def find_in_folders(dirs: list[Path], name: str) -> Path | None:
    """The upscaler file called ``name`` (file name or stem; safetensors before pickles)."""
    rel = modeldirs.check_name(name)
    if rel is None:
        return None
    for folder in (f for d in dirs for f in search_folders(d)):
        exact = folder.joinpath(*rel.parts)
        candidates = [exact] if exact.suffix.lower() in EXTS else []
        candidates += [exact.parent / (exact.name + ext) for ext in EXTS]
        for candidate in candidates:
            if candidate.is_file() and _is_upscaler_file(candidate):
                return candidate
    return None


def list_upscalers(settings=None) -> list[tuple[str, Path]]:
    """(name, file) of every upscaler file in the model folders' upscaler sub-folders."""
    settings = _settings(settings)
    out: list[tuple[str, Path]] = []
    for d in settings.model_dirs:
        for folder in search_folders(d)[:-1]:  # the plain dir itself mixes kinds: only named folders
            out += [(p.stem, p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in EXTS]
    return out


def _is_upscaler_file(path: Path) -> bool:
    """A plain folder mixes kinds: a safetensors file that is a checkpoint, LoRA, VAE or
    ControlNet is not an upscaler (checked from its header; pickles by name only)."""
    if path.suffix.lower() != ".safetensors":
        return True
    from . import family as fam

    try:
        return fam.classify_keys(fam.read_safetensors_header(path).shapes) is None
    except ModelNotFoundError:
        return True  # let loading report the broken file by name


def _from_hub(ref: str, settings) -> UpscalerRef:
    parts = ref.split("/")
    repo = "/".join(parts[:2])
    if len(parts) == 3:
        _check_ext(parts[2])
        return UpscalerRef(name=ref, repo=repo, filename=parts[2])
    files = _hub_files(repo, settings)
    safe = [f for f in files if f.lower().endswith(".safetensors")]
    pickles = [f for f in files if f.lower().endswith(PICKLE_EXTS)]
    if len(safe) == 1:
        return UpscalerRef(name=ref, repo=repo, filename=safe[0])
    if len(safe) > 1 or (not safe and len(pickles) > 1):
        listed = ", ".join((safe or pickles)[:6])
        raise ModelNotFoundError(f"upscaler {ref!r}: the repo holds several weight files ({listed}); "
                                 f"name one as {repo}/FILE")
    if pickles:
        return UpscalerRef(name=ref, repo=repo, filename=pickles[0])
    raise ModelNotFoundError(f"upscaler {ref!r}: the hub repo has no .safetensors (or .pth) file")


def _hub_files(repo: str, settings) -> list[str]:
    """The repo's files at the top level: from the cache when offline, else from the hub."""
    from .sources import hub_repo_cached

    if settings.offline:
        if not hub_repo_cached(repo):
            raise ModelNotFoundError(f"upscaler {repo!r} is not downloaded and Brushwork is offline; download it "
                                     "on a machine with network, or use a local .safetensors file")
        from huggingface_hub import constants

        snapshots = sorted((Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--")) / "snapshots")
                           .iterdir(), key=lambda p: p.stat().st_mtime)
        return sorted(p.name for p in snapshots[-1].iterdir() if p.is_file())
    from huggingface_hub import list_repo_files

    try:
        return [f for f in list_repo_files(repo) if "/" not in f]
    except Exception as exc:  # no such repo, no network: one line naming the repo
        raise ModelNotFoundError(f"upscaler {repo!r}: not found on the hub ({type(exc).__name__})") from None


def _settings(settings):
    if settings is not None:
        return settings
    from .settings import Settings

    return Settings.load()


# ---- loading -------------------------------------------------------------------------------------


def weights_file(ref: UpscalerRef, settings=None) -> Path:
    """The local file of ``ref``: the path, or the hub file (downloaded into the HF cache)."""
    if ref.path is not None:
        return ref.path
    settings = _settings(settings)
    from huggingface_hub import hf_hub_download

    assert ref.repo is not None and ref.filename is not None
    try:
        return Path(hf_hub_download(ref.repo, ref.filename, local_files_only=bool(settings.offline)))
    except Exception as exc:
        raise ModelNotFoundError(f"upscaler {ref.name!r}: could not get {ref.filename} from {ref.repo} "
                                 f"({type(exc).__name__})") from None


def load_upscaler(ref: UpscalerRef, settings=None, *, device: str = "cpu") -> Upscaler:
    """Load ``ref`` with spandrel's ModelLoader (architecture and scale from the weights)."""
    settings = _settings(settings)
    if ref.pickle and not settings.allow_pickle:  # resolve_upscaler refused it already; never load one
        raise UnsafeCheckpointError(f"upscaler {ref.name}: a pickle file {PICKLE_HINT}")
    path = weights_file(ref, settings)
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader(device=device).load_from_file(path)
    except spandrel.UnsupportedModelError:
        raise ModelError(f"upscaler {ref.name}: spandrel does not recognise this model's architecture") from None
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"upscaler {ref.name}: could not load ({type(exc).__name__}: {exc})") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in ("SR", "Restoration"):
        raise ModelError(f"upscaler {ref.name}: a {descriptor.architecture.name} model is not an upscaler "
                         f"(its purpose: {descriptor.purpose})")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ModelError(f"upscaler {ref.name}: takes {descriptor.input_channels} channels; only RGB models work")
    descriptor.eval()
    return Upscaler(model=descriptor, scale=int(descriptor.scale), architecture=descriptor.architecture.name,
                    ref=ref, path=path)


# ---- spandrel without torchvision ----------------------------------------------------------------

# The torchvision names spandrel's non-upscaler architectures bind at import (spandrel 0.4.2:
# LaMa imports InterpolationMode and rotate, RestoreFormer imports normalize).
_TORCHVISION_NAMES = ("InterpolationMode", "rotate", "normalize")


def import_spandrel():
    """spandrel, imported with a stand-in torchvision where the real one cannot be imported."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    try:
        return importlib.import_module("spandrel")
    except ModuleNotFoundError as exc:
        if exc.name == "spandrel":
            raise ModelError("upscaler models need spandrel: pip install 'brushwork[upscale]' "
                             "(./setup.sh installs it)") from None
        if exc.name != "torchvision":
            raise
    except RuntimeError:  # a torchvision built for another torch fails while importing
        pass
    return _import_with_stand_in()


def torchvision_usable() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        importlib.import_module("torchvision")
    except Exception:  # any failure means "not usable": spandrel then gets the stand-in
        return False
    return True


def _import_with_stand_in():
    for name in [m for m in sys.modules if m == "spandrel" or m.startswith("spandrel.")]:
        del sys.modules[name]  # a half-imported spandrel from the failed attempt
    stand_ins = _stand_in_modules()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("spandrel")
    finally:
        for name, module in saved.items():  # nobody else may ever import the stand-in
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _stand_in_modules() -> dict[str, types.ModuleType]:
    def unavailable(name: str):
        def call(*args, **kwargs):
            raise ModelError(f"torchvision.{name} is not available in this install (torchvision cannot be "
                             "imported); this spandrel architecture needs it: install a torchvision built for "
                             "this torch")
        call.__name__ = name
        return call

    class InterpolationMode(enum.Enum):  # LaMa passes a member to rotate(), which then says why it cannot
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    root = types.ModuleType("torchvision", "stand-in (brushwork.models.upscalers): torchvision cannot be imported")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = unavailable("transforms.functional.rotate")  # type: ignore[attr-defined]
    functional.normalize = unavailable("transforms.functional.normalize")  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    assert all(hasattr(functional, n) for n in _TORCHVISION_NAMES)
    return {"torchvision": root, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}
