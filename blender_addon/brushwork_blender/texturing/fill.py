"""Filling texels no view saw, and padding around UV islands. numpy only.

- ``dilate``: grows known texels outwards one ring per step (each new texel = the mean of its
  known 8-neighbours): the classic bake margin, which keeps the island's edge colour.
- ``push_pull``: fills every unknown texel with a smooth average of the known ones nearby
  (a mip pyramid of known texels, pulled back up): a cheap UV-space inpaint for the parts no view
  saw and for the background beyond the margin, so no mip level ever averages in black.
"""

from __future__ import annotations

import numpy as np


def _sum4(a: np.ndarray) -> np.ndarray:
    """Sum of the 4 edge neighbours of every texel (zeros beyond the border), by slice adds."""
    out = np.zeros_like(a)
    out[1:] += a[:-1]
    out[:-1] += a[1:]
    out[:, 1:] += a[:, :-1]
    out[:, :-1] += a[:, 1:]
    return out


def _sum8(a: np.ndarray) -> np.ndarray:
    """Sum of the 8 neighbours of every texel (zeros beyond the border)."""
    rows = a.copy()
    rows[1:] += a[:-1]
    rows[:-1] += a[1:]  # each texel + its vertical neighbours
    out = rows.copy()
    out[:, 1:] += rows[:, :-1]
    out[:, :-1] += rows[:, 1:]
    return out - a


