"""Per-vertex semantic regions of a face template, the skin mask and the region weights of paper 002.

Regions of the face surface are found from the template's own 68 landmarks in its frontal (x, y)
projection, so they follow the model rather than hand-painted masks; the other sub-geometries (eyeballs,
mouth interior, back of the head) are labelled by their vertex ranges.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.path import Path as PolygonPath
from scipy.spatial import cKDTree


class Region(enum.IntEnum):
    """Region labels, stored per vertex as ``int8``."""

    FOREHEAD = 0
    EYEBROWS = 1
    EYES = 2  # eyelids and the skin right around the eyes
    NOSE = 3
    CHEEKS = 4
    MOUTH = 5  # lips
    CHIN_JAW = 6
    EARS = 7
    NECK_BACK_OF_HEAD = 8  # the front of the neck, under the chin, the back of the head
    EYEBALLS = 9  # eyeballs and the eye effect meshes (sockets, lacrimal fluid, occlusion, lashes)
    MOUTH_INTERIOR = 10  # mouth socket, gums, tongue, teeth


FACE_SKIN_REGIONS = (
    Region.FOREHEAD, Region.EYEBROWS, Region.EYES, Region.NOSE, Region.CHEEKS, Region.MOUTH, Region.CHIN_JAW,
    Region.EARS,
)  # fmt: skip

# Paper 002 (Shi et al., "Face Reconstruction with Specific Weight Mask", sec. 3, eq. 3): area 1 (the
# landmarks) : area 2 (eyes, nose) : area 3 (mouth) : area 4 (forehead, other face) : area 5 (neck)
# = 16 : 5 : 4 : 3 : 0.
PAPER002_WEIGHTS = {"landmarks": 16.0, "eyes_nose": 5.0, "mouth": 4.0, "other": 3.0, "neck": 0.0}
# Radius around each landmark vertex that counts as "landmark area" (mm on the mean face).
LANDMARK_AREA_RADIUS_MM = 4.0


def _polygon_contains(points_xy: np.ndarray, polygon_xy: np.ndarray, grow_mm: float) -> np.ndarray:
    """Points inside the closed polygon ``polygon_xy`` or within ``grow_mm`` of its outline."""
    inside = PolygonPath(polygon_xy).contains_points(points_xy)
    closed = np.concatenate([polygon_xy, polygon_xy[:1]])
    return inside | (_distance_to_polyline(points_xy, closed) <= grow_mm)


def _distance_to_polyline(points_xy: np.ndarray, line_xy: np.ndarray) -> np.ndarray:
    a = line_xy[:-1][None]  # (1, S, 2)
    b = line_xy[1:][None]
    p = points_xy[:, None]  # (N, 1, 2)
    ab = b - a
    t = np.clip(np.sum((p - a) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
    closest = a + t[..., None] * ab
    return np.linalg.norm(p - closest, axis=-1).min(axis=1)


def label_face_regions(
    vertices: np.ndarray,
    landmarks68: Sequence[int],
    face_vertices: range,
    front_vertices: range,
    other_parts: Mapping[Region, Sequence[range]],
) -> np.ndarray:
    """Label every vertex of a face template with a :class:`Region`.

    Args:
        vertices: ``(V, 3)`` mean-face positions in mm, model space (y up, z out of the face).
        landmarks68: the 68 iBUG landmark vertex indices.
        face_vertices: the face-area vertices (front, ears, front of the neck).
        front_vertices: the front-of-face vertices within the face area (brow to chin, ear to ear).
        other_parts: vertex ranges of other sub-geometries per region (eyeballs, mouth interior, back of head).

    Returns:
        ``(V,)`` int8 region labels.
    """
    labels = np.full(len(vertices), Region.NECK_BACK_OF_HEAD, dtype=np.int8)
    for region, ranges in other_parts.items():
        for r in ranges:
            labels[r.start : r.stop] = region

    lm = vertices[np.asarray(landmarks68)]
    idx = np.arange(face_vertices.start, face_vertices.stop)
    xy = vertices[idx, :2]
    z = vertices[idx, 2]
    in_front = (idx >= front_vertices.start) & (idx < front_vertices.stop)

    brow_top = lm[17:27, 1].max()
    eye_level = lm[36:48, 1].mean()
    mouth_bottom = lm[57, 1]
    chin = lm[8, 1]
    jaw_half_width = np.abs(lm[[0, 16], 0]).mean()
    jaw_depth = lm[[0, 16], 2].mean()

    region = np.full(len(idx), Region.CHEEKS, dtype=np.int8)
    region[xy[:, 1] > brow_top] = Region.FOREHEAD
    # Below the jaw line: chin/jaw on the front surface, neck under it.
    jaw_line = lm[0:17, :2]
    below_jaw = np.zeros(len(idx), bool)
    order = np.argsort(jaw_line[:, 0])
    jaw_y_at_x = np.interp(xy[:, 0], jaw_line[order, 0], jaw_line[order, 1])
    below_jaw = (xy[:, 1] < jaw_y_at_x - 2.0) & (np.abs(xy[:, 0]) < jaw_half_width)
    lower_face = (xy[:, 1] < mouth_bottom) | (_distance_to_polyline(xy, lm[3:14, :2]) < 12.0)
    region[lower_face & (xy[:, 1] < eye_level)] = Region.CHIN_JAW
    region[below_jaw | (xy[:, 1] < chin - 2.0)] = Region.NECK_BACK_OF_HEAD
    # Ears: outside the jaw's width, behind the jaw corners, between chin and brows.
    ears = (np.abs(xy[:, 0]) > jaw_half_width - 6.0) & (z < jaw_depth - 12.0) & (xy[:, 1] > chin) & (
        xy[:, 1] < brow_top + 10.0
    )
    region[ears & ~in_front] = Region.EARS
    # Features, on the front of the face only (ears and neck can project onto them from behind).
    nose_outline = lm[[27, 31, 32, 33, 34, 35]][:, :2].copy()
    nose_outline = np.concatenate([nose_outline, lm[[42, 39]][:, :2] * [0.55, 1.0]])
    features = (
        (Region.NOSE, nose_outline, 4.0),
        (Region.MOUTH, lm[48:60, :2], 2.5),
        (Region.EYES, lm[36:42, :2], 6.0),
        (Region.EYES, lm[42:48, :2], 6.0),
    )
    for label, outline, grow in features:
        region[in_front & _polygon_contains(xy, outline, grow)] = label
    brows = (_distance_to_polyline(xy, lm[17:22, :2]) < 6.0) | (_distance_to_polyline(xy, lm[22:27, :2]) < 6.0)
    region[in_front & brows & (xy[:, 1] > eye_level + 4.0)] = Region.EYEBROWS
    labels[idx] = region
    return labels


def skin_mask(labels: np.ndarray) -> np.ndarray:
    """Vertices for the global skin-reflectance constancy prior (paper 004, eq. 14 and fig. 2).

    Forehead, nose and cheeks: skin that is rarely covered by facial hair, make-up on the lips, or
    eyebrows (paper 004: "regions that may have facial hair were not included in the mask").

    Returns:
        ``(V,)`` bool.
    """
    return np.isin(labels, [Region.FOREHEAD, Region.NOSE, Region.CHEEKS])


def region_weights(vertices: np.ndarray, labels: np.ndarray, landmark_vertices: Sequence[int]) -> np.ndarray:
    """Per-vertex loss weights of paper 002 (16 : 5 : 4 : 3 : 0).

    Args:
        vertices: ``(V, 3)`` mean-face positions, mm.
        labels: ``(V,)`` region labels from :func:`label_face_regions`.
        landmark_vertices: vertex indices of the landmarks (the "landmark area" is within
            ``LANDMARK_AREA_RADIUS_MM`` of one of them).

    Returns:
        ``(V,)`` float32 weights: 16 near landmarks, 5 eyes and nose, 4 mouth, 3 the rest of the face
        skin, 0 the neck, back of the head, eyeballs and mouth interior.
    """
    w = np.full(len(vertices), PAPER002_WEIGHTS["neck"], dtype=np.float32)
    w[np.isin(labels, FACE_SKIN_REGIONS)] = PAPER002_WEIGHTS["other"]
    w[labels == Region.MOUTH] = PAPER002_WEIGHTS["mouth"]
    w[np.isin(labels, [Region.EYES, Region.NOSE])] = PAPER002_WEIGHTS["eyes_nose"]
    skin = np.flatnonzero(np.isin(labels, FACE_SKIN_REGIONS))
    near = cKDTree(vertices[np.asarray(landmark_vertices)]).query(vertices[skin])[0] <= LANDMARK_AREA_RADIUS_MM
    w[skin[near]] = PAPER002_WEIGHTS["landmarks"]
    return w
