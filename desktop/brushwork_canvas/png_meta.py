"""PNG text chunks with the standard library: read them, and make sure an exported result carries
its Recipe (``brushwork`` chunk) and A1111-style ``parameters`` that other tools read.

Results from the worker already carry both (brushwork.metadata); this only fills in what a PNG
lacks, so exporting never strips metadata and never duplicates it.
"""

from __future__ import annotations

import struct
import zlib

from brushwork.errors import InputImageError
from brushwork.recipe import Recipe

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(png: bytes):
    if not png.startswith(SIGNATURE):
        raise InputImageError("not a PNG file")
    pos = len(SIGNATURE)
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind = png[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(png):
            raise InputImageError("PNG file is truncated")
        yield pos, kind, png[pos + 8:pos + 8 + length], end
        pos = end


def read_text(png: bytes) -> dict[str, str]:
    """tEXt, zTXt and iTXt chunks as {keyword: text} (uncompressed iTXt and zTXt included)."""
    out = {}
    for _pos, kind, data, _end in _chunks(png):
        if kind == b"tEXt":
            key, _, value = data.partition(b"\x00")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = data.partition(b"\x00")
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = data.partition(b"\x00")
            compressed, _method = rest[0], rest[1]
            _lang, _, rest = rest[2:].partition(b"\x00")
            _tkey, _, text = rest.partition(b"\x00")
            out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
    return out


def _itxt(key: str, text: str) -> bytes:
    data = key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    return struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))


def a1111_parameters(recipe: Recipe) -> str:
    lines = [recipe.prompt]
    if recipe.negative_prompt:
        lines.append(f"Negative prompt: {recipe.negative_prompt}")
    # A field the recipe left to the model (None) is left out: A1111 readers take what is there.
    fields = [f"Steps: {recipe.steps}" if recipe.steps is not None else "",
              f"Sampler: {recipe.sampler}" if recipe.sampler is not None else "",
              f"CFG scale: {recipe.cfg:g}" if recipe.cfg is not None else "",
              f"Seed: {recipe.seed if recipe.seed is not None else -1}",
              f"Size: {recipe.width}x{recipe.height}" if recipe.width and recipe.height else ""]
    fields = [f for f in fields if f]
    if recipe.model:
        fields.append(f"Model: {recipe.model}")
    if recipe.init_image is not None:
        fields.append(f"Denoising strength: {recipe.strength:g}")
    lines.append(", ".join(fields))
    return "\n".join(lines)


def with_metadata(png: bytes, recipe: Recipe) -> bytes:
    """``png`` plus ``parameters`` and ``brushwork`` chunks where it lacks them (after IHDR)."""
    present = read_text(png)
    extra = b""
    if "parameters" not in present:
        extra += _itxt("parameters", a1111_parameters(recipe))
    if "brushwork" not in present:
        extra += _itxt("brushwork", recipe.to_json())
    if not extra:
        return png
    for _pos, kind, _data, end in _chunks(png):
        if kind == b"IHDR":
            return png[:end] + extra + png[end:]
    raise InputImageError("PNG file has no IHDR chunk")
