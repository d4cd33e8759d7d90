"""The estimate printed before the bulk of a batch runs, and the refusal of rows that cannot fit.

No planner exists yet, so it is measured: the first row runs alone (its time includes loading the
model), and its peak memory is the figure. A row with more pixels is scaled from it: what stayed
resident after the first row (the warm models) plus the rest of the peak times the pixel ratio.
That over-estimates (loading transients count as activations, and the engine's tiled path bounds
very large pictures), so the refusal is conservative: a row is refused only when even that
estimate exceeds the device's memory (or ``--memory-limit``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .memory import Measure, fmt_bytes
from .preflight import Row


@dataclass
class Estimate:
    first: Measure
    pixels: int  # of the measured row
    size: str  # "512x512"
    limit: int | None  # device memory, or the user's --memory-limit
    parallel: int = 1

    def bytes_for(self, row: Row) -> int | None:
        peak, resident = self.first.peak_bytes, self.first.resident_bytes
        if peak is None:
            return None
        if not row.pixels or not self.pixels:  # a size left to the model: unknown until it runs
            return peak
        ratio = row.pixels / self.pixels
        if ratio <= 1 or resident is None:
            return peak if ratio <= 1 else int(peak * ratio)
        return int(resident + max(0, peak - resident) * ratio)

    def refusal(self, row: Row) -> str:
        """'' when ``row`` fits, else the one-line reason."""
        need = self.bytes_for(row)
        if need is None or self.limit is None or need <= self.limit:
            return ""
        r = row.recipe
        assert r is not None
        size = f"{r.width}x{r.height}" if row.pixels else "the model's size"
        return (f"needs about {fmt_bytes(need)} at {size} (scaled from "
                f"{fmt_bytes(self.first.peak_bytes)} measured at {self.size}), more than the "
                f"{fmt_bytes(self.limit)} the device has")

    def describe(self, rows_left: int) -> str:
        per_row = self.first.seconds
        total = per_row * rows_left / max(1, self.parallel)
        actors = f" on {self.parallel} actors" if self.parallel > 1 else ""
        return (f"estimate: first row ({self.size}) took {per_row:.1f} s with the model load; peak memory "
                f"{fmt_bytes(self.first.peak_bytes)} of {fmt_bytes(self.limit)}; {rows_left} rows left: "
                f"at most about {_duration(total)}{actors}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
