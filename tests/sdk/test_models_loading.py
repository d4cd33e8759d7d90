"""Loading through the real code: single files offline with the folder's exact weights, other
configs, standalone VAEs and ControlNets, VAE override, hashes, one-line failures."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from brushwork.errors import ModelNotFoundError
from brushwork.models import loading, sources
from brushwork.models.family import CorruptModelError
from brushwork.models.settings import Settings
from brushwork.testing import ldm_export, tiny


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    bad = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not bad, f"{len(bad)} tensors differ, e.g. {bad[:3]}"


def _gen(pipe):
    out = pipe("a cat", num_inference_steps=2, height=64, width=64, output_type="np",
               generator=torch.Generator().manual_seed(0))
    return out.images[0]


def test_single_file_loads_offline_with_the_folders_exact_weights(tiny_models):
    folder = loading.load_pipeline(tiny_models.sd15)
    single = loading.load_pipeline(tiny_models.sd15_single_file)
    assert type(single).__name__ == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder"):
        _same_weights(getattr(folder, part), getattr(single, part))
    assert single.safety_checker is None
    assert np.array_equal(_gen(folder), _gen(single))
    assert single.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_sdxl_single_file_loads_offline_with_the_folders_weights(tiny_models):
    folder = loading.load_pipeline(tiny_models.sdxl)
    single = loading.load_pipeline(tiny_models.sdxl_single_file)
    assert type(single).__name__ == "StableDiffusionXLPipeline"
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        _same_weights(getattr(folder, part), getattr(single, part))
    assert single.tokenizer_2.pad_token == "!"
    assert np.allclose(_gen(folder), _gen(single), atol=1e-4)


@pytest.mark.slow
def test_a_tiny_model_of_another_config_loads_from_a_single_file(tmp_path):
    folder = tiny.build_tiny_sd15(
        tmp_path / "odd", seed=5,
        unet={"block_out_channels": (32, 64, 64), "layers_per_block": 1,
              "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
              "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D")},
        vae={"layers_per_block": 2}, text_encoder={"num_hidden_layers": 2, "intermediate_size": 64})
    single = ldm_export.export_sd15_single_file(folder, tmp_path / "odd.safetensors")
    a, b = loading.load_pipeline(folder), loading.load_pipeline(single)
    for part in ("unet", "vae", "text_encoder"):
        _same_weights(getattr(a, part), getattr(b, part))
    assert b.unet.config.layers_per_block == 1 and list(b.unet.config.block_out_channels) == [32, 64, 64]
    assert np.array_equal(_gen(a), _gen(b))


def test_inpaint_single_file_keeps_nine_channels(tmp_path, tiny_models):
    single = ldm_export.export_sd15_single_file(tiny_models.sd15_inpaint, tmp_path / "inp.safetensors")
    ref = sources.resolve(str(single), "pipeline", Settings())
    assert ref.variant == "inpaint"
    assert loading.load_pipeline(ref).unet.config.in_channels == 9


def test_folders_sdxl_controlnet_vae_and_vae_override(tiny_models):
    xl = loading.load_pipeline(tiny_models.sdxl)
    assert type(xl).__name__ == "StableDiffusionXLPipeline"
    net = loading.load_controlnet(tiny_models.controlnets["canny"])
    assert type(net).__name__ == "ControlNetModel"
    vae = loading.load_vae(tiny_models.vae)
    pipe = loading.load_pipeline(tiny_models.sd15, vae_ref=tiny_models.vae)
    _same_weights(pipe.vae, vae)


def test_standalone_a1111_vae_file(tmp_path, tiny_models):
    file = ldm_export.export_vae_single_file(tiny_models.vae, tmp_path / "vae-ft-tiny.safetensors")
    ref = sources.resolve("vae-ft-tiny", "vae", Settings(model_dirs=[tmp_path]))
    assert ref.source == "single_file"
    _same_weights(loading.load_vae(ref), loading.load_vae(tiny_models.vae))
    assert file.exists()


def test_ldm_controlnet_file_loads_with_derived_config(tmp_path, tiny_models):
    folder = tiny.build_tiny_controlnet(tmp_path / "cn", base=tiny_models.sd15,
                                       conditioning_embedding_out_channels=(16, 32, 96, 256))
    file = ldm_export.export_controlnet_single_file(folder, tmp_path / "control_tiny.safetensors")
    _same_weights(loading.load_controlnet(file), loading.load_controlnet(folder))


def test_broken_files_fail_in_one_line(tmp_path, tiny_models):
    data = tiny_models.sd15_single_file.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-1000])
    with pytest.raises(CorruptModelError, match="cut.safetensors: truncated"):
        loading.load_pipeline(tmp_path / "cut.safetensors")
    broken = tmp_path / "broken-folder"
    broken.mkdir()
    (broken / "model_index.json").write_text((tiny_models.sd15 / "model_index.json").read_text())
    with pytest.raises(ModelNotFoundError) as err:
        loading.load_pipeline(broken)
    assert "broken-folder" in str(err.value) and "\n" not in str(err.value)


def test_hub_model_not_downloaded_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="brushwork models pull nobody/nothing"):
        loading.load_pipeline("nobody/nothing")


def test_model_hash_is_stable_cached_and_content_based(tmp_path, tiny_models):
    from brushwork import paths

    file_hash = loading.model_hash(tiny_models.sd15_single_file)
    assert file_hash == hashlib.sha256(tiny_models.sd15_single_file.read_bytes()).hexdigest()
    folder_hash = loading.model_hash(sources.resolve(str(tiny_models.sd15), "pipeline", Settings()))
    assert folder_hash == loading.model_hash(tiny_models.sd15)
    assert folder_hash != loading.model_hash(tiny_models.sd15_inpaint)
    cache = json.loads((paths.state_dir() / "model-hashes.json").read_text())
    assert file_hash in cache.values()
    # a cached hash is only reused for the same (path, size, mtime): edit the file, get a new hash
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(b"one")
    first = loading.model_hash(copy)
    copy.write_bytes(b"other bytes")
    assert loading.model_hash(copy) != first == hashlib.sha256(b"one").hexdigest()


def test_model_hash_reads_a_file_once(tmp_path, monkeypatch):
    big = tmp_path / "m.safetensors"
    big.write_bytes(b"x" * 10)
    loading.model_hash(big)
    opened = []
    real_open = type(big).open
    monkeypatch.setattr(type(big), "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    loading.model_hash(big)
    assert big not in opened


def test_other_pipeline_kinds_are_refused_by_name(tmp_path):
    folder = tmp_path / "some-flux"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ModelNotFoundError, match="some-flux: a FluxPipeline folder; Brushwork loads SD 1.5 and SDXL"):
        loading.load_pipeline(folder)


def test_an_opted_in_pickle_checkpoint_loads(tmp_path, tiny_models):
    from brushwork.errors import UnsafeCheckpointError
    from safetensors.torch import load_file

    ckpt = tmp_path / "old-model.ckpt"
    torch.save({"state_dict": load_file(str(tiny_models.sd15_single_file)), "global_step": 1}, ckpt)
    with pytest.raises(UnsafeCheckpointError):
        sources.resolve(str(ckpt), "pipeline", Settings())
    ref = sources.resolve(str(ckpt), "pipeline", Settings(allow_pickle=True))
    pipe = loading.load_pipeline(ref)
    _same_weights(pipe.unet, loading.load_pipeline(tiny_models.sd15).unet)
    assert loading.model_hash(ref) == hashlib.sha256(ckpt.read_bytes()).hexdigest()