def dilate(image: np.ndarray, known: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Grow the ``known`` (h, w) texels of ``image`` (h, w, c) by ``steps`` rings. Returns the new
    image and known mask (inputs untouched)."""
    img = np.array(image, dtype=np.float64, copy=True)
    mask = np.array(known, dtype=bool, copy=True)
    for _ in range(max(0, int(steps))):
        m = mask.astype(np.float64)
        total = _sum8(img * m[..., None])
        count = _sum8(m)
        grow = (~mask) & (count > 0)
        if not grow.any():
            break
        img[grow] = total[grow] / count[grow, None]
        mask |= grow
    return img, mask


def push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Every texel not ``known`` gets a smooth blend of the known texels around it; known texels
    are kept exactly. With nothing known the image is returned unchanged."""
    img = np.asarray(image, dtype=np.float64)
    weight = np.asarray(known, dtype=np.float64)
    if not weight.any():
        return img.copy()
    levels = [(img * weight[..., None], weight)]
    while max(levels[-1][1].shape) > 1:
        col, w = levels[-1]
        h, wd = w.shape
        ph, pw = h + (h % 2), wd + (wd % 2)  # pad to even with zero weight
        c2 = np.zeros((ph, pw, col.shape[2]))
        w2 = np.zeros((ph, pw))
        c2[:h, :wd], w2[:h, :wd] = col, w
        col = c2[0::2, 0::2] + c2[1::2, 0::2] + c2[0::2, 1::2] + c2[1::2, 1::2]
        w = w2[0::2, 0::2] + w2[1::2, 0::2] + w2[0::2, 1::2] + w2[1::2, 1::2]
        # Keep weights as "how much is known", capped at 1: premultiplied colour scaled alike.
        scale = np.where(w > 1.0, 1.0 / np.maximum(w, 1e-12), 1.0)
        levels.append((col * scale[..., None], w * scale))
    col, w = levels[-1]
    filled = col / np.maximum(w, 1e-12)[..., None]
    for col, w in reversed(levels[:-1]):
        h, wd = w.shape
        up = _upsample(filled, h, wd)
        own = col / np.maximum(w, 1e-12)[..., None]
        a = np.clip(w, 0.0, 1.0)[..., None]
        filled = own * a + up * (1.0 - a)
    out = img.copy()
    unknown = ~np.asarray(known, dtype=bool)
    out[unknown] = filled[unknown]
    return out


def _upsample_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear 2× upsampling along ``axis`` (texel centres aligned, edges clamped), cropped to n."""
    a = np.moveaxis(a, axis, 0)
    prev = np.concatenate([a[:1], a[:-1]], axis=0)
    nxt = np.concatenate([a[1:], a[-1:]], axis=0)
    out = np.empty((2 * a.shape[0],) + a.shape[1:], dtype=a.dtype)
    out[0::2] = 0.75 * a + 0.25 * prev
    out[1::2] = 0.75 * a + 0.25 * nxt
    return np.moveaxis(out[:n], 0, axis)


def _upsample(coarse: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear 2× upsampling (texel centres aligned) cropped to (h, w): smooth pull-back, no blocks."""
    return _upsample_axis(_upsample_axis(coarse, h, 0), w, 1)


def _half(a: np.ndarray) -> np.ndarray:
    """Sum of each 2×2 block (odd sizes padded with zeros)."""
    h, w = a.shape[:2]
    p = np.zeros(((h + 1) // 2 * 2, (w + 1) // 2 * 2) + a.shape[2:])
    p[:h, :w] = a
    return p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]


def relax(image: np.ndarray, confidence: np.ndarray, region: np.ndarray, iterations: int = 24,
          initial: np.ndarray | None = None) -> np.ndarray:
    """Smooth the texels of ``region`` towards the mean of their 4 neighbours inside ``region``,
    each held to its own value by its ``confidence`` (1: kept exactly, 0: free): a screened
    Laplace fill, solved coarse to fine (Jacobi steps per level, each level starting from the one
    below), so wide holes converge as fast as thin ones. Holes then join their rim without a step,
    like a membrane stretched between the texels that were seen well, and texels seen only at a
    grazing angle (little confidence) lean on their better-seen neighbours."""
    data = np.asarray(image, dtype=np.float64)
    region = np.asarray(region, dtype=bool)
    c = np.where(region, np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0), 0.0)
    h, w = region.shape
    img = data.copy() if initial is None else np.array(initial, dtype=np.float64, copy=True)
    if min(h, w) > 16 and initial is None:
        # The same problem at half size: confidence-weighted colours, region where any texel is.
        cw = _half(c)
        coarse_img = _half(data * c[..., None]) / np.maximum(cw, 1e-12)[..., None]
        coarse_c = cw / 4.0
        coarse_region = _half(region.astype(np.float64)) > 0
        known = cw > 0
        if min(coarse_img.shape[:2]) <= 32 and known.any():  # a starting guess where nothing is known
            coarse_img = push_pull(coarse_img, known)
        solved = relax(coarse_img, coarse_c, coarse_region, iterations)
        img = np.where((c < 1.0)[..., None], _upsample(solved, h, w), data)
    m = region.astype(np.float64)[..., None]
    count = _sum4(m)
    update = region & (c < 1.0) & (count[..., 0] > 0)
    if not update.any():
        return img
    # Work on the rows and columns that hold texels to update (plus a border of neighbours).
    rows, cols = np.nonzero(update)
    r0, r1 = max(0, rows.min() - 1), min(h, rows.max() + 2)
    c0, c1 = max(0, cols.min() - 1), min(w, cols.max() + 2)
    # float32 inside the loop: colours need no more, and it halves the memory traffic.
    f32 = np.float32
    sub = img[r0:r1, c0:c1].astype(f32)
    ms = m[r0:r1, c0:c1].astype(f32)
    up = update[r0:r1, c0:c1][..., None]
    keep = c[r0:r1, c0:c1][..., None]
    held = (data[r0:r1, c0:c1] * keep).astype(f32)
    free = ((1.0 - keep) / np.maximum(count[r0:r1, c0:c1], 1.0)).astype(f32)
    for _ in range(int(iterations)):
        sub = np.where(up, held + free * _sum4(sub * ms), sub)
    img[r0:r1, c0:c1] = sub
    return img


def finish_texture(image: np.ndarray, confidence: np.ndarray, island: np.ndarray,
                   margin: int) -> tuple[np.ndarray, int]:
    """The texture as baked: texels of the UV islands that no view saw (confidence 0) are filled
    (push-pull from the seen ones, then relaxed together with the texels seen only weakly), then
    ``margin`` texels of padding grow around the islands, and the rest of the background gets a
    smooth fill (no black anywhere for mip-maps to average in).
    Returns the image and how many island texels were filled without any view."""
    island = np.asarray(island, dtype=bool)
    confidence = np.where(island, np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0), 0.0)
    seen = confidence > 0
    unseen = int(np.count_nonzero(island & ~seen))
    if not seen.any():
        return np.asarray(image, dtype=np.float64).copy(), unseen
    inside = relax(push_pull(image, seen), confidence, island)
    out = np.where(island[..., None], inside, 0.0)
    out, known = dilate(out, island, margin)
    return push_pull(out, known), unseen
