"""Canny and scribble pictures against ControlNet's annotator code (which needs no weights).

The annotator's canny is ``cv2.Canny(resize_image(img, 512), 100, 200)`` on the RGB picture
(lllyasviel ControlNet-v1-1 annotator/canny + gradio_canny.py; controlnet-aux CannyDetector), and
its interactive scribble is ``resize_image(mask, res)`` then 255 where the value > 127
(gradio_scribble_interactive.py). ``resize_image`` scales the short side to the resolution,
rounds both sides to multiples of 64, and resizes with INTER_AREA (shrink) or INTER_LANCZOS4.
Those few OpenCV calls are restated below as the reference.
"""

import cv2
import numpy as np
import pytest
from brushwork.conditioning import prepare_control
from brushwork.conditioning.lines import canny, canny_image, scribble_image
from brushwork.recipe import Control
from PIL import Image, ImageDraw


def resize_image(arr: np.ndarray, resolution: int) -> np.ndarray:
    h, w = arr.shape[:2]
    k = resolution / min(h, w)
    new_h, new_w = int(np.round(h * k / 64.0)) * 64, int(np.round(w * k / 64.0)) * 64
    return cv2.resize(arr, (new_w, new_h), interpolation=cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA)


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A photo-like picture: smooth colour gradients, shapes, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=2)
    img = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.integers(0, w), rng.integers(0, h)
        draw.ellipse((x, y, x + rng.integers(5, w // 3), y + rng.integers(5, h // 3)),
                     fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


@pytest.mark.parametrize("low, high", [(100, 200), (50, 120), (1, 255)])
def test_canny_is_opencv_canny_on_the_colour_picture(low, high):
    img = photo(96, 80, seed=low)
    expected = cv2.Canny(np.asarray(img), low, high)
    assert np.array_equal(np.asarray(canny(img, low, high)), expected)


def test_a_red_green_boundary_of_equal_brightness_is_an_edge():
    # Red 200 and green 102 have the same luma (0.299*200 = 59.8 = 0.587*102): a grey picture
    # is flat across the boundary, OpenCV on RGB sees the red and green channels jump.
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[:, :16] = (200, 0, 0)
    arr[:, 16:] = (0, 102, 0)
    img = Image.fromarray(arr)
    assert not cv2.Canny(np.asarray(img.convert("L")), 100, 200).any()  # what the grey version missed
    edges = np.asarray(canny(img))
    assert np.array_equal(edges, cv2.Canny(arr, 100, 200))
    assert edges[:, 15:17].any(axis=1).all() and not edges[:, :14].any() and not edges[:, 18:].any()


def test_canny_control_is_the_annotators_canny_at_its_resolution():
    # A 1024x768 photo at the annotator's 512: resize_image gives 704x512 and Canny runs there.
    img = photo(1024, 768, seed=3)
    expected = cv2.Canny(resize_image(np.asarray(img), 512), 100, 200)
    assert expected.shape == (512, 704)
    ours = np.asarray(canny_image(img, (704, 512)))
    assert np.array_equal(ours, np.stack([expected] * 3, axis=2))
    grown = photo(200, 150, seed=4)  # growing uses Lanczos-4 there too
    expected = cv2.Canny(resize_image(np.asarray(grown), 512), 100, 200)
    assert np.array_equal(np.asarray(canny_image(grown, (704, 512)))[:, :, 0], expected)


def test_canny_through_prepare_control():
    import io

    img = photo(128, 96, seed=5)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    out = prepare_control(Control(kind="canny", image="p"), lambda ref: buf.getvalue(), 128, 96)
    assert np.array_equal(np.asarray(out)[:, :, 0], cv2.Canny(np.asarray(img), 100, 200))


def test_scribble_of_a_stroke_mask_is_the_interactive_scribble_demos():
    mask = Image.new("L", (300, 200), 0)
    draw = ImageDraw.Draw(mask)
    draw.line((10, 20, 290, 180), fill=255, width=7)
    draw.ellipse((100, 40, 180, 120), outline=255, width=4)
    mask = mask.convert("RGB")
    reference = resize_image(np.asarray(mask), 512)  # 768x512
    expected = np.zeros_like(reference)
    expected[np.min(reference, axis=2) > 127] = 255
    ours = np.asarray(scribble_image(mask, (reference.shape[1], reference.shape[0])))
    assert np.array_equal(ours, expected)


def test_faint_pencil_scribble_keeps_its_strokes():
    paper = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(paper).line((8, 32, 56, 32), fill=190, width=3)  # light grey pencil on white
    out = np.asarray(scribble_image(paper, (64, 64)))
    assert out[32, 30].tolist() == [255, 255, 255] and out[10, 10].tolist() == [0, 0, 0]
