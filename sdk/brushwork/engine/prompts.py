"""Prompts → embeddings the pipelines take: A1111 weights, long prompts in chunks, and a cache.

``encode_prompts(pipe, prompt, negative, family=...)`` returns the ``prompt_embeds`` (and for SDXL
the pooled) keyword arguments for a diffusers SD 1.5 / SDXL pipeline call.

How a prompt becomes embeddings (what AUTOMATIC1111 does, so prompts behave the way artists expect):
  1. prompt_syntax splits it into (text, weight) fragments and BREAK sections;
  2. each fragment is tokenized on its own; tokens are packed into chunks of 75 (a BREAK starts a new
     chunk; when a chunk fills up and a comma came within the last 20 tokens, the words after that
     comma move to the next chunk so a phrase is not cut in half);
  3. each chunk is wrapped as BOS + tokens + EOS + padding = 77 tokens and encoded on its own;
  4. weighted chunks: hidden states × weight per token, then rescaled so the chunk's mean is what it
     was (A1111's "emphasis"), which keeps the overall magnitude the UNet was trained on;
  5. chunks are concatenated along the sequence axis: nothing is ever cut off. The negative prompt
     gets empty chunks until it has as many as the prompt (the UNet needs equal lengths for CFG).
A plain prompt of at most 75 tokens gives exactly what the pipeline's own ``encode_prompt`` gives.

Live mode re-encodes only when something that matters changed: results are kept in an
``EmbeddingCache`` keyed by the text encoders' identity, the prompts, clip skip and the adapter
state that ``adapters.apply_adapters`` records (LoRAs may change the text encoder; textual
inversion adds tokens).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

import torch

from ..errors import BrushworkError, RecipeError
from .adapters import adapter_state
from .prompt_syntax import parse_prompt_sections

FAMILIES = ("sd15", "sdxl")
CHUNK_TOKENS = 75  # + BOS + EOS = CLIP's 77
COMMA_BACKTRACK = 20  # A1111's default "comma padding backtrack"
MAX_CHUNKS = 64  # 4800 tokens: beyond that a prompt is a mistake, and cross-attention cost explodes


# ------------------------------------------------------------------------------------------------
# tokens → chunks


def _comma_token(tokenizer) -> int | None:
    return tokenizer.get_vocab().get(",</w>")


def _fragment_ids(pipe, tokenizer, text: str) -> list[int]:
    if not text:
        return []
    convert = getattr(pipe, "maybe_convert_prompt", None)
    if convert is not None:  # textual inversion: "tok" → "tok tok_1 tok_2" for multi-vector files
        text = convert(text, tokenizer)
    # tokenize() rather than __call__: the same ids, without transformers' warning that a long
    # prompt "will result in indexing errors" (it will not: we chunk it)
    return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))


def prompt_chunks(pipe, tokenizer, prompt: str) -> list[tuple[list[int], list[float]]]:
    """The prompt as chunks of at most 75 (token id, weight) pairs, before BOS/EOS/padding.

    Chunking follows A1111's ``tokenize_line`` (modules/sd_hijack_clip.py): a BREAK closes the
    chunk being filled even when it is empty (so a leading BREAK or ``a BREAK BREAK b`` gives an
    empty chunk), and the last chunk is kept only if it holds tokens or is the only one (so a
    trailing BREAK adds nothing, and an empty prompt is one empty chunk).
    """
    comma = _comma_token(tokenizer)
    chunks: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1
    for index, section in enumerate(parse_prompt_sections(prompt)):
        if index > 0:  # the BREAK before this section
            chunks.append((tokens, weights))
            tokens, weights, last_comma = [], [], -1
        for text, weight in section:
            for token in _fragment_ids(pipe, tokenizer, text):
                if token == comma:
                    last_comma = len(tokens)
                elif (len(tokens) == CHUNK_TOKENS and last_comma != -1
                      and len(tokens) - last_comma <= COMMA_BACKTRACK):
                    # move the words after the last comma into the next chunk
                    cut = last_comma + 1
                    chunks.append((tokens[:cut], weights[:cut]))
                    tokens, weights = tokens[cut:], weights[cut:]
                    last_comma = -1
                if len(tokens) == CHUNK_TOKENS:
                    chunks.append((tokens, weights))
                    tokens, weights, last_comma = [], [], -1
                tokens.append(token)
                weights.append(weight)
    if tokens or not chunks:
        chunks.append((tokens, weights))
    return chunks


def _wrap(tokenizer, chunk: tuple[list[int], list[float]]) -> tuple[list[int], list[float], int]:
    """BOS + tokens + EOS + padding to 77; returns ids, weights and the count of real positions."""
    tokens, weights = chunk
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id]
    real = len(ids)
    ids += [pad] * (CHUNK_TOKENS + 2 - real)
    return ids, [1.0, *weights, 1.0] + [1.0] * (CHUNK_TOKENS + 2 - real), real


# ------------------------------------------------------------------------------------------------
# chunks → hidden states


def _encoders(pipe, family: str) -> list[tuple[Any, Any]]:
    pairs = [(getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None))]
    if family == "sdxl":
        pairs.append((getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None)))
    pairs = [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]
    if not pairs:
        raise BrushworkError(f"this {family} pipeline has no text encoder to encode the prompt with")
    return pairs


def _device(pipe, encoder) -> torch.device:
    # An encoder no offload hook moves runs where its weights are. Asking the pipeline instead
    # (_execution_device) walks every module of every component (diffusers' group-offload lookup):
    # milliseconds per job on real models, more with a ControlNet, and the cache key asks every job.
    if not (hasattr(encoder, "_hf_hook") or hasattr(encoder, "_diffusers_hook")):
        return next(encoder.parameters()).device
    device = getattr(pipe, "_execution_device", None)
    if device is None:
        device = next(encoder.parameters()).device
    return torch.device(device)


def _run_encoder(pipe, encoder, ids: list[list[int]], reals: list[int], *, family: str,
                 clip_skip: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hidden states [chunks, 77, dim] of one encoder, and its pooled output [chunks, dim] if any."""
    device = _device(pipe, encoder)
    input_ids = torch.tensor(ids, dtype=torch.long, device=device)
    mask = None
    if getattr(encoder.config, "use_attention_mask", False):
        mask = torch.tensor([[1] * r + [0] * (len(ids[0]) - r) for r in reals], device=device)
    out = encoder(input_ids, attention_mask=mask, output_hidden_states=True)
    pooled = out[0] if out[0].ndim == 2 else None  # CLIPTextModelWithProjection's text_embeds
    if family == "sdxl":
        # SDXL always reads the penultimate layer; clip_skip counts further back (diffusers' rule)
        hidden = out.hidden_states[-((clip_skip or 0) + 2)]
    elif clip_skip:
        # transformers 5 flattened CLIPTextModel (no .text_model): diffusers 0.42's own clip_skip
        # path crashes on it, so find the final norm either way
        final_norm = getattr(encoder, "text_model", encoder).final_layer_norm
        hidden = final_norm(out.hidden_states[-(clip_skip + 1)])
    else:
        hidden = out[0]
    return hidden, pooled


