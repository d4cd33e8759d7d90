"""Reference images through IP-Adapters, loaded and run the diffusers way.

A job's references go through three stages:

1. ``read_images`` and ``resolve`` (before the base model loads): every picture decodes and every
   adapter and image encoder is found (offline: present), so a bad input fails in milliseconds.
2. ``load(pipe, ...)``: the adapters are loaded with diffusers' own ``pipe.load_ip_adapter`` (all
   of the job's at once, one per reference, so each has its own scale), then *detached* again:
   the UNet keeps its plain attention processors between calls. Each reference's image embedding
   is computed once with diffusers' own ``encode_image`` and cached by (image hash, encoder).
3. ``attached(job)`` around each pipeline call: the IP-Adapter processors go in, the embeddings
   go to the call as ``ip_adapter_image_embeds`` (the form the pipeline's own
   ``prepare_ip_adapter_image_embeds`` builds from pictures, so the result is the same), each
   reference's scale follows its mode and step range, step by step; afterwards the plain
   processors come back. Warm pipelines are shared across jobs: nothing of one job's references
   is left in the UNet for the next.

Modes (``set_ip_adapter_scale`` block dictionaries, InstantStyle's finding as diffusers documents
it for SDXL): *style* = the first up block with cross-attention, its attention 1
(SDXL: ``up.block_0 [0, w, 0]``); *composition* = the last down block with cross-attention, its last
attention (SDXL: ``down.block_2 [0, w]``). On SD 1.5 the same rule picks ``up.block_1 [0, w, 0]`` and
``down.block_2 [0, w]``: diffusers documents the blocks for SDXL only, so on SD 1.5 this is the
analogous layer, not a published result. *full* (the classic IP-Adapter: every layer at ``w``) is
supported here for a Recipe that allows it.

The loaded adapters stay with the UNet (detached) until a job needs another set, so a live session
with the same references does not reload them; ``Studio.unload()`` frees them with the model.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from ..conditioning.images import open_image, to_rgb
from ..errors import BrushworkError, ModelNotFoundError, RecipeError
from ..models import bundled
from ..models import ip_adapter as ipa
from ..models.loading import file_hash
from ..models.sources import PathPolicy
from ..recipe import Recipe

log = logging.getLogger(__name__)

_STATE_ATTR = "_brushwork_ip_adapters"
EMBED_CACHE = 16  # reference embeddings kept per model (a live session re-uses the same few)


# ---- before any model loads --------------------------------------------------------------------


def read_images(recipe: Recipe, read: Callable[[str], bytes]) -> list[Image.Image]:
    """Each reference's picture, decoded (RGB); a broken one is an InputImageError naming it."""
    return [to_rgb(open_image(read(ref.image), what=f"references[{i}].image"))
            for i, ref in enumerate(recipe.references)]


def resolve(recipe: Recipe, family: str | None, settings, *, allow_paths: PathPolicy,
            model_key: str | None = None) -> list[ipa.AdapterRef]:
    """Each reference's adapter (empty model: the family's default) with its image encoder.
    ``model_key``: the base model's; the bundled demo has no IP-Adapter of its own."""
    refs = []
    for i, ref in enumerate(recipe.references):
        if not ref.model and model_key is not None and bundled.is_demo(model_key):
            raise ModelNotFoundError(
                f"references[{i}]: the bundled demo model has no IP-Adapter (the public ones are for full-size "
                "SD 1.5 / SDXL models); use reference images with an SD 1.5 or SDXL model, or name an adapter "
                "made for the demo")
        try:
            refs.append(ipa.resolve_adapter(ref.model, family, settings, allow_paths=allow_paths))
        except BrushworkError as exc:
            raise type(exc)(f"references[{i}]: {exc}") from None
    return refs


# ---- loaded state, kept on the UNet ----------------------------------------------------------


@dataclass
class _State:
    """The IP-Adapters loaded into one UNet (detached between calls)."""

    keys: tuple[str, ...] = ()
    processors: dict = field(default_factory=dict)  # attention name -> IP-Adapter processor
    projection: Any = None  # the UNet's MultiIPAdapterImageProjection while attached
    encoders: dict = field(default_factory=dict)  # encoder key -> (CLIPVisionModelWithProjection, processor)
    embeds: OrderedDict = field(default_factory=OrderedDict)  # (image, encoder, hidden, dtype) -> (pos, neg)


