"""Named presets: ``presets/*.toml`` → Recipe fields (stdlib only: ``tomllib``).

A recipe is a preset plus overrides. A preset file holds a ``description``, any Recipe fields
(``sampler``, ``steps``, ``tiling``, ...), an optional ``prompt_suffix`` appended to the user's
prompt, and per-kind ControlNet defaults under ``[control.<kind>]`` (strength, start, end, model,
preprocess) that apply to controls of that kind which do not set them. See docs/presets.md.

Presets come from the repository's ``presets/`` folder and the user's
``<config dir>/presets/``; a user preset with the same name replaces the bundled one. Every file
is validated against the Recipe: an unknown key or a bad value is a PresetError naming the file
and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .errors import PresetError, RecipeError
from .recipe import CONTROL_KINDS, Control, Recipe

# Keys a preset may not set: they describe one job, or the file format itself.
_NOT_IN_PRESETS = {"schema", "preset", "controls"}
_EXTRA_KEYS = {"description", "prompt_suffix", "control", "needs"}
# What a preset may say it needs from the model and the command (checked before anything loads):
# family: model families it is made for; control: control kinds of which at least one must be
# given; few_step: made for LCM/Turbo/Lightning-style models.
_NEEDS_KEYS = {"family": list, "control": list, "few_step": bool}
_FAMILIES = ("sd15", "sdxl", "sd2")
_CONTROL_KEYS = {"strength", "start", "end", "model", "preprocess"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass
class Preset:
    name: str
    path: Path
    description: str
    fields: dict = field(default_factory=dict)  # Recipe fields
    prompt_suffix: str = ""
    control_defaults: dict = field(default_factory=dict)  # kind -> {strength, start, end, ...}
    needs: dict = field(default_factory=dict)  # {"family": [...], "control": [...], "few_step": bool}

    def apply(self, **overrides: Any) -> Recipe:
        """This preset plus ``overrides`` (Recipe fields) → a validated Recipe."""
        data = {**self.fields, "preset": self.name}
        overrides = dict(overrides)
        if self.prompt_suffix:
            prompt = str(overrides.pop("prompt", data.get("prompt", ""))).strip().rstrip(",")
            data["prompt"] = f"{prompt}, {self.prompt_suffix}" if prompt else self.prompt_suffix
        controls = overrides.pop("controls", None)
        data.update(overrides)
        if controls is not None:
            data["controls"] = [self._with_defaults(c) for c in controls]
        return Recipe.from_dict(data).validate()

    def _with_defaults(self, control: Control | dict) -> Control | dict:
        # Control objects are taken as given; dicts only say what the caller chose, so the
        # preset's defaults fill the rest.
        if isinstance(control, dict):
            return {**self.control_defaults.get(control.get("kind"), {}), **control}
        return control


def builtin_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    # The repository's presets/ (editable installs, the source tree); a packaged copy if any.
    return [d for d in (here.parents[1] / "presets", here / "presets") if d.is_dir()]


def user_dir() -> Path:
    return paths.config_dir() / "presets"


def _preset_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in [*builtin_dirs(), user_dir()]:  # later folders win: user presets override
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = path
    return found


def load_preset(name: str) -> Preset:
    """A preset by name (or a path to a .toml file), validated."""
    if name.endswith(".toml") and ("/" in name or "\\" in name or Path(name).is_file()):
        path = Path(name).expanduser()
        if not path.is_file():
            raise PresetError(f"preset {name}: no such file")
        return parse_preset_file(path)
    if not _NAME.match(name):
        raise PresetError(f"preset {name!r}: a preset name is lowercase letters, digits, '-', '_' and '.'")
    found = _preset_files().get(name)
    if found is None:
        known = ", ".join(sorted(_preset_files())) or "none"
        raise PresetError(f"unknown preset {name!r} (known: {known})")
    return parse_preset_file(found)


def list_presets() -> list[Preset]:
    """Every valid preset, sorted by name (a broken file is skipped: see ``preset_problems``)."""
    out = []
    for _name, path in sorted(_preset_files().items()):
        try:
            out.append(parse_preset_file(path))
        except PresetError:
            continue
    return out


def preset_problems() -> list[str]:
    """One line per preset file that does not load, for ``brushwork presets`` to show."""
    problems = []
    for _name, path in sorted(_preset_files().items()):
        try:
            parse_preset_file(path)
        except PresetError as exc:
            problems.append(str(exc))
    return problems


def recipe_from_preset(name: str, **overrides: Any) -> Recipe:
    """``load_preset(name).apply(**overrides)``: a preset plus overrides, validated."""
    return load_preset(name).apply(**overrides)


def parse_preset_file(path: Path) -> Preset:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_preset(data, name=path.stem, path=path)


def parse_preset(data: dict, *, name: str, path: Path) -> Preset:
    recipe_keys = {f for f in Recipe.__dataclass_fields__} - _NOT_IN_PRESETS
    for key in data:
        if key not in recipe_keys and key not in _EXTRA_KEYS:
            hint = " (ControlNet defaults go under [control.<kind>])" if key == "controls" else ""
            raise PresetError(f"{path}: unknown key {key!r}{hint}")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise PresetError(f"{path}: needs a 'description' (one line saying what the preset is for)")
    suffix = data.get("prompt_suffix", "")
    if not isinstance(suffix, str):
        raise PresetError(f"{path}: prompt_suffix must be text")
    fields = {k: v for k, v in data.items() if k in recipe_keys}
    try:
        Recipe.from_dict(fields).validate()
    except RecipeError as exc:
        raise PresetError(f"{path}: {exc.field}: {exc.reason}") from None

    defaults = data.get("control", {})
    if not isinstance(defaults, dict):
        raise PresetError(f"{path}: 'control' must be a table of [control.<kind>] tables")
    for kind, values in defaults.items():
        where = f"control.{kind}"
        if kind not in CONTROL_KINDS:
            raise PresetError(f"{path}: unknown key {where!r} (kinds: {', '.join(CONTROL_KINDS)})")
        if not isinstance(values, dict):
            raise PresetError(f"{path}: {where} must be a table")
        for key in values:
            if key not in _CONTROL_KEYS:
                raise PresetError(f"{path}: unknown key '{where}.{key}' (known: {', '.join(sorted(_CONTROL_KEYS))})")
        probe = Control(kind=kind, image=None if kind == "inpaint" else "probe.png", **values)
        try:
            probe.validate(where)
        except RecipeError as exc:
            raise PresetError(f"{path}: {exc.field}: {exc.reason}") from None
    return Preset(name=name, path=path, description=description.strip(), fields=fields, prompt_suffix=suffix,
                  control_defaults={k: dict(v) for k, v in defaults.items()}, needs=_parse_needs(data, path))


def _parse_needs(data: dict, path: Path) -> dict:
    needs = data.get("needs", {})
    if not isinstance(needs, dict):
        raise PresetError(f"{path}: 'needs' must be a table ([needs])")
    for key, value in needs.items():
        kind = _NEEDS_KEYS.get(key)
        if kind is None:
            raise PresetError(f"{path}: unknown key 'needs.{key}' (known: {', '.join(sorted(_NEEDS_KEYS))})")
        if not isinstance(value, kind):
            raise PresetError(f"{path}: needs.{key} must be {'a list' if kind is list else 'true or false'}")
    for family in needs.get("family", []):
        if family not in _FAMILIES:
            raise PresetError(f"{path}: needs.family: unknown family {family!r} (known: {', '.join(_FAMILIES)})")
    for kind in needs.get("control", []):
        if kind not in CONTROL_KINDS:
            raise PresetError(f"{path}: needs.control: unknown kind {kind!r} (kinds: {', '.join(CONTROL_KINDS)})")
    return dict(needs)
