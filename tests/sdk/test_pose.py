"""OpenPose rendering: joint positions and colours, limbs, several people, tolerant parsing."""

import numpy as np
import pytest
from brushwork.conditioning.pose import COLORS, parse_people, render_openpose
from brushwork.errors import InputImageError


def person(points: dict[int, tuple[float, float]], conf: float = 1.0) -> dict:
    flat = []
    for k in range(18):
        if k in points:
            flat += [points[k][0], points[k][1], conf]
        else:
            flat += [0, 0, 0]
    return {"pose_keypoints_2d": flat}


def px(img, x, y):
    return tuple(int(v) for v in np.asarray(img)[y, x])


def test_joints_in_their_colours_and_limb_dimmed():
    data = {"people": [person({1: (256, 100), 2: (200, 100)})], "canvas_width": 512, "canvas_height": 512}
    img = render_openpose(data, size=(512, 512))
    assert img.size == (512, 512) and img.mode == "RGB"
    assert px(img, 256, 100) == COLORS[1]  # neck
    assert px(img, 200, 100) == COLORS[2]  # right shoulder
    assert px(img, 228, 100) == (153, 0, 0)  # limb neck→right shoulder: colour 0 at 60 %
    assert px(img, 228, 110) == (0, 0, 0)  # beyond the stick's half-width of 4
    assert px(img, 10, 10) == (0, 0, 0)  # black background


def test_confidence_zero_skipped_with_its_limbs():
    data = person({0: (300, 300), 1: (256, 100)})
    data["pose_keypoints_2d"][2] = 0.0  # the nose has confidence 0
    img = render_openpose({"people": [data]}, 512, 512, size=(512, 512))
    assert px(img, 300, 300) == (0, 0, 0)
    assert px(img, 278, 200) == (0, 0, 0)  # no neck→nose limb


def test_scaled_from_canvas_to_size_and_several_people():
    data = {"people": [person({0: (10, 10)}), person({5: (50, 20)})], "canvas_width": 100, "canvas_height": 50}
    img = render_openpose(data, size=(1024, 512))  # the annotator's own canvas size: no resize
    assert px(img, 102, 102) == COLORS[0]
    assert px(img, 512, 204) == COLORS[5]


def test_pairs_without_confidence_and_nested_and_body25():
    flat2 = [v for k in range(18) for v in ((100.0, 50.0) if k == 3 else (5.0, 5.0))]
    [arr] = parse_people({"people": [{"pose_keypoints_2d": flat2}]})
    assert arr.shape == (18, 3) and (arr[:, 2] == 1).all()
    nested = [[k, k, 1] for k in range(18)]
    assert parse_people([nested])[0][17, 0] == 17
    body25 = np.zeros((25, 3))
    body25[8] = (999, 999, 1)  # mid-hip: not in COCO-18
    body25[9] = (7, 8, 1)  # right hip → COCO 8
    [coco] = parse_people({"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]})
    assert tuple(coco[8]) == (7, 8, 1) and 999 not in coco


@pytest.mark.parametrize("bad, match", [
    ({"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}, "4 numbers is not 18 or 25"),
    ({"people": [{"pose_keypoints_2d": "abc"}]}, "keypoints"),
    ({"people": [{}]}, "no pose_keypoints_2d"),
    ({"people": "x"}, "'people' list"),
    ({"people": [{"pose_keypoints_2d": [[1, 2, 3]] * 7}]}, "not 18 or 25 points"),
    ({"people": [{"pose_keypoints_2d": [float("nan")] * 54}]}, "finite"),
])
def test_bad_shapes_are_clear(bad, match):
    with pytest.raises(InputImageError, match=match):
        render_openpose(bad, 64, 64, size=(64, 64))


def test_unknown_canvas_is_an_error():
    with pytest.raises(InputImageError, match="canvas size is unknown"):
        render_openpose({"people": []}, size=(64, 64))


def test_empty_person_is_skipped():
    img = render_openpose({"people": [{"pose_keypoints_2d": []}]}, 64, 64, size=(64, 64))
    assert np.asarray(img).max() == 0


def test_canvas_skeleton_carries_hands_and_face_to_the_engine():
    # The canvas edits body joints; hands and face from an OpenPose file must survive the round
    # trip (scaled with the document) and reach the engine's drawing.
    import copy

    from brushwork_canvas.pose import from_openpose, to_openpose

    hand = [v for k in range(21) for v in (100 + 3 * k, 200 + 2 * k, 0.8)]
    face = [v for k in range(70) for v in (150 + k, 60 + (k % 7), 0.5)]
    data = {"people": [{**person({1: (128, 100), 4: (100, 200)}), "hand_right_keypoints_2d": hand,
                        "face_keypoints_2d": face}], "canvas_width": 256, "canvas_height": 256}
    people = copy.deepcopy(from_openpose(data, 512, 512))  # documents copy people for undo
    assert people[0].parts["hand_right_keypoints_2d"][:3] == [200.0, 400.0, 0.8]  # scaled x2
    out = to_openpose(people, 512, 512)["people"][0]
    assert len(out["hand_right_keypoints_2d"]) == 63 and len(out["face_keypoints_2d"]) == 210
    img = np.asarray(render_openpose(to_openpose(people, 512, 512), size=(512, 512)))
    assert px(img, 200, 400) == (0, 0, 255)  # the hand's wrist point, blue
    assert px(img, 300, 120) == (255, 255, 255)  # a face point, white


def test_hand_keypoints_of_a_wrong_length_are_a_one_line_error():
    data = {"people": [{**person({1: (10, 10)}), "hand_left_keypoints_2d": [1, 2, 3] * 5}]}
    with pytest.raises(InputImageError, match=r"hand_left_keypoints_2d: 15 numbers is not 21 keypoints"):
        render_openpose(data, 64, 64, size=(64, 64))
