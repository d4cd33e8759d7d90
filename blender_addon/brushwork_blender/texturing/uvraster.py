"""Rasterise UV triangles: which triangle covers each texel centre, with barycentric weights.

Texel convention matches the rest of the add-on's images: row 0 is the TOP row, texel (x, y) has
its centre at UV (u, v) = ((x + 0.5) / w, 1 - (y + 0.5) / h). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TexelRaster:
    """``tri`` (h, w) int32: the triangle covering each texel centre, -1 for none (outside every UV
    island). ``bary`` (h, w, 3) float32: barycentric weights of that triangle's corners there."""

    tri: np.ndarray
    bary: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        return self.tri >= 0

    def interpolate(self, corner_values: np.ndarray) -> np.ndarray:
        """(t, 3, k) values at each triangle's corners → (n, k) at every covered texel (row-major
        order of ``covered``)."""
        mask = self.covered
        tris = self.tri[mask]
        bary = self.bary[mask].astype(np.float64)
        vals = np.asarray(corner_values, dtype=np.float64)[tris]  # (n, 3, k)
        return np.einsum("nc,nck->nk", bary, vals)


def rasterize(tri_uvs: np.ndarray, size: tuple[int, int]) -> TexelRaster:
    """``tri_uvs`` (t, 3, 2) UVs of each triangle's corners; ``size`` = (w, h) texels.

    A texel belongs to a triangle when its centre is inside it (edges included, with a tiny
    tolerance so texels on a shared edge are never lost). Where UV triangles overlap, one of them
    wins. Degenerate (zero-area) UV triangles cover nothing."""
    w, h = int(size[0]), int(size[1])
    tri_index = np.full((h, w), -1, dtype=np.int32)
    bary_out = np.zeros((h, w, 3), dtype=np.float32)
    uv = np.asarray(tri_uvs, dtype=np.float64).reshape(-1, 3, 2)
    # Into texel space: x right, y DOWN (row 0 at the top); texel centres at integer + 0.5.
    px = uv[..., 0] * w
    py = (1.0 - uv[..., 1]) * h
    area = (px[:, 1] - px[:, 0]) * (py[:, 2] - py[:, 0]) - (px[:, 2] - px[:, 0]) * (py[:, 1] - py[:, 0])
    x0 = np.clip(np.floor(px.min(axis=1) - 0.5).astype(np.int64), 0, w)
    x1 = np.clip(np.ceil(px.max(axis=1) - 0.5).astype(np.int64) + 1, 0, w)
    y0 = np.clip(np.floor(py.min(axis=1) - 0.5).astype(np.int64), 0, h)
    y1 = np.clip(np.ceil(py.max(axis=1) - 0.5).astype(np.int64) + 1, 0, h)
    eps = 1e-7
    ok = (np.abs(area) > 1e-12) & (x1 > x0) & (y1 > y0)
    side = np.maximum(x1 - x0, y1 - y0)
    # Small triangles (nearly all of them) in batches: every triangle of a batch tests the same
    # S×S block of texels from its bbox corner; big ones one by one.
    for s_lo, s_hi in ((0, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64)):
        batch = np.nonzero(ok & (side > s_lo) & (side <= s_hi))[0]
        per = max(1, (1 << 22) // (s_hi * s_hi))  # ~4M candidate texels per chunk
        for start in range(0, len(batch), per):
            _raster_batch(batch[start:start + per], s_hi, px, py, area, x0, x1, y0, y1, tri_index, bary_out, eps)
    for t in np.nonzero(ok & (side > 64))[0]:
        _raster_batch(np.array([t]), int(side[t]), px, py, area, x0, x1, y0, y1, tri_index, bary_out, eps)
    return TexelRaster(tri_index, bary_out)


def _raster_batch(tris, size, px, py, area, x0, x1, y0, y1, tri_index, bary_out, eps) -> None:
    """Texel centres inside triangles ``tris``, each tested over a ``size``² block from its bbox."""
    off = np.arange(size)
    gx = x0[tris, None, None] + off[None, None, :]  # (T, 1, S)
    gy = y0[tris, None, None] + off[None, :, None]  # (T, S, 1)
    valid = (gx < x1[tris, None, None]) & (gy < y1[tris, None, None])  # (T, S, S)
    cx, cy = gx + 0.5, gy + 0.5
    ax, bx, cxx = (px[tris, k][:, None, None] for k in range(3))
    ay, by, cyy = (py[tris, k][:, None, None] for k in range(3))
    inv = 1.0 / area[tris][:, None, None]
    l1 = ((cx - ax) * (cyy - ay) - (cxx - ax) * (cy - ay)) * inv
    l2 = ((bx - ax) * (cy - ay) - (cx - ax) * (by - ay)) * inv
    l0 = 1.0 - l1 - l2
    inside = valid & (l0 >= -eps) & (l1 >= -eps) & (l2 >= -eps)
    t_idx, r, c = np.nonzero(inside)
    if not len(t_idx):
        return
    rows = gy[t_idx, r, 0]
    cols = gx[t_idx, 0, c]
    tri_index[rows, cols] = tris[t_idx]
    bary_out[rows, cols] = np.stack([l0[t_idx, r, c], l1[t_idx, r, c], l2[t_idx, r, c]], axis=-1)
