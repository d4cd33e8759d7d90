"""apply_adapters: LoRA (peft, kohya, old diffusers names) and textual inversion, idempotent,
with clear errors for files that do not fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import test_prompts_tinykit as kit
import torch
from brushwork.engine import adapters
from brushwork.engine.adapters import AdapterError, active_loras, apply_adapters
from brushwork.engine.prompts import EmbeddingCache, count_tokens, encode_prompts
from brushwork.errors import ModelNotFoundError, UnsafeCheckpointError
from safetensors.torch import load_file, save_file

# -------------------------------------------------------------------------------------------------
# files people download, made from the tiny models


def _peft_lora(family: str, root: Path, out: Path, *, text_encoder: bool, seed: int) -> Path:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = kit.load(family, root)
    torch.manual_seed(seed)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]),
                          adapter_name="mk")
    if text_encoder:
        pipe.text_encoder.add_adapter(
            LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]),
            adapter_name="mk")
    for model in (pipe.unet, pipe.text_encoder):
        for name, param in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (a no-op LoRA); make it do something
                param.data.normal_(0, 0.3)
    te = get_peft_model_state_dict(pipe.text_encoder, adapter_name="mk") if text_encoder else None
    type(pipe).save_lora_weights(out.parent, unet_lora_layers=get_peft_model_state_dict(pipe.unet, adapter_name="mk"),
                                 text_encoder_lora_layers=te, weight_name=out.name)
    return out


def _kohya_name(key: str) -> str:
    component, rest = key.split(".", 1)
    module, kind = rest.rsplit(".", 2)[0], rest.rsplit(".", 2)[1]
    suffix = {"lora_A": "lora_down.weight", "lora_B": "lora_up.weight"}[kind]
    prefix = "lora_unet_" if component == "unet" else "lora_te_text_model_"
    return prefix + module.replace(".", "_") + "." + suffix


def _xl_widths(tiny_models) -> tuple[int, int]:
    """Hidden sizes of the tiny SDXL's two text encoders (clip_l, clip_g), from its configs."""
    import json

    return tuple(json.loads((Path(tiny_models.sdxl) / name / "config.json").read_text())["hidden_size"]
                 for name in ("text_encoder", "text_encoder_2"))


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_models):
    xl_widths = _xl_widths(tiny_models)
    root = tiny_models
    d = tmp_path_factory.mktemp("adapter-files")
    f = {}
    f["peft"] = _peft_lora("sd15", root, d / "style_peft.safetensors", text_encoder=True, seed=1)
    f["unet_only"] = _peft_lora("sd15", root, d / "unet_only.safetensors", text_encoder=False, seed=2)
    f["third"] = _peft_lora("sd15", root, d / "third.safetensors", text_encoder=False, seed=3)
    f["sdxl"] = _peft_lora("sdxl", root, d / "xl_style.safetensors", text_encoder=True, seed=4)
    tensors = load_file(f["peft"])
    # kohya / A1111 (the civitai form): lora_unet_... / lora_te_..., lora_down/up and alpha
    kohya = {_kohya_name(k): v for k, v in tensors.items()}
    kohya.update({k.replace("lora_down.weight", "alpha"): torch.tensor(4.0) for k in list(kohya)
                  if k.endswith("lora_down.weight")})
    save_file(kohya, d / "style_kohya.safetensors")
    f["kohya"] = d / "style_kohya.safetensors"
    # diffusers files saved before transformers 5 name the text encoder "text_model.encoder..."
    old = {k.replace("text_encoder.encoder.", "text_encoder.text_model.encoder."): v for k, v in tensors.items()}
    save_file(old, d / "style_old.safetensors")
    f["old"] = d / "style_old.safetensors"
    save_file({"conv.weight": torch.randn(4, 4)}, d / "not_a_lora.safetensors")
    f["not_lora"] = d / "not_a_lora.safetensors"
    (d / "corrupt.safetensors").write_bytes(b"\x00\x01 definitely not safetensors" * 10)
    f["corrupt"] = d / "corrupt.safetensors"
    save_file({}, d / "empty.safetensors")
    f["empty"] = d / "empty.safetensors"
    torch.save({"a": torch.zeros(1)}, d / "pickled.pt")
    f["pickle"] = d / "pickled.pt"
    # textual inversion: A1111 safetensors (emb_params), diffusers ({token: vector}), SDXL
    g = torch.Generator().manual_seed(5)
    save_file({"emb_params": torch.randn(2, 32, generator=g)}, d / "mystyle.safetensors")
    f["ti"] = d / "mystyle.safetensors"
    save_file({"<thing>": torch.randn(32, generator=g)}, d / "thing.safetensors")
    f["ti_diffusers"] = d / "thing.safetensors"
    save_file({"clip_l": torch.randn(2, xl_widths[0], generator=g),
               "clip_g": torch.randn(2, xl_widths[1], generator=g)}, d / "xl_emb.safetensors")
    f["ti_sdxl"] = d / "xl_emb.safetensors"
    save_file({"emb_params": torch.randn(1, 48, generator=g)}, d / "wide.safetensors")
    f["ti_wide"] = d / "wide.safetensors"
    return f


