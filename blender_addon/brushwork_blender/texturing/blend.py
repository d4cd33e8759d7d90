"""Mixing several views per texel by their weights (visibility × angle × feather). numpy only."""

from __future__ import annotations

import numpy as np


class ViewBlend:
    """Accumulates views over ``n`` texels with ``channels`` colour channels.

    ``add(colors, weight)`` adds one view; ``result(previous)`` is the weighted mean where any
    view saw the texel and ``previous`` (or 0) where none did. Hidden texels keep what they had."""

    def __init__(self, n: int, channels: int = 3):
        self.total = np.zeros((n, channels), dtype=np.float64)
        self.weight = np.zeros(n, dtype=np.float64)
        self.best_view = np.full(n, -1, dtype=np.int32)
        self._best_weight = np.zeros(n, dtype=np.float64)
        self.views = 0

    def add(self, colors: np.ndarray, weight: np.ndarray) -> None:
        colors = np.asarray(colors, dtype=np.float64)
        weight = np.asarray(weight, dtype=np.float64)
        self.total += colors[:, : self.total.shape[1]] * weight[:, None]
        self.weight += weight
        better = weight > self._best_weight
        self.best_view[better] = self.views
        self._best_weight[better] = weight[better]
        self.views += 1

    @property
    def seen(self) -> np.ndarray:
        return self.weight > 0

    def confidence(self, full_at: float = 0.2 ** 3) -> np.ndarray:
        """(n,) in [0, 1]: how well the views saw each texel (1 from a weight of ``full_at`` up:
        by default one view within ~78° of head-on). Grazing and feathered texels get less."""
        return np.clip(self.weight / full_at, 0.0, 1.0)

    def result(self, previous: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros_like(self.total) if previous is None else np.array(previous, dtype=np.float64, copy=True)
        seen = self.seen
        out[seen] = self.total[seen] / self.weight[seen, None]
        return out


def apply_view(previous: np.ndarray, colors: np.ndarray, weight: np.ndarray, *, opacity_at: float = 0.25) -> np.ndarray:
    """One view painted over an existing texture (per texel arrays): full replacement where the
    view's weight reaches ``opacity_at``, a smooth mix below it (feathered edges), untouched where
    the view does not see the texel."""
    alpha = np.clip(np.asarray(weight, dtype=np.float64) / opacity_at, 0.0, 1.0)[:, None]
    previous = np.asarray(previous, dtype=np.float64)
    return previous * (1.0 - alpha) + np.asarray(colors, dtype=np.float64)[:, : previous.shape[1]] * alpha