def _emphasis(hidden: torch.Tensor, weights: list[list[float]]) -> torch.Tensor:
    """A1111 emphasis per chunk: scale each token, then restore the chunk's original mean."""
    out = []
    for z, w in zip(hidden, weights, strict=True):
        if all(x == 1.0 for x in w):
            out.append(z)
            continue
        dtype = z.dtype
        z = z.float()  # fp16 means over 77 x 2048 values lose digits; the result goes back to fp16
        original_mean = z.mean()
        z = z * torch.tensor(w, dtype=z.dtype, device=z.device)[:, None]
        new_mean = z.mean()
        if new_mean.abs() > 1e-12:  # a zero mean has nothing to restore (and must not divide)
            z = z * (original_mean / new_mean)
        out.append(z.to(dtype))
    return torch.stack(out)


def _encode_both(pipe, prompt: str, negative: str, *, family: str, clip_skip: int | None,
                 zero_negative: bool, max_chunks: int) -> dict[str, torch.Tensor]:
    encoders = _encoders(pipe, family)
    per_encoder = []
    for tokenizer, encoder in encoders:
        pos = prompt_chunks(pipe, tokenizer, prompt)
        neg = prompt_chunks(pipe, tokenizer, negative)
        per_encoder.append((tokenizer, encoder, pos, neg))
    # Two tokenizers may disagree (a token added to one only): every encoder, and the negative
    # prompt, gets empty chunks up to the longest, so all concatenate cleanly.
    n = max(max(len(p), len(q)) for _, _, p, q in per_encoder)
    if n > max_chunks:
        which = "prompt" if max(len(p) for _, _, p, _ in per_encoder) == n else "negative_prompt"
        raise RecipeError(which, f"is too long: {n} chunks of {CHUNK_TOKENS} tokens "
                                 f"(at most {max_chunks}, {max_chunks * CHUNK_TOKENS} tokens)")
    hidden_parts, pooled = [], None
    for tokenizer, encoder, pos, neg in per_encoder:
        pos = pos + [([], [])] * (n - len(pos))
        neg = neg + [([], [])] * (n - len(neg))
        wrapped = [_wrap(tokenizer, c) for c in pos + neg]
        ids, weights, reals = zip(*wrapped, strict=True)
        hidden, pooled_out = _run_encoder(pipe, encoder, list(ids), list(reals), family=family,
                                          clip_skip=clip_skip)
        # emphasis per encoder, as A1111 does for SDXL: each encoder has its own tokens
        hidden_parts.append(_emphasis(hidden, list(weights)))
        if pooled_out is not None:
            pooled = pooled_out
    hidden = torch.cat(hidden_parts, dim=-1)  # SDXL: both encoders' features side by side
    dim = hidden.shape[-1]
    prompt_embeds = hidden[:n].reshape(1, n * hidden.shape[1], dim)
    negative_embeds = hidden[n:].reshape(1, n * hidden.shape[1], dim)
    dtype = encoders[-1][1].dtype
    result = {"prompt_embeds": prompt_embeds.to(dtype)}
    if zero_negative:
        result["negative_prompt_embeds"] = torch.zeros_like(result["prompt_embeds"])
    else:
        result["negative_prompt_embeds"] = negative_embeds.to(dtype)
    if family == "sdxl":
        if pooled is None:
            raise BrushworkError("this SDXL pipeline's last text encoder gives no pooled output "
                                 "(it must be a CLIPTextModelWithProjection)")
        # A1111 and compel take the pooled vector of the first chunk
        result["pooled_prompt_embeds"] = pooled[0:1].to(dtype)
        result["negative_pooled_prompt_embeds"] = (torch.zeros_like(pooled[0:1]) if zero_negative
                                                   else pooled[n:n + 1]).to(dtype)
    return result