@pytest.fixture
def sd15(tiny_models):
    return kit.load("sd15", tiny_models)


@pytest.fixture
def sdxl(tiny_models):
    return kit.load("sdxl", tiny_models)


def text(pipe, prompt="a cat", family="sd15"):
    return encode_prompts(pipe, prompt, "", family=family, cache=EmbeddingCache())["prompt_embeds"]


def unet_out(pipe, cond=None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=g)
    cond = torch.randn(1, 77, pipe.unet.config.cross_attention_dim, generator=g) if cond is None else cond
    with torch.no_grad():
        return pipe.unet(x, torch.tensor(500), cond).sample


def count_calls(monkeypatch, pipe, method: str) -> list:
    calls = []
    original = getattr(pipe, method)

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipe, method, spy)
    return calls


# -------------------------------------------------------------------------------------------------
# LoRA


@pytest.mark.parametrize("fmt", ["peft", "kohya", "old"])
def test_lora_formats_change_unet_and_text_encoder(sd15, files, fmt):
    base_text, base_unet = text(sd15), unet_out(sd15)
    apply_adapters(sd15, [(str(files[fmt]), 1.0)], [])
    assert not torch.allclose(text(sd15), base_text)
    assert not torch.allclose(unet_out(sd15), base_unet)
    assert list(active_loras(sd15).values()) == [1.0]


def test_kohya_and_peft_forms_of_one_lora_act_the_same(sd15, files, tiny_models):
    apply_adapters(sd15, [(str(files["peft"]), 0.8)], [])
    peft_text, peft_unet = text(sd15), unet_out(sd15)
    other = kit.load("sd15", tiny_models)
    apply_adapters(other, [(str(files["kohya"]), 0.8)], [])
    assert torch.allclose(text(other), peft_text, atol=1e-5)
    assert torch.allclose(unet_out(other), peft_unet, atol=1e-5)


def test_idempotent_and_loaded_once(sd15, files, monkeypatch):
    loads = count_calls(monkeypatch, sd15, "load_lora_weights")
    for _ in range(3):
        apply_adapters(sd15, [(str(files["peft"]), 0.7)], [])
    assert len(loads) == 1
    assert len(sd15.get_list_adapters()["unet"]) == 1
    # a weight change reuses the loaded adapter
    apply_adapters(sd15, [(str(files["peft"]), 0.2)], [])
    assert len(loads) == 1 and list(active_loras(sd15).values()) == [0.2]


