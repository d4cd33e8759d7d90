"""The OpenPose 18-keypoint body skeleton (COCO order), its limbs and standard colours, and the
21-point hands and 70-point face that OpenPose JSON may carry beside it.

Stdlib only: the engine draws ControlNet pose pictures with it, the canvas draws its editable
skeleton with it, and the Blender add-on maps bones to its keypoint names, so all three agree.
"""

from __future__ import annotations

import colorsys

KEYPOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

# Limbs as 0-based keypoint pairs, in OpenPose's drawing order. The published table has 19 pairs
# but the ControlNet annotator (lllyasviel's ControlNet-v1-1 and controlnet-aux draw_bodypose)
# draws only the first 17: the two shoulder -> ear limbs never appear in the pictures the openpose
# ControlNets were trained on. The table is kept whole so it matches the published one.
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

DRAWN_LIMB_COUNT = 17
# The (pair, colour) of every limb that is drawn.
DRAWN_LIMBS = tuple(zip(LIMBS[:DRAWN_LIMB_COUNT], COLORS[:DRAWN_LIMB_COUNT], strict=True))

# Hands: 21 keypoints (wrist, then 4 per finger from thumb to little finger), 20 bones from the
# wrist outwards. The annotator colours bone i with hue i/20 at full saturation and value, and
# draws every keypoint as a blue dot; face keypoints (70) are white dots.
HAND_KEYPOINT_COUNT = 21
FACE_KEYPOINT_COUNT = 70
HAND_EDGES = tuple((0 if j % 4 == 0 else j, j + 1) for j in range(20))
HAND_EDGE_COLORS = tuple(tuple(255.0 * c for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))
                         for i in range(len(HAND_EDGES)))  # RGB floats, rounded when drawn
HAND_POINT_COLOR = (0, 0, 255)
FACE_POINT_COLOR = (255, 255, 255)
