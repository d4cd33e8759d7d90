"""Exact scene signals from a camera: its frame (2D projection of 3D points), z-depth.

Both use the same camera frame (``CameraFrame``), computed from the camera's own settings for the
requested image size, the way Blender computes its view plane: perspective or orthographic, sensor
fit (auto / horizontal / vertical), lens shift, and the aspect of the requested size (square
pixels). So a depth map of size (w, h), an OpenPose skeleton on a (w, h) canvas and a projection UV
map all line up pixel for pixel with each other.

Image convention everywhere: row 0 is the TOP row, pixel (x, y) has its centre at (x + 0.5, y + 0.5).

numpy only (Blender ships it); no torch, no PIL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CameraFrame:
    """Where pixels sit in the camera's local space (camera looks down -Z, +Y is up).

    Perspective: the frame lies at local z = -1. Orthographic: at any z, in scene units.
    ``left..right`` × ``bottom..top`` is the frame's extent, shift included.
    """

    ortho: bool
    left: float
    right: float
    bottom: float
    top: float
    clip_start: float
    clip_end: float
    rotation: np.ndarray  # 3×3 world-from-camera rotation (scale removed)
    location: np.ndarray  # camera origin in world space
    width: int
    height: int

    def to_dict(self) -> dict:
        """JSON-able (a job's record keeps the frame to project its result later)."""
        data = dict(self.__dict__)
        data["rotation"], data["location"] = self.rotation.tolist(), self.location.tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CameraFrame:
        values = dict(data)
        values["rotation"] = np.array(values["rotation"], dtype=np.float64)
        values["location"] = np.array(values["location"], dtype=np.float64)
        return cls(**values)

    def plane_points(self) -> np.ndarray:
        """(h, w, 2) frame coordinates (x, y) of every pixel centre, row 0 at the top."""
        xs = self.left + (np.arange(self.width) + 0.5) / self.width * (self.right - self.left)
        ys = self.top - (np.arange(self.height) + 0.5) / self.height * (self.top - self.bottom)
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx, gy], axis=-1)

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """(n, 3) world points → (n, 3) camera-local points."""
        return (np.asarray(points_world, dtype=np.float64) - self.location) @ self.rotation

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) world points → ((n, 2) pixel coordinates (x right, y down), (n,) z-depth).

        z-depth is the distance along the camera axis; <= 0 means behind the camera.
        """
        local = self.to_camera(np.atleast_2d(points_world))
        depth = -local[:, 2]
        if self.ortho:
            fx, fy = local[:, 0], local[:, 1]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                safe = np.where(depth > 1e-12, depth, np.nan)
                fx, fy = local[:, 0] / safe, local[:, 1] / safe
        px = (fx - self.left) / (self.right - self.left) * self.width
        py = (self.top - fy) / (self.top - self.bottom) * self.height
        return np.stack([px, py], axis=-1), depth


def evaluated_depsgraph():
    """The up-to-date evaluated depsgraph (also makes fresh edits from scripts take effect)."""
    import bpy

    return bpy.context.evaluated_depsgraph_get()


def camera_frame(scene, camera, size: tuple[int, int], depsgraph=None) -> CameraFrame:
    """The frame of ``camera`` (an object with camera data) for an image of ``size`` = (w, h).

    The camera's placement is read from the evaluated depsgraph (constraints, parents, drivers
    and edits made by a script a moment ago all count)."""
    width, height = (int(size[0]), int(size[1]))
    if width < 1 or height < 1:
        raise ValueError(f"size must be at least 1×1 pixels, got {width}×{height}")
    if camera is None or getattr(camera, "type", None) != "CAMERA":
        raise ValueError(f"{getattr(camera, 'name', camera)!r} is not a camera object")
    cam = camera.data
    if cam.type not in ("PERSP", "ORTHO"):
        raise ValueError(f"camera {camera.name!r}: {cam.type} cameras are not supported "
                         "(use perspective or orthographic)")
    # Blender's BKE_camera_sensor_fit: AUTO fits the larger side, using sensor_width.
    fit = cam.sensor_fit
    if fit == "AUTO":
        fit, sensor = ("HORIZONTAL" if width >= height else "VERTICAL"), cam.sensor_width
    else:
        sensor = cam.sensor_width if fit == "HORIZONTAL" else cam.sensor_height
    extent = cam.ortho_scale if cam.type == "ORTHO" else sensor / cam.lens
    if fit == "HORIZONTAL":
        frame_w, frame_h = extent, extent * height / width
    else:
        frame_w, frame_h = extent * width / height, extent
    # Shift is measured in units of the fitted side (Blender's "viewfac").
    dx, dy = cam.shift_x * extent, cam.shift_y * extent
    if depsgraph is None:
        depsgraph = evaluated_depsgraph()
    matrix = camera.evaluated_get(depsgraph).matrix_world
    location, rotation, _scale = matrix.decompose()
    rot = np.array(rotation.to_matrix(), dtype=np.float64)
    return CameraFrame(
        ortho=cam.type == "ORTHO",
        left=-frame_w / 2 + dx, right=frame_w / 2 + dx, bottom=-frame_h / 2 + dy, top=frame_h / 2 + dy,
        clip_start=float(cam.clip_start), clip_end=float(cam.clip_end),
        rotation=rot, location=np.array(location, dtype=np.float64), width=width, height=height,
    )


def camera_rays(frame: CameraFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: world ray origin (h, w, 3), unit direction (h, w, 3), and the z-depth gained per
    unit of ray length (h, w) — the ray starts at z-depth = clip_start."""
    pts = frame.plane_points()
    h, w = frame.height, frame.width
    if frame.ortho:
        local_origin = np.concatenate([pts, np.full((h, w, 1), -frame.clip_start)], axis=-1)
        local_dir = np.broadcast_to(np.array([0.0, 0.0, -1.0]), (h, w, 3))
    else:
        local_dir = np.concatenate([pts, np.full((h, w, 1), -1.0)], axis=-1)
        local_origin = local_dir * frame.clip_start  # z-depth clip_start on that pixel's ray
    norm = np.linalg.norm(local_dir, axis=-1)
    unit = local_dir / norm[..., None]
    origin = local_origin @ frame.rotation.T + frame.location
    direction = unit @ frame.rotation.T
    return origin, direction, 1.0 / norm