def _state(unet) -> _State:
    state = getattr(unet, _STATE_ATTR, None)
    if state is None:
        state = _State()
        setattr(unet, _STATE_ATTR, state)
    return state


def loaded_keys(unet) -> tuple[str, ...]:
    """The adapters this UNet holds (detached); () when none."""
    state = getattr(unet, _STATE_ATTR, None)
    return state.keys if state is not None else ()


def is_attached(unet) -> bool:
    """Whether IP-Adapter processors are in the UNet right now (only inside ``attached``)."""
    return getattr(unet, "encoder_hid_proj", None) is not None and \
        unet.config.get("encoder_hid_dim_type") == "ip_image_proj"


@dataclass
class ReferenceRun:
    """A job's loaded references: the embeddings per reference and how to attach them."""

    pipe: Any
    state: _State
    embeds: list  # per reference: tensor [2 or 1, 1, ...] (negative first with CFG), on the device
    modes: tuple[str, ...]
    weights: tuple[float, ...]


def load(pipe, adapters: list[ipa.AdapterRef], images: list[Image.Image], image_hashes: list[str], *,
         modes, weights, cfg: float, dtype, device: str, settings) -> ReferenceRun:
    """Load ``adapters`` into ``pipe``'s UNet (unless it holds exactly these), encode the images."""
    unet = pipe.unet
    state = _state(unet)
    offline = bool(getattr(settings, "offline", False))
    allow_pickle = bool(getattr(settings, "allow_pickle", False))
    keys = tuple(a.key for a in adapters)
    if state.keys != keys:
        _check_fits(adapters, unet)
        _drop(state)
        _load_adapters(pipe, adapters, state, offline=offline)
        state.keys = keys
    layers = state.projection.image_projection_layers
    do_cfg = cfg > 1 and unet.config.get("time_cond_proj_dim") is None  # the pipelines' own rule
    embeds = []
    for adapter, image, digest, layer in zip(adapters, images, image_hashes, layers, strict=True):
        encoder, processor = _encoder(state, adapter.encoder, dtype=dtype, device=device, offline=offline,
                                      allow_pickle=allow_pickle)
        hidden = type(layer).__name__ != "ImageProjection"  # diffusers' test: plain vs "plus" adapters
        pos, neg = _embed(state, pipe, encoder, processor, image, digest, adapter.encoder.key, hidden, device)
        single = pos[None, :]
        embeds.append(torch.cat([neg[None, :], single], dim=0) if do_cfg else single)
    return ReferenceRun(pipe=pipe, state=state, embeds=embeds, modes=tuple(modes),
                        weights=tuple(float(w) for w in weights))


def _check_fits(adapters: list[ipa.AdapterRef], unet) -> None:
    want = unet.config.get("cross_attention_dim")
    for i, adapter in enumerate(adapters):
        if adapter.cross_attention_dim is not None and adapter.cross_attention_dim != want:
            raise RecipeError(f"references[{i}].model", f"{adapter.name} is an IP-Adapter for another model "
                              f"(cross-attention width {adapter.cross_attention_dim}, this model's is {want})")


def _load_adapters(pipe, adapters: list[ipa.AdapterRef], state: _State, *, offline: bool) -> None:
    unet = pipe.unet
    plain = dict(unet.attn_processors)
    feature_extractor = getattr(pipe, "feature_extractor", None)
    quiet = logging.getLogger("diffusers.loaders.ip_adapter")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warning that no encoder was loaded: we load ours ourselves
    try:
        pipe.load_ip_adapter([a.folder for a in adapters], subfolder=[a.subfolder for a in adapters],
                             weight_name=[a.weight_name for a in adapters], image_encoder_folder=None,
                             local_files_only=offline)
    except Exception as exc:  # diffusers raises OSError / ValueError / KeyError for a bad file
        _restore(unet, plain)
        names = ", ".join(a.describe() for a in adapters)
        text = " ".join(str(exc).split())[:240]
        if isinstance(exc, OSError):
            raise ModelNotFoundError(f"IP-Adapter {names}: cannot get it ({text})") from exc
        raise RecipeError("references", f"IP-Adapter {names} does not load into this model ({text})") from exc
    finally:
        quiet.setLevel(level)
        if hasattr(pipe, "feature_extractor"):  # we bring our own image processor per encoder
            pipe.register_modules(feature_extractor=feature_extractor)
    state.processors = {name: proc for name, proc in unet.attn_processors.items() if _is_ip(proc)}
    state.projection = unet.encoder_hid_proj
    _restore(unet, plain)


