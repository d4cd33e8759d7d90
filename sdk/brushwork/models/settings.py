"""User settings for models: ``<config_dir>/settings.toml``, then environment overrides.

    # settings.toml
    model_dirs = ["~/stable-diffusion-webui", "~/ComfyUI"]   # A1111 / ComfyUI roots or plain folders
    default_model = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    allow_pickle = false        # .ckpt/.pt/.bin can run code when loaded: opt in knowingly
    offline = false             # never touch the network (HF_HUB_OFFLINE=1 also sets it)
    device = "cuda"             # or "cpu", "mps"; empty = best available

Environment: BRUSHWORK_MODEL_DIRS (os.pathsep-separated, replaces the list),
BRUSHWORK_DEFAULT_MODEL, BRUSHWORK_ALLOW_PICKLE=1, BRUSHWORK_DEVICE, HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import SettingsError

_TRUE = {"1", "true", "yes", "on"}


@dataclass
class Settings:
    model_dirs: list[Path] = field(default_factory=list)
    default_model: str = ""
    allow_pickle: bool = False
    offline: bool = False
    device: str | None = None

    @classmethod
    def path(cls) -> Path:
        return paths.config_dir() / "settings.toml"

    @classmethod
    def load(cls, file: Path | None = None) -> Settings:
        """The settings file (if any), then the environment on top."""
        settings = cls.from_file(file or cls.path())
        settings.apply_env(os.environ)
        return settings

    @classmethod
    def from_file(cls, file: Path) -> Settings:
        file = Path(file)
        if not file.exists():
            return cls()
        try:
            data = tomllib.loads(file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{file}: cannot read settings ({exc})") from None
        return cls.from_dict(data, where=str(file))

    @classmethod
    def from_dict(cls, data: dict, where: str = "settings") -> Settings:
        known = {"model_dirs", "default_model", "allow_pickle", "offline", "device"}
        for key in data:
            if key not in known:
                raise SettingsError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        dirs = data.get("model_dirs", [])
        if isinstance(dirs, str):
            dirs = [dirs]
        if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
            raise SettingsError(f"{where}: model_dirs must be a list of folder paths")
        for key in ("allow_pickle", "offline"):
            if key in data and not isinstance(data[key], bool):
                raise SettingsError(f"{where}: {key} must be true or false")
        for key in ("default_model", "device"):
            if key in data and not isinstance(data[key], str):
                raise SettingsError(f"{where}: {key} must be a string")
        return cls(
            model_dirs=[Path(d).expanduser() for d in dirs],
            default_model=data.get("default_model", ""),
            allow_pickle=data.get("allow_pickle", False),
            offline=data.get("offline", False),
            device=data.get("device") or None,
        )

    def apply_env(self, env) -> None:
        if env.get("BRUSHWORK_MODEL_DIRS"):
            self.model_dirs = [Path(p).expanduser() for p in env["BRUSHWORK_MODEL_DIRS"].split(os.pathsep) if p]
        if env.get("BRUSHWORK_DEFAULT_MODEL"):
            self.default_model = env["BRUSHWORK_DEFAULT_MODEL"]
        if env.get("BRUSHWORK_ALLOW_PICKLE", "").strip().lower() in _TRUE:
            self.allow_pickle = True
        if env.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
            self.offline = True
        if env.get("BRUSHWORK_DEVICE"):
            self.device = env["BRUSHWORK_DEVICE"]
