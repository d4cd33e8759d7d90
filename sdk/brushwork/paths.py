"""Where Brushwork keeps its files (stdlib only, so Blender's client can find the worker's token).

``BRUSHWORK_HOME`` puts everything under one folder (tests, portable installs). Otherwise the
folders follow the platform conventions, the same ones ``platformdirs`` computes for "brushwork"
(a test checks they agree), without depending on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "brushwork"


def _home_override() -> Path | None:
    value = os.environ.get("BRUSHWORK_HOME")
    return Path(value).expanduser() if value else None


def _platform_dir(xdg_var: str, xdg_default: str) -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    base = os.environ.get(xdg_var, "").strip()
    return Path(base if base else Path.home() / xdg_default) / APP


def config_dir() -> Path:
    """Settings and user presets."""
    home = _home_override()
    return home / "config" if home else _platform_dir("XDG_CONFIG_HOME", ".config")


def state_dir() -> Path:
    """Worker token, history database, uploaded assets, locks."""
    home = _home_override()
    return home / "state" if home else _platform_dir("XDG_STATE_HOME", ".local/state")


def data_dir() -> Path:
    """Generated images (the default output folder lives here)."""
    home = _home_override()
    return home / "data" if home else _platform_dir("XDG_DATA_HOME", ".local/share")


def outputs_dir() -> Path:
    return data_dir() / "outputs"
