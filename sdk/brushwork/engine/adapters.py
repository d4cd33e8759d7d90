"""LoRAs and textual-inversion embeddings on a loaded pipeline, applied idempotently.

``apply_adapters(pipe, loras, embeddings)`` makes the pipeline use exactly the LoRAs asked for, at
their weights, and know the embeddings' tokens. Calling it again with the same request does no work
(live mode calls it on every frame):

  - a LoRA file is loaded once, under a name derived from its content hash (the same file under two
    paths is one adapter; an edited file is a new one); LoRAs not requested stay loaded but inactive,
    the least recently used beyond ``MAX_LOADED_LORAS`` are deleted;
  - an embedding is loaded once per token; a token taken by a different file, or one that is already
    a word of the model's vocabulary, is a clear error, never a silent swap.

Formats: diffusers/peft LoRAs and kohya/A1111 ``lora_unet_...``/``lora_te_...`` files (diffusers
converts them); A1111 and diffusers embeddings, and SDXL embeddings (``clip_l``/``clip_g``). A file
that is not a LoRA (or an embedding) for this model family is an ``AdapterError`` naming the file and
the family. Pickle files (.pt/.ckpt/.bin) are refused unless the caller opts in: loading one can run
arbitrary code.

Prompt caching (prompts.EmbeddingCache) depends on what the text encoders do, so every change made
here is recorded on the text encoder modules and read back by ``adapter_state``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import AdapterError, BrushworkError, ModelNotFoundError, UnsafeCheckpointError

MAX_LOADED_LORAS = 8
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
_STATE_ATTR = "_brushwork_adapter_state"
_LORA_ORDER_ATTR = "_brushwork_lora_order"  # on the UNet: adapter name -> file, least recent first
_EMBEDDINGS_ATTR = "_brushwork_embeddings"  # on each tokenizer: token -> (file hash, file path)


# ------------------------------------------------------------------------------------------------
# files


_hash_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so live mode does not rehash 200 MB."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    digest = _hash_memo.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = _hash_memo[key] = h.hexdigest()
    return digest


def _check_file(path: str, what: str, allow_pickle: bool) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"{what} file not found: {path}")
    if p.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise UnsafeCheckpointError(
            f"{what} {p.name} is a pickle file ({p.suffix}); loading one can run arbitrary code. "
            "Use a .safetensors version, or allow pickles explicitly if you trust its source")
    return p


def _read_tensors(p: Path, what: str, allow_pickle: bool) -> dict[str, Any]:
    """The file's tensors; a corrupt or truncated file is an AdapterError, not a traceback."""
    try:
        if p.suffix.lower() in PICKLE_SUFFIXES and allow_pickle:
            import torch

            return torch.load(p, map_location="cpu", weights_only=False)
        from safetensors.torch import load_file

        return load_file(str(p))
    except Exception as exc:
        raise AdapterError(f"{what} {p.name} cannot be read (corrupt, truncated or not a "
                           f"safetensors file): {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def pipeline_family(pipe) -> str:
    """'sdxl' for pipelines with a second text encoder slot, else 'sd15' (used in messages)."""
    return "sdxl" if hasattr(pipe, "text_encoder_2") else "sd15"


# ------------------------------------------------------------------------------------------------
# state that prompts.py reads


def adapter_state(module) -> Any:
    """What adapters do to a text encoder, as a hashable value (changes whenever they change)."""
    state = getattr(module, _STATE_ATTR, None)
    loaded = tuple(getattr(module, "peft_config", None) or ())
    return (state, loaded)


def _record_state(pipe, state: Any) -> None:
    for name in ("text_encoder", "text_encoder_2", "unet"):
        module = getattr(pipe, name, None)
        if module is not None:
            setattr(module, _STATE_ATTR, state)


# ------------------------------------------------------------------------------------------------
# LoRA


def _loaded_loras(pipe) -> set[str]:
    if not hasattr(pipe, "get_list_adapters"):
        return set()
    return {name for names in pipe.get_list_adapters().values() for name in names}


@contextmanager
def _quiet_transformers():
    """transformers 5 prints a "LOAD REPORT" table calling every base weight MISSING when a LoRA
    goes into a text encoder: noise that would alarm users. Failures still raise."""
    root = logging.getLogger("transformers")
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _lora_failure(exc: BaseException) -> str:
    """diffusers/peft's reason, said the way an artist can act on it."""
    text = _short(exc)
    if "size mismatch" in text:
        return "its layer sizes differ from this model's (it was made for another base model)"
    if "Invalid LoRA checkpoint" in text:
        return "it is not a LoRA: no tensor in it has a LoRA name (lora_up/lora_down, lora_A/lora_B)"
    if "Target modules" in text and "not found" in text:
        return "it targets layers this model does not have (it was made for another base model)"
    return text


def _load_lora(pipe, path: Path, name: str, family: str, allow_pickle: bool) -> None:
    state_dict = _read_tensors(path, "LoRA", allow_pickle)
    if not state_dict:
        raise AdapterError(f"LoRA {path.name} is empty: no tensors in the file")
    before = _loaded_loras(pipe)
    try:
        with _quiet_transformers(), warnings.catch_warnings():
            # peft warns "multiple adapters in the model" on the second LoRA: that is the plan
            warnings.simplefilter("ignore", UserWarning)
            pipe.load_lora_weights(state_dict, adapter_name=name)
    except Exception as exc:
        _forget_partial(pipe, name)
        raise AdapterError(f"LoRA {path.name} does not fit this {family} model: {_lora_failure(exc)}") from None
    if name not in _loaded_loras(pipe) - before:
        # diffusers only warns when no key matches a layer of the model
        _forget_partial(pipe, name)
        raise AdapterError(f"LoRA {path.name} is not a LoRA for this {family} model: none of its "
                           "weights matches a layer of the UNet or text encoder")


def _forget_partial(pipe, name: str) -> None:
    try:
        if name in _loaded_loras(pipe):
            pipe.delete_adapters(name)
    except Exception:
        pass


def _activate(pipe, wanted: dict[str, float]) -> None:
    """Exactly ``wanted`` active in every component that holds LoRA layers; others off."""
    from diffusers import ModelMixin
    from diffusers.loaders.lora_base import (
        disable_lora_for_text_encoder,
        enable_lora_for_text_encoder,
        set_adapters_for_text_encoder,
    )

    for component in getattr(pipe, "_lora_loadable_modules", ("unet", "text_encoder")):
        model = getattr(pipe, component, None)
        present = set(getattr(model, "peft_config", None) or ())
        if model is None or not present:
            continue
        names = [n for n in wanted if n in present]
        weights = [wanted[n] for n in names]
        if isinstance(model, ModelMixin):
            if names:
                model.enable_lora()
                model.set_adapters(names, weights)
            else:
                model.disable_lora()
        elif names:
            enable_lora_for_text_encoder(model)
            set_adapters_for_text_encoder(names, model, weights)
        else:
            disable_lora_for_text_encoder(model)


def _apply_loras(pipe, loras, family: str, allow_pickle: bool) -> dict[str, float]:
    wanted: dict[str, float] = {}
    files: dict[str, Path] = {}
    for path, weight in loras:
        p = _check_file(path, "LoRA", allow_pickle)
        name = "bw_" + file_sha256(p)[:16]
        wanted[name] = wanted.get(name, 0.0) + float(weight)  # the same file twice: weights add up
        files[name] = p
    if not wanted and not _loaded_loras(pipe):
        return wanted
    unet = pipe.unet
    order: OrderedDict[str, str] = getattr(unet, _LORA_ORDER_ATTR, None) or OrderedDict()
    loaded = _loaded_loras(pipe)
    try:
        for name, p in files.items():
            if name not in loaded:
                _load_lora(pipe, p, name, family, allow_pickle)
            order[name] = str(p)
            order.move_to_end(name)
    except BrushworkError:
        # loading activates the new adapter: put back what was active before this bad request,
        # so the pipeline keeps making what it made (and the prompt cache stays true)
        setattr(unet, _LORA_ORDER_ATTR, order)
        present = _loaded_loras(pipe)
        _activate(pipe, {n: w for n, w in active_loras(pipe).items() if n in present})
        raise
    # forget adapters someone else deleted; evict the least recently used inactive ones
    for name in [n for n in order if n not in _loaded_loras(pipe)]:
        del order[name]
    idle = [n for n in order if n not in wanted]  # least recently used first
    while len(order) > MAX_LOADED_LORAS and idle:
        victim = idle.pop(0)
        pipe.delete_adapters(victim)
        del order[victim]
    setattr(unet, _LORA_ORDER_ATTR, order)
    _activate(pipe, wanted)
    return wanted


# ------------------------------------------------------------------------------------------------
# textual inversion


def _embedding_targets(pipe, family: str) -> list[tuple[str, Any, Any]]:
    """(state-dict key for SDXL files, tokenizer, text encoder) for each encoder of the pipeline."""
    targets = [("clip_l", getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None))]
    if family == "sdxl":
        targets.append(("clip_g", getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None)))
    return [t for t in targets if t[1] is not None and t[2] is not None]


