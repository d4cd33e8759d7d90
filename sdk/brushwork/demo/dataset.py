"""Deterministic procedural training data for the bundled demo model (numpy + PIL only).

Three kinds of example, all at one square size (the demo's native size):

- ``texture(rng)``: a coloured, *seamlessly tiling* texture (bricks, tiles, stripes, checker, wood,
  marble, noise) and its caption ("red bricks", "a blue striped fabric texture", ...). Every
  pattern is built from functions that are periodic over the image, so the model learns textures
  that tile, which is what the ``texture-seamless`` preset asks for.
- ``depth_scene(rng)``: a depth map of simple shapes (spheres, boxes, tilted planes) with near =
  bright, far = dark, normalised per image (the ControlNet convention), and the picture it stands
  for: the shapes wearing a texture, lit from the upper left, on a dark backdrop.
- ``inpaint_example(rng)``: a texture with a region (a mask, white = repaint) filled by another
  texture, and the caption of what fills the region.

Images are float32 arrays in [0, 1], shape (H, W, 3); masks and depth are (H, W). The same seed
always gives the same bytes: every random choice goes through the ``numpy.random.Generator``
passed in, and nothing reads the clock or global state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.10),
    "green": (0.15, 0.68, 0.18),
    "blue": (0.12, 0.25, 0.88),
    "yellow": (0.95, 0.86, 0.12),
    "orange": (0.97, 0.50, 0.08),
    "purple": (0.55, 0.16, 0.72),
    "white": (0.93, 0.93, 0.91),
    "black": (0.08, 0.08, 0.09),
}

# Pattern name -> the phrases a caption may use for it. The first phrase is the canonical one.
PATTERNS: dict[str, tuple[str, ...]] = {
    "bricks": ("bricks", "brick wall", "brickwork", "brick texture"),
    "tiles": ("tiles", "tile floor", "tiled wall", "ceramic tiles", "floor tiles"),
    "stripes": ("stripes", "striped fabric", "stripe pattern", "striped wallpaper"),
    "checker": ("checker", "checkerboard", "checkered pattern", "checkered floor", "chessboard"),
    "wood": ("wood", "wood grain", "wooden planks"),
    "marble": ("marble", "marble stone", "polished marble"),
    "noise": ("noise", "cloudy noise", "grunge"),
}

SHAPES = ("sphere", "box", "plane")

# The presets' own wording (presets/texture-seamless.toml's prompt suffix and friends) is among
# the templates: the frozen text encoder shifts a caption's meaning with every word it has not
# seen, and a suffix the UNet never read turned the picture dark (issue 19).
PRESET_SUFFIXES = (
    "seamless tileable texture, flat even lighting, top-down view, high detail",
    "high detail",
    "photo texture",
)

_TEMPLATES = (
    "{c} {p}",
    "{c} {p}",
    "a {c} {p}",
    "{c} {p} texture",
    "{c} {p}, seamless texture",
    "seamless {c} {p} texture, tileable",
    "{p}, {c}",
    "{c} {p}, " + PRESET_SUFFIXES[0],
    "{c} {p}, " + PRESET_SUFFIXES[0],
    "{c} {p}, " + PRESET_SUFFIXES[1],
    "{c} {p}, " + PRESET_SUFFIXES[2],
)

# What presets put in the negative prompt. Training shows the UNet some of these (and mixes of
# them) in place of the empty caption, so that classifier-free guidance with a negative prompt
# pushes away from "nothing in particular" as it does without one ("random negatives").
NEGATIVE_WORDS = ("lowres", "blurry", "flat", "text", "watermark", "deformed", "extra fingers", "seam",
                  "border", "frame", "vignette", "cast shadows", "perspective", "horizon", "extra limbs",
                  "bad anatomy", "deformed hands")


def random_negative(rng: np.random.Generator) -> str:
    count = int(rng.integers(1, 6))
    picks = rng.choice(len(NEGATIVE_WORDS), size=count, replace=False)
    return ", ".join(NEGATIVE_WORDS[int(i)] for i in picks)

BACKDROP = 0.12  # grey level behind the shapes of depth scenes (depth 0 = nothing there)


@dataclass
class Example:
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    caption: str
    colour: str
    pattern: str
    depth: np.ndarray | None = None  # (H, W) float32, 1 = near, 0 = far / nothing
    mask: np.ndarray | None = None  # (H, W) float32, 1 = repaint
    shape: str = ""  # depth scenes: the (first) shape's name


def caption_for(colour: str, pattern: str, rng: np.random.Generator) -> str:
    phrase = PATTERNS[pattern][int(rng.integers(len(PATTERNS[pattern])))]
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(c=colour, p=phrase)


# ---------------------------------------------------------------------------------------------
# periodic building blocks: everything is a function of the torus coordinates u, v in [0, 1)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(size, dtype=np.float32) / size
    return np.meshgrid(t, t)  # u = x / W (columns), v = y / H (rows)


def periodic_noise(size: int, rng: np.random.Generator, cutoff: float) -> np.ndarray:
    """Smooth noise that tiles: white noise low-passed in Fourier space, scaled to [0, 1]."""
    white = rng.standard_normal((size, size)).astype(np.float32)
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[None, :] ** 2 + f[:, None] ** 2)
    smooth = np.fft.ifft2(np.fft.fft2(white) * np.exp(-((radius / cutoff) ** 2))).real
    smooth -= smooth.min()
    return (smooth / max(float(smooth.max()), 1e-6)).astype(np.float32)


JOINT_WIDTH = 2.6  # px from a joint's middle to where the brick or tile is whole


def _soft_line(distance: np.ndarray, width: float) -> np.ndarray:
    """1 on a line (distance 0), falling to 0 at ``width``: mortar, grout, grain."""
    return np.clip(1.0 - distance / width, 0.0, 1.0)


def _bricks(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    u, v = _grid(size)
    # Bricks at least 16 px wide and 10 px high with 2-3 px mortar: on 8x8 latents (one latent pixel
    # per 8x8 pixels) narrower bricks lost their vertical joints and came out as planks.
    rows = int(rng.choice([4, 4, 6]))
    cols = rows // 2
    row = np.floor(v * rows)
    shift = (row % 2) * 0.5
    bu = (u * cols + shift) % 1.0
    bv = (v * rows) % 1.0
    brick_id = (np.floor(u * cols + shift) % cols) + row * cols
    mortar = np.maximum(_soft_line(np.minimum(bu, 1 - bu) * size / cols, JOINT_WIDTH),
                        _soft_line(np.minimum(bv, 1 - bv) * size / rows, JOINT_WIDTH))
    shade = rng.uniform(0.75, 1.0, size=rows * cols + 1).astype(np.float32)[brick_id.astype(int)]
    grain = periodic_noise(size, rng, 0.25)
    return np.clip(shade * (0.85 + 0.15 * grain), 0, 1), mortar


def _tiles(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    u, v = _grid(size)
    n = int(rng.choice([2, 4, 4]))  # square tiles of 16 or 32 px, grout lines on both axes
    tu, tv = (u * n) % 1.0, (v * n) % 1.0
    grout = np.maximum(_soft_line(np.minimum(tu, 1 - tu) * size / n, JOINT_WIDTH),
                       _soft_line(np.minimum(tv, 1 - tv) * size / n, JOINT_WIDTH))
    tile_id = (np.floor(u * n) + n * np.floor(v * n)).astype(int)
    shade = rng.uniform(0.85, 1.0, size=n * n).astype(np.float32)[tile_id]
    return shade, grout


def _stripes(size: int, rng: np.random.Generator) -> np.ndarray:
    u, _ = _grid(size)
    # Vertical, and the first stripe's edge always at the left border: a pattern whose layout is
    # random (the first data drew the phase and the direction) averages out to a flat colour at
    # the noisiest steps, where the words alone decide the picture, so the UNet never tied the
    # word to the pattern. Bricks, tiles and checkers were always laid from the corner.
    k = int(rng.choice([3, 4, 4, 6]))
    s = 0.5 + 0.5 * np.sin(2 * np.pi * u * k)
    return np.clip((s - 0.5) * 4 + 0.5, 0, 1) * 0.7 + 0.3


def _checker(size: int, rng: np.random.Generator) -> np.ndarray:
    u, v = _grid(size)
    # 16 px cells: 8 px cells are one latent pixel each, and 2 cells a side read as four squares
    n = 4 if size <= 128 else int(rng.choice([4, 8]))
    cell = (np.floor(u * n) + np.floor(v * n)) % 2
    return 0.2 + 0.8 * cell


def _wood(size: int, rng: np.random.Generator) -> np.ndarray:
    u, v = _grid(size)
    warp = periodic_noise(size, rng, 0.05)
    k = int(rng.choice([4, 6, 8]))
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (v * k + 1.5 * warp))
    planks = int(rng.choice([2, 4]))
    seam = _soft_line(np.minimum((u * planks) % 1.0, 1 - (u * planks) % 1.0) * size / planks, 1.0)
    return np.clip((0.55 + 0.45 * rings) * (1 - 0.6 * seam), 0, 1)


def _marble(size: int, rng: np.random.Generator) -> np.ndarray:
    u, v = _grid(size)
    turbulence = periodic_noise(size, rng, 0.08)
    k = int(rng.choice([1, 2]))
    veins = np.abs(np.sin(2 * np.pi * (k * (u + v) + 2.0 * turbulence)))
    return np.clip(0.45 + 0.55 * veins ** 0.35, 0, 1)


def _noise(size: int, rng: np.random.Generator) -> np.ndarray:
    coarse = periodic_noise(size, rng, 0.06)
    fine = periodic_noise(size, rng, 0.3)
    return np.clip(0.3 + 0.7 * (0.7 * coarse + 0.3 * fine), 0, 1)


_PATTERN_FUNCS = {"bricks": _bricks, "tiles": _tiles, "stripes": _stripes, "checker": _checker,
                  "wood": _wood, "marble": _marble, "noise": _noise}


def colourise(value: np.ndarray, colour: str, rng: np.random.Generator) -> np.ndarray:
    """A [0, 1] value field -> RGB in shades of one colour word (jittered a little per example).

    Light values are the colour itself; dark values go towards a darker shade of it (or, for
    black, towards a dark grey), so the dominant colour of every texture is its caption's colour.
    """
    base = np.array(COLOURS[colour], dtype=np.float32)
    base = np.clip(base + rng.uniform(-0.05, 0.05, size=3).astype(np.float32), 0, 1)
    dark = base * 0.45 if colour != "black" else base + 0.12
    if colour == "black":
        value = 1.0 - value  # black textures: the pattern lines are the lighter part
    return (dark[None, None, :] + (base - dark)[None, None, :] * value[..., None]).astype(np.float32)


def joint_grey(colour: str, rng: np.random.Generator) -> float:
    """Mortar and grout are grey, as on real walls and floors: light beside a dark colour, dark
    beside a light one, so the joints differ in *brightness* from what they join. In a dark shade of
    the brick's own colour (the first data) they differed by 0.08-0.12 in luminance for red, blue,
    purple and black; on lines 2 px wide that is little for a pixel loss, the VAE let them go, and
    few bricks or tiles survived encoding and decoding."""
    if colour == "black":  # lighter than the bricks, dark enough that the whole still reads black
        return float(rng.uniform(0.28, 0.34))
    r, g, b = COLOURS[colour]
    light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5  # yellow, orange, white
    return float(rng.uniform(0.28, 0.36) if light else rng.uniform(0.72, 0.82))


def texture_image(colour: str, pattern: str, size: int, rng: np.random.Generator) -> np.ndarray:
    field = _PATTERN_FUNCS[pattern](size, rng)
    value, joints = field if isinstance(field, tuple) else (field, None)
    image = colourise(value.astype(np.float32), colour, rng)
    if joints is not None:
        weight = joints.astype(np.float32)[..., None]
        image = image * (1 - weight) + joint_grey(colour, rng) * weight
    return image.astype(np.float32)


def random_texture(size: int, rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    pattern = list(PATTERNS)[int(rng.integers(len(PATTERNS)))]
    return texture_image(colour, pattern, size, rng), colour, pattern


def texture(size: int, rng: np.random.Generator) -> Example:
    image, colour, pattern = random_texture(size, rng)
    return Example(image=image, caption=caption_for(colour, pattern, rng), colour=colour, pattern=pattern)


# ---------------------------------------------------------------------------------------------
# depth scenes


def _shape_height(kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(height above the backdrop in [0, 1], coverage mask) of one shape at a random place."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = rng.uniform(0.3, 0.7, size=2)
    if kind == "sphere":
        r = rng.uniform(0.16, 0.3)
        d2 = ((x - cx) ** 2 + (y - cy) ** 2) / r**2
        inside = d2 < 1
        return np.where(inside, np.sqrt(np.clip(1 - d2, 0, 1)), 0).astype(np.float32), inside
    if kind == "box":
        hw, hh = rng.uniform(0.12, 0.28, size=2)
        angle = rng.uniform(-0.6, 0.6)
        ca, sa = np.cos(angle), np.sin(angle)
        lx = (x - cx) * ca + (y - cy) * sa
        ly = -(x - cx) * sa + (y - cy) * ca
        edge = np.minimum(hw - np.abs(lx), hh - np.abs(ly))  # distance to the nearest side
        inside = edge > 0
        bevel = np.clip(edge / 0.04, 0, 1)  # rounded rim, so the box has lit and shaded sides
        return np.where(inside, 0.55 + 0.45 * bevel, 0).astype(np.float32), inside
    # a tilted plane (a card leaning back): a quad whose depth falls off linearly
    hw, hh = rng.uniform(0.2, 0.32), rng.uniform(0.15, 0.3)
    inside = (np.abs(x - cx) < hw) & (np.abs(y - cy) < hh)
    tilt = (y - (cy - hh)) / (2 * hh)  # 0 at the top edge (far), 1 at the bottom (near)
    return np.where(inside, 0.3 + 0.7 * np.clip(tilt, 0, 1), 0).astype(np.float32), inside


def shade_from_height(height: np.ndarray) -> np.ndarray:
    """Lambert shading of a height field lit from the upper left (ambient 0.4)."""
    gy, gx = np.gradient(height * height.shape[0] * 0.15)
    normal = np.stack([-gx, -gy, np.ones_like(height)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([-0.5, -0.6, 0.62], dtype=np.float32)
    light /= np.linalg.norm(light)
    return (0.4 + 0.6 * np.clip(normal @ light, 0, 1)).astype(np.float32)


def depth_scene(size: int, rng: np.random.Generator) -> Example:
    """One or two shapes; the nearer one wins where they overlap. Depth is normalised per image."""
    count = 1 if rng.uniform() < 0.7 else 2
    depth = np.zeros((size, size), np.float32)
    kinds = []
    for _ in range(count):
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        kinds.append(kind)
        height, inside = _shape_height(kind, size, rng)
        offset = rng.uniform(0.2, 0.6)  # how far in front of the backdrop this shape stands
        depth = np.where(inside, np.maximum(depth, offset + 0.5 * height), depth)
    coverage = depth > 0
    depth = np.where(coverage, depth / max(float(depth.max()), 1e-6), 0).astype(np.float32)
    tex, colour, pattern = random_texture(size, rng)
    shaded = tex * shade_from_height(depth)[..., None]
    backdrop = np.full_like(tex, BACKDROP) + rng.uniform(-0.03, 0.03)
    image = np.where(coverage[..., None], shaded, backdrop).astype(np.float32)
    caption = caption_for(colour, pattern, rng)
    if rng.uniform() < 0.5:
        caption = f"{caption}, {kinds[0]}"
    return Example(image=np.clip(image, 0, 1), caption=caption, colour=colour, pattern=pattern,
                   depth=depth, shape=kinds[0])


# ---------------------------------------------------------------------------------------------
# inpainting


def random_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A rectangle, an ellipse or a blob covering roughly 10-50% of the picture (1 = repaint)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cx, cy = rng.uniform(0.25, 0.75, size=2)
    rx, ry = rng.uniform(0.15, 0.35, size=2)
    kind = int(rng.integers(3))
    if kind == 0:
        mask = (np.abs(x - cx) < rx) & (np.abs(y - cy) < ry)
    elif kind == 1:
        mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
    else:
        wobble = periodic_noise(size, rng, 0.08) - 0.5
        mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + 1.5 * wobble < 1
    return mask.astype(np.float32)


def inpaint_example(size: int, rng: np.random.Generator) -> Example:
    """Mostly: another texture fills the mask and the caption names it. Sometimes the same
    texture continues through the hole (the caption names the whole picture)."""
    outside, o_colour, o_pattern = random_texture(size, rng)
    mask = random_mask(size, rng)
    if rng.uniform() < 0.25:
        image, colour, pattern = outside, o_colour, o_pattern
    else:
        inside, colour, pattern = random_texture(size, rng)
        image = np.where(mask[..., None] > 0.5, inside, outside).astype(np.float32)
    return Example(image=image, caption=caption_for(colour, pattern, rng), colour=colour,
                   pattern=pattern, mask=mask)


# ---------------------------------------------------------------------------------------------


def make_set(kind: str, count: int, size: int, seed: int) -> list[Example]:
    """``count`` examples of one kind ("texture", "depth", "inpaint"): same seed, same data."""
    make = {"texture": texture, "depth": depth_scene, "inpaint": inpaint_example}[kind]
    # A separate stream per kind, so changing one count never shifts another kind's examples.
    rng = np.random.default_rng([seed, ("texture", "depth", "inpaint").index(kind)])
    return [make(size, rng) for _ in range(count)]


def to_pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))


def depth_to_pil(depth: np.ndarray):
    """A depth map as the RGB picture a depth ControlNet takes (grey, near = bright)."""
    return to_pil(np.repeat(depth[..., None], 3, axis=-1))


def mask_to_pil(mask: np.ndarray):
    from PIL import Image

    return Image.fromarray(((mask > 0.5) * 255).astype(np.uint8), mode="L")
