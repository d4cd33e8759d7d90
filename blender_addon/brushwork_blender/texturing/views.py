"""Views placed around a selection: ``count`` cameras orbiting it plus one looking down. numpy only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ViewPlacement:
    name: str
    location: np.ndarray  # (3,) world
    rotation: np.ndarray  # (3, 3) world-from-camera (the camera looks down its -Z, +Y up)


def look_at(location: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """World-from-camera rotation of a camera at ``location`` looking at ``target``."""
    forward = np.asarray(target, dtype=np.float64) - np.asarray(location, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    up = np.asarray(up, dtype=np.float64)
    if abs(float(np.dot(forward, up))) > 0.999:  # looking straight up/down: pick another up
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    return np.stack([right, cam_up, -forward], axis=1)


def orbit_views(center, radius: float, count: int = 4, *, elevation_deg: float = 20.0, top: bool = True,
                fov_deg: float = 39.6, margin: float = 1.1, start_deg: float = -90.0) -> list[ViewPlacement]:
    """``count`` views evenly around the vertical axis through ``center`` (the first one in front,
    on -Y, as Blender's front view), ``elevation_deg`` above the horizon, far enough that a sphere
    of ``radius`` fills the frame of a camera with field of view ``fov_deg`` (times ``margin``);
    plus a view from straight above when ``top``."""
    if count < 1 and not top:
        raise ValueError("at least one view is needed")
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    center = np.asarray(center, dtype=np.float64)
    distance = radius * margin / math.sin(math.radians(fov_deg) / 2.0)
    views = []
    el = math.radians(elevation_deg)
    for i in range(count):
        az = math.radians(start_deg + 360.0 * i / count)
        offset = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)]) * distance
        loc = center + offset
        views.append(ViewPlacement(f"orbit {i + 1}", loc, look_at(loc, center)))
    if top:
        loc = center + np.array([0.0, 0.0, distance])
        views.append(ViewPlacement("top", loc, look_at(loc, center, up=(0.0, 1.0, 0.0))))
    return views