def _embedding_vectors(data: Any):
    """The vectors of an embedding file in any of its usual layouts, or None if not recognised."""
    import torch

    if isinstance(data, torch.Tensor):
        return data
    if not isinstance(data, dict):
        return None
    if "string_to_param" in data:  # A1111 .pt
        data = data["string_to_param"]
        return next(iter(data.values()), None) if isinstance(data, dict) else None
    if "emb_params" in data:  # A1111 .safetensors
        return data["emb_params"]
    if len(data) == 1:  # diffusers: {token: vector}
        value = next(iter(data.values()))
        return value if isinstance(value, torch.Tensor) else None
    return None


def _load_embedding(pipe, p: Path, token: str, digest: str, family: str, allow_pickle: bool) -> None:
    tensors = _read_tensors(p, "embedding", allow_pickle)
    is_sdxl_file = "clip_l" in tensors or "clip_g" in tensors
    targets = _embedding_targets(pipe, family)
    if family == "sdxl" and not is_sdxl_file:
        raise AdapterError(f"embedding {p.name} is not an SDXL embedding (it has no clip_l/clip_g "
                           "vectors; it is probably for SD 1.5)")
    if family != "sdxl" and is_sdxl_file:
        raise AdapterError(f"embedding {p.name} is an SDXL embedding (clip_l/clip_g); this model is {family}")
    for key, tokenizer, encoder in targets:
        width = encoder.get_input_embeddings().weight.shape[-1]
        vectors = _embedding_vectors(tensors[key] if is_sdxl_file else tensors)
        if vectors is not None and vectors.shape[-1] != width:
            raise AdapterError(f"embedding {p.name} does not fit this {family} model: its vectors are "
                               f"{vectors.shape[-1]} wide, this text encoder's are {width}")
        if token in tokenizer.get_vocab():
            raise AdapterError(f"embedding token {token!r} is already a word of this model's vocabulary; "
                               f"give {p.name} another token")
    added_before = [set(tokenizer.get_added_vocab()) for _, tokenizer, _ in targets]
    try:
        with _quiet_transformers():  # "new embeddings will be initialized from..." is noise here
            for key, tokenizer, encoder in targets:
                source = {token: tensors[key]} if is_sdxl_file else tensors
                pipe.load_textual_inversion(source, token=token, tokenizer=tokenizer, text_encoder=encoder)
    except Exception as exc:
        # diffusers adds the tokens (tok, tok_1, ... for multi-vector files) before it copies the
        # vectors, so a failure can leave them in one or both tokenizers: take out every new one
        # (SDXL: a token must never live in one encoder only)
        for (_, tokenizer, encoder), before in zip(targets, added_before, strict=True):
            new = sorted(set(tokenizer.get_added_vocab()) - before)
            if new:
                try:
                    pipe.unload_textual_inversion(new, tokenizer=tokenizer, text_encoder=encoder)
                except Exception:
                    pass
        if isinstance(exc, KeyError):
            exc = ValueError(f"missing {exc}")
        raise AdapterError(f"embedding {p.name} does not fit this {family} model: {_short(exc)}") from None
    for _, tokenizer, _ in targets:
        registry = getattr(tokenizer, _EMBEDDINGS_ATTR, None)
        if registry is None:
            registry = {}
            setattr(tokenizer, _EMBEDDINGS_ATTR, registry)
        registry[token] = (digest, str(p))


