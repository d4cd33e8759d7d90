"""Reading a batch manifest (JSONL, CSV, TOML, or .json holding an array) into rows of Recipe fields.

Each manifest entry is a Recipe, or a preset plus overrides, plus optional expansions:

    {"preset": "texture-seamless", "prompts": ["moss", "bark"], "seeds": "1-4", "width": 512}
    {"recipe": {...a whole Recipe, e.g. from `brushwork info --json`...}, "seed": 9}
    {"prompt": "red brick wall", "models": ["tiny-sd15", "other"], "seeds": [1, 2], "name": "bricks"}

``prompts`` x ``seeds`` x ``models`` expand into one row each; ``batch: N`` becomes N rows with the
seeds seed, seed+1, ... (what ``Studio`` does with a batch), so every output has its own Recipe.
``name`` prefixes the output file names. An entry that cannot be read fails alone: it becomes a
row carrying its one-line error, and the batch goes on.

CSV: a header of the same keys; lists (``prompts``, ``models``, ``seeds``, ``loras``) separated by
``|``; ``controls`` as JSON. TOML: ``[defaults]`` (applied under every row) and ``[[rows]]``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BrushworkError
from ..recipe import MAX_SEED, Recipe

EXPANSIONS = ("prompts", "seeds", "models")
EXTRA_KEYS = {"recipe", "name", *EXPANSIONS}
MAX_ROWS_PER_ENTRY = 10_000  # a typo such as seeds "1-99999999" must not build a billion rows
PRESET_KEY = "_apply_preset"  # Entry.fields keys that are instructions, not Recipe fields
SEED_OFFSET_KEY = "_seed_offset"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RECIPE_FIELDS = {f.name: f for f in dataclasses.fields(Recipe)}


class ManifestError(BrushworkError, ValueError):
    """The manifest as a whole cannot be read (missing file, unknown format, not TOML)."""

    code = "invalid_manifest"


@dataclass
class Entry:
    """One manifest row after expansion: Recipe fields (and a preset name) still as plain data."""

    index: int  # 1-based, in manifest order after expansion
    where: str  # "shots.jsonl:3", "shots.toml rows[2]", with " [prompt 2, seed 5]" for expansions
    fields: dict = field(default_factory=dict)
    name: str = ""
    error: str = ""  # set when the entry could not be read: the row fails with this reason


def read_manifest(path: str | Path) -> list[Entry]:
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    suffix = path.suffix.lower()
    if suffix == ".json" and text.lstrip().startswith("["):
        raw = _json_list(text, path.name)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        raw = _jsonl(text, path.name)
    elif suffix == ".csv":
        raw = _csv(text, path.name)
    elif suffix == ".toml":
        raw = _toml(text, path.name)
    else:
        raise ManifestError(f"{path}: a manifest is a .jsonl, .json, .csv or .toml file")
    entries: list[Entry] = []
    for where, data, error in raw:
        if error:
            entries.append(Entry(0, where, error=error))
            continue
        try:
            entries.extend(expand(data, where))
        except (BrushworkError, ValueError, TypeError) as exc:
            entries.append(Entry(0, where, error=_one_line(exc)))
    for i, entry in enumerate(entries, 1):
        entry.index = i
    return entries


# ---- formats ------------------------------------------------------------------------------------


Raw = list[tuple[str, dict, str]]  # (where, data, error)


def _jsonl(text: str, name: str) -> Raw:
    out: Raw = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        where = f"{name}:{number}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            out.append((where, {}, f"not valid JSON ({exc.args[0] if exc.args else exc})"))
            continue
        if not isinstance(data, dict):
            out.append((where, {}, f"a row is a JSON object, got {type(data).__name__}"))
            continue
        out.append((where, data, ""))
    return out


def _json_list(text: str, name: str) -> Raw:
    """A .json file holding one array of rows."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"{name}: not valid JSON ({exc})") from None
    out: Raw = []
    for i, row in enumerate(data):
        where = f"{name}[{i}]"
        out.append((where, row, "") if isinstance(row, dict)
                   else (where, {}, f"a row is a JSON object, got {type(row).__name__}"))
    return out


def _csv(text: str, name: str) -> Raw:
    reader = csv.DictReader(text.splitlines())
    out: Raw = []
    for row in reader:
        where = f"{name}:{reader.line_num}"
        if None in row:
            out.append((where, {}, "more cells than the header has columns"))
            continue
        try:
            out.append((where, {k.strip(): _csv_cell(k.strip(), v) for k, v in row.items()
                                if k and v is not None and v.strip() != ""}, ""))
        except ValueError as exc:
            out.append((where, {}, _one_line(exc)))
    return out


_MODEL_DEFAULTED_KINDS: dict[str, Any] = {"steps": 0, "width": 0, "height": 0, "cfg": 0.0}


def _csv_cell(key: str, value: str) -> Any:
    value = value.strip()
    if key in ("prompts", "models"):
        return [v.strip() for v in value.split("|")]
    if key == "seeds":
        return value  # "1|2|3" or "1-8": parsed with the JSON forms in _seeds
    if key == "loras":
        return [v.strip() for v in value.split("|") if v.strip()]
    if key in ("controls", "embeddings", "recipe"):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(f"{key}: a CSV cell for {key} holds JSON") from None
    spec = _RECIPE_FIELDS.get(key)
    # The fields left to the model default to None, so their number kind is said here.
    default = _MODEL_DEFAULTED_KINDS.get(key, spec.default if spec is not None else None)
    if key == "seed" or isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{key}: must be a whole number, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key}: must be a number, got {value!r}") from None
    return value


