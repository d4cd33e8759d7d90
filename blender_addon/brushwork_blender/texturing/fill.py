"""Filling texels no view saw, and padding around UV islands. numpy only.

- ``dilate``: grows known texels outwards one ring per step (each new texel = the mean of its
  known 8-neighbours): the classic bake margin, which keeps the island's edge colour.
- ``push_pull``: fills every unknown texel with a smooth average of the known ones nearby
  (a mip pyramid of known texels, pulled back up): a cheap UV-space inpaint for the parts no view
  saw and for the background beyond the margin, so no mip level ever averages in black.
"""

from __future__ import annotations

import numpy as np

_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` moved by (dy, dx) with zeros coming in (no wrap-around)."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def dilate(image: np.ndarray, known: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Grow the ``known`` (h, w) texels of ``image`` (h, w, c) by ``steps`` rings. Returns the new
    image and known mask (inputs untouched)."""
    img = np.array(image, dtype=np.float64, copy=True)
    mask = np.array(known, dtype=bool, copy=True)
    for _ in range(max(0, int(steps))):
        total = np.zeros_like(img)
        count = np.zeros(mask.shape, dtype=np.float64)
        m = mask.astype(np.float64)
        masked = img * m[..., None]
        for dy, dx in _NEIGHBOURS:
            total += _shift(masked, dy, dx)
            count += _shift(m, dy, dx)
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


def _upsample(coarse: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear 2× upsampling (texel centres aligned) cropped to (h, w): smooth pull-back, no blocks."""
    ch, cw = coarse.shape[:2]
    ys = np.clip((np.arange(h) + 0.5) / 2.0 - 0.5, 0.0, ch - 1.0)
    xs = np.clip((np.arange(w) + 0.5) / 2.0 - 0.5, 0.0, cw - 1.0)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, ch - 1), np.minimum(x0 + 1, cw - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x1] * fx
    bottom = coarse[y1][:, x0] * (1 - fx) + coarse[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


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
        coarse_img = push_pull(coarse_img, known) if known.any() else coarse_img
        solved = relax(coarse_img, coarse_c, coarse_region, iterations)
        img = np.where((c < 1.0)[..., None], _upsample(solved, h, w), data)
    m = region.astype(np.float64)
    count = sum(_shift(m, dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)))
    update = region & (c < 1.0) & (count > 0)
    if not update.any():
        return img
    cu = c[update][:, None]
    held = data[update] * cu
    for _ in range(int(iterations)):
        masked = img * m[..., None]
        total = sum(_shift(masked, dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)))
        img[update] = held + (1.0 - cu) * total[update] / count[update, None]
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
