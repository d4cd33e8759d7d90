"""Before any model loads: every manifest entry becomes a checked Row, or a Row that fails with
its one-line reason (bad field, unknown preset, unreadable or mismatched picture, unknown model,
a ``sha256:`` input nobody has). A bad row never stops the others.

A Row's Recipe is the one that runs: validated, ``<lora:>`` tags moved to ``loras`` and the
model's defaults in the fields it leaves unset (as the Studio does, so the PNG's recipe and the
row's are one), every input a ``sha256:`` ref, and a fixed seed. Its hash names the output file.
The defaults are those of the model as this machine resolves the name, whatever the runner, so
one manifest names its files alike in-process, on Ray and through a worker; a model this machine
does not have (a worker's own) leaves those fields unset, and ``identity.verify_output`` accepts
what the PNG records for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..assets import content_ref
from ..engine.regions_plan import check_mask_proportions, refuse_unsupported, region_lora_tags
from ..errors import BrushworkError
from ..recipe import MAX_SEED, Recipe, extract_lora_tags, is_content_ref
from . import identity
from .manifest import PRESET_KEY, SEED_OFFSET_KEY, Entry

RUN, DONE, FAILED, SKIPPED = "run", "done", "failed", "skipped"


@dataclass
class Row:
    index: int
    where: str
    name: str = ""
    recipe: Recipe | None = None
    digest: str = ""
    output: Path | None = None
    blobs: dict[str, Path] = field(default_factory=dict)  # sha256 ref -> the local file it was read from
    status: str = RUN
    reason: str = ""
    seconds: float = 0.0
    attempts: int = 0
    peak_bytes: int | None = None
    resident_bytes: int | None = None  # memory still in use after the row (the warm models)

    @property
    def pixels(self) -> int:
        """Pixels of the row's picture; 0 while the size is the model's default (unset), which the
        Studio fills when the row runs: the estimate then counts it as the measured row's size."""
        if self.recipe is None or self.recipe.width is None or self.recipe.height is None:
            return 0
        return self.recipe.width * self.recipe.height

    def fail(self, reason: str) -> Row:
        self.status, self.reason = FAILED, " ".join(reason.split()) or "failed"
        return self


def plan_rows(entries: list[Entry], out_dir: Path, base_dir: Path, *,
              missing: Callable[[list[str]], list[str]] | None = None,
              check_model: Callable[[str], None] | None = None,
              model_defaults: Callable[[str], dict | None] | None = None,
              check_lora: Callable[[str, str], None] | None = None) -> list[Row]:
    """Rows for ``entries``. ``missing(refs)``: which ``sha256:`` inputs the runner cannot get
    (None: assume all); ``check_model(name)``: raises when a model cannot be found (None: the
    runner reports it when the row runs); ``model_defaults(name)``: the model's size, steps, CFG
    and sampler (None: unknown here, the runner's Studio fills them); ``check_lora(model, name)``:
    raises when a LoRA (the recipe's or a region's) cannot be found for that model (None: the
    runner reports it when the row runs)."""
    found: dict[str, dict | None] = {}

    def defaults(model: str) -> dict | None:
        if model_defaults is None:
            return None
        if model not in found:
            try:
                found[model] = model_defaults(model)
            except BrushworkError:  # a missing model is check_model's to report
                found[model] = None
        return found[model]

    rows = [_plan_one(e, out_dir, base_dir, defaults) for e in entries]
    _check_models(rows, check_model)
    _check_loras(rows, check_lora)
    _check_content_refs(rows, missing)
    return rows


def _plan_one(entry: Entry, out_dir: Path, base_dir: Path, defaults: Callable[[str], dict | None]) -> Row:
    row = Row(entry.index, entry.where, name=entry.name)
    if entry.error:
        return row.fail(entry.error)
    fields = dict(entry.fields)
    offset = int(fields.pop(SEED_OFFSET_KEY, 0))
    preset = fields.pop(PRESET_KEY, "")
    try:
        if preset:
            from ..presets import recipe_from_preset

            recipe = recipe_from_preset(preset, **fields)
        else:
            recipe = Recipe.from_dict(fields).validate()
        recipe = _resolve_paths(recipe, base_dir)
        prompt, tagged = extract_lora_tags(recipe.prompt)
        if tagged:
            recipe = recipe.replace(prompt=prompt, loras=[*recipe.loras, *tagged])
        recipe = recipe.replace(**region_lora_tags(recipe))  # a region prompt's tags: its loras (as the Studio)
        recipe, row.blobs = _inputs_as_refs(recipe)
        if recipe.unset and isinstance(recipe.model, str) and (model_fields := defaults(recipe.model)):
            recipe = recipe.with_defaults(model_fields)
        _check_region_masks(recipe, row.blobs)
        if recipe.seed is None:
            recipe = recipe.replace(seed=(identity.derived_seed(recipe) + offset) % (MAX_SEED + 1))
        row.recipe = recipe.validate()
    except (BrushworkError, ValueError, TypeError) as exc:
        return row.fail(str(exc))
    row.digest = identity.recipe_hash(row.recipe)
    row.output = out_dir / identity.output_name(row.recipe, row.name)
    return row


