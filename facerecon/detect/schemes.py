"""Landmark schemes: MediaPipe's 478-point face mesh and the 68 iBUG points, and the map between them.

iBUG 68 (Sagonas et al., 300-W; the order dlib's shape predictor uses), 0-based: 0-16 jaw from the
subject's RIGHT ear to the LEFT (the left side of a frontal photo first), 17-21 right brow, 22-26 left brow,
27-30 nose bridge, 31-35 nostrils, 36-41 right eye, 42-47 left eye, 48-59 outer lips, 60-67 inner lips.
"""

from __future__ import annotations

import numpy as np

from facerecon.core.check import check_choice, check_floating, check_shape

# MediaPipe face-mesh index (or two, averaged) for each iBUG-68 point, 0-based iBUG order.
# Source (a published table of correspondences, a fact not code): Peizhi Yan, "Mediapipe_2_Dlib_Landmarks"
# (2024), https://github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks, mediapipe2dlib/mp2dlib.py.
MEDIAPIPE_TO_IBUG68: tuple[tuple[int, int], ...] = (
    # jaw 0-16
    (127, 127), (234, 234), (93, 93), (132, 58), (58, 172), (136, 136), (150, 150), (176, 176), (152, 152),
    (400, 400), (379, 379), (365, 365), (397, 288), (361, 361), (323, 323), (454, 454), (356, 356),
    # right brow 17-21, left brow 22-26
    (70, 70), (63, 63), (105, 105), (66, 66), (107, 107),
    (336, 336), (296, 296), (334, 334), (293, 293), (300, 300),
    # nose bridge 27-30, nostrils 31-35
    (168, 6), (197, 195), (5, 5), (4, 4),
    (75, 75), (97, 97), (2, 2), (326, 326), (305, 305),
    # right eye 36-41, left eye 42-47
    (33, 33), (160, 160), (158, 158), (133, 133), (153, 153), (144, 144),
    (362, 362), (385, 385), (387, 387), (263, 263), (373, 373), (380, 380),
    # outer lips 48-59
    (61, 61), (39, 39), (37, 37), (0, 0), (267, 267), (269, 269), (291, 291),
    (321, 321), (314, 314), (17, 17), (84, 84), (91, 91),
    # inner lips 60-67
    (78, 78), (82, 82), (13, 13), (312, 312), (308, 308), (317, 317), (14, 14), (87, 87),
)

#: Mirror pairs of the iBUG 68 points (subject's right, subject's left); the other points lie on the midline.
IBUG68_MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (59, 55), (58, 56),
    (60, 64), (61, 63), (67, 65),
)

#: A few named MediaPipe indices (subject's right / left): outer and inner eye corners, mouth corners,
#: iris centres (the refined model's points 468 and 473), nose tip, chin.
MEDIAPIPE_POINTS: dict[str, int] = {
    "right_eye_outer": 33, "right_eye_inner": 133, "left_eye_inner": 362, "left_eye_outer": 263,
    "mouth_right": 61, "mouth_left": 291, "right_iris": 468, "left_iris": 473, "nose_tip": 1, "chin": 152,
}

_MAP = np.asarray(MEDIAPIPE_TO_IBUG68, dtype=np.int64)


def to_ibug68(landmarks: np.ndarray, scheme: str) -> np.ndarray:
    """The 68 iBUG points of landmarks in either scheme.

    Args:
        landmarks: ``(L, D)`` float, ``D`` 2 (px) or 3; ``L`` = 478 for ``"mediapipe478"`` (468 also
            accepted: the map uses no iris point), 68 for ``"ibug68"``.
        scheme: ``"mediapipe478"`` or ``"ibug68"``.

    Returns:
        ``(68, D)`` float64, a new array: MediaPipe points through :data:`MEDIAPIPE_TO_IBUG68` (mean of the
        pair), iBUG points copied.

    Example:
        >>> to_ibug68(np.zeros((478, 2)), "mediapipe478").shape
        (68, 2)
    """
    check_choice(scheme, "scheme", ("mediapipe478", "ibug68"))
    check_floating(landmarks, "landmarks")
    if scheme == "ibug68":
        check_shape(landmarks, "landmarks", (68, None))
        return np.array(landmarks, dtype=np.float64)
    if landmarks.ndim != 2 or landmarks.shape[0] not in (468, 478):
        check_shape(landmarks, "landmarks", (478, None))
    pts = np.asarray(landmarks, dtype=np.float64)
    return 0.5 * (pts[_MAP[:, 0]] + pts[_MAP[:, 1]])
