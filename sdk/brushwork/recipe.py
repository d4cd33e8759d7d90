"""The Recipe: everything one generation needs, as plain data (stdlib only).

The same Recipe is run in-process by ``Studio``, sent to the worker, built by Blender and the
canvas, and written into every output PNG so that ``brushwork rerun`` reproduces it. Nothing about
a job may live outside it.

Images are *references*, never pixels, so a Recipe stays small, JSON-safe and hashable:
  - a filesystem path (in-process use, the CLI), or
  - ``sha256:<64 hex>``: a content address into an asset store (the worker's uploads, and what an
    output PNG records so a rerun can verify it has the very same input).
Raw control signals (Blender's float depth, OpenPose keypoints) travel in ``Control.signal``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import RecipeError

SCHEMA_VERSION = 1

CONTROL_KINDS = ("depth", "pose", "scribble", "lineart", "canny", "inpaint", "normal")
TILING_MODES = ("", "x", "y", "xy")
# Names artists know. The engine maps each to a diffusers scheduler (engine/samplers.py).
SAMPLERS = ("Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "UniPC", "LCM", "Heun")

MAX_SIDE = 4096
MIN_SIDE = 64
MAX_STEPS = 200
MAX_CFG = 30.0
MAX_BATCH = 16
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 20_000
MAX_REGIONS = 8
MAX_REFERENCES = 4
MAX_UPSCALE_FACTOR = 8.0
# How a reference image steers: "style" (colours, materials, mood: the IP-Adapter's style layers),
# "composition" (layout: its composition layers) or "full" (every layer: the classic IP-Adapter,
# "use this picture as the prompt"). All three are the same adapter, acting in different blocks.
REFERENCE_MODES = ("style", "composition", "full")
# The fields a Recipe may leave unset (None) for the model to decide: each model family and variant
# has its own size, steps, CFG and sampler (SD 1.5, SDXL, Turbo, LCM, few-step; models/defaults.py).
# The Studio fills them when it resolves the model (``with_defaults``), before the one validation,
# and the output PNG records the filled values, so a rerun never depends on what a default was.
MODEL_DEFAULTED = ("width", "height", "steps", "cfg", "sampler")

_SHA_REF = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_content_ref(ref: str) -> bool:
    return bool(_SHA_REF.match(ref))


# --------------------------------------------------------------------------------------------
# small field checkers: each raises RecipeError naming the field and the reason


def _check_number(name: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecipeError(name, f"must be a number, got {type(value).__name__}")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise RecipeError(name, f"must be a whole number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(name, f"must be finite, got {value!r}")
    if not lo <= value <= hi:
        raise RecipeError(name, f"must be between {lo:g} and {hi:g}, got {value!r}")


def _check_str(name: str, value: Any, *, max_len: int = 4096) -> None:
    if not isinstance(value, str):
        raise RecipeError(name, f"must be text, got {type(value).__name__}")
    if len(value) > max_len:
        raise RecipeError(name, f"is too long ({len(value)} characters, at most {max_len})")
    if "\x00" in value:
        raise RecipeError(name, "must not contain NUL characters")


def _check_ref(name: str, value: Any) -> None:
    if value is None:
        return
    _check_str(name, value)
    if not value:
        raise RecipeError(name, "is empty: give a file path or a sha256: reference, or leave it out")
    if value.startswith("sha256:") and not is_content_ref(value):
        raise RecipeError(name, "a sha256: reference needs exactly 64 lowercase hex digits")


# --------------------------------------------------------------------------------------------


@dataclass
class Lora:
    """A LoRA by name (looked up in the model folders) or path, and its weight."""

    name: str
    weight: float = 1.0

    def validate(self, where: str) -> None:
        _check_str(f"{where}.name", self.name, max_len=1024)
        if not self.name.strip():
            raise RecipeError(f"{where}.name", "is empty")
        _check_number(f"{where}.weight", self.weight, -4.0, 4.0)


@dataclass
class Embedding:
    """A textual-inversion embedding; ``token`` defaults to the file's stem."""

    name: str
    token: str = ""

    def validate(self, where: str) -> None:
        _check_str(f"{where}.name", self.name, max_len=1024)
        if not self.name.strip():
            raise RecipeError(f"{where}.name", "is empty")
        _check_str(f"{where}.token", self.token, max_len=256)


