"""The OpenPose 18-keypoint body skeleton (COCO order), its limbs and standard colours.

Stdlib only: the engine draws ControlNet pose pictures with it, the canvas draws its editable
skeleton with it, and the Blender add-on maps bones to its keypoint names, so all three agree.
"""

from __future__ import annotations

KEYPOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

# Limbs as 0-based keypoint pairs, in OpenPose's drawing order. The convention pairs them with
# COLORS by position, so only the first 18 are ever drawn (the 19th, left shoulder -> left ear,
# has no colour); it is kept so the table matches the published one.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)

# One colour per keypoint (joints) and per drawn limb, by position.
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

DRAWN_LIMBS = tuple(zip(LIMBS, COLORS))  # the (pair, colour) of every limb that is drawn
