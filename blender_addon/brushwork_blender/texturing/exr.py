"""The pass files a view's render writes, read back: uncompressed scanline OpenEXR by numpy
(``read_exr``: no bpy, so a reader thread can parse while the UI runs), and Blender's own image
loader for any other form (``read_pass_bpy``, main thread)."""

from __future__ import annotations

import numpy as np


def read_pass(path: str, channels: int, bpy_ok: bool = True) -> np.ndarray:
    """(h, w, channels) float32 of a pass file, row 0 at the top: numpy straight from the file
    (``read_exr``), else (``bpy_ok``) through Blender's image loader for a form it does not cover."""
    try:
        planes = read_exr(path)
    except ValueError:
        if not bpy_ok:
            raise
        return read_pass_bpy(path, channels)
    # The File Output node names the channels R, G, B, A (a value in each) or X, Y, Z (vectors).
    order = [n for n in ("R", "G", "B", "X", "Y", "Z", "V") if n in planes] or sorted(planes)
    return np.stack([planes[n] for n in order[:channels]], axis=-1)


def read_pass_bpy(path: str, channels: int) -> np.ndarray:
    import bpy

    image = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = image.size
        buf = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(buf)
    finally:
        bpy.data.images.remove(image)
    return buf.reshape(h, w, 4)[::-1, :, :channels].copy()  # Blender stores bottom-up


_EXR_TYPES = {1: np.dtype("<f2"), 2: np.dtype("<f4"), 0: np.dtype("<u4")}


def read_exr(path: str) -> dict[str, np.ndarray]:
    """The channels of an uncompressed, single-part, scanline OpenEXR file (what the File Output
    node writes with codec NONE, Blender's default) as {name: (h, w) float32}, row 0 at the top.
    Raises ValueError for any other form. numpy only, no bpy."""
    from pathlib import Path

    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != b"v/1\x01" or data[5] & 0x1A:  # magic; tiled, deep or multipart files
        raise ValueError(f"{path}: not a plain scanline OpenEXR file")
    pos, attrs = 8, {}
    while data[pos] != 0:
        end = bytes(data[pos:pos + 600]).index(b"\0", 0)
        name = bytes(data[pos:pos + end]).decode()
        pos += end + 1
        end = bytes(data[pos:pos + 600]).index(b"\0", 0)
        kind = bytes(data[pos:pos + end]).decode()
        pos += end + 1
        size = int.from_bytes(data[pos:pos + 4], "little")
        attrs[name] = (kind, bytes(data[pos + 4:pos + 4 + size]))
        pos += 4 + size
    pos += 1
    if attrs.get("compression", ("", b"\x00"))[1] != b"\x00":
        raise ValueError(f"{path}: compressed OpenEXR")
    box = np.frombuffer(attrs["dataWindow"][1], dtype="<i4")
    w, h = int(box[2] - box[0] + 1), int(box[3] - box[1] + 1)
    channels, raw = [], attrs["channels"][1]
    i = 0
    while raw[i] != 0:
        end = raw.index(b"\0", i)
        name = raw[i:end].decode()
        pixel_type, xs, ys = np.frombuffer(raw[end + 1:end + 17], dtype="<i4")[[0, 2, 3]]
        if xs != 1 or ys != 1 or pixel_type not in _EXR_TYPES:
            raise ValueError(f"{path}: subsampled or unknown channel {name!r}")
        channels.append((name, _EXR_TYPES[int(pixel_type)]))
        i = end + 17
    row_bytes = sum(dt.itemsize for _, dt in channels) * w
    # The offset table gives each line's block (int32 y, int32 byte count, then the line of each
    # channel in turn), line k = the k-th from the top, wherever the file put it.
    offsets = np.frombuffer(data[pos:pos + 8 * h], dtype="<u8").astype(np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(offsets) != h or int(offsets.max()) + 8 + row_bytes > buf.size:
        raise ValueError(f"{path}: truncated OpenEXR")
    first, stride = int(offsets[0]), row_bytes + 8
    if np.array_equal(offsets, first + stride * np.arange(h)):  # the usual layout: lines in order, back to back
        block = buf[first:first + stride * h].reshape(h, stride)[:, 8:]
    else:
        block = np.stack([buf[int(o) + 8:int(o) + 8 + row_bytes] for o in offsets])
    planes, col = {}, 0
    for name, dt in channels:
        n = dt.itemsize * w
        planes[name] = block[:, col:col + n].copy().view(dt).astype(np.float32).reshape(h, w)
        col += n
    return planes