@dataclass
class Control:
    """One ControlNet input.

    Either ``image`` (a ready control picture: a sketch, a depth picture, a pose drawing, a photo
    when ``preprocess`` names an estimator) or ``signal`` (raw data the engine turns into the
    picture). Signals:
      - depth: ``{"data": REF, "width": W, "height": H, "format": "f32le"|"npy",
                  "near": float|None, "far": float|None, "invert": bool}`` — distances, larger =
                  farther; inf/NaN mean "nothing hit" and render as far.
      - pose:  OpenPose JSON: ``{"people": [{"pose_keypoints_2d": [x, y, c] * 18}],
                  "canvas_width": W, "canvas_height": H}``.
    ``start``/``end`` are the fraction of denoising steps during which this control acts.
    """

    kind: str
    image: str | None = None
    signal: dict[str, Any] | None = None
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    model: str = ""  # a ControlNet id/path; empty = the family's default for this kind
    preprocess: str = "none"  # "none", or an estimator name (engine/conditioning.ESTIMATORS)

    def validate(self, where: str) -> None:
        if self.kind not in CONTROL_KINDS:
            raise RecipeError(f"{where}.kind", f"must be one of {', '.join(CONTROL_KINDS)}; got {self.kind!r}")
        _check_ref(f"{where}.image", self.image)
        if self.signal is not None and not isinstance(self.signal, dict):
            raise RecipeError(f"{where}.signal", f"must be an object, got {type(self.signal).__name__}")
        if self.kind != "inpaint" and self.image is None and self.signal is None:
            raise RecipeError(where, f"a {self.kind} control needs an image or a signal")
        if self.image is not None and self.signal is not None:
            raise RecipeError(where, "give either an image or a signal, not both")
        if self.signal is not None and self.kind not in ("depth", "pose"):
            raise RecipeError(f"{where}.signal", f"raw signals exist for depth and pose only, not {self.kind}")
        if self.signal is not None and self.kind == "depth":
            _check_ref(f"{where}.signal.data", self.signal.get("data"))
            if self.signal.get("data") is None:
                raise RecipeError(f"{where}.signal.data", "a depth signal needs its data reference")
            for side in ("width", "height"):
                _check_number(f"{where}.signal.{side}", self.signal.get(side), 1, MAX_SIDE * 2, integer=True)
            if self.signal.get("format", "f32le") not in ("f32le", "npy"):
                raise RecipeError(f"{where}.signal.format", "must be 'f32le' or 'npy'")
            for end in ("near", "far"):
                if self.signal.get(end) is not None:
                    _check_number(f"{where}.signal.{end}", self.signal[end], -1e30, 1e30)
            if not isinstance(self.signal.get("invert", False), bool):
                raise RecipeError(f"{where}.signal.invert", "must be true or false")
        if self.signal is not None and self.kind == "pose":
            if not isinstance(self.signal.get("people"), list):
                raise RecipeError(f"{where}.signal.people", "must be a list of OpenPose people")
            for side in ("canvas_width", "canvas_height"):
                if self.signal.get(side) is not None:
                    _check_number(f"{where}.signal.{side}", self.signal[side], 1, MAX_SIDE * 4, integer=True)
        _check_number(f"{where}.strength", self.strength, 0.0, 4.0)
        _check_number(f"{where}.start", self.start, 0.0, 1.0)
        _check_number(f"{where}.end", self.end, 0.0, 1.0)
        if self.start >= self.end:
            raise RecipeError(f"{where}.end", f"must be after start ({self.start:g}), got {self.end:g}")
        _check_str(f"{where}.model", self.model, max_len=1024)
        _check_str(f"{where}.preprocess", self.preprocess, max_len=64)


def _check_step_range(where: str, start: Any, end: Any) -> None:
    _check_number(f"{where}.start", start, 0.0, 1.0)
    _check_number(f"{where}.end", end, 0.0, 1.0)
    if start >= end:
        raise RecipeError(f"{where}.end", f"must be after start ({start:g}), got {end:g}")


