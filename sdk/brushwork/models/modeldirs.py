"""Finding models by NAME inside the user's model folders (stdlib only).

A model dir may be an A1111 root, a ComfyUI root, either one's ``models`` folder, or a plain
folder of models. Names are file names, file stems or folder names, optionally with a sub-folder
(``anime/model``) the way A1111 shows them. Names never escape the model dirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

SAFE_EXTS = (".safetensors",)
PICKLE_EXTS = (".ckpt", ".pt", ".pth", ".bin")
WEIGHT_EXTS = SAFE_EXTS + PICKLE_EXTS
MAX_DEPTH = 3  # sub-folder depth searched for a stem (users sort models into a few folders)

# Sub-folders per kind, relative to a root or to its ``models`` folder: A1111 first, then ComfyUI.
SUBDIRS: dict[str, tuple[str, ...]] = {
    "pipeline": ("Stable-diffusion", "checkpoints", "diffusers"),
    "lora": ("Lora", "LyCORIS", "loras"),
    "vae": ("VAE", "vae"),
    "controlnet": ("ControlNet", "controlnet"),
    "embedding": ("embeddings",),
}
# Folders where other kinds of model live: upscalers (models/upscalers.SUBDIRS) and IP-Adapters
# (models/ip_adapter.SUBDIRS, less the ControlNet folders they share). Their files' keys match
# none of the kinds above, so a listing that walked into them would show each file as every kind;
# ``list_models`` never does (their own modules list and find them).
OTHER_KIND_FOLDERS = frozenset({"ESRGAN", "RealESRGAN", "SwinIR", "HAT", "DAT", "upscale_models",
                                "ipadapter", "ip-adapter", "IP-Adapter"})


def search_folders(root: Path, kind: str) -> list[Path]:
    """Where models of ``kind`` live under one model dir, most specific first; the root itself last."""
    root = Path(root).expanduser()
    found: list[Path] = []
    for base in (root, root / "models"):
        for sub in SUBDIRS[kind]:
            folder = base / sub
            if folder.is_dir() and folder not in found:
                found.append(folder)
    if kind == "controlnet":  # the A1111 extension keeps its own folder
        ext = root / "extensions" / "sd-webui-controlnet" / "models"
        if ext.is_dir():
            found.append(ext)
    if root.is_dir():
        found.append(root)
    return found


def is_pipeline_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def is_component_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def looks_like(path: Path, kind: str) -> bool:
    """Could ``path`` be a model of ``kind``? (cheap: names and marker files only)"""
    if path.is_file():
        return path.suffix.lower() in WEIGHT_EXTS
    if not path.is_dir():
        return False
    if kind == "pipeline":
        return is_pipeline_folder(path)
    if kind in ("controlnet", "vae"):
        return is_component_folder(path) and not is_pipeline_folder(path)
    if _is_model_folder(path):
        return False
    return any(p.suffix.lower() == ".safetensors" for p in path.iterdir())  # a LoRA saved as folder


def _is_model_folder(path: Path) -> bool:
    """Never look inside a model (a pipeline's unet/ and vae/ are its parts, not models)."""
    return is_pipeline_folder(path) or is_component_folder(path)


def check_name(name: str) -> PurePosixPath | None:
    """A name as a relative path inside a model dir, or None if it could escape one."""
    if not name or "\\" in name or ":" in name:
        return None
    rel = PurePosixPath(name)
    if rel.is_absolute() or any(part in ("..", ".", "") for part in rel.parts):
        return None
    return rel


def find_by_name(dirs: list[Path], kind: str, name: str, accept=None) -> Path | None:
    """The model called ``name`` in the model dirs: exact names first, then stems, then deeper.

    ``accept(path) -> bool`` can reject a candidate by content (a plain folder mixes kinds)."""
    rel = check_name(name)
    if rel is None:
        return None
    folders = [f for d in dirs for f in search_folders(d, kind)]

    def ok(candidate: Path) -> bool:
        return looks_like(candidate, kind) and (accept is None or accept(candidate))

    for folder in folders:  # exact: "model.safetensors", "model" (a folder), "sub/model.safetensors"
        candidate = folder.joinpath(*rel.parts)
        if ok(candidate):
            return candidate
    for folder in folders:  # stem: "model" -> model.safetensors (safe formats first)
        parent = folder.joinpath(*rel.parts[:-1])
        for ext in WEIGHT_EXTS:
            candidate = parent / (rel.name + ext)
            if candidate.is_file() and ok(candidate):
                return candidate
    if len(rel.parts) == 1:  # plain names also match inside sub-folders (A1111 shows "sub/name")
        for folder in folders:
            for candidate in _walk(folder, kind):
                named = candidate.name == rel.name or (candidate.is_file() and candidate.stem == rel.name)
                if named and (accept is None or accept(candidate)):
                    return candidate
    return None


def _walk(folder: Path, kind: str, depth: int = 1) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if looks_like(entry, kind):
            yield entry
        elif entry.is_dir() and depth < MAX_DEPTH and not _is_model_folder(entry):
            yield from _walk(entry, kind, depth + 1)


def list_models(dirs: list[Path], kind: str) -> Iterator[tuple[str, Path]]:
    """(name, path) of every model of ``kind`` in the model dirs; names as users type them."""
    seen: set[Path] = set()
    for d in dirs:
        for folder in search_folders(d, kind):
            yield from _list_folder(folder, folder, kind, seen, 1)


def _list_folder(top: Path, folder: Path, kind: str, seen: set[Path], depth: int):
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry in seen or entry.name in OTHER_KIND_FOLDERS:
            continue
        if looks_like(entry, kind):
            seen.add(entry)
            rel = entry.relative_to(top)
            # a file is listed by its stem, unless a folder of that name sits beside it
            stem_taken = entry.is_file() and entry.with_suffix("").is_dir()
            name = rel.with_suffix("") if entry.is_file() and not stem_taken else rel
            yield rel_name(name), entry
        elif entry.is_dir() and depth < MAX_DEPTH and not _is_model_folder(entry):
            yield from _list_folder(top, entry, kind, seen, depth + 1)


def rel_name(rel: Path) -> str:
    return "/".join(rel.parts)
