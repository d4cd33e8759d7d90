"""PBR maps derived from a baked albedo by image filters (no model weights): height, tangent-space
normal, roughness; and their wiring into a Principled BSDF.

Heuristics, as in classic "normal map from photo" tools: brighter = higher (crevices and mortar
are dark), detail = gradient of that height, rough where the albedo is dark or busy, smoother
where it is bright and flat. numpy only, except ``wire_into`` (bpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass
class PBRMaps:
    height: np.ndarray  # (h, w) 0..1
    normal: np.ndarray  # (h, w, 3) RGB 0..1, tangent space, OpenGL (+Y = up in the UV map), as Blender wants
    roughness: np.ndarray  # (h, w) 0..1


def _blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Box blur (separable, edge-clamped) of a 2D array."""
    if radius < 1:
        return a
    k = 2 * radius + 1
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(a, pad, mode="edge"), axis=axis)
        a = (np.take(c, range(k, c.shape[axis]), axis=axis) - np.take(c, range(0, c.shape[axis] - k), axis=axis)) / k
    return a


def derive(albedo: np.ndarray, *, strength: float = 2.0, blur_px: int = 1,
           roughness_range: tuple[float, float] = (0.35, 0.95)) -> PBRMaps:
    """Maps from an albedo (h, w, 3) in 0..1, row 0 at the top (texture space: u right, v up).
    ``strength`` scales the normal map's slopes (texels of height change per texel)."""
    rgb = np.clip(np.asarray(albedo, dtype=np.float64)[..., :3], 0.0, 1.0)
    lum = rgb @ LUMA
    height = _blur(lum, blur_px)
    lo, hi = float(height.min()), float(height.max())
    height = (height - lo) / (hi - lo) if hi > lo else np.full_like(height, 0.5)
    # Slopes per texel: d/du is along columns; d/dv is UP, i.e. against the rows.
    dh_du = np.gradient(height, axis=1)
    dh_dv = -np.gradient(height, axis=0)
    n = np.stack([-dh_du * strength, -dh_dv * strength, np.ones_like(height)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    detail = np.abs(lum - _blur(lum, 3))
    busy = np.clip(detail / max(float(np.percentile(detail, 95)), 1e-6), 0.0, 1.0)
    r_lo, r_hi = roughness_range
    rough = r_lo + (r_hi - r_lo) * np.clip(0.6 * (1.0 - lum) + 0.4 * busy, 0.0, 1.0)
    return PBRMaps(height=height, normal=n * 0.5 + 0.5, roughness=rough)


def wire_into(material, normal_image, roughness_image, height_image, uv_name: str) -> None:
    """Connect the maps to the material's Principled BSDF: roughness image → Roughness, normal image
    → Normal Map node (tangent space, ``uv_name``) → Normal; the height image is added, read
    through the same UV map, for displacement or bump if the artist wants it. Images Non-Color."""
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = uv_name
    uv.location = (bsdf.location.x - 760, bsdf.location.y - 300)
    made = []
    for k, (image, label) in enumerate(((roughness_image, "Roughness"), (normal_image, "Normal"),
                                        (height_image, "Height"))):
        image.colorspace_settings.name = "Non-Color"
        tex = nodes.new("ShaderNodeTexImage")
        tex.name = tex.label = f"Brushwork {label}"
        tex.image = image
        tex.location = (bsdf.location.x - 520, bsdf.location.y - 300 - 280 * k)
        links.new(uv.outputs["UV"], tex.inputs["Vector"])
        made.append(tex)
    rough_tex, normal_tex, _height_tex = made
    links.new(rough_tex.outputs["Color"], bsdf.inputs["Roughness"])
    normal_map = nodes.new("ShaderNodeNormalMap")
    normal_map.space = "TANGENT"
    normal_map.uv_map = uv_name
    normal_map.location = (bsdf.location.x - 240, bsdf.location.y - 580)
    links.new(normal_tex.outputs["Color"], normal_map.inputs["Color"])
    links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
