"""Masks: loading any mode, growing, and a paste-back that keeps every outside pixel exactly."""

import io

import numpy as np
import pytest
from brushwork.conditioning.masks import feather_weights, grow_mask, inpaint_control_array, load_mask, paste_back
from brushwork.errors import InputImageError
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image


def png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def square_mask(size=(32, 32), box=(8, 8, 24, 24)) -> Image.Image:
    m = Image.new("L", size, 0)
    m.paste(255, box)
    return m


def test_load_white_means_repaint_any_mode():
    rgb = Image.new("RGB", (16, 16), (0, 0, 0))
    rgb.paste((255, 255, 255), (4, 4, 8, 8))
    m = load_mask(png(rgb), (16, 16))
    assert m.mode == "L" and m.getpixel((5, 5)) == 255 and m.getpixel((0, 0)) == 0
    grey = Image.new("L", (16, 16), 100)  # below half: keep
    assert load_mask(png(grey)).getextrema() == (0, 0)


def test_alpha_only_mask_uses_alpha():
    layer = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    layer.paste((0, 0, 0, 255), (2, 2, 6, 6))  # black strokes on an empty layer
    m = load_mask(png(layer), (16, 16))
    assert m.getpixel((3, 3)) == 255 and m.getpixel((10, 10)) == 0


def test_opaque_rgba_uses_brightness():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    img.paste((255, 255, 255, 255), (0, 0, 4, 8))
    m = load_mask(png(img))
    assert m.getpixel((1, 1)) == 255 and m.getpixel((6, 1)) == 0


def test_mask_of_another_size_is_an_error():
    with pytest.raises(InputImageError, match="mask: is 16x16 but the image it masks is 32x32"):
        load_mask(png(Image.new("L", (16, 16))), (32, 32))


def test_corrupt_mask_is_an_error():
    with pytest.raises(InputImageError, match="mask: not an image"):
        load_mask(b"garbage")


def test_grow_dilates_by_px():
    grown = np.asarray(grow_mask(square_mask(), 3)) > 0
    assert grown[5, 5] and grown[26, 26] and not grown[4, 4] and not grown[27, 27]
    assert (np.asarray(grow_mask(square_mask(), 0)) == np.asarray(square_mask())).all()


def test_feather_lies_inside_the_mask():
    w = feather_weights(square_mask(), 4)
    assert w[0:8].max() == 0 and w[:, 24:].max() == 0
    assert w[8, 8] == pytest.approx(0.25) and w[10, 10] == pytest.approx(0.75) and w[15, 15] == 1.0


@settings(max_examples=25, deadline=None)
@given(feather=st.integers(0, 12), grow=st.integers(0, 6), seed=st.integers(0, 2**16),
       box=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(1, 12), st.integers(1, 12)))
def test_paste_back_keeps_every_outside_pixel_exactly(feather, grow, seed, box):
    rng = np.random.default_rng(seed)
    original = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    generated = Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    x, y, w, h = box
    mask = grow_mask(square_mask((40, 32), (x, y, x + w, y + h)), grow)
    out = np.asarray(paste_back(original, generated, mask, feather))
    outside = np.asarray(mask) == 0
    assert (out[outside] == np.asarray(original)[outside]).all()
    core = feather_weights(mask, feather) == 1.0
    assert (out[core] == np.asarray(generated)[core]).all()


def test_paste_back_resizes_generated_to_original():
    original = Image.new("RGB", (37, 21), (10, 20, 30))
    generated = Image.new("RGB", (64, 64), (200, 200, 200))
    mask = square_mask((37, 21), (0, 0, 10, 10))
    out = paste_back(original, generated, mask, 0)
    assert out.size == (37, 21)
    assert out.getpixel((20, 15)) == (10, 20, 30) and out.getpixel((2, 2)) == (200, 200, 200)


def test_paste_back_refuses_a_mask_of_another_size():
    with pytest.raises(InputImageError, match="mask"):
        paste_back(Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8)), Image.new("L", (4, 4)), 0)


def test_inpaint_control_marks_masked_pixels_minus_one():
    img = Image.new("RGB", (8, 4), (255, 0, 51))
    mask = square_mask((8, 4), (0, 0, 2, 4))
    arr = inpaint_control_array(img, mask)
    assert arr.shape == (1, 3, 4, 8) and arr.dtype == np.float32
    assert (arr[0, :, :, :2] == -1).all()
    assert arr[0, 0, 0, 5] == 1.0 and arr[0, 2, 0, 5] == pytest.approx(0.2)
