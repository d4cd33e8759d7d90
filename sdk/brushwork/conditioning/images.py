"""Opening untrusted image bytes safely (decompression bombs, corrupt and truncated files).

Every input picture (init image, mask, sketch, control photo) enters through ``open_image`` so
that a bad file is one clear ``InputImageError`` and never a PIL traceback or a 10 GB allocation.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputImageError
from ..recipe import MAX_SIDE

# Twice the pixels of the largest output a Recipe allows (33.5 M), the same limit as the worker's
# (protocol.MAX_IMAGE_PIXELS): a 4096² output can come from a larger photo, while a bomb (a tiny
# PNG claiming 100k x 100k) is refused before it is decoded.
MAX_PIXELS = 2 * MAX_SIDE * MAX_SIDE


def open_image(data: bytes, *, what: str = "image", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``data`` fully (first frame of an animation), upright per EXIF; raise InputImageError
    naming ``what`` for anything that is not a whole, reasonably sized image."""
    if not data:
        raise InputImageError(f"{what}: the file is empty")
    try:
        with warnings.catch_warnings():
            # PIL warns (not raises) between MAX_IMAGE_PIXELS and twice that: we check ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise InputImageError(
                    f"{what}: {width}x{height} is too large ({width * height:,} pixels; at most {max_pixels:,})")
            if width < 1 or height < 1:
                raise InputImageError(f"{what}: has no pixels ({width}x{height})")
            img.load()
            img = ImageOps.exif_transpose(img)
    except InputImageError:
        raise
    except UnidentifiedImageError:
        raise InputImageError(f"{what}: not an image, or a format Pillow cannot read") from None
    except Image.DecompressionBombError:
        raise InputImageError(f"{what}: is too large to decode safely (over {max_pixels:,} pixels)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputImageError(f"{what}: corrupt or truncated image ({_one_line(exc)})") from None
    return img


def has_real_alpha(img: Image.Image) -> bool:
    """True when the image carries transparency that is not fully opaque everywhere."""
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = img.convert("RGBA").getchannel("A")
        return alpha.getextrema() != (255, 255)  # (min, max) of one band: opaque iff min is 255
    return False


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB, with any transparency composited over ``background`` (white: a sheet of paper)."""
    if has_real_alpha(img):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if img.mode == "I;16" or img.mode == "I":
        # 16-bit greyscale (depth maps): scale to 8 bits rather than clip.
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype("uint8")).convert("RGB")
    return img.convert("RGB")


def fit(img: Image.Image, size: tuple[int, int], resample=Image.Resampling.LANCZOS) -> Image.Image:
    """Resize to exactly ``size`` (width, height); a no-op when it already is."""
    if img.size == tuple(size):
        return img
    return img.resize((size[0], size[1]), resample)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
