"""Overlapping, feathered tiles over a grid, wrapping around on the seamless axes.

The large-image paths (``tiled.py``, ``tiled_denoise.py``, ``tiled_inpaint.py``) cut tiles with
index tensors rather than slices, so a tile near the right edge of a seamless axis simply continues
with the left edge's columns; blending adds back through the same indices.
"""

from __future__ import annotations

import numpy as np
import torch

from .plan import OVERLAP_FRACTION, tile_starts

# The grid arithmetic is the planner's (plan.py, torch-free); the tensors are cut here.
__all__ = ["OVERLAP_FRACTION", "TileGrid", "Tiling", "add_tile", "cut_tile", "feather", "pixel_index",
           "pixels_under", "rgb_tensor", "tile_starts"]


def feather(size: int, overlap: int) -> torch.Tensor:
    """1-D weights rising linearly over ``overlap`` at both ends, never zero."""
    i = torch.arange(size, dtype=torch.float32)
    ramp = torch.minimum(i + 1, size - i) / float(max(1, overlap) + 1)
    return ramp.clamp(max=1.0)


class TileGrid:
    """Overlapping tiles over an (H, W) latent, wrapping on the seamless axes (``plan.tile_grid``
    counts them)."""

    def __init__(self, height: int, width: int, tile: int, axes: str):
        overlap = max(1, tile // OVERLAP_FRACTION)
        self.height, self.width = height, width
        self.wrap_y, self.wrap_x = "y" in axes, "x" in axes
        self.th, self.ys = tile_starts(height, tile, overlap, self.wrap_y)
        self.tw, self.xs = tile_starts(width, tile, overlap, self.wrap_x)
        self.weight = feather(self.th, overlap)[:, None] * feather(self.tw, overlap)[None, :]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def __iter__(self):
        for y in self.ys:
            for x in self.xs:
                rows = torch.arange(y, y + self.th) % self.height
                cols = torch.arange(x, x + self.tw) % self.width
                yield rows, cols


Tiling = TileGrid  # the older name (tests and benchmarks import it)


def pixel_index(index: torch.Tensor, scale: int) -> torch.Tensor:
    """Latent rows (or columns) -> the picture rows they cover (``scale`` each)."""
    return (index[:, None] * scale + torch.arange(scale)[None, :]).reshape(-1)


def pixels_under(array: np.ndarray, rows: torch.Tensor, cols: torch.Tensor, scale: int) -> np.ndarray:
    """The part of a full-size (H, W, ...) picture array under latent ``rows``/``cols`` (which may
    wrap), as a contiguous copy."""
    prows, pcols = pixel_index(rows, scale).numpy(), pixel_index(cols, scale).numpy()
    return np.ascontiguousarray(array[prows][:, pcols])


def rgb_tensor(part: np.ndarray) -> torch.Tensor:
    """uint8 (h, w, 3) -> float (1, 3, h, w), values still 0..255."""
    return torch.from_numpy(part).permute(2, 0, 1)[None].float()


def cut_tile(full: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return full.index_select(-2, rows.to(full.device)).index_select(-1, cols.to(full.device))


def add_tile(acc: torch.Tensor, part: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> None:
    """acc[..., rows, cols] += part (rows/cols may wrap; each index appears once per tile)."""
    rows, cols = rows.to(acc.device), cols.to(acc.device)
    grid = rows[:, None] * acc.shape[-1] + cols[None, :]
    flat = acc.reshape(*acc.shape[:-2], -1)
    flat.index_add_(-1, grid.reshape(-1), part.reshape(*part.shape[:-2], -1).to(acc.dtype))
