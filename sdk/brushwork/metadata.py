"""PNG metadata: what every Brushwork output carries, and reading it back (ours and A1111's).

Two chunks:
  - ``parameters`` (tEXt; iTXt when the text is not Latin-1, as Pillow and A1111 do): the
    AUTOMATIC1111 layout, so A1111, ComfyUI loaders, civitai and ``sd-parsers`` show our prompt,
    seed and model:
        <prompt with <lora:name:w> tags>
        Negative prompt: <negative>
        Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: <10 hex>, Model: <name>, ...
  - ``brushwork`` (compressed iTXt): ``{"recipe", "hashes", "sources", "version"}``, the whole
    Recipe (inputs as sha256: refs) with the sha256 of every model file and where each came from,
    which is what ``brushwork rerun`` reproduces from.

Key conventions (the engine's ``Result`` fills them): ``hashes``/``sources`` keys are ``model``,
``vae``, ``lora:<name>``, ``embedding:<name>``, ``controls[i].model``; ``sources`` may also map an
input's ``sha256:`` ref to the path it was read from, so a rerun elsewhere can find it again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin

from .assets import atomic_write_bytes
from .errors import InputImageError, RecipeError
from .recipe import Recipe

CHUNK_PARAMETERS = "parameters"
CHUNK_BRUSHWORK = "brushwork"


@dataclass
class ImageMeta:
    """What a PNG says about how it was made. ``recipe`` is None for images from other tools
    (then ``parameters`` holds what their A1111 text says)."""

    recipe: Recipe | None
    parameters: dict = field(default_factory=dict)
    parameters_text: str = ""
    hashes: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    version: str = ""


# ---- writing ------------------------------------------------------------------------------------


def save_png(image: Image.Image, path: str | os.PathLike, recipe: Recipe, *, hashes: dict | None = None,
             sources: dict | None = None) -> Path:
    """Write ``image`` as a PNG at ``path`` with both metadata chunks, atomically (a temp file
    beside it, then a rename: no reader ever sees half a file, a failure leaves nothing).

    ``recipe`` should be the one that reproduces *this* image: its own seed, batch 1.
    """
    from . import __version__

    hashes = dict(hashes or {})
    sources = dict(sources or {})
    info = PngImagePlugin.PngInfo()
    text = format_parameters(recipe, hashes=hashes, sources=sources)
    # add_text falls back to iTXt by itself when the prompt is not Latin-1.
    info.add_text(CHUNK_PARAMETERS, text)
    payload = {"recipe": recipe.to_dict(), "hashes": hashes, "sources": sources, "version": __version__}
    info.add_itxt(CHUNK_BRUSHWORK, json.dumps(payload, ensure_ascii=False, sort_keys=True), zip=True)
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return atomic_write_bytes(path, buf.getvalue())


def format_parameters(recipe: Recipe, *, hashes: dict | None = None, sources: dict | None = None) -> str:
    """The A1111 ``parameters`` text for ``recipe``."""
    from . import __version__

    hashes = hashes or {}
    prompt = recipe.prompt
    tags = " ".join(f"<lora:{_short_name(lora.name)}:{lora.weight:g}>" for lora in recipe.loras)
    if tags:
        prompt = f"{prompt} {tags}" if prompt else tags
    lines = [prompt]
    if recipe.negative_prompt:
        lines.append(f"Negative prompt: {recipe.negative_prompt}")
    # A Studio's result has every field set; a Recipe that leaves one to the model (None) omits it.
    fields: list[tuple[str, object]] = [(key, value) for key, value in (
        ("Steps", recipe.steps), ("Sampler", recipe.sampler),
        ("CFG scale", None if recipe.cfg is None else f"{recipe.cfg:g}")) if value is not None]
    if recipe.seed is not None:
        fields.append(("Seed", recipe.seed))
    if recipe.width is not None and recipe.height is not None:
        fields.append(("Size", f"{recipe.width}x{recipe.height}"))
    if hashes.get("model"):
        fields.append(("Model hash", str(hashes["model"])[:A1111_MODEL_HASH_DIGITS]))
    if recipe.model:
        fields.append(("Model", _short_name(recipe.model)))
    if recipe.vae:
        if hashes.get("vae"):
            fields.append(("VAE hash", str(hashes["vae"])[:A1111_MODEL_HASH_DIGITS]))
        fields.append(("VAE", _short_name(recipe.vae)))
    if recipe.init_image:
        fields.append(("Denoising strength", f"{recipe.strength:g}"))
    if recipe.mask:
        fields.append(("Mask blur", recipe.mask_feather))
        if recipe.mask_grow:
            fields.append(("Mask grow", recipe.mask_grow))
    if recipe.tiling:
        fields.append(("Tiling", "True" if recipe.tiling == "xy" else recipe.tiling))
    if recipe.upscale is not None:  # the upscale step as A1111's hires fix writes it (Size stays the base size)
        fields.append(("Hires upscale", f"{recipe.upscale.factor:g}"))
        fields.append(("Hires upscaler", _short_name(recipe.upscale.model) if recipe.upscale.model else "Lanczos"))
    for i, c in enumerate(recipe.controls):
        model = c.model or f"{c.kind} (default)"
        fields.append((f"ControlNet {i}", f"Module: {c.preprocess or 'none'}, Model: {_short_name(model)}, "
                                          f"Weight: {c.strength:g}, Guidance Start: {c.start:g}, "
                                          f"Guidance End: {c.end:g}"))
    sources = sources or {}
    loras = [(_short_name(lora.name), f"lora:{lora.name}") for lora in recipe.loras]
    lora_hashes = _short_hashes(loras, hashes, sources, addnet=True)
    if lora_hashes:
        fields.append(("Lora hashes", lora_hashes))
    ti_hashes = _short_hashes([(e.token or _short_name(e.name), f"embedding:{e.name}") for e in recipe.embeddings],
                              hashes, sources, addnet=False)
    if ti_hashes:
        fields.append(("TI hashes", ti_hashes))
    if recipe.preset:
        fields.append(("Preset", recipe.preset))
    fields.append(("Version", f"brushwork {__version__}"))
    lines.append(", ".join(f"{key}: {_quote(str(value))}" for key, value in fields))
    return "\n".join(lines)


# ---- A1111's hashes ---------------------------------------------------------------------------
# AUTOMATIC1111 modules/hashes.py: a checkpoint's "Model hash" is the first 10 hex digits of the
# whole file's sha256 (sd_models shorthash); "Lora hashes" (extensions-builtin/Lora network.py
# set_hash) are the first 12 of sha256(file, use_addnet_hash=is_safetensors), where the "addnet"
# hash (kohya-ss) covers a safetensors file after its 8-byte header length and JSON header; "TI
# hashes" (textual_inversion.py) are the first 12 of the whole file's sha256.

A1111_MODEL_HASH_DIGITS = 10
A1111_SHORT_HASH_DIGITS = 12
_addnet_cache: dict[tuple[str, int, int], str] = {}


def addnet_hash(path: str | os.PathLike) -> str:
    """sha256 hex of a safetensors file's bytes after its header (A1111/kohya "addnet" hash,
    civitai's AutoV3), remembered per (path, size, mtime)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _addnet_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            header = f.read(8)
            if len(header) < 8:
                raise InputImageError(f"{path}: too short to be a safetensors file")
            f.seek(8 + int.from_bytes(header, "little"))
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _addnet_cache[key] = h.hexdigest()
    return _addnet_cache[key]


