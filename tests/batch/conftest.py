"""Fixtures of the batch tests: the tiny models on the model path, and an init picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def models_env(tiny_models, monkeypatch):
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    return tiny_models


@pytest.fixture
def picture(tmp_path) -> Path:
    """A 64x64 RGB picture (an init image) beside the manifests."""
    rng = np.random.default_rng(3)
    path = tmp_path / "init.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path
