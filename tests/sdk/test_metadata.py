"""PNG metadata: A1111 layout, the brushwork chunk round trip, atomic writes, readers' errors."""

import io
import os

import pytest
from brushwork.errors import InputImageError
from brushwork.metadata import format_parameters, parse_parameters, read_metadata, recipe_from_parameters, save_png
from brushwork.recipe import Control, Embedding, Lora, Recipe
from PIL import Image, PngImagePlugin

SHA = "sha256:" + "ab" * 32


def recipe(**kw) -> Recipe:
    base = dict(prompt="a red fox, (snow:1.2)", negative_prompt="blurry, text", model="tiny-sd15", seed=42,
                steps=20, cfg=7.0, width=512, height=512, sampler="Euler a")
    return Recipe(**{**base, **kw})


def test_a1111_layout_exactly():
    text = format_parameters(recipe(), hashes={"model": "0123456789abcdef" * 4})
    assert text == ("a red fox, (snow:1.2)\n"
                    "Negative prompt: blurry, text\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, "
                    "Model hash: 0123456789, Model: tiny-sd15, Version: brushwork 0.1.0")


def test_a1111_extras_loras_img2img_controls_and_quoting():
    r = recipe(loras=[Lora("detail", 0.8)], init_image=SHA, strength=0.5, mask=SHA, mask_feather=6,
               tiling="xy", cfg=7.5, model="C:/models/dream:v2.safetensors",
               controls=[Control(kind="depth", image=SHA, strength=0.7, end=0.8)], negative_prompt="")
    text = format_parameters(r, hashes={"lora:detail": "f" * 64, "model": "e" * 64},
                             sources={"lora:detail": __file__})  # a file that is not safetensors
    prompt, settings = text.split("\n")
    assert prompt == "a red fox, (snow:1.2) <lora:detail:0.8>"
    assert "CFG scale: 7.5" in settings and "Denoising strength: 0.5" in settings
    assert "Mask blur: 6" in settings and "Tiling: True" in settings
    assert 'Lora hashes: "detail: ffffffffffff"' in settings  # A1111: 12 digits
    assert ('ControlNet 0: "Module: none, Model: depth (default), Weight: 0.7, Guidance Start: 0, '
            'Guidance End: 0.8"') in settings
    assert "Model: dream:v2" not in settings and 'Model: "dream:v2"' in settings  # colons are quoted
    parsed = parse_parameters(text)
    assert parsed["Model"] == "dream:v2" and parsed["Lora hashes"] == "detail: ffffffffffff"
    assert parsed["negative_prompt"] == ""


def test_parse_real_a1111_text():
    text = ("masterpiece, 1girl\nwith a second line\nNegative prompt: lowres, bad hands\n"
            "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, "
            "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.9.4")
    p = parse_parameters(text)
    assert p["prompt"] == "masterpiece, 1girl\nwith a second line"
    assert p["negative_prompt"] == "lowres, bad hands"
    assert p["Steps"] == "28" and p["Seed"] == "1234" and p["Model hash"] == "6ce0161689"
    r = recipe_from_parameters(p)
    assert (r.steps, r.cfg, r.seed, r.width, r.height) == (28, 6.5, 1234, 512, 768)
    assert r.sampler == "DPM++ 2M Karras" and r.model == "v1-5-pruned-emaonly"
    r.validate()


def test_round_trip_through_a_file(tmp_path):
    r = recipe(loras=[Lora("detail", 0.8)], init_image=SHA, controls=[Control(kind="canny", image=SHA)])
    hashes = {"model": "1" * 64, "lora:detail": "2" * 64}
    sources = {"model": "/models/tiny", SHA: "/in/photo.png"}
    out = save_png(Image.new("RGB", (64, 64), (1, 2, 3)), tmp_path / "a.png", r, hashes=hashes, sources=sources)
    assert out == tmp_path / "a.png" and os.listdir(tmp_path) == ["a.png"]  # no temp file left
    meta = read_metadata(out)
    assert meta.recipe == r and meta.hashes == hashes and meta.sources == sources
    assert meta.version == "0.1.0"
    assert meta.parameters["Seed"] == "42" and meta.parameters["prompt"].endswith("<lora:detail:0.8>")
    with Image.open(out) as img:
        assert img.getpixel((0, 0)) == (1, 2, 3)


