"""The bundled demo model: a toy that makes Brushwork work offline before any download.

Stdlib only at import (the CLI, Blender and the canvas may import this). Training lives in
``brushwork.demo.train`` (torch), the procedural data in ``brushwork.demo.dataset`` (numpy, PIL)
and ``brushwork doctor`` in ``brushwork.demo.commands``.
"""

from __future__ import annotations

from pathlib import Path

from . import manifest as _manifest

NAME = _manifest.NAME


def _complete(folder: Path) -> bool:
    return (folder / "model_index.json").is_file() and (folder / "unet" / "config.json").is_file()


def weights_dir() -> Path | None:
    """The shipped base pipeline (diffusers layout), or None if this install lacks it."""
    folder = _manifest.WEIGHTS_DIR
    return folder if _complete(folder) else None


def inpaint_dir() -> Path | None:
    """The demo's inpainting pipeline (9-channel UNet), or None."""
    base = weights_dir()
    folder = base / _manifest.INPAINT_SUBDIR if base else None
    return folder if folder is not None and _complete(folder) else None


def controlnet_dir(kind: str) -> Path | None:
    """The demo's ControlNet for ``kind`` ("depth"), or None when it has none for that kind."""
    base = weights_dir()
    sub = _manifest.CONTROLNET_SUBDIRS.get(kind)
    if base is None or sub is None:
        return None
    folder = base / sub
    return folder if (folder / "config.json").is_file() else None


def info() -> dict | None:
    """The demo's manifest: native_size, recommended settings, preview factors, training log."""
    base = weights_dir()
    return _manifest.read(base) if base else None


def native_size() -> int:
    data = info() or {}
    return int(data.get("native_size", 64))


def is_demo(path) -> bool:
    """True when ``path`` is one of the demo's folders (base, inpaint or a ControlNet)."""
    base = weights_dir()
    if base is None or path is None:
        return False
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == base or base in resolved.parents


__all__ = ["NAME", "controlnet_dir", "info", "inpaint_dir", "is_demo", "native_size", "weights_dir"]
