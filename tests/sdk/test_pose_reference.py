"""Pose pictures against ControlNet's own annotator, pixel for pixel.

The expected pictures in tests/fixtures/openpose were drawn once by the annotator's code
(lllyasviel ControlNet-v1-1 annotator/openpose/util.py; single-person cases also checked
identical with controlnet-aux 0.0.10) with tools/openpose_reference_fixtures.py, which says how.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from brushwork.conditioning import prepare_control
from brushwork.conditioning.pose import render_openpose
from brushwork.recipe import Control
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openpose"
CASES = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))


def reference(name: str) -> np.ndarray:
    with Image.open(FIXTURES / f"{name}.png") as img:
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_pixels_as_the_annotator(case):
    ours = np.asarray(render_openpose(case["pose"], size=tuple(case["size"])))
    expected = reference(case["name"])
    assert ours.shape == expected.shape
    differing = int((ours != expected).any(axis=2).sum())
    assert differing == 0, f"{differing} of {ours.shape[0] * ours.shape[1]} pixels differ from the annotator"


def test_no_shoulder_to_ear_limb():
    # The annotator draws 17 of the 19 published limbs: right shoulder (2) -> right ear (16)
    # never appears. Midway along that segment the reference picture is black.
    [case] = [c for c in CASES if c["name"] == "standing_512"]
    flat = case["pose"]["people"][0]["pose_keypoints_2d"]
    (x2, y2), (x16, y16) = flat[6:8], flat[48:50]
    mid = (int((x2 + x16) / 2), int((y2 + y16) / 2))
    assert tuple(reference("standing_512")[mid[1], mid[0]]) == (0, 0, 0)
    assert tuple(np.asarray(render_openpose(case["pose"], size=(512, 512)))[mid[1], mid[0]]) == (0, 0, 0)


def test_through_the_engine_entry_point():
    # prepare_control is what the engine calls for a pose control's signal.
    [case] = [c for c in CASES if c["name"] == "hands_face_768x512"]
    picture = prepare_control(Control(kind="pose", signal=case["pose"]), lambda ref: b"", 768, 512)
    assert np.array_equal(np.asarray(picture), reference(case["name"]))


def test_hands_and_faces_are_drawn():
    [case] = [c for c in CASES if c["name"] == "hands_face_512x512"]
    ours = np.asarray(render_openpose(case["pose"], size=(512, 512)))
    assert ((ours == (0, 0, 255)).all(axis=2)).sum() > 50  # blue hand keypoints
    assert ((ours == (255, 255, 255)).all(axis=2)).sum() > 50  # white face keypoints
