"""The `normal` control kind: a camera-space normal map (ControlNet 1.1 normalbae colours), e.g.
from Blender's Normal pass. Passed to the ControlNet as it is (no preprocessing)."""

from __future__ import annotations

import numpy as np
import pytest
from brushwork import Control
from brushwork.conditioning import prepare_control
from brushwork.errors import ModelNotFoundError, RecipeError
from brushwork.models.registry import CONTROLNETS, controlnet_id, is_control_kind
from brushwork.recipe import CONTROL_KINDS
from PIL import Image
from test_engine_support import mean_diff, module_studio, recipe, write_png

pytestmark = pytest.mark.xdist_group("engine-normal")


def normal_map(size=64) -> Image.Image:
    """A hemisphere facing the camera on black: red = left, green = up, blue = towards the viewer."""
    ys, xs = np.mgrid[0:size, 0:size]
    x = (xs + 0.5) / size * 2 - 1
    y = 1 - (ys + 0.5) / size * 2
    inside = x * x + y * y < 1
    z = np.sqrt(np.clip(1 - x * x - y * y, 0, 1))
    rgb = np.stack([0.5 - 0.5 * x, 0.5 + 0.5 * y, 0.5 + 0.5 * z], axis=-1) * inside[..., None]
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8))


def test_normal_is_a_control_kind_with_the_normalbae_controlnet():
    assert "normal" in CONTROL_KINDS
    assert controlnet_id("sd15", "normal") == "lllyasviel/control_v11p_sd15_normalbae"
    assert controlnet_id(None, "normals") == CONTROLNETS["sd15"]["normal"]
    assert is_control_kind("normalbae")
    with pytest.raises(ModelNotFoundError, match="no public normal ControlNet is known for sdxl"):
        controlnet_id("sdxl", "normal")


def test_a_normal_control_needs_an_image_not_a_raw_signal(tmp_path):
    Control(kind="normal", image=str(tmp_path / "n.png")).validate("controls[0]")
    with pytest.raises(RecipeError, match="raw signals exist for depth and pose only"):
        Control(kind="normal", signal={"people": []}).validate("controls[0]")


def read(ref: str) -> bytes:
    with open(ref, "rb") as f:
        return f.read()


def test_the_normal_map_reaches_the_controlnet_unchanged(tmp_path):
    path = write_png(tmp_path / "normal.png", normal_map())
    got = prepare_control(Control(kind="normal", image=str(path)), read, 64, 64)
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(normal_map()))
    # a canny control given the same picture would detect edges: normal is not preprocessed
    edges = prepare_control(Control(kind="canny", image=str(path)), read, 64, 64)
    assert not np.array_equal(np.asarray(edges.convert("RGB")), np.asarray(normal_map()))


def test_a_normal_control_conditions_a_generation(tmp_path_factory, tiny_models):
    studio = module_studio(tmp_path_factory)
    path = write_png(tmp_path_factory.mktemp("normal") / "normal.png", normal_map())
    # The tiny set has no normal ControlNet; any SD 1.5 ControlNet has the same shape.
    control = Control(kind="normal", image=str(path), model=str(tiny_models.controlnets["depth"]))
    none = studio.generate(recipe(tiny_models.sd15)).images[0]
    with_normal = studio.generate(recipe(tiny_models.sd15, controls=[control])).images[0]
    assert mean_diff(with_normal, none) > 1.0
