"""prepare_control dispatch, safe image opening, sketches, canny and the optional estimators."""

import importlib.util
import io
import struct
import zlib

import numpy as np
import pytest
from brushwork.conditioning import ESTIMATORS, estimator_table, prepare_control
from brushwork.conditioning.estimators import MissingDependencyError, run_estimator
from brushwork.conditioning.images import open_image
from brushwork.conditioning.lines import canny, looks_like_edge_map, sketch_lines
from brushwork.conditioning.pose import COLORS
from brushwork.errors import InputImageError, RecipeError
from brushwork.recipe import Control
from PIL import Image, ImageDraw


def png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def sketch(dark_on_light=True, size=(64, 64)) -> Image.Image:
    bg, ink = ((255, 255, 255), (0, 0, 0)) if dark_on_light else ((0, 0, 0), (255, 255, 255))
    img = Image.new("RGB", size, bg)
    ImageDraw.Draw(img).line((8, 32, 56, 32), fill=ink, width=3)
    return img


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height with a tiny body: decoding it would allocate GBs."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# ---- safe opening ---------------------------------------------------------------------------

def test_open_refuses_bombs_before_decoding():
    with pytest.raises(InputImageError, match="init_image: 9000x9000 is too large"):
        open_image(bomb_png(9000, 9000), what="init_image")
    with pytest.raises(InputImageError, match="init_image: is too large"):  # PIL's own bomb check
        open_image(bomb_png(100_000, 100_000), what="init_image")