def test_non_latin_prompt_survives(tmp_path):
    r = recipe(prompt="桜の木, café ☕", negative_prompt="ぼやけ")
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "u.png", r)
    meta = read_metadata(path)
    assert meta.recipe.prompt == "桜の木, café ☕" and meta.parameters["prompt"] == "桜の木, café ☕"


def test_other_tools_read_ours(tmp_path):
    sd_parsers = pytest.importorskip("sd_parsers")
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "x.png", recipe(), hashes={"model": "9" * 64})
    info = sd_parsers.ParserManager().parse(str(path))
    assert info is not None and info.generator.name == "AUTOMATIC1111"
    assert [str(p) for p in info.prompts] == ["a red fox, (snow:1.2)"]
    assert [str(p) for p in info.negative_prompts] == ["blurry, text"]
    [sampler] = info.samplers
    assert sampler.name == "Euler a" and sampler.parameters["seed"] == "42"
    assert sampler.model.name == "tiny-sd15" and sampler.model.hash == "9999999999"


def test_failed_write_leaves_nothing(tmp_path):
    bad = Image.new("RGB", (8, 8))
    bad.save = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))
    with pytest.raises(OSError):
        save_png(bad, tmp_path / "f.png", recipe())
    assert os.listdir(tmp_path) == []


def test_reader_errors(tmp_path):
    jpg = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8)).save(jpg)
    with pytest.raises(InputImageError, match="not a PNG"):
        read_metadata(jpg)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(InputImageError, match="has no generation metadata"):
        read_metadata(plain)
    with pytest.raises(InputImageError, match="no such file"):
        read_metadata(tmp_path / "missing.png")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("brushwork", "{not json")
    broken = tmp_path / "broken.png"
    Image.new("RGB", (8, 8)).save(broken, pnginfo=info)
    with pytest.raises(InputImageError, match="not valid JSON"):
        read_metadata(broken)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("brushwork", '{"recipe": {"steps": 0, "bogus": 1}}')
    Image.new("RGB", (8, 8)).save(broken, pnginfo=info)
    with pytest.raises(InputImageError, match="recipe it carries is invalid"):
        read_metadata(broken)
    truncated = tmp_path / "t.png"
    data = io.BytesIO()
    Image.effect_noise((64, 64), 40).save(data, "PNG")
    truncated.write_bytes(data.getvalue()[:200])
    with pytest.raises(InputImageError, match="corrupt PNG"):
        read_metadata(truncated)