# ------------------------------------------------------------------------------------------------
# the cache


class EmbeddingCache:
    """A small LRU of encoded prompts. ``hits``/``misses`` are for tests and benchmarks."""

    def __init__(self, max_entries: int = 32):
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, tuple[list, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, owners: list) -> dict | None:
        with self._lock:
            entry = self._entries.get(key)
            # ids can be reused after a model is freed: the weak references prove it is the same one
            if entry is not None and [ref() for ref in entry[0]] == owners:
                self._entries.move_to_end(key)
                self.hits += 1
                return dict(entry[1])
            self.misses += 1
            return None

    def put(self, key: tuple, owners: list, value: dict) -> None:
        with self._lock:
            self._entries[key] = ([weakref.ref(o) for o in owners], dict(value))
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries)}


default_cache = EmbeddingCache()


def encode_prompts(pipe, prompt: str, negative: str, *, family: str, clip_skip: int | None = None,
                   zero_empty_negative: bool | None = None, cache: EmbeddingCache | None = None,
                   max_chunks: int = MAX_CHUNKS) -> dict[str, torch.Tensor]:
    """Pipeline keyword arguments for ``prompt`` and ``negative`` (batch of one; the pipeline
    repeats them for ``num_images_per_prompt``).

    ``clip_skip`` follows diffusers (1 = the layer before the last; A1111's "Clip skip 2" is 1) and
    applies to both prompts. SDXL with an empty negative prompt and
    ``force_zeros_for_empty_prompt`` in the pipeline config gives zero negative embeddings, as the
    pipeline does when no negative prompt is passed (``zero_empty_negative`` overrides that).
    ``cache``: defaults to the module's shared cache; pass ``EmbeddingCache(0)``-like or your own.
    """
    if family not in FAMILIES:
        raise BrushworkError(f"unknown model family {family!r} for prompt encoding (known: sd15, sdxl)")
    if clip_skip is not None and (not isinstance(clip_skip, int) or clip_skip < 0):
        raise RecipeError("clip_skip", f"must be a whole number of 0 or more, got {clip_skip!r}")
    if zero_empty_negative is None:
        zero_empty_negative = family == "sdxl" and bool(
            getattr(pipe, "config", {}).get("force_zeros_for_empty_prompt", False))
    zero_negative = zero_empty_negative and negative == ""
    encoders = _encoders(pipe, family)
    owners = [enc for _, enc in encoders]
    key = (
        family, prompt, negative, clip_skip, zero_negative, max_chunks,
        tuple((id(tok), len(tok), id(enc), adapter_state(enc), str(_device(pipe, enc)), str(enc.dtype))
              for tok, enc in encoders),
    )
    cache = default_cache if cache is None else cache
    found = cache.get(key, owners)
    if found is not None:
        return found
    with torch.no_grad():
        result = _encode_both(pipe, prompt, negative, family=family, clip_skip=clip_skip,
                              zero_negative=zero_negative, max_chunks=max_chunks)
    cache.put(key, owners, result)
    return dict(result)


def count_tokens(pipe, prompt: str) -> tuple[int, int]:
    """(tokens, chunks) of a prompt with the pipeline's first tokenizer: for a UI's "75/150" hint."""
    tokenizer = getattr(pipe, "tokenizer", None) or pipe.tokenizer_2
    chunks = prompt_chunks(pipe, tokenizer, prompt)
    return sum(len(tokens) for tokens, _ in chunks), len(chunks)