def test_open_refuses_truncated_and_garbage_and_empty():
    data = png(Image.effect_noise((64, 64), 50))
    with pytest.raises(InputImageError, match="x: corrupt or truncated"):
        open_image(data[: len(data) // 2], what="x")
    with pytest.raises(InputImageError, match="not an image"):
        open_image(b"\x80\x04pickle data", what="x")
    with pytest.raises(InputImageError, match="empty"):
        open_image(b"", what="x")


# ---- sketches and edges ---------------------------------------------------------------------

def test_sketch_lines_auto_inverts_dark_on_light():
    for dark in (True, False):
        lines = np.asarray(sketch_lines(sketch(dark)))
        assert lines[32, 30] == 255 and lines[5, 5] == 0


def test_sketch_on_transparent_layer_uses_stroke_opacity():
    layer = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    ImageDraw.Draw(layer).line((0, 16, 31, 16), fill=(20, 20, 20, 255), width=1)
    lines = np.asarray(sketch_lines(layer))
    assert lines[16, 10] == 255 and lines[4, 4] == 0


def test_canny_finds_the_edges_of_a_square_only():
    img = Image.new("L", (64, 64), 0)
    img.paste(255, (16, 16, 48, 48))
    edges = np.asarray(canny(img)) > 0
    assert edges[16:48, 15:17].any(axis=1).all()  # the left side is traced all along
    assert not edges[30, 30] and not edges[2, 2]  # flat areas have no edges
    assert edges.sum() < 4 * 34 * 2  # thin (about one pixel wide), not a filled band
    assert not canny(Image.new("L", (16, 16), 128)).getbbox()  # no edges in a flat picture


def test_edge_map_detection():
    assert looks_like_edge_map(canny(sketch()).convert("RGB"))
    assert not looks_like_edge_map(Image.effect_noise((32, 32), 80).convert("RGB"))


# ---- prepare_control --------------------------------------------------------------------------

def reader(files: dict):
    return lambda ref: files[ref]


def test_scribble_control_is_white_on_black_at_size():
    ctl = Control(kind="scribble", image="s.png")
    out = prepare_control(ctl, reader({"s.png": png(sketch())}), 128, 96)
    arr = np.asarray(out)
    assert out.mode == "RGB" and out.size == (128, 96)
    assert arr[48, 60].tolist() == [255, 255, 255] and arr[5, 5].tolist() == [0, 0, 0]
    assert set(np.unique(arr)) <= {0, 255}


def test_lineart_control_keeps_greys():
    out = prepare_control(Control(kind="lineart", image="s"), reader({"s": png(sketch())}), 64, 64)
    assert np.asarray(out)[32, 30, 0] == 255 and np.asarray(out)[5, 5, 0] == 0


def test_canny_control_runs_on_photo_and_passes_edge_maps_through():
    photo = Image.new("RGB", (64, 64), (30, 30, 30))
    photo.paste((220, 200, 180), (16, 16, 48, 48))
    out = prepare_control(Control(kind="canny", image="p"), reader({"p": png(photo)}), 64, 64)
    assert np.asarray(out)[32, 32].tolist() == [0, 0, 0] and np.asarray(out)[16:48, 15:17].max() == 255
    edges = canny(photo).convert("RGB")
    again = prepare_control(Control(kind="canny", image="e"), reader({"e": png(edges)}), 64, 64)
    assert (np.asarray(again) == np.asarray(edges)).all()


def test_depth_signal_and_depth_image():
    depth = np.tile(np.linspace(1, 5, 8, dtype="<f4"), (4, 1))
    signal = {"data": "d", "width": 8, "height": 4, "format": "f32le", "near": 1.0, "far": 5.0}
    out = prepare_control(Control(kind="depth", signal=signal), reader({"d": depth.tobytes()}), 64, 64)
    assert out.size == (64, 64) and np.asarray(out)[32, 0, 0] == 255 and np.asarray(out)[32, 63, 0] == 0
    grey = Image.new("L", (32, 32), 77)
    out = prepare_control(Control(kind="depth", image="g"), reader({"g": png(grey)}), 64, 64)
    assert out.mode == "RGB" and np.asarray(out)[3, 3].tolist() == [77, 77, 77]


def test_pose_signal():
    flat = [0.0] * 54
    flat[3:6] = [32, 16, 1]  # neck at (32, 16) on a 64x64 canvas
    signal = {"people": [{"pose_keypoints_2d": flat}], "canvas_width": 64, "canvas_height": 64}
    out = prepare_control(Control(kind="pose", signal=signal), reader({}), 128, 128)
    assert out.getpixel((64, 32)) == COLORS[1]


def test_inpaint_control_tensor():
    init = Image.new("RGB", (80, 80), (255, 255, 255))
    mask = Image.new("L", (80, 80), 0)
    mask.paste(255, (0, 0, 40, 80))
    t = prepare_control(Control(kind="inpaint"), reader({}), 64, 64, init_image=init, mask=mask)
    assert tuple(t.shape) == (1, 3, 64, 64)
    assert float(t[0, 0, 10, 5]) == -1.0 and float(t[0, 0, 10, 60]) == 1.0
    with pytest.raises(InputImageError, match="needs the init image and the mask"):
        prepare_control(Control(kind="inpaint"), reader({}), 64, 64)


def test_corrupt_control_image_names_the_control():
    with pytest.raises(InputImageError, match=r"controls\[1\].image: not an image"):
        prepare_control(Control(kind="depth", image="x"), reader({"x": b"nope"}), 64, 64, where="controls[1]")


# ---- estimators ----------------------------------------------------------------------------------

def test_estimator_table_states_licences():
    rows = {name: licence for name, _kind, licence, _ in estimator_table()}
    assert "non-commercial" in rows["openpose"]
    assert rows["depth-midas"] == "MIT" and rows["depth-anything"].startswith("Apache-2.0")
    assert all(e.kind in ("depth", "pose", "lineart", "canny") for e in ESTIMATORS.values())


def test_canny_estimator_needs_nothing():
    photo = Image.new("RGB", (32, 32), 0)
    photo.paste((255, 255, 255), (8, 8, 24, 24))
    out = run_estimator("canny", photo, (32, 32))
    assert out.mode == "RGB" and np.asarray(out).max() == 255


def test_unknown_estimator_names_the_field():
    with pytest.raises(RecipeError, match=r"controls\[0\].preprocess: unknown estimator 'magic'"):
        run_estimator("magic", Image.new("RGB", (8, 8)), (8, 8), where="controls[0].preprocess")


@pytest.mark.skipif(importlib.util.find_spec("controlnet_aux") is not None, reason="controlnet-aux is installed")
def test_missing_controlnet_aux_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"pip install brushwork\[control\]"):
        run_estimator("depth-midas", Image.new("RGB", (8, 8)), (8, 8))
