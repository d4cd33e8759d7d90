"""Where IP-Adapters and their image encoders come from (models/ip_adapter.py), and the default
adapter loaded offline from the Hugging Face cache through diffusers' and transformers' own
download code (a cache laid out exactly as ``hf download`` leaves it, holding the tiny adapter
under h94/IP-Adapter's real file names)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from brushwork.errors import ModelNotFoundError, UnsafeCheckpointError
from brushwork.models import ip_adapter as ipa
from brushwork.models.settings import Settings
from brushwork.recipe import Reference
from brushwork.testing.tiny_ip_adapter import SD15_ADAPTER, ensure_tiny_ip_adapters
from PIL import Image
from safetensors.torch import save_file

pytestmark = pytest.mark.xdist_group("references")


@pytest.fixture(scope="module")
def adapters(tiny_models):
    return ensure_tiny_ip_adapters(tiny_models.root)


def settings(**changes) -> Settings:
    s = Settings()
    for name, value in changes.items():
        setattr(s, name, value)
    return s


def fake_adapter(path, cross: int, embed: int = 1024, *, plus: bool = False):
    """A header-true adapter file (tiny tensors of the right rank; only shapes are read here)."""
    import torch

    tensors = {"ip_adapter.1.to_k_ip.weight": torch.zeros(4, cross),
               "ip_adapter.1.to_v_ip.weight": torch.zeros(4, cross)}
    if plus:
        tensors["image_proj.proj_in.weight"] = torch.zeros(8, embed)
    else:
        tensors["image_proj.proj.weight"] = torch.zeros(4 * cross, embed)
    save_file(tensors, str(path))
    return path


def test_family_defaults_are_h94s_files():
    sd15 = ipa.resolve_adapter("", "sd15", settings())
    sdxl = ipa.resolve_adapter("", "sdxl", settings())
    assert (sd15.folder, sd15.subfolder, sd15.weight_name) == ("h94/IP-Adapter", "models",
                                                               "ip-adapter_sd15.safetensors")
    assert (sdxl.folder, sdxl.subfolder, sdxl.weight_name) == ("h94/IP-Adapter", "sdxl_models",
                                                               "ip-adapter_sdxl_vit-h.safetensors")
    for ref in (sd15, sdxl):  # both read OpenCLIP ViT-H
        assert (ref.encoder.location, ref.encoder.subfolder) == ("h94/IP-Adapter", "models/image_encoder")
    assert ipa.resolve_adapter("ip-adapter_sdxl", "sdxl", settings()).encoder.subfolder == "sdxl_models/image_encoder"
    with pytest.raises(ModelNotFoundError, match="SD 1.5 or SDXL"):
        ipa.resolve_adapter("", "sd2", settings())


def test_hub_file_spec_and_encoder_by_shape(tmp_path):
    ref = ipa.resolve_adapter("someone/adapters/sub/dir/my-adapter.safetensors", None, settings())
    assert (ref.folder, ref.subfolder, ref.weight_name, ref.source) == ("someone/adapters", "sub/dir",
                                                                       "my-adapter.safetensors", "hub")
    assert ref.encoder.subfolder == "models/image_encoder"  # not downloaded: h94's naming (ViT-H)
    plain = ipa.resolve_adapter(str(fake_adapter(tmp_path / "a.safetensors", 2048, 1280)), "sdxl", settings())
    assert plain.family == "sdxl" and plain.encoder.subfolder == "sdxl_models/image_encoder"
    plus = ipa.resolve_adapter(str(fake_adapter(tmp_path / "p.safetensors", 768, 1280, plus=True)), "sd15", settings())
    assert plus.family == "sd15" and plus.encoder.subfolder == "models/image_encoder"
    odd = fake_adapter(tmp_path / "odd.safetensors", 768, 512)
    with pytest.raises(ModelNotFoundError, match="image_encoder"):
        ipa.resolve_adapter(str(odd), "sd15", settings())


def test_family_mismatch_and_not_an_adapter(tmp_path):
    sdxl_file = fake_adapter(tmp_path / "x.safetensors", 2048)
    with pytest.raises(ModelNotFoundError, match="is for sdxl models, but the model is sd15"):
        ipa.resolve_adapter(str(sdxl_file), "sd15", settings())
    import torch

    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ModelNotFoundError, match="not an IP-Adapter"):
        ipa.resolve_adapter(str(tmp_path / "lora.safetensors"), "sd15", settings())


def test_pickles_refused_unless_opted_in(tmp_path, adapters):
    (tmp_path / "ip-adapter_sd15.bin").write_bytes(b"never unpickled")
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        ipa.resolve_adapter(str(tmp_path / "ip-adapter_sd15.bin"), "sd15", settings())
    with pytest.raises(UnsafeCheckpointError):
        ipa.resolve_adapter("h94/IP-Adapter/sdxl_models/ip-adapter_sdxl.bin", "sdxl", settings())
    # an image encoder folder holding only pytorch_model.bin is refused by name too
    folder = tmp_path / "local"
    folder.mkdir()
    shutil.copy(adapters[SD15_ADAPTER], folder / "ip-adapter.safetensors")
    (folder / "image_encoder").mkdir()
    (folder / "image_encoder" / "config.json").write_text("{}")
    (folder / "image_encoder" / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model.bin"):
        ipa.resolve_adapter(str(folder), "sd15", settings())
    fake_adapter(tmp_path / "ip-adapter_sd15.safetensors", 768)  # opted in: the pickle resolves
    allowed = ipa.resolve_adapter(str(tmp_path / "ip-adapter_sd15.bin"), "sd15",
                                  settings(allow_pickle=True))
    assert allowed.pickle and allowed.encoder.subfolder == "models/image_encoder"


def test_folders_names_and_path_policy(tmp_path, tiny_models, adapters):
    folder = adapters[SD15_ADAPTER].parent
    by_folder = ipa.resolve_adapter(str(folder), "sd15", settings())
    assert by_folder.path == adapters[SD15_ADAPTER] and by_folder.encoder.source == "folder"
    by_name = ipa.resolve_adapter(SD15_ADAPTER, "sd15", settings(model_dirs=[tiny_models.root]))
    assert by_name.key == by_folder.key
    with pytest.raises(ModelNotFoundError, match="paths are not accepted"):
        ipa.resolve_adapter(str(folder), "sd15", settings(), allow_paths=False)
    with pytest.raises(ModelNotFoundError, match="paths are not accepted"):
        ipa.resolve_adapter("./relative/adapter.safetensors", "sd15", settings(), allow_paths="absolute")
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        shutil.copy(adapters[SD15_ADAPTER], two / name)
    with pytest.raises(ModelNotFoundError, match="several weight files"):
        ipa.resolve_adapter(str(two), "sd15", settings())
    with pytest.raises(ModelNotFoundError, match="not found"):
        ipa.resolve_adapter("no-such-adapter", "sd15", settings(model_dirs=[tiny_models.root]))


def _hf_cache(root, adapter_file):
    """An HF hub cache holding h94/IP-Adapter's two files the SD 1.5 default needs (tiny contents)."""
    revision = "0" * 40
    repo = root / "models--h94--IP-Adapter"
    snapshot = repo / "snapshots" / revision
    (snapshot / "models").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    shutil.copy(adapter_file, snapshot / "models" / "ip-adapter_sd15.safetensors")
    shutil.copytree(adapter_file.parent / "image_encoder", snapshot / "models" / "image_encoder")
    return root