def test_weights_act_and_removal_restores_the_model_exactly(sd15, files):
    base_text, base_unet = text(sd15), unet_out(sd15)
    apply_adapters(sd15, [(str(files["peft"]), 1.0)], [])
    full = unet_out(sd15)
    apply_adapters(sd15, [(str(files["peft"]), 0.5)], [])
    half = unet_out(sd15)
    # LoRA is linear in its weight at each layer; the whole net is not, but half sits between
    assert 0 < (half - base_unet).abs().mean() < (full - base_unet).abs().mean()
    apply_adapters(sd15, [], [])
    assert torch.equal(text(sd15), base_text)
    assert torch.equal(unet_out(sd15), base_unet)
    assert active_loras(sd15) == {}
    apply_adapters(sd15, [(str(files["peft"]), 1.0)], [])  # comes back on
    assert torch.allclose(unet_out(sd15), full)


def test_exactly_the_requested_loras_are_active(sd15, files, tiny_models):
    base_text = text(sd15)
    apply_adapters(sd15, [(str(files["peft"]), 1.0), (str(files["unet_only"]), 0.6)], [])
    both = unet_out(sd15)
    apply_adapters(sd15, [(str(files["unet_only"]), 0.6)], [])
    # the text encoder has only the first LoRA's layers: they must be off now
    assert torch.equal(text(sd15), base_text)
    alone = kit.load("sd15", tiny_models)
    apply_adapters(alone, [(str(files["unet_only"]), 0.6)], [])
    assert torch.allclose(unet_out(sd15), unet_out(alone), atol=1e-6)
    assert not torch.allclose(unet_out(sd15), both)


def test_same_file_under_two_paths_is_one_adapter(sd15, files, tmp_path):
    copy = tmp_path / "renamed.safetensors"
    shutil.copy(files["unet_only"], copy)
    apply_adapters(sd15, [(str(files["unet_only"]), 0.5), (str(copy), 0.25)], [])
    assert list(active_loras(sd15).values()) == [0.75]
    assert len(sd15.get_list_adapters()["unet"]) == 1


def test_least_recently_used_loras_are_evicted(sd15, files, monkeypatch):
    monkeypatch.setattr(adapters, "MAX_LOADED_LORAS", 2)
    for key in ("peft", "unet_only", "third"):
        apply_adapters(sd15, [(str(files[key]), 1.0)], [])
    loaded = set(sd15.get_list_adapters()["unet"])
    assert len(loaded) == 2
    assert set(active_loras(sd15)) <= loaded


def test_prompt_cache_sees_lora_changes(sd15, files):
    cache = EmbeddingCache()
    before = encode_prompts(sd15, "a cat", "", family="sd15", cache=cache)["prompt_embeds"]
    apply_adapters(sd15, [(str(files["peft"]), 1.0)], [])
    after = encode_prompts(sd15, "a cat", "", family="sd15", cache=cache)["prompt_embeds"]
    assert cache.misses == 2 and not torch.allclose(before, after)
    apply_adapters(sd15, [(str(files["peft"]), 1.0)], [])  # nothing changed: the cache still hits
    encode_prompts(sd15, "a cat", "", family="sd15", cache=cache)
    assert cache.hits == 1


def test_generation_with_a_lora(sd15, files):
    def image():
        emb = encode_prompts(sd15, "a red cat", "ugly", family="sd15", cache=EmbeddingCache())
        return sd15(**emb, num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(3)).images[0]

    sd15.set_progress_bar_config(disable=True)
    plain = image()
    apply_adapters(sd15, [(str(files["kohya"]), 1.0)], [])
    assert abs(image() - plain).mean() > 1e-3


# -------------------------------------------------------------------------------------------------
# LoRA unhappy paths: one clear line, and the pipeline still works afterwards


def test_sdxl_lora_on_sd15_is_a_clear_error(sd15, files):
    base = unet_out(sd15)
    with pytest.raises(AdapterError,
                       match=r"LoRA xl_style\.safetensors does not fit this sd15 model: its layer sizes differ"):
        apply_adapters(sd15, [(str(files["sdxl"]), 1.0)], [])
    assert sd15.get_list_adapters().get("unet", []) == []
    assert torch.equal(unet_out(sd15), base)
    apply_adapters(sd15, [(str(files["peft"]), 1.0)], [])  # and a good one still loads


