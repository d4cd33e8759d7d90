"""Pickle weights inside a diffusers folder (``unet/diffusion_pytorch_model.bin``): refused by name
like a single pickle file, instead of being loaded (diffusers falls back to a .bin when a
component has no .safetensors) or misreported as a missing model. Stdlib only."""

from __future__ import annotations

from pathlib import Path

from ..errors import UnsafeCheckpointError
from . import modeldirs


def pickle_weights(folder: Path) -> list[Path]:
    """The pickle weight files the folder (or a component sub-folder) would load: those of a
    folder that has no .safetensors next to them."""
    found: list[Path] = []
    for part in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        try:
            files = [p for p in part.iterdir() if p.is_file()]
        except OSError:
            continue
        if any(p.suffix.lower() == ".safetensors" for p in files):
            continue
        found += sorted(p for p in files if p.suffix.lower() in modeldirs.PICKLE_EXTS)
    return found


def refuse_folder_pickles(folder: Path, allow_pickle: bool) -> None:
    if allow_pickle:
        return
    pickles = pickle_weights(folder)
    if pickles:
        names = ", ".join(str(p.relative_to(folder)) for p in pickles[:3])
        raise UnsafeCheckpointError(
            f"{folder.name}: holds pickle weights ({names}) that can run arbitrary code when loaded, so it "
            "is refused; convert them to .safetensors, or if you trust its source opt in with "
            "BRUSHWORK_ALLOW_PICKLE=1 or allow_pickle = true in settings.toml")