@dataclass
class Region:
    """A part of the picture with its own prompt: ``mask`` (white = this region, soft edges
    allowed) is conditioned by ``prompt``/``negative_prompt`` instead of the recipe's, from
    ``start`` to ``end`` (fractions of the denoising steps). ``weight`` scales how fully the
    region's prompt replaces the base prompt inside its mask (1 = fully). ``loras`` act inside
    the region only, on top of the recipe's own. The base prompt conditions everything no region
    covers."""

    mask: str
    prompt: str
    negative_prompt: str = ""
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    loras: list[Lora] = field(default_factory=list)

    def validate(self, where: str) -> None:
        _check_ref(f"{where}.mask", self.mask)
        if self.mask is None:
            raise RecipeError(f"{where}.mask", "a region needs its mask (white = the region)")
        _check_str(f"{where}.prompt", self.prompt, max_len=MAX_PROMPT_CHARS)
        if not self.prompt.strip():
            raise RecipeError(f"{where}.prompt", "is empty: a region without a prompt is the base prompt's area")
        _check_str(f"{where}.negative_prompt", self.negative_prompt, max_len=MAX_PROMPT_CHARS)
        _check_number(f"{where}.weight", self.weight, 0.0, 2.0)
        _check_step_range(where, self.start, self.end)
        _check_items(f"{where}.loras", self.loras, Lora, 8)


@dataclass
class Reference:
    """A reference image steering the result through an IP-Adapter: ``mode`` "style" or
    "composition", ``weight`` its scale, ``start``/``end`` the fraction of steps it acts in,
    ``model`` the adapter (id/path/name; empty = the family's default)."""

    image: str
    weight: float = 0.6
    start: float = 0.0
    end: float = 1.0
    mode: str = "style"
    model: str = ""

    def validate(self, where: str) -> None:
        _check_ref(f"{where}.image", self.image)
        if self.image is None:
            raise RecipeError(f"{where}.image", "a reference needs its image")
        _check_number(f"{where}.weight", self.weight, 0.0, 2.0)
        _check_step_range(where, self.start, self.end)
        if self.mode not in REFERENCE_MODES:
            raise RecipeError(f"{where}.mode", f"must be one of {', '.join(REFERENCE_MODES)}; got {self.mode!r}")
        _check_str(f"{where}.model", self.model, max_len=1024)


