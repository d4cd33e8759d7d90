"""Overlapping, feathered tiles over a grid, wrapping around on the seamless axes.

The large-image paths (``tiled.py``, ``tiled_denoise.py``, ``tiled_inpaint.py``) cut tiles with
index tensors rather than slices, so a tile near the right edge of a seamless axis simply continues
with the left edge's columns; blending adds back through the same indices.
"""

from __future__ import annotations

import math

import numpy as np
import torch

OVERLAP_FRACTION = 4  # tiles overlap by 1/4 of their side


def tile_starts(length: int, tile: int, overlap: int, wrap: bool) -> tuple[int, list[int]]:
    """(tile size, starts) covering ``length``; on a wrap axis tiles may run past the end and
    continue at the start. A wrap axis no longer than a tile gets two copies shifted by half, so
    neither copy's border lands unblended on any place (the edge included)."""
    if length <= tile:
        return length, ([0, length // 2] if wrap and length > 1 else [0])
    stride = max(1, tile - overlap)
    if wrap:
        n = math.ceil(length / stride)
        return tile, [round(i * length / n) for i in range(n)]
    n = math.ceil((length - tile) / stride) + 1
    return tile, [round(i * (length - tile) / (n - 1)) for i in range(n)]


def feather(size: int, overlap: int) -> torch.Tensor:
    """1-D weights rising linearly over ``overlap`` at both ends, never zero."""
    i = torch.arange(size, dtype=torch.float32)
    ramp = torch.minimum(i + 1, size - i) / float(max(1, overlap) + 1)
    return ramp.clamp(max=1.0)


class Tiling:
    """Overlapping tiles over an (H, W) grid, wrapping on the seamless axes."""

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