def _drop(state: _State) -> None:
    state.keys, state.processors, state.projection = (), {}, None
    state.encoders.clear()
    state.embeds.clear()


def _is_ip(processor) -> bool:
    return type(processor).__name__.startswith("IPAdapter")


def _restore(unet, plain: dict) -> None:
    """The UNet as diffusers' ``unload_ip_adapter`` leaves it, with the processors it had before."""
    unet.set_attn_processor(plain)
    unet.encoder_hid_proj = None
    unet.config.encoder_hid_dim_type = None


def _encoder(state: _State, ref: ipa.EncoderRef, *, dtype, device: str, offline: bool, allow_pickle: bool):
    found = state.encoders.get(ref.key)
    if found is not None:
        return found
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    kwargs: dict = {"dtype": dtype, "local_files_only": offline or ref.source == "folder"}
    if ref.subfolder:
        kwargs["subfolder"] = ref.subfolder
    if not allow_pickle:
        kwargs["use_safetensors"] = True  # never a pytorch_model.bin unless pickles are allowed
    try:
        encoder = CLIPVisionModelWithProjection.from_pretrained(ref.location, **kwargs).to(device).eval()
    except Exception as exc:
        text = " ".join(str(exc).split())[:240]
        raise ModelNotFoundError(f"image encoder {ref.describe()}: cannot load ({text})") from exc
    size = encoder.config.image_size  # what diffusers' load_ip_adapter builds for its pipelines
    found = (encoder, CLIPImageProcessor(size=size, crop_size=size))
    state.encoders[ref.key] = found  # kept with this adapter set (usually one: most adapters read ViT-H)
    return found


def _embed(state: _State, pipe, encoder, processor, image: Image.Image, digest: str, encoder_key: str,
           hidden: bool, device: str):
    """(image embedding, its unconditional counterpart) through the pipeline class's own
    ``encode_image`` (the code a diffusers call with ``ip_adapter_image`` runs)."""
    dtype = next(encoder.parameters()).dtype
    key = (digest, encoder_key, hidden, str(dtype))
    if key in state.embeds:
        state.embeds.move_to_end(key)
        return state.embeds[key]
    shim = _EncoderShim(encoder, processor)
    with torch.inference_mode():
        pos, neg = type(pipe).encode_image(shim, image, device, 1, hidden)
    state.embeds[key] = (pos, neg)
    while len(state.embeds) > EMBED_CACHE:
        state.embeds.popitem(last=False)
    return pos, neg


class _EncoderShim:
    """What ``encode_image`` reads off ``self``: the encoder and its image processor (the
    pipeline itself is left untouched)."""

    def __init__(self, image_encoder, feature_extractor):
        self.image_encoder = image_encoder
        self.feature_extractor = feature_extractor


# ---- per pipeline call ---------------------------------------------------------------------------


def block_scale(unet, mode: str, weight: float):
    """``set_ip_adapter_scale``'s config for one reference: a float (full) or a block dictionary."""
    if mode == "full":
        return float(weight)
    blocks: dict[tuple[str, int], set[int]] = {}
    for name in unet.attn_processors:
        parts = name.split(".")
        if not name.endswith("attn2.processor") or parts[0] not in ("down_blocks", "up_blocks"):
            continue
        blocks.setdefault((parts[0], int(parts[1])), set()).add(int(parts[3]))
    if mode == "style":
        side, index = "up", min(b for s, b in blocks if s == "up_blocks")
        count = len(blocks[("up_blocks", index)])
        chosen = min(1, count - 1)
    elif mode == "composition":
        side, index = "down", max(b for s, b in blocks if s == "down_blocks")
        count = len(blocks[("down_blocks", index)])
        chosen = count - 1
    else:
        raise RecipeError("references", f"unknown reference mode {mode!r}")
    return {side: {f"block_{index}": [float(weight) if j == chosen else 0.0 for j in range(count)]}}