@dataclass
class Upscale:
    """An upscale step after the job: its picture is enlarged ``factor`` times by ``model`` (a
    super-resolution model: id/path/name; empty = Lanczos), then, when ``refine`` > 0, refined
    by a tiled img2img pass at that denoising strength with the recipe's prompt and controls.
    With ``init_image`` and ``strength`` 0 the job is the upscale alone (``brushwork upscale``)."""

    model: str = ""
    factor: float = 2.0
    refine: float = 0.0

    def validate(self, where: str) -> None:
        _check_str(f"{where}.model", self.model, max_len=1024)
        _check_number(f"{where}.factor", self.factor, 1.0, MAX_UPSCALE_FACTOR)
        if self.factor <= 1.0:
            raise RecipeError(f"{where}.factor", f"must be above 1 (an upscale enlarges), got {self.factor:g}")
        _check_number(f"{where}.refine", self.refine, 0.0, 1.0)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The upscaled size of a ``width`` x ``height`` picture: x factor, down to a multiple of 8."""
        return (int(width * self.factor) // 8 * 8, int(height * self.factor) // 8 * 8)


def _check_items(name: str, items: Any, cls: type[Any], most: int) -> None:
    if not isinstance(items, list):
        raise RecipeError(name, "must be a list")
    if len(items) > most:
        raise RecipeError(name, f"at most {most} allowed, got {len(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, cls):
            raise RecipeError(f"{name}[{i}]", f"must be a {cls.__name__}")
        item.validate(f"{name}[{i}]")


@dataclass
class Recipe:
    """A whole generation job. Construct, ``validate()``, run; ``to_json``/``from_json`` round-trip."""

    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""  # hub id, local folder, .safetensors file, or a name in the model folders
    vae: str = ""  # optional VAE override (id/path/name)
    loras: list[Lora] = field(default_factory=list)
    embeddings: list[Embedding] = field(default_factory=list)
    # None: the model's default (MODEL_DEFAULTED); a value given always wins.
    sampler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None  # None: a random seed, recorded in the result's recipe
    batch: int = 1
    init_image: str | None = None
    strength: float = 0.75  # img2img / inpaint denoising strength
    mask: str | None = None  # white = repaint
    mask_grow: int = 0  # pixels to dilate the mask by before inpainting
    mask_feather: int = 4  # pixels of soft edge when pasting back
    controls: list[Control] = field(default_factory=list)
    tiling: str = ""  # "", "x", "y", "xy": seamless on those axes
    regions: list[Region] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    upscale: Upscale | None = None
    preset: str = ""
    schema: int = SCHEMA_VERSION

    # ---- validation -------------------------------------------------------------------------

    def validate(self) -> Recipe:
        """Raise RecipeError naming the first bad field; return self so calls chain. Unset model
        defaults (None) pass; the rules that need them are checked once they are set."""
        if self.schema != SCHEMA_VERSION:
            raise RecipeError("schema", f"this Brushwork reads schema {SCHEMA_VERSION}, got {self.schema!r}")
        _check_str("prompt", self.prompt, max_len=MAX_PROMPT_CHARS)
        _check_str("negative_prompt", self.negative_prompt, max_len=MAX_PROMPT_CHARS)
        _check_str("model", self.model, max_len=1024)
        _check_str("vae", self.vae, max_len=1024)
        _check_str("preset", self.preset, max_len=256)
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise RecipeError("sampler", f"unknown sampler {self.sampler!r}; known: {', '.join(SAMPLERS)}")
        if self.steps is not None:
            _check_number("steps", self.steps, 1, MAX_STEPS, integer=True)
        if self.cfg is not None:
            _check_number("cfg", self.cfg, 0.0, MAX_CFG)
        for side in ("width", "height"):
            value = getattr(self, side)
            if value is None:
                continue
            _check_number(side, value, MIN_SIDE, MAX_SIDE, integer=True)
            if int(value) % 8:
                raise RecipeError(side, f"must be a multiple of 8, got {value}")
        if self.seed is not None:
            _check_number("seed", self.seed, 0, MAX_SEED, integer=True)
        _check_number("batch", self.batch, 1, MAX_BATCH, integer=True)
        _check_ref("init_image", self.init_image)
        _check_ref("mask", self.mask)
        _check_number("strength", self.strength, 0.0, 1.0)
        if self.upscale is not None and not isinstance(self.upscale, Upscale):
            raise RecipeError("upscale", "must be an Upscale")
        if self.upscale is not None:
            self.upscale.validate("upscale")
        upscale_only = self.task == "upscale"
        if upscale_only and (self.mask is not None or self.controls):
            raise RecipeError("strength", "0 with an upscale means 'upscale the init image as it is': "
                              "masks and controls need a strength above 0")
        if upscale_only and self.regions and self.upscale is not None and self.upscale.refine <= 0:
            raise RecipeError("regions", "an upscale alone (strength 0) runs no diffusion: regions act only "
                              "in its refine, so give upscale.refine a strength above 0")
        if self.init_image is not None and self.strength <= 0 and not upscale_only:
            raise RecipeError("strength", "must be above 0 for img2img (0 would return the input unchanged; "
                              "to only upscale it, add an upscale step)")
        if self.init_image is not None and not upscale_only and self.steps is not None \
                and int(self.steps * self.strength) < 1:
            # diffusers runs int(steps * strength) steps: zero would silently do nothing
            need_steps = math.ceil(1 / self.strength - 1e-9)
            need_strength = math.ceil(100 / self.steps) / 100
            raise RecipeError("strength", f"{self.strength:g} of {self.steps} steps runs no denoising step: "
                              f"use at least {need_steps} steps or a strength of at least {need_strength:g}")
        _check_number("mask_grow", self.mask_grow, 0, 256, integer=True)
        _check_number("mask_feather", self.mask_feather, 0, 256, integer=True)
        if self.mask is not None and self.init_image is None:
            raise RecipeError("mask", "inpainting needs init_image: the picture the mask applies to")
        if self.tiling not in TILING_MODES:
            raise RecipeError("tiling", f"must be one of '', 'x', 'y', 'xy'; got {self.tiling!r}")
        for name, items, cls, most in (("loras", self.loras, Lora, 8), ("embeddings", self.embeddings, Embedding, 8),
                                       ("controls", self.controls, Control, 8),
                                       ("regions", self.regions, Region, MAX_REGIONS),
                                       ("references", self.references, Reference, MAX_REFERENCES)):
            _check_items(name, items, cls, most)
        if self.upscale is not None and self.width is not None and self.height is not None:
            long_side = max(self.upscale.output_size(int(self.width), int(self.height)))
            if long_side > MAX_SIDE:
                raise RecipeError("upscale.factor", f"{self.width}x{self.height} x {self.upscale.factor:g} is "
                                  f"{long_side}px on its long side; at most {MAX_SIDE}")
        return self

    # ---- conveniences -----------------------------------------------------------------------

    @property
    def task(self) -> str:
        """txt2img, img2img, inpaint (ControlNets add to any of them), or upscale: the init image
        upscaled as it is (``upscale`` set, ``strength`` 0)."""
        if self.mask is not None:
            return "inpaint"
        if self.init_image is not None and self.upscale is not None and self.strength == 0:
            return "upscale"
        if self.init_image is not None:
            return "img2img"
        return "txt2img"

    @property
    def unset(self) -> tuple[str, ...]:
        """The MODEL_DEFAULTED fields left to the model (None), in MODEL_DEFAULTED's order."""
        return tuple(name for name in MODEL_DEFAULTED if getattr(self, name) is None)

    def with_defaults(self, defaults: Mapping[str, Any]) -> Recipe:
        """A copy with each unset MODEL_DEFAULTED field taken from ``defaults`` (the model's:
        ``models.defaults.ModelDefaults.as_fields()``); every field the recipe sets stays."""
        return self.replace(**{name: defaults[name] for name in self.unset if name in defaults})

    @property
    def generated_size(self) -> tuple[int, int]:
        """(width, height) the job generates at, before any upscale step; a RecipeError while the
        model's default is not filled in yet."""
        if self.width is None or self.height is None:
            raise RecipeError("width" if self.width is None else "height",
                              "is unset (the model's default): the size is known once the model's defaults are filled")
        return (int(self.width), int(self.height))

    @property
    def size(self) -> tuple[int, int]:
        """The size of the job's output: width x height, times the upscale factor when there is one."""
        if self.upscale is None:
            return self.generated_size
        return self.upscale.output_size(*self.generated_size)

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (lists are copied, never shared)."""
        return Recipe.from_dict({**self.to_dict(), **_plain(changes)})

    def image_refs(self) -> dict[str, str]:
        """Every image reference in this recipe, keyed by where it sits (for hashing/upload)."""
        refs = {}
        if self.init_image:
            refs["init_image"] = self.init_image
        if self.mask:
            refs["mask"] = self.mask
        for i, c in enumerate(self.controls):
            if c.image:
                refs[f"controls[{i}].image"] = c.image
            if c.signal and c.kind == "depth" and c.signal.get("data"):
                refs[f"controls[{i}].signal.data"] = c.signal["data"]
        for i, r in enumerate(self.regions):
            if r.mask:
                refs[f"regions[{i}].mask"] = r.mask
        for i, ref in enumerate(self.references):
            if ref.image:
                refs[f"references[{i}].image"] = ref.image
        return refs

    def map_refs(self, fn: Callable[[str], str]) -> Recipe:
        """A copy with every image reference replaced by ``fn(ref)``."""
        data = self.to_dict()
        if data["init_image"]:
            data["init_image"] = fn(data["init_image"])
        if data["mask"]:
            data["mask"] = fn(data["mask"])
        for c in data["controls"]:
            if c["image"]:
                c["image"] = fn(c["image"])
            if c["signal"] and c["kind"] == "depth" and c["signal"].get("data"):
                c["signal"]["data"] = fn(c["signal"]["data"])
        for r in data["regions"]:
            if r["mask"]:
                r["mask"] = fn(r["mask"])
        for ref in data["references"]:
            if ref["image"]:
                ref["image"] = fn(ref["image"])
        return Recipe.from_dict(data)

    # ---- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "recipe") -> Recipe:
        """Build from plain data; unknown keys and wrong shapes are RecipeErrors naming them."""
        if not isinstance(data, dict):
            raise RecipeError(where, f"must be an object, got {type(data).__name__}")
        data = dict(data)
        data.setdefault("schema", SCHEMA_VERSION)
        kwargs = _take_fields(cls, data, where="")
        for name, item_cls in (("loras", Lora), ("embeddings", Embedding), ("controls", Control),
                               ("regions", Region), ("references", Reference)):
            kwargs[name] = _build_items(name, kwargs.get(name, []), item_cls)
        upscale = kwargs.get("upscale")
        if isinstance(upscale, Upscale):
            kwargs["upscale"] = dataclasses.replace(upscale)
        elif upscale is not None:
            if not isinstance(upscale, dict):
                raise RecipeError("upscale", f"must be an object or null, got {type(upscale).__name__}")
            kwargs["upscale"] = Upscale(**_take_fields(Upscale, upscale, where="upscale."))
        recipe = cls(**kwargs)
        # JSON has no int/float distinction that survives every client: normalise whole numbers.
        for name in ("steps", "width", "height", "batch", "mask_grow", "mask_feather", "seed"):
            value = getattr(recipe, name)
            if isinstance(value, float) and value.is_integer():
                setattr(recipe, name, int(value))
        return recipe

    @classmethod
    def from_json(cls, text: str | bytes) -> Recipe:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecipeError("recipe", f"is not valid JSON ({exc})") from None
        return cls.from_dict(data)


def _build_items(name: str, items: Any, item_cls: type[Any]) -> list[Any]:
    """A list field's items as dataclasses (copies, never shared), from objects or plain data."""
    if not isinstance(items, list):
        raise RecipeError(name, f"must be a list, got {type(items).__name__}")
    built = []
    for i, item in enumerate(items):
        if isinstance(item, item_cls):
            built.append(dataclasses.replace(item))
            continue
        if item_cls is Lora and isinstance(item, str):  # "name:0.8" shorthand
            built.append(parse_lora_spec(item, where=f"{name}[{i}]"))
            continue
        if not isinstance(item, dict):
            raise RecipeError(f"{name}[{i}]", f"must be an object, got {type(item).__name__}")
        fields = _take_fields(item_cls, item, where=f"{name}[{i}].")
        if item_cls is Region:
            fields["loras"] = _build_items(f"{name}[{i}].loras", fields.get("loras", []), Lora)
        built.append(item_cls(**fields))
    return built


