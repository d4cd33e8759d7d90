"""Depth → ControlNet picture: ordering, robust range, NaN/inf, constant depth, signals."""

import io

import numpy as np
import pytest
from brushwork.conditioning.depth import depth_from_bytes, depth_signal_to_image, depth_to_image
from brushwork.errors import InputImageError


def grey(img):
    arr = np.asarray(img)
    assert img.mode == "RGB"
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    return arr[..., 0].astype(int)


def test_near_is_bright_far_is_dark():
    depth = np.tile(np.linspace(1.0, 10.0, 32, dtype=np.float32), (8, 1))  # left near, right far
    out = grey(depth_to_image(depth, near=1.0, far=10.0))
    assert out[0, 0] == 255 and out[0, -1] == 0
    assert (np.diff(out[0]) <= 0).all()  # strictly ordered: farther never brighter


def test_invert_means_larger_is_nearer():
    disparity = np.tile(np.linspace(0.0, 1.0, 16), (4, 1))  # right is nearer
    out = grey(depth_to_image(disparity, invert=True))
    assert out[0, -1] == 255 and out[0, 0] == 0


def test_explicit_near_far_clip_beyond():
    depth = np.array([[0.5, 2.0, 3.0, 50.0]])
    out = grey(depth_to_image(depth, near=2.0, far=4.0))
    assert out.tolist() == [[255, 255, 128, 0]]


def test_percentiles_ignore_a_stray_far_pixel():
    depth = np.full((50, 50), 2.0)
    depth[:, 25:] = 4.0
    depth[0, 0] = 1e6  # one stray sky pixel
    out = grey(depth_to_image(depth))
    assert out[10, 5] == 255 and out[10, 40] == 0  # the real range still uses full contrast


def test_nan_and_inf_are_far_black():
    depth = np.array([[1.0, np.nan], [np.inf, 2.0]], dtype=np.float32)
    out = grey(depth_to_image(depth, near=1.0, far=2.0))
    assert out.tolist() == [[255, 0], [0, 0]]


def test_all_nan_is_black_and_constant_is_mid_grey():
    assert grey(depth_to_image(np.full((4, 4), np.nan))).max() == 0
    out = grey(depth_to_image(np.full((4, 4), 3.0)))
    assert (out == 128).all()


def test_resize_to_size():
    img = depth_to_image(np.zeros((10, 20)) + np.arange(20), size=(64, 32))
    assert img.size == (64, 32)


def test_bad_shapes():
    with pytest.raises(InputImageError, match="2-D"):
        depth_to_image(np.zeros((2, 2, 3)))
    with pytest.raises(InputImageError, match="2-D"):
        depth_to_image(np.zeros((0,)))


def test_f32le_signal_round_trip():
    depth = np.arange(12, dtype="<f4").reshape(3, 4)
    arr = depth_from_bytes(depth.tobytes(), width=4, height=3)
    assert arr.shape == (3, 4) and (arr == depth).all()
    signal = {"data": "d", "width": 4, "height": 3, "format": "f32le", "near": 0.0, "far": 11.0}
    out = grey(depth_signal_to_image(signal, {"d": depth.tobytes()}.__getitem__, (4, 3)))
    assert out[0, 0] == 255 and out[2, 3] == 0


def test_f32le_size_mismatch_is_clear():
    with pytest.raises(InputImageError, match=r"40 bytes is not 4x3 float32 values \(48 bytes expected\)"):
        depth_from_bytes(b"\0" * 40, width=4, height=3)


def test_npy_signal_and_its_errors():
    buf = io.BytesIO()
    np.save(buf, np.ones((3, 4), dtype=np.float64))
    assert depth_from_bytes(buf.getvalue(), width=4, height=3, fmt="npy").shape == (3, 4)
    with pytest.raises(InputImageError, match="array is 4x3 but the signal says 3x4"):
        depth_from_bytes(buf.getvalue(), width=3, height=4, fmt="npy")
    with pytest.raises(InputImageError, match="npy"):
        depth_from_bytes(b"not numpy", width=4, height=3, fmt="npy")
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputImageError):  # never unpickled
        depth_from_bytes(obj.getvalue(), width=1, height=1, fmt="npy")
    with pytest.raises(InputImageError, match="unknown format"):
        depth_from_bytes(b"", width=1, height=1, fmt="exr")