def camera_depth(scene, camera, size: tuple[int, int]) -> np.ndarray:
    """Distance along the camera axis (z-depth) to the first surface, per pixel centre.

    Returns float32 (height, width) in scene units, row 0 at the top, ``inf`` where no surface is
    seen between the camera's clip start and clip end. Exact, and it sees what the render sees
    (render visibility, render modifier levels, instances): a 1-sample Cycles render of the Z
    pass through the pixel centres (``texturing.render_passes``). ``size`` is (width, height).
    Synchronous (main thread): the operators use ``render_passes.request`` so the UI never waits.
    """
    from .texturing.render_passes import render_passes

    return render_passes(scene, camera, size).depth


def depth_signal_bytes(depth: np.ndarray) -> bytes:
    """Raw little-endian float32, row-major, row 0 at the top: the Recipe's ``f32le`` format."""
    return np.ascontiguousarray(depth, dtype="<f4").tobytes()


def depth_range(depth: np.ndarray) -> tuple[float | None, float | None]:
    """(near, far) of the finite values, or (None, None) when nothing was hit."""
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        return None, None
    return float(finite.min()), float(finite.max())


def fit_size(scene, longest: int, multiple: int = 8, shortest: int = 64) -> tuple[int, int]:
    """An image size with the render's aspect ratio: longest side about ``longest``, both sides
    multiples of 8 and at least ``shortest`` (Stable Diffusion's limits)."""
    r = scene.render
    w = r.resolution_x * r.pixel_aspect_x
    h = r.resolution_y * r.pixel_aspect_y
    scale = max(longest / max(w, h), shortest / min(w, h))
    return (max(shortest, int(round(w * scale / multiple)) * multiple),
            max(shortest, int(round(h * scale / multiple)) * multiple))


def pixel_uvs(frame: CameraFrame, points_world: np.ndarray) -> np.ndarray:
    """(n, 3) world points → (n, 2) UVs of the camera image (u right, v UP, 0..1 across the frame)."""
    px, _depth = frame.project(points_world)
    u = px[:, 0] / frame.width
    v = 1.0 - px[:, 1] / frame.height
    return np.stack([u, v], axis=-1)