def test_default_adapter_loads_offline_from_the_hf_cache(tiny_models, adapters, tmp_path, tmp_path_factory,
                                                         monkeypatch):
    """An empty reference model on an SD 1.5 model: h94/IP-Adapter's files, found in the HF cache
    by diffusers' and transformers' own offline lookups, and recorded by hub path in the result."""
    from huggingface_hub import constants
    from test_engine_support import module_studio, recipe

    cache = _hf_cache(tmp_path / "hf-cache", adapters[SD15_ADAPTER])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    studio = module_studio(tmp_path_factory)
    studio.settings.offline = True
    picture = tmp_path / "ref.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(picture)
    by_default = studio.generate(recipe(tiny_models.sd15, references=[Reference(image=str(picture))]))
    by_path = studio.generate(recipe(tiny_models.sd15, references=[Reference(image=str(picture),
                                                                             model=str(adapters[SD15_ADAPTER]))]))
    assert np.array_equal(np.asarray(by_default.images[0]), np.asarray(by_path.images[0]))
    assert by_default.sources["references[0].model"] == "h94/IP-Adapter/models/ip-adapter_sd15.safetensors"
    assert by_default.sources["references[0].encoder"] == "h94/IP-Adapter/models/image_encoder"
    assert by_default.hashes["references[0].model"] == by_path.hashes["references[0].model"]
