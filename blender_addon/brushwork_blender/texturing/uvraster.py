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
    tolerance so texels on a shared edge are never lost). Where UV triangles overlap, the later
    one wins. Degenerate (zero-area) UV triangles cover nothing."""
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
    for t in np.nonzero((np.abs(area) > 1e-12) & (x1 > x0) & (y1 > y0))[0]:
        xs = np.arange(x0[t], x1[t]) + 0.5
        ys = np.arange(y0[t], y1[t]) + 0.5
        gx, gy = np.meshgrid(xs, ys)
        ax, bx, cx = px[t]
        ay, by, cy = py[t]
        inv = 1.0 / area[t]
        l1 = ((gx - ax) * (cy - ay) - (cx - ax) * (gy - ay)) * inv
        l2 = ((bx - ax) * (gy - ay) - (gx - ax) * (by - ay)) * inv
        l0 = 1.0 - l1 - l2
        inside = (l0 >= -eps) & (l1 >= -eps) & (l2 >= -eps)
        if not inside.any():
            continue
        rows, cols = np.nonzero(inside)
        rows = rows + y0[t]
        cols = cols + x0[t]
        tri_index[rows, cols] = t
        bary_out[rows, cols] = np.stack([l0[inside], l1[inside], l2[inside]], axis=-1)
    return TexelRaster(tri_index, bary_out)