class _Scales:
    """Sets each reference's scale for a step: its mode's blocks inside its step range, else 0."""

    def __init__(self, run: ReferenceRun, steps: tuple[tuple[int, ...], ...]):
        unet = run.pipe.unet
        self.pipe = run.pipe
        self.steps = steps
        self.on = [block_scale(unet, m, w) for m, w in zip(run.modes, run.weights, strict=True)]
        self.current: tuple[bool, ...] | None = None

    def set_for(self, step: int) -> None:
        active = tuple(step in s for s in self.steps)
        if active != self.current:
            self.pipe.set_ip_adapter_scale([on if a else 0.0 for on, a in zip(self.on, active, strict=True)])
            self.current = active


@contextlib.contextmanager
def attached(run: ReferenceRun | None, pipe, steps: tuple[tuple[int, ...], ...]):
    """Inside: ``pipe``'s UNet runs with the references (scales set for step 0); yields
    (extra call kwargs, a step callback or None). Afterwards the plain processors are back."""
    if run is None or not steps:
        yield {}, None
        return
    unet = pipe.unet
    plain = dict(unet.attn_processors)
    unet.set_attn_processor({name: run.state.processors.get(name, proc) for name, proc in plain.items()})
    unet.encoder_hid_proj = run.state.projection
    unet.config.encoder_hid_dim_type = "ip_image_proj"
    try:
        scales = _Scales(run, steps)
        scales.set_for(0)

        def on_step(i: int) -> None:
            scales.set_for(i + 1)  # diffusers calls back after step i: set the next step's

        yield {"ip_adapter_image_embeds": run.embeds}, on_step
    finally:
        _restore(unet, plain)


def chain(on_step: Callable[[int], None] | None, inner):
    """A ``callback_on_step_end`` that sets the next step's scales, then runs ``inner`` (progress,
    cancel) if any."""
    if on_step is None:
        return inner

    def callback(pipe, i, t, callback_kwargs):
        on_step(i)
        return inner(pipe, i, t, callback_kwargs) if inner is not None else callback_kwargs

    return callback


# ---- the Studio's entry point ---------------------------------------------------------------------


def for_job(pipe, recipe: Recipe, adapters: list[ipa.AdapterRef], images: list[Image.Image], *, cfg: float,
            dtype, device: str, settings, hashes: dict, sources: dict) -> ReferenceRun | None:
    """The job's references loaded and encoded (None without any); records each adapter's hash
    and source as ``references[i].model`` (its encoder's source as ``references[i].encoder``) for
    the PNG metadata. ``recipe``'s image refs are sha256: refs (``Studio.prepare``): they key
    the embedding cache."""
    if not recipe.references:
        return None
    digests = [ref.image.split(":", 1)[1] for ref in recipe.references]
    run = load(pipe, adapters, images, digests, modes=[r.mode for r in recipe.references],
               weights=[r.weight for r in recipe.references], cfg=cfg, dtype=dtype, device=device,
               settings=settings)
    for i, adapter in enumerate(adapters):
        sources[f"references[{i}].model"] = adapter.describe()
        sources[f"references[{i}].encoder"] = adapter.encoder.describe()
        local = adapter.path if adapter.source == "single_file" else _cached(adapter)
        if local is not None:
            hashes[f"references[{i}].model"] = file_hash(local)
    return run


def _cached(adapter: ipa.AdapterRef):
    from pathlib import Path

    from ..models.sources import hub_cached_file

    found = hub_cached_file(adapter.folder, f"{adapter.subfolder}/{adapter.weight_name}".lstrip("/"))
    return Path(found) if found else None
