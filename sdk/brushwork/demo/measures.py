"""Simple, model-free measures of what a picture shows (numpy only): its colour and its pattern.

Used by the meaning tests (tests/demo), the contact sheet (docs/demo.md) and to decide whether a
retrained demo model is better than the shipped one. They are deliberately plain, so a reader
can check them by eye:

- ``colour_name``: the colour word of the picture's mean colour, by hue (or None when greyish);
- ``periodicity``: per axis, how strongly each line of the picture repeats itself, and at which
  period. Each row (for x) or column (for y) has its own mean removed, so vertical stripes repeat
  along x and not at all along y; bricks, tiles and checkers repeat along both (brick rows are
  shifted by half a brick, which a per-line measure does not mind);
- ``half_period_opposition`` and ``aligned_joints``: what tells bricks, tiles and a checker apart
  once both axes repeat: a checker's cell is the opposite of its neighbour, tiles' joints all lie
  in line, bricks' courses are offset by half a brick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Hue ranges (degrees) of the chromatic colour words; black and white are told by value and
# saturation. The dataset's colours sit well inside their ranges (red 2, orange 27, yellow 53,
# green 123, blue 228, purple 282 degrees).
HUES = {"red": (345, 15), "orange": (15, 40), "yellow": (40, 75), "green": (75, 170), "blue": (170, 255),
        "purple": (255, 345)}
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")


def _hsv(r: float, g: float, b: float) -> tuple[float, float, float]:
    import colorsys

    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    return h * 360.0, s, v


MIN_LAG = 4  # periods shorter than this are texture grain, not pattern


def as_array(image) -> np.ndarray:
    """PIL image or array -> float32 HxWx3 in [0, 1]."""
    if isinstance(image, np.ndarray):
        return image.astype(np.float32)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def mean_rgb(image) -> tuple[float, float, float]:
    r, g, b = as_array(image).reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


def colour_name(image) -> str | None:
    """The colour word of the picture's mean colour, or None when it is no clear colour (greyish)."""
    h, sat, v = _hsv(*mean_rgb(image))
    if v < 0.3 and sat < 0.5:
        return "black"
    if v > 0.6 and sat < 0.15:
        return "white"
    if sat < 0.35:
        return None
    for name, (lo, hi) in HUES.items():
        if (lo <= h < hi) if lo < hi else (h >= lo or h < hi):
            return name
    return None


@dataclass(frozen=True)
class AxisRepeat:
    strength: float  # normalised autocorrelation at the best period (1 = repeats exactly)
    period: int  # pixels


def _luminance(image) -> np.ndarray:
    a = as_array(image)
    return a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _lines(image, axis: str) -> np.ndarray:
    """The picture's rows (axis "x") or columns ("y") of luminance, each with its own mean removed."""
    lum = _luminance(image)
    lines = lum if axis == "x" else lum.T
    return lines - lines.mean(axis=1, keepdims=True)


def _autocorrelation(lines: np.ndarray) -> np.ndarray | None:
    """Circular autocorrelation of the lines, summed and divided by their total variance (1 at lag 0),
    or None for flat lines."""
    total = float((lines**2).sum())
    if total < 1e-6 * lines.size:
        return None
    spectrum = np.fft.rfft(lines, axis=1)
    return np.fft.irfft((spectrum * spectrum.conj()).real, n=lines.shape[1], axis=1).sum(axis=0) / total


def axis_repeat(image, axis: str) -> AxisRepeat:
    """How strongly lines along ``axis`` ("x": rows, "y": columns) repeat, and their period.

    The circular autocorrelation of each line (its own mean removed), summed over lines and
    divided by the lines' total variance: 1 for a perfect repeat at that lag. The period is the
    shortest local maximum between MIN_LAG and half the picture that is nearly the highest."""
    auto = _autocorrelation(_lines(image, axis))
    if auto is None:  # flat lines: nothing repeats
        return AxisRepeat(0.0, 0)
    n = len(auto)
    peaks = [(lag, float(auto[lag])) for lag in range(MIN_LAG, n // 2 + 1)
             if auto[lag] >= auto[lag - 1] and auto[lag] >= auto[(lag + 1) % n] and auto[lag] > 0]
    if not peaks:
        return AxisRepeat(0.0, 0)
    best = max(value for _, value in peaks)
    # the fundamental: the shortest lag that repeats nearly as well as the best one (a 16 px
    # pattern repeats at 32 px too)
    lag, value = next((lag, value) for lag, value in peaks if value >= 0.85 * best)
    return AxisRepeat(round(value, 3), lag)


def half_period_opposition(image, axis: str, period: int) -> float:
    """The lines' autocorrelation at half their period: about -1 when a line shifted by half a
    period is its own negative (a checker's cells), near 0 for thin lines on a plain ground (the
    joints of bricks and tiles)."""
    auto = _autocorrelation(_lines(image, axis))
    return 0.0 if auto is None or period < 2 else float(auto[period // 2])


def aligned_joints(image, axis: str = "x") -> float:
    """How much the lines along ``axis`` agree with one another: the variance of their average over
    their mean variance. About 1 when every line crosses its joints at the same places (tiles'
    grid), about 0.5 when alternate courses are offset by half a brick, about 0 when alternate
    rows are opposite (a checker)."""
    lines = _lines(image, axis)
    mean_var = float(lines.var(axis=1).mean())
    return 0.0 if mean_var < 1e-9 else float(lines.mean(axis=0).var() / mean_var)


def periodicity(image) -> dict[str, AxisRepeat]:
    return {"x": axis_repeat(image, "x"), "y": axis_repeat(image, "y")}


# What each pattern word must show. Bricks: joints both ways (planks repeat one way only), the
# courses offset (not tiles' grid) and no cell the opposite of its neighbour (not a checker).
# Stripes: one axis only. Checker: both axes at the same period, a cell the opposite of the next.
# Tiles: both axes at the same period, every joint in line (a grid).
REPEATS = 0.3  # strength above which an axis counts as repeating
FLAT = 0.15  # strength below which an axis counts as not repeating
OPPOSITE = -0.4  # half-period correlation at or below which neighbouring cells are opposites
IN_LINE = 0.7  # aligned_joints at or above which the joints form a grid


def pattern_ok(pattern: str, image) -> tuple[bool, str]:
    """(passes, a short reason with the figures) for the pattern words the demo knows."""
    p = periodicity(image)
    x, y = p["x"], p["y"]
    both = x.strength >= REPEATS and y.strength >= REPEATS
    same = x.period > 0 and abs(x.period - y.period) <= max(2, 0.15 * x.period)
    opposite = max(half_period_opposition(image, "x", x.period), half_period_opposition(image, "y", y.period))
    in_line = min(aligned_joints(image, "x"), aligned_joints(image, "y"))
    figures = (f"x {x.strength:.2f}@{x.period}px, y {y.strength:.2f}@{y.period}px, "
               f"half-period {opposite:.2f}, in line {in_line:.2f}")
    if pattern == "bricks":
        return both and opposite > OPPOSITE and in_line < IN_LINE, figures
    if pattern == "stripes":
        one = max(x.strength, y.strength) >= REPEATS + 0.2 and min(x.strength, y.strength) <= FLAT
        return one, figures
    if pattern == "checker":
        return both and same and opposite <= OPPOSITE, figures
    if pattern == "tiles":
        return both and same and opposite > OPPOSITE and in_line >= IN_LINE, figures
    raise ValueError(f"no measure for pattern {pattern!r}")


MEASURED_PATTERNS = ("bricks", "stripes", "checker", "tiles")