def test_sd15_lora_on_sdxl_is_a_clear_error(sdxl, files):
    with pytest.raises(AdapterError, match=r"LoRA style_peft\.safetensors does not fit this sdxl model"):
        apply_adapters(sdxl, [(str(files["peft"]), 1.0)], [])
    assert all(not names for names in sdxl.get_list_adapters().values())


@pytest.mark.parametrize("key, error, message", [
    ("not_lora", AdapterError, r"not_a_lora\.safetensors does not fit this sd15 model: it is not a LoRA"),
    ("corrupt", AdapterError, r"corrupt\.safetensors cannot be read \(corrupt, truncated"),
    ("empty", AdapterError, r"empty\.safetensors is empty"),
    ("pickle", UnsafeCheckpointError, r"pickled\.pt is a pickle file"),
])
def test_bad_lora_files(sd15, files, key, error, message):
    with pytest.raises(error, match=message):
        apply_adapters(sd15, [(str(files[key]), 1.0)], [])
    assert sd15.get_list_adapters().get("unet", []) == []


def test_missing_lora_file(sd15, tmp_path):
    with pytest.raises(ModelNotFoundError, match="LoRA file not found: .*nowhere.safetensors"):
        apply_adapters(sd15, [(str(tmp_path / "nowhere.safetensors"), 1.0)], [])


def test_error_messages_are_one_line(sd15, files):
    for key in ("not_lora", "corrupt", "sdxl"):
        with pytest.raises(AdapterError) as info:
            apply_adapters(sd15, [(str(files[key]), 1.0)], [])
        assert "\n" not in str(info.value) and len(str(info.value)) < 400


# -------------------------------------------------------------------------------------------------
# textual inversion


def test_embedding_token_acts_in_prompts(sd15, files, monkeypatch):
    before = text(sd15, "a mystyle cat")
    loads = count_calls(monkeypatch, sd15, "load_textual_inversion")
    apply_adapters(sd15, [], [(str(files["ti"]), "")])  # token: the file's stem
    apply_adapters(sd15, [], [(str(files["ti"]), "mystyle")])
    assert len(loads) == 1
    after = text(sd15, "a mystyle cat")
    assert after.shape == before.shape and not torch.allclose(after, before)
    assert count_tokens(sd15, "a mystyle cat") == (4, 1)  # a, mystyle, mystyle_1 (2 vectors), cat
    assert torch.allclose(text(sd15, "a dog"), text(sd15, "a dog"))


def test_diffusers_embedding_with_custom_token(sd15, files):
    apply_adapters(sd15, [], [(str(files["ti_diffusers"]), "<thing>")])
    assert "<thing>" in sd15.tokenizer.get_vocab()


def test_token_taken_by_another_file_is_an_error(sd15, files):
    apply_adapters(sd15, [], [(str(files["ti"]), "mystyle")])
    with pytest.raises(AdapterError, match=r"token 'mystyle' is already taken by mystyle\.safetensors; "
                                           r"give thing\.safetensors another token"):
        apply_adapters(sd15, [], [(str(files["ti_diffusers"]), "mystyle")])


def test_token_that_is_a_word_is_an_error(sd15, files):
    with pytest.raises(AdapterError, match=r"token 'cat</w>' is already a word"):
        apply_adapters(sd15, [], [(str(files["ti"]), "cat</w>")])
    with pytest.raises(AdapterError, match="one word"):
        apply_adapters(sd15, [], [(str(files["ti"]), "two words")])


def test_sdxl_embedding_goes_into_both_encoders(sdxl, files):
    before = encode_prompts(sdxl, "a xl_emb cat", "", family="sdxl", cache=EmbeddingCache())["prompt_embeds"]
    apply_adapters(sdxl, [], [(str(files["ti_sdxl"]), "")])
    after = encode_prompts(sdxl, "a xl_emb cat", "", family="sdxl", cache=EmbeddingCache())["prompt_embeds"]
    # both parts of the features (clip_l | clip_g) change
    split = sdxl.text_encoder.config.hidden_size
    assert not torch.allclose(after[..., :split], before[..., :split])
    assert not torch.allclose(after[..., split:], before[..., split:])


