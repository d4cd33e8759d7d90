"""Helpers of the batch tests (imported as a plain module: tests/ has no packages)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

TINY = dict(model="tiny-sd15", width=64, height=64, steps=3, cfg=5.0)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: pixels(p) for p in sorted(folder.glob("*.png"))}
