"""Steps 4-7, placing the landmarks: candidates scored by their projections, refinement, pose cells, drift and
the held-out error."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from facerecon.calibrate.backproject import _Detections
from facerecon.calibrate.config import (
    _EYE_OUTER,
    MEDIAPIPE_FACE_OVAL,
    MEDIAPIPE_IRIS,
    NUM_LANDMARKS,
    CalibrationViews,
    EmbeddingConfig,
)
from facerecon.calibrate.embedding import LandmarkEmbedding
from facerecon.calibrate.surface import _geometric_median, _snap
from facerecon.core.errors import NoFaceError
from facerecon.geometry.rotation import viewed_head_angles
from facerecon.models.face_model import FaceModel, LandmarkPoseTable


class _Projector:
    """Projects surface points given as (triangle, barycentrics) into views, on each view's identity."""

    def __init__(self, model: FaceModel, config: EmbeddingConfig, views: CalibrationViews, rows: np.ndarray) -> None:
        with torch.no_grad():
            identity = torch.from_numpy(views.identity[rows]).to(model.mean.device, model.mean.dtype)
            self.vertices = model(identity, submesh="face").cpu().double().numpy()  # (N, V_face, 3)
        self.rotation = views.rotation[rows]
        self.translation = views.translation[rows]
        self.focal = config.focal
        self.centre = (config.image_size - 1) / 2.0

    def __call__(self, triangles: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``(C, 3)`` vertex triples and weights -> ``(C, N, 2)`` px in every view (pixel centres at integers)."""
        points = np.einsum("ck,nckx->cnx", weights, self.vertices[:, triangles])  # model space, each identity
        cam = np.einsum("nij,cnj->cni", self.rotation, points) + self.translation
        return self.focal * cam[..., :2] / cam[..., 2:3] + self.centre


def _trimmed_objective(errors: np.ndarray, valid: np.ndarray, keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``errors (N, L)``: the mean of its smallest ``keep`` fraction of valid entries, and the largest
    entry kept (``(L,)`` each; at least one entry per column, every column has a valid entry)."""
    count = np.maximum(1, np.ceil(keep * valid.sum(axis=0))).astype(np.int64)
    ordered = np.sort(np.where(valid, errors, np.inf), axis=0)
    kept = np.arange(errors.shape[0])[:, None] < count
    mean = np.where(kept, ordered, 0.0).sum(axis=0) / count
    return mean, np.take_along_axis(ordered, (count - 1)[None], axis=0)[0]


def _refine_points(
    project: _Projector,
    triangles: np.ndarray,
    weights: np.ndarray,
    detections: np.ndarray,
    scope: np.ndarray,
    surface: tuple[np.ndarray, np.ndarray],
    keep: float,
    iterations: int,
    max_step_mm: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Move surface points continuously to lower their trimmed mean px error over the views.

    Each point starts at ``(triangles, weights)`` and minimises the same score the candidates were chosen by:
    the mean of the smallest ``keep`` fraction of its px errors over the views in ``scope``. A step is one
    iteratively reweighted Gauss-Newton step on the two free barycentrics (weights ``1 / error`` over the kept
    views: a least-absolute-deviation fit), limited to ``max_step_mm`` on the mean face; a step that leaves the
    triangle continues in its plane and is snapped back to the nearest point of the surface (a neighbouring
    triangle). A step is taken only if it lowers the score (else halved, up to three times), so the result is
    never worse on the views than the start; points stop when no step helps.

    Args:
        project: the training views' projector.
        triangles: ``(P, 3)`` int64 vertex indices of the ``face`` sub-mesh.
        weights: ``(P, 3)`` float64 barycentrics.
        detections: ``(N, P, 2)`` detected px in the projector's views.
        scope: ``(N, P)`` bool, the views that count for each point.
        surface: ``(vertices (V, 3) mm, faces (F, 3))`` the mean face the points are snapped to.
        keep: fraction of the smallest errors kept.
        iterations: at most this many steps.
        max_step_mm: longest step on the mean face, mm.

    Returns:
        ``(triangles (P, 3), weights (P, 3))``, new arrays.
    """
    mean, faces = surface
    tree = cKDTree(mean[faces].mean(1))
    tri, bary = triangles.copy(), weights.copy()

    def residuals(tri: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        corners = project.vertices[:, tri]  # (N, P, 3 corners, 3)
        cam = np.einsum("nij,npj->npi", project.rotation, np.einsum("pk,npkc->npc", bary, corners))
        cam += project.translation[:, None]
        r = project.focal * cam[..., :2] / cam[..., 2:3] + project.centre - detections
        return corners, cam, r

    corners, cam, r = residuals(tri, bary)
    dist = np.linalg.norm(r, axis=-1)
    score, threshold = _trimmed_objective(dist, scope, keep)
    active = np.ones(tri.shape[0], dtype=bool)
    for _ in range(iterations):
        # Jacobian of the px position with respect to the barycentrics (b1, b2), b0 = 1 - b1 - b2.
        edges = np.stack([corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]], axis=-1)
        d_cam = np.einsum("nij,npjk->npik", project.rotation, edges)  # (N, P, 3, 2)
        z = cam[..., 2:3, None]
        jac = project.focal / z * (d_cam[:, :, :2] - cam[..., :2, None] / z * d_cam[:, :, 2:3])  # (N, P, 2, 2)
        w = (scope & (dist <= threshold)) / np.maximum(dist, 0.05)
        normal = np.einsum("np,npij,npik->pjk", w, jac, jac) + 1e-9 * np.eye(2)
        step = -np.linalg.solve(normal, np.einsum("np,npij,npi->pj", w, jac, r)[..., None])[..., 0]
        along = np.stack([mean[tri[:, 1]] - mean[tri[:, 0]], mean[tri[:, 2]] - mean[tri[:, 0]]], axis=-1)
        length = np.linalg.norm(np.einsum("pij,pj->pi", along, step), axis=1)
        step *= np.minimum(1.0, max_step_mm / np.maximum(length, 1e-12))[:, None]
        step[~active] = 0.0
        moved = np.zeros(tri.shape[0], dtype=bool)
        for _halving in range(4):
            trying = active & ~moved & (np.abs(step).sum(axis=1) > 0)
            if not trying.any():
                break
            new_tri, new_bary = tri.copy(), bary.copy()
            new_bary[trying] += np.stack([-step[trying].sum(axis=1), step[trying, 0], step[trying, 1]], axis=1)
            out = trying & (new_bary < 0).any(axis=1)
            if out.any():  # left the triangle: the point in its plane, snapped to the surface
                point = np.einsum("pk,pkc->pc", new_bary[out], mean[tri[out]])
                snap_tri, new_bary[out] = _snap(point, mean, faces, tree=tree)
                new_tri[out] = faces[snap_tri]
            new_corners, new_cam, new_r = residuals(new_tri, new_bary)
            new_dist = np.linalg.norm(new_r, axis=-1)
            new_score, new_threshold = _trimmed_objective(new_dist, scope, keep)
            better = trying & (new_score < score - 1e-9)
            tri[better], bary[better], score[better], threshold[better] = (
                new_tri[better], new_bary[better], new_score[better], new_threshold[better]
            )
            corners[:, better], cam[:, better], r[:, better], dist[:, better] = (
                new_corners[:, better], new_cam[:, better], new_r[:, better], new_dist[:, better]
            )
            moved |= better
            step *= 0.5
        active &= moved
        if not active.any():
            break
    return tri, bary


def _embed(
    model: FaceModel, config: EmbeddingConfig, views: CalibrationViews, det: _Detections, seconds: float
) -> LandmarkEmbedding:
    face = model.submesh("face")
    faces = face.triangles.cpu().numpy()
    mean = model.mean.detach().cpu().double().numpy()[: face.vertex_count]
    used = det.found & ~views.heldout
    if used.sum() < 3:
        raise NoFaceError(
            f"the detector found a face in {int(used.sum())} of {int((~views.heldout).sum())} calibration renders; "
            "at least 3 are needed (is the model a face?)"
        )
    train = np.flatnonzero(used)
    project = _Projector(model, config, views, train)
    frontal = np.abs(views.nominal_yaw[train]) <= config.frontal_yaw
    contour = np.zeros(NUM_LANDMARKS, dtype=bool)
    contour[list(MEDIAPIPE_FACE_OVAL)] = True
    iris = np.zeros(NUM_LANDMARKS, dtype=bool)
    iris[list(MEDIAPIPE_IRIS)] = True

    # Per landmark, its samples in the views in scope (contour landmarks keep their frontal point: samples and
    # scores from frontal views only) and their robust centre on the mean face (the samples' barycentrics
    # applied to its corners): the geometric median.
    scopes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    counts = np.zeros(NUM_LANDMARKS, dtype=np.int64)
    for l in np.flatnonzero(~iris):
        has = det.tri[train, l] >= 0
        scope = frontal if (contour[l] and (has & frontal).sum() >= 3) else np.ones(len(train), dtype=bool)
        pick = np.flatnonzero(has & scope)
        counts[l] = pick.size
        if pick.size:
            scopes[int(l)] = (scope, pick)
    triangles, weights, embedded = _place(config, det, train, project, scopes, mean, faces)
    poses = None
    if config.pose_cells:
        poses = _pose_table(model, config, views, det, train, triangles, weights, embedded & ~contour, mean, faces)
    drift = _pose_drift(config, views, det, train, project, triangles, weights, embedded)
    posefree_errors = _heldout_errors(model, config, views, det, triangles, weights, embedded)
    errors = posefree_errors if poses is None else _heldout_errors(model, config, views, det, triangles, weights, embedded, poses)
    heldout = det.landmarks[views.heldout & det.found]
    iod = np.linalg.norm(heldout[:, _EYE_OUTER[0]] - heldout[:, _EYE_OUTER[1]], axis=-1)
    return LandmarkEmbedding(
        triangles=triangles,
        weights=weights,
        contour=contour,
        embedded=embedded,
        drift_mm=drift,
        sample_counts=counts,
        heldout_errors=errors,
        heldout_iod=iod,
        config=config,
        poses=poses,
        heldout_errors_posefree=posefree_errors,
        renders=len(views),
        renders_used=int(used.sum()),
        renders_heldout=int((det.found & views.heldout).sum()),
        model_source_sha256=str(model.info.get("source_sha256", "")),
        vertex_count=face.vertex_count,
        seconds=seconds,
    )


MIN_CELL_VIEWS = 3
"""A pose cell needs this many training views with a face (and a landmark this many samples there)."""


def _place(
    config: EmbeddingConfig,
    det: _Detections,
    train: np.ndarray,
    project: _Projector,
    scopes: dict[int, tuple[np.ndarray, np.ndarray]],
    mean: np.ndarray,
    faces: np.ndarray,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each landmark of ``scopes`` placed on the mean face from its samples in the ``train`` views.

    ``scopes[l] = (scope, pick)``: the views (bool over ``train``) that score landmark ``l`` and those of them
    (indices into ``train``) with a sample. The snapped geometric median of the samples (or the point of
    ``start``: ``(478, 3)`` face indices of the triangles and weights) and (an evenly spaced subset of) the
    samples themselves are the candidates; the one whose projections agree best with the detections (trimmed
    mean px error over the views in scope) wins, then moves continuously (refinement).

    Returns:
        ``(478, 3)`` triangles, ``(478, 3)`` weights and ``(478,)`` embedded (False outside ``scopes``).
    """
    landmarks = np.array(sorted(scopes), dtype=np.int64)
    if start is not None:
        first_tri, first_bary = start[0][landmarks], start[1][landmarks]
    else:
        centres = np.zeros((len(landmarks), 3))
        for j, l in enumerate(landmarks):
            pick = scopes[int(l)][1]
            pts = np.einsum("nk,nkc->nc", det.bary[train[pick], l], mean[faces[det.tri[train[pick], l]]])
            centres[j] = _geometric_median(pts)
        snap, first_bary = _snap(centres, mean, faces) if landmarks.size else (np.zeros(0, np.int64), np.zeros((0, 3)))
        first_tri = faces[snap]

    triangles = np.zeros((NUM_LANDMARKS, 3), dtype=np.int64)
    weights = np.zeros((NUM_LANDMARKS, 3))
    embedded = np.zeros(NUM_LANDMARKS, dtype=bool)
    in_scope = np.zeros((len(train), NUM_LANDMARKS), dtype=bool)
    for j, l in enumerate(landmarks):
        scope, pick = scopes[int(l)]
        in_scope[:, l] = scope
        # Candidates: the snapped centre and (an evenly spaced subset of) the samples themselves. The one whose
        # projections agree best with the detections (trimmed mean px error over the views in scope) wins.
        sub = pick[np.linspace(0, pick.size - 1, min(pick.size, config.max_candidates)).round().astype(np.int64)]
        cand_tri = np.concatenate([first_tri[j : j + 1], faces[det.tri[train[sub], l]]])
        cand_bary = np.concatenate([first_bary[j : j + 1], det.bary[train[sub], l]])
        uv = project(cand_tri, cand_bary)[:, scope]
        errors = np.linalg.norm(uv - det.landmarks[train[scope], l], axis=-1)
        best = int(np.argmin(_trimmed_objective(errors.T, np.ones(errors.T.shape, dtype=bool), 1.0 - config.trim_fraction)[0]))
        triangles[l], weights[l], embedded[l] = cand_tri[best], cand_bary[best], True
    if config.refine_iterations and landmarks.size:
        triangles[landmarks], weights[landmarks] = _refine_points(
            project,
            triangles[landmarks],
            weights[landmarks],
            det.landmarks[train][:, landmarks],
            in_scope[:, landmarks],
            (mean, faces),
            1.0 - config.trim_fraction,
            config.refine_iterations,
        )
    return triangles, weights, embedded


def _pose_table(
    model: FaceModel,
    config: EmbeddingConfig,
    views: CalibrationViews,
    det: _Detections,
    train: np.ndarray,
    triangles: np.ndarray,
    weights: np.ndarray,
    posed: np.ndarray,
    mean: np.ndarray,
    faces: np.ndarray,
) -> LandmarkPoseTable:
    """The ``posed`` landmarks placed again from the training views of each (yaw, pitch) cell of the grid.

    A cell with fewer than :data:`MIN_CELL_VIEWS` training views with a face keeps the pose-free points (as do
    the landmarks not ``posed``: contours, which slide anyway, and those not embedded).
    """
    yaws, pitches = tuple(sorted(config.yaws)), tuple(sorted(config.pitches))
    table_tri = np.broadcast_to(triangles, (len(yaws), len(pitches)) + triangles.shape).copy()
    table_w = np.broadcast_to(weights, (len(yaws), len(pitches)) + weights.shape).copy()
    for iy, yaw in enumerate(yaws):
        for ip, pitch in enumerate(pitches):
            cell = train[(views.nominal_yaw[train] == yaw) & (views.nominal_pitch[train] == pitch)]
            if len(cell) < MIN_CELL_VIEWS:
                continue
            scopes = {}
            for l in np.flatnonzero(posed):
                pick = np.flatnonzero(det.tri[cell, l] >= 0)
                if pick.size >= MIN_CELL_VIEWS:
                    scopes[int(l)] = (np.ones(len(cell), dtype=bool), pick)
            project = _Projector(model, config, views, cell)
            tri, w, placed = _place(config, det, cell, project, scopes, mean, faces, start=(triangles, weights))
            table_tri[iy, ip, placed], table_w[iy, ip, placed] = tri[placed], w[placed]
    return LandmarkPoseTable(yaws, pitches, torch.from_numpy(table_tri), torch.from_numpy(table_w))


def _pose_drift(
    config: EmbeddingConfig,
    views: CalibrationViews,
    det: _Detections,
    train: np.ndarray,
    project: _Projector,
    triangles: np.ndarray,
    weights: np.ndarray,
    embedded: np.ndarray,
) -> np.ndarray:
    """``(478,)`` how far each detected landmark slides over the surface between yaw groups, mm.

    Per yaw group, the median of the residuals (detection minus projected embedding, px) over its views;
    the drift is the largest distance between two groups' medians, scaled to mm at the face's distance
    (``distance / focal`` mm per px). A point fixed on the surface has residuals that do not depend on yaw;
    a contour point follows the silhouette and its residual turns with the head.
    """
    drift = np.full(NUM_LANDMARKS, np.nan)
    idx = np.flatnonzero(embedded)
    uv = project(triangles[idx], weights[idx])  # (L, N, 2)
    residual = det.landmarks[train][:, idx].transpose(1, 0, 2) - uv
    yaw = views.nominal_yaw[train]
    medians = [np.median(residual[:, yaw == y], axis=1) for y in config.yaws if (yaw == y).sum() >= 2]
    if len(medians) >= 2:
        m = np.stack(medians, 1)  # (L, G, 2)
        spread = np.linalg.norm(m[:, :, None] - m[:, None], axis=-1).max(axis=(1, 2))
        drift[idx] = spread * config.distance / config.focal
    return drift


def _heldout_errors(
    model: FaceModel,
    config: EmbeddingConfig,
    views: CalibrationViews,
    det: _Detections,
    triangles: np.ndarray,
    weights: np.ndarray,
    embedded: np.ndarray,
    poses: LandmarkPoseTable | None = None,
) -> np.ndarray:
    """``(H, 478)`` px distances between projected embedded landmarks and detections in the held-out renders.

    With ``poses``, each render's landmarks are those of the cell of its head pose as the camera sees it
    (:func:`facerecon.geometry.rotation.viewed_head_angles`), as a fit looks them up.
    """
    rows = np.flatnonzero(views.heldout & det.found)
    if rows.size == 0:
        return np.zeros((0, NUM_LANDMARKS))
    project = _Projector(model, config, views, rows)
    if poses is None:
        uv = project(triangles, weights).transpose(1, 0, 2)  # (H, 478, 2)
    else:
        angles = np.degrees(viewed_head_angles(torch.from_numpy(views.rotation[rows]), torch.from_numpy(views.translation[rows])).numpy())
        cells = [poses.cell(pitch, yaw) for pitch, yaw, _ in angles]
        uv = np.zeros((rows.size, NUM_LANDMARKS, 2))
        for cell in set(cells):  # each cell's points projected into all views, kept in the views of that cell
            in_cell = np.array([c == cell for c in cells])
            uv[in_cell] = project(poses.triangles[cell].numpy(), poses.weights[cell].numpy())[:, in_cell].transpose(1, 0, 2)
    errors = np.linalg.norm(uv - det.landmarks[rows], axis=-1)
    errors[:, ~embedded] = np.nan
    return errors