def _take_fields(cls: type, data: dict[str, Any], *, where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise RecipeError(f"{where}{key}", f"unknown field (known: {', '.join(sorted(known))})")
    return {k: v for k, v in data.items()}


def _plain(changes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in changes.items():
        if isinstance(value, list):
            value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v
                     for v in value]
        out[key] = value
    return out


def parse_lora_spec(spec: str, *, where: str = "lora") -> Lora:
    """``name``, ``name:0.8`` or ``C:/path/x.safetensors:0.8`` → Lora."""
    name, weight = spec, 1.0
    head, sep, tail = spec.rpartition(":")
    if sep and head and not tail.startswith(("/", "\\")):
        try:
            weight = float(tail)
            name = head
        except ValueError:
            pass
    lora = Lora(name=name, weight=weight)
    lora.validate(where)
    return lora


# <lora:name:0.8> tags in prompts (A1111 syntax) become Lora entries; the tag leaves the prompt.
_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([-+]?[0-9]*\.?[0-9]+))?>")


def extract_lora_tags(prompt: str) -> tuple[str, list[Lora]]:
    loras = [Lora(name=m.group(1).strip(), weight=float(m.group(2)) if m.group(2) else 1.0)
             for m in _LORA_TAG.finditer(prompt)]
    # "a cat <lora:x>, on a mat" → "a cat, on a mat": no space left stranded before a comma.
    cleaned = re.sub(r"\s+,", ",", re.sub(r"\s{2,}", " ", _LORA_TAG.sub("", prompt))).strip(" ,")
    return cleaned, loras
