"""Where one view (camera + its depth) sees each texel, and how much that view should count there.

A texel gets a view's pixel only where its surface point is
  - inside the camera's frame and in front of it,
  - facing the camera (weight: cos of the angle between the normal and the ray to the camera),
  - visible: not deeper than the view's depth at that pixel (occluded texels get weight 0).
Weights also fade out smoothly near the frame border and near depth discontinuities (occlusion
edges), so where one view's coverage ends the next takes over without a seam.

numpy only; the camera model is ``capture.CameraFrame`` (the same one depth and poses use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capture import CameraFrame

MIN_FACING_COS = 0.02  # grazing surfaces beyond ~89° get nothing from this view
DEPTH_REL_TOLERANCE = 0.002  # depth-test slack: 0.2% of the distance (float noise, tessellation)
MAX_SLOPE = 50.0  # a neighbouring pixel's depth may differ by up to this many footprints (cos ≈ 0.02)


@dataclass
class ViewSample:
    """One view's verdict per texel (arrays over the covered texels, in order)."""

    pixel: np.ndarray  # (n, 2) pixel coordinates (x right, y down) in the view's picture
    weight: np.ndarray  # (n,) >= 0; 0 where the view does not see the texel
    facing: np.ndarray  # (n,) cos of the angle to the camera (negative: facing away)
    taps: np.ndarray  # (n, 4, 2) int: the (x, y) of the 4 pixels around ``pixel`` (bilinear taps)
    tap_weights: np.ndarray  # (n, 4): bilinear weights, 0 for taps on another surface (occluder/background)

    @property
    def seen(self) -> np.ndarray:
        return self.weight > 0


def directions_to_camera(frame: CameraFrame, points: np.ndarray) -> np.ndarray:
    """Unit vectors from each world point towards the camera (parallel for orthographic)."""
    if frame.ortho:
        back = frame.rotation[:, 2]  # the camera's +Z axis (it looks down -Z)
        return np.broadcast_to(back / np.linalg.norm(back), points.shape).copy()
    d = frame.location[None, :] - points
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def edge_feather(depth: np.ndarray, feather_px: float, *, jump: float = 0.05) -> np.ndarray:
    """(h, w) in [0, 1]: 0 at the frame border and at depth discontinuities (a neighbour more than
    ``jump`` relatively deeper or shallower, or a miss), rising smoothly to 1 ``feather_px`` away."""
    h, w = depth.shape
    finite = np.isfinite(depth)
    d = np.where(finite, depth, 0.0)
    edge = np.zeros((h, w), dtype=bool)
    for axis in (0, 1):
        a = np.swapaxes(d, 0, axis)
        f = np.swapaxes(finite, 0, axis)
        e = np.swapaxes(edge, 0, axis)
        both = f[1:] & f[:-1]
        rel = np.abs(a[1:] - a[:-1]) / np.maximum(np.minimum(a[1:], a[:-1]), 1e-9)
        brk = (both & (rel > jump)) | (f[1:] != f[:-1])
        e[1:] |= brk
        e[:-1] |= brk
    steps = max(1, int(np.ceil(feather_px)))
    # Distance (in pixels, chessboard) to the nearest discontinuity, up to ``steps``.
    dist = np.full((h, w), float(steps), dtype=np.float32)
    front = edge.copy()
    dist[front] = 0.0
    for k in range(1, steps):
        grown = front.copy()
        grown[1:] |= front[:-1]
        grown[:-1] |= front[1:]
        grown[:, 1:] |= front[:, :-1]
        grown[:, :-1] |= front[:, 1:]
        new = grown & ~front
        if not new.any():
            break
        dist[new] = k
        front = grown
    ys = np.arange(h)[:, None] + 0.5
    xs = np.arange(w)[None, :] + 0.5
    border = np.minimum(np.minimum(xs, w - xs), np.minimum(ys, h - ys))
    return smoothstep(np.minimum(dist + 0.5, border) / float(steps))