@pytest.mark.parametrize("family, key, message", [
    ("sd15", "ti_sdxl", r"xl_emb\.safetensors is an SDXL embedding .*sd15"),
    ("sdxl", "ti", r"mystyle\.safetensors is not an SDXL embedding"),
    ("sd15", "ti_wide",
     r"wide\.safetensors does not fit this sd15 model: its vectors are 48 wide, this text encoder.s are 32"),
    ("sd15", "corrupt", r"corrupt\.safetensors cannot be read"),
])
def test_embedding_that_does_not_fit(sd15, sdxl, files, family, key, message):
    pipe = sd15 if family == "sd15" else sdxl
    vocab = len(pipe.tokenizer)
    with pytest.raises(AdapterError, match=message):
        apply_adapters(pipe, [], [(str(files[key]), "tok")])
    assert len(pipe.tokenizer) == vocab  # nothing half-added


def test_pickle_embedding_refused_unless_allowed(sd15, files, tmp_path):
    path = tmp_path / "old_style.pt"
    torch.save({"string_to_param": {"*": torch.randn(1, 32)}, "name": "old_style"}, path)
    with pytest.raises(UnsafeCheckpointError, match="old_style.pt is a pickle file"):
        apply_adapters(sd15, [], [(str(path), "")])
    apply_adapters(sd15, [], [(str(path), "")], allow_pickle=True)
    assert "old_style" in sd15.tokenizer.get_vocab()


def test_the_shared_tiny_lora_and_embedding_load(sd15, tiny_models):
    base = text(sd15, "a embedding-tiny cat")
    apply_adapters(sd15, [(str(tiny_models.lora), 0.8)], [(str(tiny_models.embedding), "")])
    assert list(active_loras(sd15).values()) == [0.8]
    assert "embedding-tiny" in sd15.tokenizer.get_vocab()
    assert not torch.allclose(text(sd15, "a embedding-tiny cat"), base)


def test_sdxl_embedding_failing_in_the_second_encoder_leaves_neither(sdxl, tmp_path):
    path = tmp_path / "half_bad.safetensors"
    widths = (sdxl.text_encoder.config.hidden_size, sdxl.text_encoder_2.config.hidden_size)
    save_file({"clip_l": torch.randn(2, widths[0]), "clip_g": torch.randn(1, 2, widths[1])}, path)  # odd shape
    def sizes():
        return (len(sdxl.tokenizer), len(sdxl.tokenizer_2),
                sdxl.text_encoder.get_input_embeddings().weight.shape[0],
                sdxl.text_encoder_2.get_input_embeddings().weight.shape[0])

    before = sizes()
    with pytest.raises(AdapterError, match=r"half_bad\.safetensors does not fit this sdxl model"):
        apply_adapters(sdxl, [], [(str(path), "")])
    assert sizes() == before
    assert "half_bad" not in sdxl.tokenizer.get_vocab()


def test_more_requested_loras_than_the_keep_limit(sd15, files, monkeypatch):
    monkeypatch.setattr(adapters, "MAX_LOADED_LORAS", 1)
    apply_adapters(sd15, [(str(files["peft"]), 1.0), (str(files["unet_only"]), 1.0)], [])
    assert len(active_loras(sd15)) == 2  # what is asked for always loads; only idle ones go
    apply_adapters(sd15, [(str(files["third"]), 1.0)], [])
    assert len(sd15.get_list_adapters()["unet"]) == 1


def test_a_bad_lora_in_a_request_leaves_the_previous_state(sd15, files):
    apply_adapters(sd15, [(str(files["unet_only"]), 0.7)], [])
    before_unet, before_text = unet_out(sd15), text(sd15)
    with pytest.raises(AdapterError):
        apply_adapters(sd15, [(str(files["peft"]), 1.0), (str(files["sdxl"]), 1.0)], [])
    assert torch.allclose(unet_out(sd15), before_unet, atol=1e-6)
    assert torch.equal(text(sd15), before_text)
    assert list(active_loras(sd15).values()) == [0.7]
