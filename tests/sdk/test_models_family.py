"""Family detection reads content: folders' configs, single files' keys and metadata; names only
hint a variant."""

from __future__ import annotations

import json

import pytest
import torch
from brushwork.models import family as fam
from brushwork.models.family import FamilyInfo, UnsupportedModelError
from safetensors.torch import save_file


def _file(path, keys, metadata=None):
    save_file({k: torch.zeros(shape) for k, shape in keys.items()}, str(path), metadata=metadata)
    return path


def test_folders(tiny_models):
    assert fam.detect_folder(tiny_models.sd15) == FamilyInfo("sd15", "base")
    assert fam.detect_folder(tiny_models.sd15_inpaint) == FamilyInfo("sd15", "inpaint")
    assert fam.detect_folder(tiny_models.sdxl) == FamilyInfo("sdxl", "base")
    assert fam.detect_folder(tiny_models.controlnets["pose"]).family == "sd15"
    assert fam.detect_folder(tiny_models.sdxl_controlnets["depth"]).family == "sdxl"


def test_folder_variant_from_scheduler_and_name(tmp_path, tiny_models):
    import shutil

    lcm = tmp_path / "my-model"
    shutil.copytree(tiny_models.sd15, lcm, symlinks=True)
    index = json.loads((lcm / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "LCMScheduler"]
    (lcm / "model_index.json").write_text(json.dumps(index))
    assert fam.detect_folder(lcm) == FamilyInfo("sd15", "lcm")
    turbo = tmp_path / "something-Turbo"
    turbo.symlink_to(tiny_models.sdxl, target_is_directory=True)
    assert fam.detect_folder(turbo) == FamilyInfo("sdxl", "turbo")


def test_not_a_model_folder(tmp_path):
    with pytest.raises(fam.ModelNotFoundError, match="not a diffusers model folder"):
        fam.detect_folder(tmp_path)
    (tmp_path / "model_index.json").write_text("{broken")
    with pytest.raises(fam.CorruptModelError, match="unreadable config"):
        fam.detect_folder(tmp_path)


def test_single_file_family_ignores_a_misleading_name(tmp_path, tiny_models):
    liar = tmp_path / "sdxl-something.safetensors"
    liar.symlink_to(tiny_models.sd15_single_file)
    assert fam.detect_file(liar) == FamilyInfo("sd15", "base")
    turbo = tmp_path / "dreamshaper-turbo.safetensors"
    turbo.symlink_to(tiny_models.sd15_single_file)
    assert fam.detect_file(turbo) == FamilyInfo("sd15", "turbo")
    lcm = tmp_path / "model_LCM.safetensors"
    lcm.symlink_to(tiny_models.sd15_single_file)
    assert fam.detect_file(lcm).variant == "lcm"


def test_sdxl_single_file_keys_and_inpaint_unet(tmp_path):
    xl = _file(tmp_path / "sd15-named.safetensors", {
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (2, 2),
        "conditioner.embedders.1.model.token_embedding.weight": (2, 2),
        "model.diffusion_model.input_blocks.0.0.weight": (4, 4, 1, 1)})
    assert fam.detect_file(xl) == FamilyInfo("sdxl", "base")
    inpaint = _file(tmp_path / "x.safetensors", {
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (2, 2),
        "model.diffusion_model.input_blocks.0.0.weight": (4, 9, 1, 1)})
    assert fam.detect_file(inpaint) == FamilyInfo("sd15", "inpaint")


def test_unet_only_files_from_cross_attention_width(tmp_path):
    def unet(width):
        return {"model.diffusion_model.input_blocks.0.0.weight": (4, 4, 1, 1),
                "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (4, width)}

    assert fam.detect_file(_file(tmp_path / "a.safetensors", unet(768))).family == "sd15"
    assert fam.detect_file(_file(tmp_path / "b.safetensors", unet(2048))).family == "sdxl"
    with pytest.raises(UnsupportedModelError, match="SD 2.x is not supported"):
        fam.detect_file(_file(tmp_path / "c.safetensors", unet(1024)))


def test_sd2_and_refiner_are_refused_clearly(tmp_path):
    sd2 = _file(tmp_path / "v2-1_768.safetensors", {
        "cond_stage_model.model.token_embedding.weight": (2, 2),
        "model.diffusion_model.input_blocks.0.0.weight": (4, 4, 1, 1)})
    with pytest.raises(UnsupportedModelError, match=r"v2-1_768.safetensors: an SD 2.x checkpoint.*not supported"):
        fam.detect_file(sd2)
    refiner = _file(tmp_path / "refiner.safetensors", {"conditioner.embedders.0.model.token_embedding.weight": (2, 2)})
    with pytest.raises(UnsupportedModelError, match="refiner"):
        fam.detect_file(refiner)


def test_modelspec_metadata_when_keys_say_nothing(tmp_path):
    spec = _file(tmp_path / "odd.safetensors", {"weird.key": (1,)},
                 {"modelspec.architecture": "stable-diffusion-xl-v1-base"})
    assert fam.detect_file(spec).family == "sdxl"
    with pytest.raises(UnsupportedModelError, match="is it a LoRA, VAE or embedding"):
        fam.detect_file(_file(tmp_path / "none.safetensors", {"weird.key": (1,)}))


def test_classify_and_lora_family(tiny_models):
    header = fam.read_safetensors_header
    assert fam.classify_keys(header(tiny_models.lora).shapes) == "lora"
    assert fam.classify_keys(header(tiny_models.embedding).shapes) == "embedding"
    assert fam.classify_keys(header(tiny_models.sd15_single_file).shapes) == "pipeline"
    assert fam.classify_keys({"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 8]}) == "lora"
    assert fam.detect_lora_family({"lora_te2_x.lora_down.weight": [4, 8]}) == "sdxl"
    assert fam.detect_lora_family({"unet.up.attn2.to_k.lora_A.weight": [4, 768]}) == "sd15"
    assert fam.detect_lora_family({"k": [1]}, {"ss_base_model_version": "sdxl_base_v1-0"}) == "sdxl"
    assert fam.detect_lora_family(header(tiny_models.lora).shapes) is None  # tiny widths say nothing
