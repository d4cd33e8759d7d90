"""encode_prompts: equal to diffusers for plain prompts, A1111 weights, chunking, the cache."""

from __future__ import annotations

import pytest
import test_prompts_tinykit as kit
import torch
from brushwork.engine.prompts import EmbeddingCache, count_tokens, encode_prompts, prompt_chunks
from brushwork.errors import BrushworkError, RecipeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def sd15(tiny_models):
    return kit.load("sd15", tiny_models)


@pytest.fixture(scope="module")
def sdxl(tiny_models):
    return kit.load("sdxl", tiny_models)


def enc(pipe, prompt, negative="", family="sd15", **kw):
    return encode_prompts(pipe, prompt, negative, family=family, cache=EmbeddingCache(), **kw)


def words(n: int) -> str:
    """n tokens exactly with the byte-level test tokenizer: 'cat' and 'dog' are one token each."""
    return " ".join(["cat", "dog"] * (n // 2) + ["cat"] * (n % 2))


def close(a, b, atol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol), (a - b).abs().max()


# -------------------------------------------------------------------------------------------------
# a plain prompt gives exactly what the pipeline gives


@pytest.mark.parametrize("negative", ["", "blurry, ugly dog"])
def test_plain_prompt_equals_pipeline_sd15(sd15, negative):
    ours = enc(sd15, "a red cat, sitting on a mat", negative)
    ref_pos, ref_neg = sd15.encode_prompt("a red cat, sitting on a mat", "cpu", 1, True, negative)
    assert set(ours) == {"prompt_embeds", "negative_prompt_embeds"}
    close(ours["prompt_embeds"], ref_pos, atol=1e-6)
    close(ours["negative_prompt_embeds"], ref_neg, atol=1e-6)


def test_clip_skip_sd15_is_the_normed_earlier_layer(sd15):
    # diffusers' own clip_skip path (text_encoder.text_model.final_layer_norm) crashes with
    # transformers 5, so the reference is computed here the way diffusers meant it
    ours = enc(sd15, "a red cat", "ugly", clip_skip=1)
    for name, text in (("prompt_embeds", "a red cat"), ("negative_prompt_embeds", "ugly")):
        ids = sd15.tokenizer(text, padding="max_length", max_length=77, return_tensors="pt").input_ids
        with torch.no_grad():
            out = sd15.text_encoder(ids, output_hidden_states=True)
            ref = sd15.text_encoder.final_layer_norm(out.hidden_states[-2])
        close(ours[name], ref, atol=1e-6)
    assert not torch.allclose(ours["prompt_embeds"], enc(sd15, "a red cat")["prompt_embeds"])


@pytest.mark.parametrize("negative", ["", "blurry dog"])
@pytest.mark.parametrize("clip_skip", [None, 1])
def test_plain_prompt_equals_pipeline_sdxl(sdxl, negative, clip_skip):
    ours = enc(sdxl, "a red cat, sitting", negative, family="sdxl", clip_skip=clip_skip)
    # an empty negative means "none" for SDXL: force_zeros_for_empty_prompt gives zeros
    ref = sdxl.encode_prompt("a red cat, sitting", device="cpu", num_images_per_prompt=1,
                             do_classifier_free_guidance=True, negative_prompt=negative or None,
                             clip_skip=clip_skip)
    names = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
    assert set(ours) == set(names)
    for name, expected in zip(names, ref, strict=True):
        if clip_skip and name.startswith("negative"):
            continue  # diffusers ignores clip_skip for the negative prompt; we apply it to both
        close(ours[name], expected, atol=1e-6)
    if not negative:
        assert not ours["negative_prompt_embeds"].any()


def test_sdxl_empty_negative_can_be_encoded_instead_of_zeroed(sdxl):
    ours = enc(sdxl, "a cat", "", family="sdxl", zero_empty_negative=False)
    ref = sdxl.encode_prompt("a cat", device="cpu", num_images_per_prompt=1,
                             do_classifier_free_guidance=True, negative_prompt="")
    close(ours["negative_prompt_embeds"], ref[1], atol=1e-6)
    close(ours["negative_pooled_prompt_embeds"], ref[3], atol=1e-6)


# -------------------------------------------------------------------------------------------------
# long prompts: chunks of 75, never cut


def test_long_prompt_is_chunked_not_cut(sd15):
    long = words(200)
    assert count_tokens(sd15, long) == (200, 3)
    ours = enc(sd15, long, "ugly")
    assert ours["prompt_embeds"].shape == (1, 3 * 77, 32)
    assert ours["negative_prompt_embeds"].shape == (1, 3 * 77, 32)
    # the first chunk is exactly what the pipeline makes of the prompt (it keeps only 75 tokens) ...
    ref_pos, _ = sd15.encode_prompt(long, "cpu", 1, True, "")
    close(ours["prompt_embeds"][:, :77], ref_pos, atol=1e-6)
    # ... and the words past token 75, which the pipeline drops, still count here
    changed = enc(sd15, long[:-3] + "red", "ugly")
    assert torch.equal(changed["prompt_embeds"][:, :154], ours["prompt_embeds"][:, :154])
    assert not torch.allclose(changed["prompt_embeds"][:, 154:], ours["prompt_embeds"][:, 154:])


def test_chunks_are_encoded_separately_and_concatenated(sd15):
    a, b = words(30), "red dog on a mat"
    ours = enc(sd15, f"{a} BREAK {b}")
    ref_a, _ = sd15.encode_prompt(a, "cpu", 1, False)
    ref_b, _ = sd15.encode_prompt(b, "cpu", 1, False)
    close(ours["prompt_embeds"], torch.cat([ref_a, ref_b], dim=1), atol=1e-6)


def test_negative_is_padded_with_empty_chunks(sd15):
    ours = enc(sd15, words(80), "ugly")
    _, ref_neg = sd15.encode_prompt("x", "cpu", 1, True, "ugly")
    empty, _ = sd15.encode_prompt("", "cpu", 1, False)
    close(ours["negative_prompt_embeds"], torch.cat([ref_neg, empty], dim=1), atol=1e-6)
    # and the other way round: a long negative pads the prompt
    flipped = enc(sd15, "a cat", words(160))
    assert flipped["prompt_embeds"].shape == flipped["negative_prompt_embeds"].shape == (1, 3 * 77, 32)


def test_exactly_75_tokens_is_one_chunk(sd15):
    assert count_tokens(sd15, words(75)) == (75, 1)
    assert count_tokens(sd15, words(76)) == (76, 2)
    assert count_tokens(sd15, "") == (0, 1)
    assert count_tokens(sd15, "BREAK") == (0, 1)  # A1111: the BREAK closes the empty chunk; no second one


# A1111 modules/sd_hijack_clip.py tokenize_line: every BREAK calls next_chunk(), which appends the
# chunk being filled even when it is empty; after the loop the last chunk is appended only
# "if chunk.tokens or not chunks". prompt_parser.parse_prompt_attention splits at
# r"\s*\bBREAK\b\s*". The chunk counts below are what that code gives for each prompt.
@pytest.mark.parametrize("prompt, a1111_chunks", [
    ("a red cat BREAK", [3]),  # a trailing BREAK adds no empty chunk
    ("a red cat BREAK ", [3]),
    ("BREAK a red cat", [0, 3]),  # a leading BREAK closes an empty first chunk
    ("a red BREAK BREAK cat", [2, 0, 1]),  # consecutive BREAKs: an empty chunk between them
    ("a red BREAK BREAK", [2, 0]),
    ("BREAK", [0]),
    ("", [0]),
    ("a BREAK b BREAK c", [1, 1, 1]),
])
def test_break_chunks_as_a1111(sd15, prompt, a1111_chunks):
    chunks = prompt_chunks(sd15, sd15.tokenizer, prompt)
    assert [len(tokens) for tokens, _ in chunks] == a1111_chunks


def test_a_full_chunk_then_break_starts_one_new_chunk(sd15):
    # 75 tokens fill a chunk; A1111 closes it at the BREAK (not before), so no empty chunk appears.
    assert [len(t) for t, _ in prompt_chunks(sd15, sd15.tokenizer, words(75) + " BREAK b")] == [75, 1]
    assert [len(t) for t, _ in prompt_chunks(sd15, sd15.tokenizer, words(75) + " BREAK")] == [75]


def test_trailing_break_encodes_like_no_break(sd15):
    plain = enc(sd15, "a red cat")
    trailing = enc(sd15, "a red cat BREAK")
    assert trailing["prompt_embeds"].shape == plain["prompt_embeds"].shape == (1, 77, 32)
    assert torch.equal(trailing["prompt_embeds"], plain["prompt_embeds"])


def test_comma_backtrack_keeps_phrases_together(sd15):
    # 70 tokens, a comma, then an 8-token phrase: the phrase moves whole into the second chunk
    prompt = words(70) + ", " + words(8)
    chunks = prompt_chunks(sd15, sd15.tokenizer, prompt)
    assert [len(tokens) for tokens, _ in chunks] == [71, 8]
    comma = sd15.tokenizer.get_vocab()[",</w>"]
    assert chunks[0][0][-1] == comma
    # without a comma nearby the chunk is simply full
    assert [len(t) for t, _ in prompt_chunks(sd15, sd15.tokenizer, words(79))] == [75, 4]


def test_sdxl_long_prompt(sdxl):
    ours = enc(sdxl, words(100), "", family="sdxl", zero_empty_negative=False)
    width = sdxl.text_encoder.config.hidden_size + sdxl.text_encoder_2.config.hidden_size
    assert ours["prompt_embeds"].shape == ours["negative_prompt_embeds"].shape == (1, 154, width)
    # the pooled vector is the first chunk's, as in A1111
    ref = sdxl.encode_prompt(words(100), device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False)
    close(ours["prompt_embeds"][:, :77], ref[0], atol=1e-6)
    close(ours["pooled_prompt_embeds"], ref[2], atol=1e-6)


def test_a_runaway_prompt_is_a_clear_error(sd15):
    with pytest.raises(RecipeError, match=r"prompt: is too long: 3 chunks.*at most 2"):
        enc(sd15, words(200), "", max_chunks=2)
    with pytest.raises(RecipeError, match=r"negative_prompt: is too long"):
        enc(sd15, "cat", words(200), max_chunks=2)


# -------------------------------------------------------------------------------------------------
# weights


def test_weights_scale_tokens_and_restore_the_mean(sd15):
    plain = enc(sd15, "red cat")["prompt_embeds"][0]
    weighted = enc(sd15, "(red:1.5) cat")["prompt_embeds"][0]
    w = torch.ones(77)
    w[1] = 1.5  # BOS, red, cat, EOS ...
    expected = plain * w[:, None]
    expected = expected * (plain.mean() / expected.mean())
    close(weighted, expected, atol=1e-5)
    assert torch.allclose(weighted.mean(), plain.mean(), atol=1e-6)


def test_weight_one_and_plain_are_identical(sd15):
    assert torch.equal(enc(sd15, "(red:1) cat")["prompt_embeds"], enc(sd15, "red cat")["prompt_embeds"])


def test_weights_apply_to_the_negative_and_to_sdxl(sd15, sdxl):
    a = enc(sd15, "cat", "(ugly:1.4) dog")["negative_prompt_embeds"]
    b = enc(sd15, "cat", "ugly dog")["negative_prompt_embeds"]
    assert not torch.allclose(a, b)
    a = enc(sdxl, "((red)) cat", family="sdxl")
    b = enc(sdxl, "red cat", family="sdxl")
    assert not torch.allclose(a["prompt_embeds"], b["prompt_embeds"])
    close(a["pooled_prompt_embeds"], b["pooled_prompt_embeds"])  # weights never touch pooled


# -------------------------------------------------------------------------------------------------
# the cache


def test_cache_hits_when_nothing_changed(sd15):
    cache = EmbeddingCache()
    first = encode_prompts(sd15, "a cat", "ugly", family="sd15", cache=cache)
    again = encode_prompts(sd15, "a cat", "ugly", family="sd15", cache=cache)
    assert cache.stats() == {"hits": 1, "misses": 1, "entries": 1}
    assert again["prompt_embeds"] is first["prompt_embeds"]
    encode_prompts(sd15, "a cat!", "ugly", family="sd15", cache=cache)
    encode_prompts(sd15, "a cat", "ugly", family="sd15", cache=cache, clip_skip=1)
    assert (cache.hits, cache.misses) == (1, 3)


def test_cache_is_bounded_and_clearable(sd15):
    cache = EmbeddingCache(max_entries=2)
    for prompt in ("a", "b", "c"):
        encode_prompts(sd15, prompt, "", family="sd15", cache=cache)
    assert cache.stats()["entries"] == 2
    encode_prompts(sd15, "a", "", family="sd15", cache=cache)  # evicted: encoded again
    assert cache.misses == 4
    cache.clear()
    assert cache.stats()["entries"] == 0


def test_cache_tells_pipelines_apart(sd15, tiny_models):
    other = kit.load("sd15", tiny_models)  # same weights, new objects
    cache = EmbeddingCache()
    encode_prompts(sd15, "a cat", "", family="sd15", cache=cache)
    encode_prompts(other, "a cat", "", family="sd15", cache=cache)
    assert cache.misses == 2


# -------------------------------------------------------------------------------------------------
# unhappy paths


def test_bad_arguments(sd15):
    with pytest.raises(BrushworkError, match="unknown model family 'sd3'"):
        encode_prompts(sd15, "a", "", family="sd3")
    with pytest.raises(RecipeError, match="clip_skip"):
        encode_prompts(sd15, "a", "", family="sd15", clip_skip=-1)


prompts = st.lists(st.sampled_from(list("ab ,:.()[]\\0123") + [" BREAK ", "cat", "é", "😀"]),
                   max_size=60).map("".join)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=prompts, negative=prompts)
def test_any_text_encodes(sd15, prompt, negative):
    out = enc(sd15, prompt, negative)
    pos, neg = out["prompt_embeds"], out["negative_prompt_embeds"]
    assert pos.shape == neg.shape and pos.shape[1] % 77 == 0
    assert torch.isfinite(pos).all() and torch.isfinite(neg).all()


def test_long_weighted_prompts_drive_both_pipelines(sd15, sdxl):
    """The embeddings go straight into the pipelines, long prompts included."""
    prompt = "(a red cat:1.3), " + words(120) + " BREAK [blurry] sunset"
    for pipe, family in ((sd15, "sd15"), (sdxl, "sdxl")):
        kwargs = enc(pipe, prompt, "ugly, " + words(10), family=family)
        image = pipe(**kwargs, num_inference_steps=2, height=64, width=64, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images[0]
        assert image.shape == (64, 64, 3) and torch.isfinite(torch.from_numpy(image)).all()


long_prompts = st.lists(st.sampled_from(["cat", "dog", ",", " ", "(red:1.3)", "[blue]", "a photo of",
                                         " BREAK ", "é", "((", "))"]), max_size=200).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=long_prompts)
def test_chunking_never_drops_or_reorders_a_token(sd15, prompt):
    from brushwork.engine.prompt_syntax import parse_prompt_sections

    tok = sd15.tokenizer
    chunks = prompt_chunks(sd15, tok, prompt)
    assert all(len(tokens) <= 75 and len(tokens) == len(weights) for tokens, weights in chunks)
    expected = [(t, w) for section in parse_prompt_sections(prompt) for text, w in section
                for t in tok.convert_tokens_to_ids(tok.tokenize(text))]
    assert [(t, w) for tokens, weights in chunks for t, w in zip(tokens, weights, strict=True)] == expected
    # every BREAK closes a chunk (A1111's next_chunk()), and there is always at least one
    assert len(chunks) >= max(1, len(parse_prompt_sections(prompt)) - 1)