def _short_hashes(named: list[tuple[str, str]], hashes: dict, sources: dict, *, addnet: bool) -> str:
    """"name: 12hex, ..." as A1111 writes them. A LoRA's safetensors file is hashed from the path
    it was loaded from; where no file is known (a hub repo), the entry is left out rather than
    written with a hash A1111 would not find."""
    out = []
    for name, key in named:
        path = str(sources.get(key) or "")
        is_file = bool(path) and os.path.isfile(path)
        if addnet and is_file and path.lower().endswith(".safetensors"):
            digest = addnet_hash(path)
        elif is_file and hashes.get(key):
            digest = str(hashes[key])  # whole-file sha256: what A1111 hashes for other files
        else:
            continue
        # A1111 drops ":" and "," from the name so the "name: hash, ..." list stays parseable.
        clean = name.replace(":", "").replace(",", "")
        out.append(f"{clean}: {digest[:A1111_SHORT_HASH_DIGITS]}")
    return ", ".join(out)


def _short_name(ref: str) -> str:
    """A checkpoint file → its stem (what A1111 shows); hub ids and names stay as they are."""
    if ref.lower().endswith((".safetensors", ".ckpt", ".pt", ".bin")) or os.sep in ref and os.path.exists(ref):
        return Path(ref).stem
    return ref


def _quote(value: str) -> str:
    # A1111's rule (infotext quote()): JSON-quote a value holding a comma, colon or newline.
    if "," not in value and "\n" not in value and ":" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


