"""The bundled demo model's facts, as the engine and the model resolver need them (stdlib only).

The weights ship inside the package (``brushwork/demo/weights``, diffusers layout) with a
``demo.json`` manifest: native size, the inpainting pipeline's and ControlNets' folders, the
latent->RGB preview factors. Loading and running them is ordinary model code, so these facts live
here, below the engine; ``brushwork.demo`` (training, data, ``brushwork doctor``) is a tool on top
that re-exports them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "demo" / "weights"
MANIFEST_NAME = "demo.json"
INPAINT_SUBDIR = "inpaint"
CONTROLNET_SUBDIRS = {"depth": "controlnet-depth"}
NAME = "brushwork-demo"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in ``folder``, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _complete(folder: Path) -> bool:
    return (folder / "model_index.json").is_file() and (folder / "unet" / "config.json").is_file()


def weights_dir() -> Path | None:
    """The shipped base pipeline (diffusers layout), or None if this install lacks it."""
    return WEIGHTS_DIR if _complete(WEIGHTS_DIR) else None


def inpaint_dir() -> Path | None:
    """The demo's inpainting pipeline (9-channel UNet), or None."""
    base = weights_dir()
    folder = base / INPAINT_SUBDIR if base else None
    return folder if folder is not None and _complete(folder) else None


def controlnet_dir(kind: str) -> Path | None:
    """The demo's ControlNet for ``kind`` ("depth"), or None when it has none for that kind."""
    base = weights_dir()
    sub = CONTROLNET_SUBDIRS.get(kind)
    if base is None or sub is None:
        return None
    folder = base / sub
    return folder if (folder / "config.json").is_file() else None


def info() -> dict[str, Any] | None:
    """The demo's manifest: native_size, recommended settings, preview factors, training log."""
    base = weights_dir()
    return read_manifest(base) if base else None


def native_size() -> int:
    data = info() or {}
    return int(data.get("native_size", 64))


def is_demo(path: object) -> bool:
    """True when ``path`` is one of the demo's folders (base, inpaint or a ControlNet)."""
    base = weights_dir()
    if base is None or path is None:
        return False
    try:
        resolved = Path(str(path)).resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == base or base in resolved.parents