def _bilinear_taps(pixel: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The 4 pixels around each (x, y) position (centres at +0.5) and their bilinear weights."""
    x = np.clip(pixel[:, 0] - 0.5, 0.0, w - 1.0)
    y = np.clip(pixel[:, 1] - 0.5, 0.0, h - 1.0)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    taps = np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1), np.stack([x0, y1], -1),
                     np.stack([x1, y1], -1)], axis=1)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    return taps, weights


def sample_view(frame: CameraFrame, depth: np.ndarray, points: np.ndarray, normals: np.ndarray, *,
                power: float = 3.0, feather_px: float | None = None) -> ViewSample:
    """How view ``frame`` (with its z-depth map ``depth``, (h, w), inf = nothing) sees the texels
    at world ``points`` with unit ``normals`` (both (n, 3)). ``power`` sharpens the angle weight
    (cos^power: the most head-on view dominates); ``feather_px`` (default 4% of the shorter side)
    is the fade width at the frame border and occlusion edges.

    Depth test: the texel's z-depth against the 4 pixels around its projection. A pixel belongs
    to the texel's surface when its depth is within one pixel's worth of surface slope of the
    texel's (the surface may be steep); the texel is visible when one of them does, and only
    those pixels are sampled, so an occluder's or the background's colour never bleeds in."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    h, w = depth.shape
    if (w, h) != (frame.width, frame.height):
        raise ValueError(f"depth is {w}×{h} but the frame is {frame.width}×{frame.height}")
    pixel, z = frame.project(points)
    pixel = np.nan_to_num(pixel, nan=-1.0, posinf=-1.0, neginf=-1.0)
    to_cam = directions_to_camera(frame, points)
    facing = np.einsum("nk,nk->n", normals, to_cam)
    inside = ((pixel[:, 0] >= 0) & (pixel[:, 0] < w) & (pixel[:, 1] >= 0) & (pixel[:, 1] < h)
              & (z > frame.clip_start) & (z < frame.clip_end))
    taps, bilinear = _bilinear_taps(pixel, w, h)
    tap_depth = depth[taps[..., 1], taps[..., 0]].astype(np.float64)  # (n, 4)
    # How much the surface's depth may change from the texel to a neighbouring pixel centre:
    # up to ~1.5 pixel footprints times the slope (tan of the viewing angle), plus float slack.
    footprint = (frame.right - frame.left) / w * (1.0 if frame.ortho else np.maximum(z, 0.0))
    cos = np.clip(facing, 1e-3, 1.0)
    slope = np.minimum(np.sqrt(1.0 - cos * cos) / cos, MAX_SLOPE)
    tolerance = (DEPTH_REL_TOLERANCE * np.abs(z) + footprint * (1.5 * slope + 0.1))[:, None]
    with np.errstate(invalid="ignore"):
        same_surface = np.isfinite(tap_depth) & (np.abs(tap_depth - z[:, None]) <= tolerance)
    tap_weights = np.where(same_surface, np.maximum(bilinear, 1e-6), 0.0)
    # Visible: some tap is on this surface, and no tap right there is clearly in front of it
    # (the nearest pixel decides: an occluder covering the projection point wins).
    nearest = np.argmax(bilinear, axis=1)
    nearest_depth = tap_depth[np.arange(len(z)), nearest]
    with np.errstate(invalid="ignore"):
        occluded = np.isfinite(nearest_depth) & (nearest_depth < z - tolerance[:, 0])
    visible = same_surface.any(axis=1) & ~occluded
    ok = inside & visible & (facing > MIN_FACING_COS)
    weight = np.zeros(len(points), dtype=np.float64)
    if ok.any():
        feather = edge_feather(depth, feather_px if feather_px is not None else 0.04 * min(w, h))
        ix = np.clip(pixel[ok, 0].astype(np.int64), 0, w - 1)
        iy = np.clip(pixel[ok, 1].astype(np.int64), 0, h - 1)
        weight[ok] = np.clip(facing[ok], 0.0, 1.0) ** power * feather[iy, ix]
    tap_weights[~ok] = 0.0
    return ViewSample(pixel=pixel, weight=weight, facing=facing, taps=taps, tap_weights=tap_weights)


def sample_colors(picture: np.ndarray, sample: ViewSample, which: np.ndarray | None = None) -> np.ndarray:
    """The picture's colour at each texel (``which``: a mask of texels; default the seen ones),
    from the taps on the texel's own surface only. picture: (h, w, c), row 0 at the top."""
    which = sample.seen if which is None else which
    taps = sample.taps[which]
    tw = sample.tap_weights[which]
    p = np.asarray(picture, dtype=np.float64)
    values = p[taps[..., 1], taps[..., 0]]  # (m, 4, c)
    total = np.maximum(tw.sum(axis=1, keepdims=True), 1e-12)
    return np.einsum("mt,mtc->mc", tw, values) / total


def sample_pixels(picture: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``picture`` (h, w, c), row 0 at the top, at (n, 2) pixel coordinates
    (x right, y down; pixel centres at +0.5). Outside the picture: the nearest edge pixel."""
    h, w = picture.shape[:2]
    taps, weights = _bilinear_taps(np.asarray(pixel, dtype=np.float64), w, h)
    values = np.asarray(picture, dtype=np.float64)[taps[..., 1], taps[..., 0]]
    return np.einsum("nt,ntc->nc", weights, values)