def test_a1111_only_image_reads_without_recipe(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64")
    path = tmp_path / "a1111.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    meta = read_metadata(path)
    assert meta.recipe is None and meta.parameters["Sampler"] == "Euler" and meta.parameters["prompt"] == "cat"


# ---- A1111 hashes --------------------------------------------------------------------------------
# AUTOMATIC1111 modules/hashes.py addnet_hash_safetensors: read the 8-byte little-endian header
# length n, sha256 of everything from byte 8 + n; Lora network.py keeps hash[0:12] and writes
# "Lora hashes: name: shorthash"; textual_inversion.py hashes the whole file (no addnet), [0:12];
# the checkpoint's "Model hash" is sha256[0:10].

def _safetensors_bytes(data: bytes, metadata: dict) -> bytes:
    """A safetensors file built by hand from the format's spec: u64 header length, JSON, data."""
    import json
    import struct

    header = json.dumps({"__metadata__": metadata,
                         "w": {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def test_lora_hash_is_a1111s_addnet_hash_of_the_tensor_bytes(tmp_path):
    import hashlib

    from brushwork.metadata import addnet_hash

    data = bytes(range(256)) * 3
    a, b = tmp_path / "detail.safetensors", tmp_path / "renamed.safetensors"
    a.write_bytes(_safetensors_bytes(data, {"ss_output_name": "detail"}))
    b.write_bytes(_safetensors_bytes(data, {"ss_output_name": "something else", "note": "x" * 40}))
    expected = hashlib.sha256(data).hexdigest()
    # The header (training metadata) is not hashed: both files are the same LoRA to A1111/civitai.
    assert addnet_hash(a) == addnet_hash(b) == expected
    assert hashlib.sha256(a.read_bytes()).hexdigest() != expected
    r = recipe(loras=[Lora(str(a), 0.7)], embeddings=[Embedding(str(tmp_path / "neg.pt"), "badhands")])
    (tmp_path / "neg.pt").write_bytes(b"an embedding")
    ti = hashlib.sha256(b"an embedding").hexdigest()
    hashes = {"model": "c" * 64, f"lora:{a}": hashlib.sha256(a.read_bytes()).hexdigest(),
              f"embedding:{tmp_path / 'neg.pt'}": ti}
    sources = {f"lora:{a}": str(a), f"embedding:{tmp_path / 'neg.pt'}": str(tmp_path / "neg.pt")}
    params = parse_parameters(format_parameters(r, hashes=hashes, sources=sources))
    assert params["Lora hashes"] == f"detail: {expected[:12]}"
    assert params["TI hashes"] == f"badhands: {ti[:12]}"
    assert params["Model hash"] == "c" * 10


def test_a_safetensors_file_written_by_the_library_hashes_as_a1111(tmp_path):
    import hashlib

    import numpy as np
    from brushwork.metadata import addnet_hash
    from safetensors.numpy import save_file

    path = tmp_path / "lora.safetensors"
    save_file({"down": np.arange(12, dtype=np.float32), "up": np.ones(3, np.float16)}, str(path), {"k": "v"})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert addnet_hash(path) == hashlib.sha256(raw[8 + n:]).hexdigest()


def test_hub_loras_get_no_made_up_hash():
    r = recipe(loras=[Lora("someone/lora-repo", 1.0)])
    key = "lora:someone/lora-repo"
    text = format_parameters(r, hashes={key: "f" * 64}, sources={key: "someone/lora-repo"})
    assert "Lora hashes" not in text


def test_brushwork_info_shows_the_a1111_hashes(tmp_path, capsys):
    from brushwork.cli import main

    lora = tmp_path / "detail.safetensors"
    lora.write_bytes(_safetensors_bytes(b"weights", {}))
    r = recipe(loras=[Lora(str(lora), 0.5)])
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "i.png", r,
                    hashes={"model": "d" * 64, f"lora:{lora}": "e" * 64}, sources={f"lora:{lora}": str(lora)})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    import hashlib

    assert f"Lora hashes: \"detail: {hashlib.sha256(b'weights').hexdigest()[:12]}\"" in out
    assert "Model hash: dddddddddd" in out


# A1111 modules/infotext_utils.py parse_generation_parameters: the last line is the settings line
# when it holds 3+ "Key: value" items; every other line is .strip()ped, "Negative prompt:" is
# looked for at the start of the stripped line, and lines are joined with "\n" once non-empty.
@pytest.mark.parametrize("text, prompt, negative", [
    ("a cat\n  Negative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7", "a cat", "blurry"),
    ("a cat\r\nNegative prompt: blurry\r\nSteps: 20, Sampler: Euler a, CFG scale: 7", "a cat", "blurry"),
    ("  a cat  \n\twith a hat\nNegative prompt:   blurry  \n  lowres\nSteps: 20, Seed: 1, Size: 8x8",
     "a cat\nwith a hat", "blurry\nlowres"),
    ("\na cat\n\nin snow\nSteps: 20, Seed: 1, Size: 8x8", "a cat\n\nin snow", ""),
    ("only a prompt, Negative prompt: inside a line", "only a prompt, Negative prompt: inside a line", ""),
])
def test_reading_a1111_text_strips_each_line_as_a1111(text, prompt, negative):
    params = parse_parameters(text)
    assert (params["prompt"], params["negative_prompt"]) == (prompt, negative)
