"""Resolution: names in A1111 / ComfyUI / plain model dirs, hub ids offline, pickles, corrupt files,
settings, and the worker's no-paths rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from brushwork.errors import ModelNotFoundError, UnsafeCheckpointError
from brushwork.models import sources
from brushwork.models.family import CorruptModelError
from brushwork.models.settings import Settings, SettingsError


def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src, target_is_directory=src.is_dir())
    return dst


@pytest.fixture
def a1111(tmp_path, tiny_models):
    root = tmp_path / "stable-diffusion-webui"
    _link(tiny_models.sd15_single_file, root / "models" / "Stable-diffusion" / "anime" / "dreamy.safetensors")
    _link(tiny_models.sd15, root / "models" / "Stable-diffusion" / "folder-model")
    _link(tiny_models.lora, root / "models" / "Lora" / "inkstyle.safetensors")
    _link(tiny_models.vae, root / "models" / "VAE" / "better-vae")
    _link(tiny_models.controlnets["depth"], root / "models" / "ControlNet" / "my-depth")
    _link(tiny_models.embedding, root / "embeddings" / "badhands.safetensors")
    return root


@pytest.fixture
def comfy(tmp_path, tiny_models):
    root = tmp_path / "ComfyUI"
    _link(tiny_models.sd15_single_file, root / "models" / "checkpoints" / "comfy-model.safetensors")
    _link(tiny_models.lora, root / "models" / "loras" / "comfy-lora.safetensors")
    _link(tiny_models.vae, root / "models" / "vae" / "comfy-vae")
    _link(tiny_models.controlnets["canny"], root / "models" / "controlnet" / "comfy-canny")
    _link(tiny_models.embedding, root / "models" / "embeddings" / "comfy-emb.safetensors")
    return root


def test_a1111_layout_by_name_stem_and_subfolder(a1111):
    s = Settings(model_dirs=[a1111])
    ref = sources.resolve("dreamy", "pipeline", s, allow_paths=False)
    assert ref.source == "single_file" and ref.family == "sd15" and ref.path.name == "dreamy.safetensors"
    assert sources.resolve("anime/dreamy", "pipeline", s).path == ref.path
    assert sources.resolve("anime/dreamy.safetensors", "pipeline", s).path == ref.path
    assert sources.resolve("folder-model", "checkpoint", s).source == "folder"
    assert sources.resolve("inkstyle", "lora", s).kind == "lora"
    assert sources.resolve("better-vae", "vae", s).path.name == "better-vae"
    assert sources.resolve("my-depth", "controlnet", s).family == "sd15"
    assert sources.resolve("badhands", "embedding", s).path.name == "badhands.safetensors"


def test_a1111_models_folder_itself_works_too(a1111):
    s = Settings(model_dirs=[a1111 / "models"])
    assert sources.resolve("dreamy", "pipeline", s).path.name == "dreamy.safetensors"


def test_comfyui_layout(comfy):
    s = Settings(model_dirs=[comfy])
    assert sources.resolve("comfy-model", "pipeline", s).family == "sd15"
    assert sources.resolve("comfy-lora", "lora", s).path.name == "comfy-lora.safetensors"
    assert sources.resolve("comfy-vae", "vae", s).source == "folder"
    assert sources.resolve("comfy-canny", "controlnet", s).source == "folder"
    assert sources.resolve("comfy-emb", "embedding", s).kind == "embedding"


def test_plain_folder_holds_every_kind_side_by_side(tiny_models):
    s = Settings(model_dirs=[tiny_models.root])
    assert sources.resolve("tiny-sd15", "pipeline", s).source == "folder"  # the folder, exact name
    assert sources.resolve("tiny-sd15.safetensors", "pipeline", s).source == "single_file"
    assert sources.resolve("tiny-sdxl", "pipeline", s).family == "sdxl"
    assert sources.resolve("tiny-sd15-inpaint", "pipeline", s).variant == "inpaint"
    assert sources.resolve("lora-tiny", "lora", s).source == "single_file"
    assert sources.resolve("controlnet-tiny-sdxl-depth", "controlnet", s).family == "sdxl"
    with pytest.raises(ModelNotFoundError, match="lora-tiny"):
        sources.resolve("lora-tiny", "pipeline", s)  # a LoRA is no checkpoint
    with pytest.raises(ModelNotFoundError):
        sources.resolve("tiny-sd15", "vae", s)


def test_family_mismatch_is_refused(tiny_models):
    s = Settings(model_dirs=[tiny_models.root])
    with pytest.raises(ModelNotFoundError, match="for sdxl models, but the model is sd15"):
        sources.resolve("controlnet-tiny-sdxl-depth", "controlnet", s, family="sd15")
    assert sources.resolve("controlnet-tiny-depth", "controlnet", s, family="sd15").family == "sd15"


def test_unknown_name_says_where_it_looked(tmp_path):
    s = Settings(model_dirs=[tmp_path])
    with pytest.raises(ModelNotFoundError, match=r"model 'nope' not found \(looked in: .*"):
        sources.resolve("nope", "pipeline", s)


def test_a_missing_file_name_is_not_taken_for_a_hub_id(tmp_path):
    with pytest.raises(ModelNotFoundError, match="'models/x.safetensors' not found \\(no such file"):
        sources.resolve("models/x.safetensors", "pipeline", Settings(model_dirs=[tmp_path]))


def test_worker_rule_no_paths_only_names(tiny_models, tmp_path):
    s = Settings(model_dirs=[tiny_models.root])
    with pytest.raises(ModelNotFoundError, match="paths are not accepted"):
        sources.resolve(str(tiny_models.sd15), "pipeline", s, allow_paths=False)
    with pytest.raises(ModelNotFoundError, match="paths are not accepted"):
        sources.resolve("../tiny-sd15", "pipeline", s, allow_paths=False)
    with pytest.raises(ModelNotFoundError):
        sources.resolve("~/secret", "pipeline", s, allow_paths=False)
    # the same paths are fine for a local script
    assert sources.resolve(str(tiny_models.sd15), "pipeline", s).source == "folder"
    with pytest.raises(ModelNotFoundError, match="no such file"):
        sources.resolve(str(tmp_path / "missing.safetensors"), "pipeline", s)


def test_hub_id_offline_and_not_cached_is_one_clear_error(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    s = Settings(offline=True)
    with pytest.raises(ModelNotFoundError) as err:
        sources.resolve("someone/some-model", "pipeline", s)
    msg = str(err.value)
    assert "someone/some-model" in msg and "brushwork models pull someone/some-model" in msg
    assert "\n" not in msg
    online = sources.resolve("stabilityai/sdxl-turbo", "pipeline", Settings(offline=False))
    assert (online.source, online.family, online.variant, online.cached) == ("hub", "sdxl", "turbo", False)


def _fake_hub_cache(cache: Path, repo_id: str, src: Path) -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    for item in src.iterdir():
        (snap / item.name).symlink_to(item, target_is_directory=item.is_dir())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    return snap


def test_hub_id_in_the_hf_cache_resolves_offline_and_is_listed(tmp_path, monkeypatch, tiny_models):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    _fake_hub_cache(tmp_path / "hf", "someone/tiny-xl", tiny_models.sdxl)
    ref = sources.resolve("someone/tiny-xl", "pipeline", Settings(offline=True))
    assert (ref.source, ref.cached, ref.family) == ("hub", True, "sdxl")
    assert ref.key == "hub:someone/tiny-xl"
    listed = [m for m in sources.list_models(Settings()) if m.source == "hub"]
    assert [(m.name, m.kind, m.family) for m in listed] == [("someone/tiny-xl", "pipeline", "sdxl")]


def test_default_model_then_demo_then_a_clear_error(tiny_models, monkeypatch):
    monkeypatch.setattr(sources, "_demo_weights", lambda: None)
    with pytest.raises(ModelNotFoundError, match="no model given and no default set.*BRUSHWORK_DEFAULT_MODEL"):
        sources.resolve("", "pipeline", Settings())
    s = Settings(model_dirs=[tiny_models.root], default_model="tiny-sdxl")
    assert sources.resolve(None, "pipeline", s).family == "sdxl"
    monkeypatch.setattr(sources, "_demo_weights", lambda: tiny_models.sd15)
    monkeypatch.setattr(sources, "_demo_name", lambda: "brushwork-demo")
    demo = sources.resolve("", "pipeline", Settings())
    assert demo.name == "brushwork-demo" and demo.path == tiny_models.sd15
    assert sources.resolve("demo", "pipeline", Settings(), allow_paths=False).path == tiny_models.sd15
    assert sources.resolve("brushwork-demo", "pipeline", Settings(), allow_paths=False).path == tiny_models.sd15
    with pytest.raises(ModelNotFoundError, match="no LoRA given"):
        sources.resolve("", "lora", Settings())


def test_controlnet_by_kind_name_maps_to_the_family_hub_id(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    assert sources.resolve("depth", "controlnet", Settings(), family="sd15").id == \
        "lllyasviel/control_v11f1p_sd15_depth"
    assert sources.resolve("depth", "controlnet", Settings(), family="sdxl").id == "diffusers/controlnet-depth-sdxl-1.0"
    with pytest.raises(ModelNotFoundError, match="no public inpaint ControlNet is known for sdxl"):
        sources.resolve("inpaint", "controlnet", Settings(), family="sdxl")


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickles_are_refused_unless_opted_in(tmp_path, suffix, monkeypatch):
    pickle = tmp_path / f"old-model{suffix}"
    pickle.write_bytes(b"\x80\x04not really")
    s = Settings(model_dirs=[tmp_path])
    with pytest.raises(UnsafeCheckpointError) as err:
        sources.resolve("old-model", "pipeline", s)
    msg = str(err.value)
    assert "arbitrary code" in msg and "BRUSHWORK_ALLOW_PICKLE=1" in msg and ".safetensors" in msg
    monkeypatch.setenv("BRUSHWORK_ALLOW_PICKLE", "1")
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tmp_path))
    ref = sources.resolve("old-model", "pipeline", Settings.load())
    assert ref.source == "single_file" and ref.extra["pickle"]


def test_safetensors_preferred_over_a_pickle_of_the_same_stem(tmp_path, tiny_models):
    (tmp_path / "m.ckpt").write_bytes(b"x")
    _link(tiny_models.sd15_single_file, tmp_path / "m.safetensors")
    assert sources.resolve("m", "pipeline", Settings(model_dirs=[tmp_path])).path.suffix == ".safetensors"


def test_corrupt_and_truncated_files_name_the_file(tmp_path, tiny_models):
    data = tiny_models.sd15_single_file.read_bytes()
    (tmp_path / "half.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"this is not a model at all")
    (tmp_path / "badjson.safetensors").write_bytes((20).to_bytes(8, "little") + b"{not json!!" + b" " * 40)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    s = Settings(model_dirs=[tmp_path])
    with pytest.raises(CorruptModelError, match="half.safetensors: truncated"):
        sources.resolve("half", "pipeline", s)
    with pytest.raises(CorruptModelError, match="junk.safetensors: not a safetensors file"):
        sources.resolve("junk", "pipeline", s)
    with pytest.raises(CorruptModelError, match="badjson.safetensors: corrupt safetensors header"):
        sources.resolve("badjson", "pipeline", s)
    with pytest.raises(CorruptModelError, match="empty.safetensors"):
        sources.resolve("empty", "pipeline", s)
    assert isinstance(CorruptModelError("x"), ModelNotFoundError)  # one wire code the client knows


def test_other_formats_are_named(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="unsupported model format .gguf"):
        sources.resolve(str(tmp_path / "model.gguf"), "pipeline", Settings())


def test_list_models_covers_dirs_and_skips_broken_files(a1111, comfy):
    (a1111 / "models" / "Stable-diffusion" / "broken.safetensors").write_bytes(b"junk")
    found = {(m.kind, m.name) for m in sources.list_models(Settings(model_dirs=[a1111, comfy]))
             if m.source != "hub"}
    assert {("pipeline", "anime/dreamy"), ("pipeline", "folder-model"), ("lora", "inkstyle"),
            ("vae", "better-vae"), ("controlnet", "my-depth"), ("embedding", "badhands"),
            ("pipeline", "comfy-model"), ("lora", "comfy-lora")} <= found
    assert not any(name == "broken" for _, name in found)


def test_settings_file_then_env(tmp_path, monkeypatch):
    from brushwork import paths

    cfg = paths.config_dir() / "settings.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('model_dirs = ["~/sd", "/data/comfy"]\ndefault_model = "x/y"\noffline = true\n')
    for var in ("HF_HUB_OFFLINE", "BRUSHWORK_MODEL_DIRS", "BRUSHWORK_DEFAULT_MODEL", "BRUSHWORK_ALLOW_PICKLE"):
        monkeypatch.delenv(var, raising=False)
    s = Settings.load()
    assert s.model_dirs == [Path("~/sd").expanduser(), Path("/data/comfy")]
    assert (s.default_model, s.offline, s.allow_pickle) == ("x/y", True, False)
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", os.pathsep.join(["/a", "/b"]))
    monkeypatch.setenv("BRUSHWORK_DEFAULT_MODEL", "tiny")
    monkeypatch.setenv("BRUSHWORK_ALLOW_PICKLE", "1")
    s = Settings.load()
    assert (s.model_dirs, s.default_model, s.allow_pickle) == ([Path("/a"), Path("/b")], "tiny", True)


def test_settings_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "settings.toml"
    bad.write_text("model_dir = []\n")
    with pytest.raises(SettingsError, match=r"settings.toml: unknown key 'model_dir'"):
        Settings.from_file(bad)
    bad.write_text("allow_pickle = 'yes'\n")
    with pytest.raises(SettingsError, match="allow_pickle must be true or false"):
        Settings.from_file(bad)
    bad.write_text("model_dirs = [\n")
    with pytest.raises(SettingsError, match="cannot read settings"):
        Settings.from_file(bad)
    assert Settings.from_file(tmp_path / "absent.toml") == Settings()


def test_the_worker_policy_takes_absolute_paths_but_never_a_bare_name_in_its_folder(tiny_models, tmp_path,
                                                                                   monkeypatch):
    """"absolute" (the worker's): a client's checked absolute path resolves; a bare name that happens
    to exist in the worker's working folder is not opened as a file (it stays a name)."""
    s = Settings(model_dirs=[])
    monkeypatch.chdir(tmp_path)
    _link(tiny_models.sd15, tmp_path / "local-model")
    assert sources.resolve("local-model", "pipeline", s).source == "folder"  # in-process: a path at a shell
    with pytest.raises(ModelNotFoundError):
        sources.resolve("local-model", "pipeline", s, allow_paths="absolute")
    with pytest.raises(ModelNotFoundError, match="paths are not accepted"):
        sources.resolve("./local-model", "pipeline", s, allow_paths="absolute")
    found = sources.resolve(str(tmp_path / "local-model"), "pipeline", s, allow_paths="absolute")
    assert found.source == "folder" and found.path == tmp_path / "local-model"