def _resolve_paths(recipe: Recipe, base_dir: Path) -> Recipe:
    """Relative paths in a manifest are relative to the manifest's folder, and are recorded
    absolute (so the rows, and a later ``brushwork rerun``, work from any folder)."""

    def absolute(ref: str) -> str:
        if not ref or is_content_ref(ref):
            return ref
        path = Path(ref).expanduser()
        return str(path if path.is_absolute() else (base_dir / path).resolve())

    def model_path(ref: str) -> str:
        # Model names and hub ids stay as they are; only something that exists as a path is a path.
        if not ref:
            return ref
        path = Path(ref).expanduser()
        candidate = path if path.is_absolute() else base_dir / path
        return str(candidate.resolve()) if candidate.exists() else ref

    recipe = recipe.map_refs(absolute)
    changes: dict = {"model": model_path(recipe.model), "vae": model_path(recipe.vae)}
    if recipe.loras:
        changes["loras"] = [{"name": model_path(lora.name), "weight": lora.weight} for lora in recipe.loras]
    if any(r.loras for r in recipe.regions):
        changes["regions"] = [{**asdict(r), "loras": [{"name": model_path(lora.name), "weight": lora.weight}
                                                        for lora in r.loras]} for r in recipe.regions]
    return recipe.replace(**changes)


def _inputs_as_refs(recipe: Recipe) -> tuple[Recipe, dict[str, Path]]:
    """Read every input file once: pictures must decode and a mask must match its picture's size.
    Returns the recipe with ``sha256:`` refs and where each ref's bytes lie."""
    from ..conditioning.images import open_image
    from ..conditioning.masks import load_mask
    from ..errors import InputImageError

    blobs: dict[str, Path] = {}
    refs: dict[str, str] = {}
    init_size = None
    for where, ref in recipe.image_refs().items():
        if is_content_ref(ref):
            continue
        path = Path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputImageError(f"{where}: {ref}: no such file") from None
        except OSError as exc:
            raise InputImageError(f"{where}: {ref}: cannot read it ({exc.strerror or exc})") from None
        if where == "init_image":
            init_size = open_image(data, what=f"{where} {ref}").size
        elif where == "mask":
            load_mask(data, None, what=f"{where} {ref}")
        elif not where.endswith(".signal.data"):  # raw depth is numbers, not a picture
            open_image(data, what=f"{where} {ref}")
        sha = content_ref(data)
        refs[ref], blobs[sha] = sha, path
    if recipe.mask and init_size and not is_content_ref(recipe.mask):
        load_mask(Path(recipe.mask).read_bytes(), init_size, what=f"mask {recipe.mask}")
    return recipe.map_refs(lambda ref: refs.get(ref, ref)), blobs


def _check_region_masks(recipe: Recipe, blobs: dict[str, Path]) -> None:
    """Each region mask (read and opened already) has the picture's proportions once the size is
    known; a mask of other proportions would be stretched somewhere else (regions_plan.py)."""
    if not recipe.regions or recipe.width is None or recipe.height is None:
        return
    from ..conditioning.images import open_image

    refuse_unsupported(recipe)
    for i, region in enumerate(recipe.regions):
        path = blobs.get(region.mask)
        if path is not None:
            mask = open_image(path.read_bytes(), what=f"regions[{i}].mask {path}")
            check_mask_proportions(mask.size, (int(recipe.width), int(recipe.height)), f"regions[{i}].mask {path}")


def _check_loras(rows: list[Row], check_lora: Callable[[str, str], None] | None) -> None:
    """Every LoRA a row names (its own and its regions') found for its model, once per pair."""
    if check_lora is None:
        return
    verdicts: dict[tuple[str, str], str] = {}
    for row in rows:
        if row.status != RUN or row.recipe is None:
            continue
        named = [("loras", lora.name) for lora in row.recipe.loras] + \
            [(f"regions[{i}].loras", lora.name) for i, r in enumerate(row.recipe.regions) for lora in r.loras]
        for where, name in named:
            key = (row.recipe.model, name)
            if key not in verdicts:
                try:
                    check_lora(*key)
                    verdicts[key] = ""
                except BrushworkError as exc:
                    verdicts[key] = str(exc)
            if verdicts[key]:
                row.fail(f"{where}: {verdicts[key]}")
                break


def _check_models(rows: list[Row], check_model: Callable[[str], None] | None) -> None:
    if check_model is None:
        return
    verdicts: dict[str, str] = {}
    for row in rows:
        if row.status != RUN or row.recipe is None:
            continue
        model = row.recipe.model
        if model not in verdicts:
            try:
                check_model(model)
                verdicts[model] = ""
            except BrushworkError as exc:
                verdicts[model] = str(exc)
        if verdicts[model]:
            row.fail(f"model: {verdicts[model]}")


def _check_content_refs(rows: list[Row], missing: Callable[[list[str]], list[str]] | None) -> None:
    wanted = sorted({ref for row in rows if row.status == RUN and row.recipe is not None
                     for ref in row.recipe.image_refs().values() if ref not in row.blobs})
    if not wanted or missing is None:
        return
    absent = set(missing(wanted))
    for row in rows:
        if row.status != RUN or row.recipe is None:
            continue
        for where, ref in row.recipe.image_refs().items():
            if ref in absent and ref not in row.blobs:
                row.fail(f"{where}: {ref[:19]}... is not in the asset store (give the file's path instead)")
                break