def _apply_embeddings(pipe, embeddings, family: str, allow_pickle: bool) -> tuple:
    applied = []
    for path, token in embeddings:
        p = _check_file(path, "embedding", allow_pickle)
        token = (token or p.stem).strip()
        if not token or any(c.isspace() for c in token):
            raise AdapterError(f"embedding token {token!r} for {p.name} must be one word without spaces")
        digest = file_sha256(p)
        tokenizer = _embedding_targets(pipe, family)[0][1]
        taken = (getattr(tokenizer, _EMBEDDINGS_ATTR, None) or {}).get(token)
        if taken is not None and taken[0] != digest:
            raise AdapterError(f"embedding token {token!r} is already taken by {Path(taken[1]).name}; "
                               f"give {p.name} another token")
        if taken is None:
            _load_embedding(pipe, p, token, digest, family, allow_pickle)
        applied.append((token, digest))
    return tuple(sorted(applied))


# ------------------------------------------------------------------------------------------------


def apply_adapters(pipe, loras: list[tuple[str, float]], embeddings: list[tuple[str, str]], *,
                   allow_pickle: bool = False) -> None:
    """Make ``pipe`` use exactly these LoRAs (path, weight) and know these embeddings (path, token).

    Paths are already resolved. An empty token means the file's stem. Embeddings not asked for stay
    loaded: they only act where their token appears in a prompt.
    """
    family = pipeline_family(pipe)
    tokens = _apply_embeddings(pipe, embeddings, family, allow_pickle)
    active = _apply_loras(pipe, loras, family, allow_pickle)
    _record_state(pipe, (tuple(sorted(active.items())), tokens))


def active_loras(pipe) -> dict[str, float]:
    """{adapter name: weight} as last applied (for tests, the worker's status, PNG metadata)."""
    state = getattr(getattr(pipe, "unet", None), _STATE_ATTR, None)
    return dict(state[0]) if state else {}