def _toml(text: str, name: str) -> Raw:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{name}: not valid TOML ({exc})") from None
    unknown = set(data) - {"defaults", "rows"}
    if unknown:
        raise ManifestError(f"{name}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                            "(a TOML manifest has [defaults] and [[rows]])")
    defaults = data.get("defaults", {})
    rows = data.get("rows", [])
    if not isinstance(defaults, dict) or not isinstance(rows, list):
        raise ManifestError(f"{name}: [defaults] is a table and [[rows]] an array of tables")
    out: Raw = []
    for i, row in enumerate(rows):
        where = f"{name} rows[{i}]"
        if not isinstance(row, dict):
            out.append((where, {}, "a row is a table"))
            continue
        out.append((where, {**defaults, **row}, ""))
    return out


# ---- expansion ----------------------------------------------------------------------------------


def expand(data: dict, where: str) -> list[Entry]:
    """prompts x seeds x models (and batch N) → one Entry per output image."""
    data = dict(data)
    name = data.pop("name", "")
    if not isinstance(name, str) or (name and not _NAME.match(name)):
        raise ValueError(f"name: letters, digits, '-', '_' and '.' (at most 64), got {name!r}")
    fields: dict = {}
    whole = data.pop("recipe", None)
    if whole is not None:
        if not isinstance(whole, dict):
            raise ValueError(f"recipe: must be an object, got {type(whole).__name__}")
        fields.update(whole)
    # A preset named on the row is applied (plus the row's fields as overrides); one inside a
    # whole ``recipe`` is only the record of how that recipe was made, and is not applied again.
    preset = data.pop("preset", "")
    if not isinstance(preset, str):
        raise ValueError(f"preset: must be a preset name, got {type(preset).__name__}")
    prompts = _list(data.pop("prompts", None), "prompts", str)
    models = _list(data.pop("models", None), "models", str)
    seeds: list[int | None] | None = _seeds(data.pop("seeds", None))  # type: ignore[assignment]
    fields.update(data)
    batch = fields.pop("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 16:
        raise ValueError(f"batch: must be a whole number from 1 to 16, got {batch!r}")
    if batch > 1 and seeds is not None:
        raise ValueError("give either seeds or batch, not both")
    if "seed" in fields and seeds is not None:
        raise ValueError("give either seed or seeds, not both")
    if batch > 1:
        start = fields.pop("seed", None)
        # No seed: one is derived from the recipe (preflight), and image i takes that + i.
        seeds = [None] * batch if start is None else [_int(start, "seed") + i for i in range(batch)]
        batch_offsets = list(range(batch)) if start is None else []
    else:
        batch_offsets = []
    prompt_list: list = prompts if prompts is not None else [fields.get("prompt", "")]
    model_list: list = models if models is not None else [fields.get("model", "")]
    seed_list: list = seeds if seeds is not None else [fields.get("seed")]
    total = len(prompt_list) * len(model_list) * len(seed_list)
    if total > MAX_ROWS_PER_ENTRY:
        raise ValueError(f"expands into {total} rows (at most {MAX_ROWS_PER_ENTRY} per manifest row)")
    entries = []
    for pi, prompt in enumerate(prompt_list):
        for mi, model in enumerate(model_list):
            for si, seed in enumerate(seed_list):
                row = dict(fields)
                tags = []
                if prompts is not None:
                    row["prompt"] = prompt
                    tags.append(f"prompt {pi + 1}")
                if models is not None:
                    row["model"] = model
                    tags.append(f"model {mi + 1}")
                if seed is not None:
                    row["seed"] = seed
                if seeds is not None:
                    tags.append(f"seed {seed}" if seed is not None else f"image {si + 1}")
                if preset:
                    row[PRESET_KEY] = preset
                if batch_offsets:
                    row[SEED_OFFSET_KEY] = batch_offsets[si]
                label = f"{where} [{', '.join(tags)}]" if tags and total > 1 else where
                entries.append(Entry(0, label, row, name=name))
    return entries


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"{key}: must be a whole number, got {value!r}")
    return int(value)


def _list(value: Any, key: str, kind: type) -> list | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key}: must be a non-empty list")
    for item in value:
        if not isinstance(item, kind):
            raise ValueError(f"{key}: every item must be {kind.__name__}, got {type(item).__name__}")
    return value


def _seeds(value: Any) -> list[int] | None:
    """[1, 2, 3], "1|2|3", "1-8" (inclusive) or 7."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        text = value.strip()
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
        if match:
            lo, hi = int(match.group(1)), int(match.group(2))
            if hi < lo:
                raise ValueError(f"seeds: the range {text!r} runs backwards")
            if hi - lo >= MAX_ROWS_PER_ENTRY:
                raise ValueError(f"seeds: the range {text!r} is over {MAX_ROWS_PER_ENTRY} seeds")
            return list(range(lo, hi + 1))
        try:
            value = [int(v) for v in text.split("|")]
        except ValueError:
            raise ValueError(f"seeds: expected 1|2|3 or a range such as 1-8, got {text!r}") from None
    if not isinstance(value, list) or not value:
        raise ValueError("seeds: a non-empty list of whole numbers, a range such as \"1-8\", or one seed")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seeds: every seed is a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return list(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
