"""Truth the check scripts compute independently of the add-on's render passes: Blender's own
``scene.ray_cast`` through every pixel centre, and analytic ray/box and ray/sphere hits.
Scripts run from this folder, so ``import truth`` finds it."""

import numpy as np


def ray_cast_depth(scene, cam, size):
    """z-depth per pixel centre by ``scene.ray_cast`` (the viewport's evaluated scene: give the
    test scene no render-only differences), inf where nothing is hit."""
    import bpy
    from brushwork_blender.capture import camera_frame, camera_rays
    from mathutils import Vector

    depsgraph = bpy.context.evaluated_depsgraph_get()
    frame = camera_frame(scene, cam, size, depsgraph)
    origin, direction, z_per_len = camera_rays(frame)
    lengths = []
    for o, d in zip(origin.reshape(-1, 3).tolist(), direction.reshape(-1, 3).tolist(), strict=True):
        hit, loc = scene.ray_cast(depsgraph, o, d)[:2]
        lengths.append((loc - Vector(o)).length if hit else np.nan)
    z = frame.clip_start + np.array(lengths).reshape(size[1], size[0]) * z_per_len
    return np.where(np.isnan(z), np.inf, z)


def ray_box(origin, direction, lo, hi):
    """(t, face) of each ray's entry into the box [lo, hi]: t = inf on a miss; face = axis * 2 +
    (1 if the face is the box's max side else 0), i.e. 0:-X 1:+X 2:-Y 3:+Y 4:-Z 5:+Z."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - origin) / direction
        t2 = (hi - origin) / direction
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    enter = np.nanmax(tmin, axis=-1)
    leave = np.nanmin(tmax, axis=-1)
    axis = np.nanargmax(tmin, axis=-1)
    hit = (enter <= leave) & (leave > 0) & (enter > 0)
    d_axis = np.take_along_axis(direction, axis[..., None], axis=-1)[..., 0]
    face = axis * 2 + (d_axis < 0)  # entering against +axis means hitting the max side
    return np.where(hit, enter, np.inf), face


def ray_sphere(origin, direction, center, radius):
    """Nearest positive t of each unit-direction ray on the sphere, inf on a miss."""
    oc = origin - np.asarray(center, float)
    b = np.einsum("...k,...k->...", oc, direction)
    c = np.einsum("...k,...k->...", oc, oc) - radius * radius
    disc = b * b - c
    with np.errstate(invalid="ignore"):
        t = -b - np.sqrt(disc)
    return np.where((disc >= 0) & (t > 0), t, np.inf)