# ---- reading ------------------------------------------------------------------------------------


def read_metadata(path: str | os.PathLike) -> ImageMeta:
    """Read what a PNG says about how it was made; InputImageError when it is not a PNG or
    carries neither chunk."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise InputImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputImageError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise InputImageError(f"{path}: permission denied") from None
    if head != b"\x89PNG\r\n\x1a\n":
        raise InputImageError(f"{path}: not a PNG (generation metadata is stored in PNG files)")
    try:
        with Image.open(path) as img:
            img.load()  # text chunks after the image data are read only by load()
            info = dict(img.info)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputImageError(f"{path}: corrupt PNG ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    return meta_from_info(info, where=str(path))


def meta_from_info(info: dict, *, where: str = "image") -> ImageMeta:
    """ImageMeta from a PIL ``img.info`` dict."""
    text = info.get(CHUNK_PARAMETERS)
    text = str(text) if text is not None else ""
    raw = info.get(CHUNK_BRUSHWORK)
    if raw is None and not text:
        raise InputImageError(f"{where}: has no generation metadata (no 'parameters' or 'brushwork' chunk)")
    meta = ImageMeta(recipe=None, parameters=parse_parameters(text) if text else {}, parameters_text=text)
    if raw is not None:
        try:
            payload = json.loads(str(raw))
        except ValueError:
            raise InputImageError(f"{where}: its brushwork metadata is not valid JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("recipe"), dict):
            raise InputImageError(f"{where}: its brushwork metadata has no recipe")
        try:
            meta.recipe = Recipe.from_dict(payload["recipe"])
        except RecipeError as exc:
            raise InputImageError(f"{where}: the recipe it carries is invalid ({exc})") from None
        meta.hashes = dict(payload.get("hashes") or {})
        meta.sources = dict(payload.get("sources") or {})
        meta.version = str(payload.get("version", ""))
    return meta


# One "Key: value" item of the last line; the value may be JSON-quoted (A1111's own pattern).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_parameters(text: str) -> dict:
    """Parse an A1111 ``parameters`` text → ``{"prompt", "negative_prompt", "Steps": "20", ...}``
    (values as text, quoted values unquoted). Reads images from A1111 and compatible tools."""
    lines = text.strip().split("\n")
    settings: dict[str, str] = {}
    # The settings line is the last one that looks like "Key: value, Key: value, ..." (3+ items).
    if lines and len(_PARAM.findall(lines[-1])) >= 3:
        for key, value in _PARAM.findall(lines.pop()):
            value = value.strip()
            if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            settings[key.strip()] = value
    # As A1111's parse_generation_parameters: each line is stripped before "Negative prompt:" is
    # looked for, and lines are joined with "\n" once the text is not empty.
    prompt, negative, in_negative = "", "", False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        if in_negative:
            negative += ("\n" if negative else "") + line
        else:
            prompt += ("\n" if prompt else "") + line
    return {"prompt": prompt, "negative_prompt": negative, **settings}


def recipe_from_parameters(params: dict) -> Recipe:
    """A best-effort Recipe from A1111 parameters (prompt, negative, steps, sampler, CFG, seed,
    size, model name, <lora:> tags). Settings it does not know are ignored."""
    from .recipe import SAMPLERS, extract_lora_tags

    prompt, loras = extract_lora_tags(params.get("prompt", ""))
    data: dict = {"prompt": prompt, "negative_prompt": params.get("negative_prompt", ""), "loras": loras}
    number_fields = {"Steps": ("steps", int), "CFG scale": ("cfg", float), "Seed": ("seed", int)}
    for key, (name, kind) in number_fields.items():
        if key in params:
            try:
                data[name] = kind(float(params[key])) if kind is int else kind(params[key])
            except ValueError:
                raise RecipeError(name, f"the image's {key} {params[key]!r} is not a number") from None
    sampler = params.get("Sampler")
    if sampler and params.get("Schedule type") == "Karras" and f"{sampler} Karras" in SAMPLERS:
        sampler = f"{sampler} Karras"
    if sampler in SAMPLERS:
        data["sampler"] = sampler
    size = re.fullmatch(r"(\d+)x(\d+)", params.get("Size", ""))
    if size:
        data["width"], data["height"] = int(size.group(1)), int(size.group(2))
    if params.get("Model"):
        data["model"] = params["Model"]
    return Recipe.from_dict(data)
