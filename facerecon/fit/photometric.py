"""The photometric stage: refine pose, identity, expression, SH light and a per-vertex albedo against the photo.

Point-based image formation (paper 004 sec. 5): every visible vertex of the fitting mesh is projected into the
photo, the photo is sampled there (bilinear, differentiable in the vertex position) and compared with the
vertex's shaded colour ``albedo * S(n)`` (paper 004 eq. 5). The energy, minimised with Adam:

    E = w_photo * E_photo          L2,1 colour distance over visible, un-masked vertices (paper 004 eq. 9,
                                   paper 000 eq. 2): mean_i || I(u_i) - c_i ||_2
      + w_lan * E_lan              mean_i c_i || f_i - u_k(i) ||^2 / s^2 (the landmark stage's term, contours
                                   fixed where the landmark stage slid them)
      + E_id + E_exp               Tikhonov priors (paper 001 E_reg, paper 004 E_std eq. 11)
      + w_glo * E_glo              skin-reflectance constancy over the skin mask (paper 004 eq. 14; 6 random
                                   partners per vertex)
      + w_ref * E_ref              chromaticity-weighted local sparsity sum w_ij ||r_i - r_j||^p (paper 004
                                   eq. 13, p = 0.9, alpha = 50)
      + w_sym * E_sym              left/right albedo symmetry through the mirror map (paper 003's symmetry)

ICT has no albedo space, so the albedo is free per vertex; the three albedo priors keep shading (smooth, in
the light) and reflectance (piecewise constant, symmetric, one skin colour) apart. Occluders (hair, hands,
glasses, microphones) are handled by residual-based masking: vertices whose colour residual stays far above
the typical one are dropped from E_photo when visibility is refreshed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from facerecon.core.check import check_shape
from facerecon.core.errors import FitDivergedError
from facerecon.fit.config import PhotometricConfig
from facerecon.fit.landmarks import LandmarkFit
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.geometry.mesh_ops import edges as mesh_edges
from facerecon.geometry.mesh_ops import vertex_normals
from facerecon.geometry.rotation import axis_angle_to_matrix
from facerecon.models.face_model import FaceModel
from facerecon.render.rasterize import rasterize
from facerecon.render.sample import inside_image, sample_image
from facerecon.render.sh import estimate_sh, shade
from facerecon.render.visibility import vertex_visibility


@dataclass(frozen=True)
class PhotometricFit:
    """The result of the photometric stage (one face; tensors detached, float32 on the CPU).

    Attributes:
        identity: ``(K_id,)``; expression: ``(K_exp,)`` in [0, 1].
        rotation: ``(3, 3)``; translation: ``(3,)`` mm (model to camera).
        sh: ``(9, 3)`` radiance SH coefficients (``facerecon.render.sh``).
        albedo: ``(V_fit, 3)`` per-vertex albedo in [0, 1] of the fitting sub-mesh's vertices.
        visible: ``(V_fit,)`` bool, visible at the end.
        occluded: ``(V_fit,)`` bool, visible but masked as occluded (hair, hands, ...).
        photometric_error: mean RGB distance over the visible, un-occluded vertices at the end.
        landmark_error_px: ``(L,)`` landmark reprojection distances at the end, px.
        losses: final value of each energy term.
        history: total energy every 10 steps.
    """

    identity: torch.Tensor
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    sh: torch.Tensor
    albedo: torch.Tensor
    visible: torch.Tensor
    occluded: torch.Tensor
    photometric_error: float
    landmark_error_px: np.ndarray
    losses: dict[str, float] = field(default_factory=dict)
    history: tuple[float, ...] = field(default_factory=tuple)


def _chromaticity(colors: torch.Tensor) -> torch.Tensor:
    return colors / colors.sum(-1, keepdim=True).clamp_min(1e-3)


def fit_photometric(
    model: FaceModel,
    image: torch.Tensor,
    start: LandmarkFit,
    landmarks: np.ndarray,
    *,
    camera: PerspectiveCamera,
    confidence: np.ndarray | None = None,
    config: PhotometricConfig = PhotometricConfig(),
) -> PhotometricFit:
    """Refine a landmark fit against the photo's colours.

    Args:
        model: the face model.
        image: ``(3, H, W)`` float RGB photo in [0, 1].
        start: the landmark stage's result (pose, coefficients, slid landmark vertices).
        landmarks: ``(L, 2)`` detected landmarks, px, matching ``start.vertex_indices``.
        camera: the camera of ``image`` (one, square pixels, ``width x height`` of the image).
        confidence: ``(L,)`` landmark weights (default 1).
        config: weights and steps.

    Returns:
        A :class:`PhotometricFit`.

    Raises:
        FitDivergedError: the energy became NaN or infinite.
        ValueError: a camera of another image size, a batch of cameras or non-square pixels.
    """
    check_shape(image, "image", (3, None, None))
    _, height, width = image.shape
    if (camera.width, camera.height) != (width, height):
        raise ValueError(f"camera: expected the image's size {width} x {height}, got {camera.width} x {camera.height}")
    focal, cx, cy = camera.pinhole()
    dtype = torch.float32
    image = image.to(dtype)[None]
    fit_sub = model.submesh(config.fit_region)
    n_fit = fit_sub.vertex_count
    tris = fit_sub.triangles
    L = len(start.vertex_indices)
    lm_target = torch.as_tensor(landmarks, dtype=dtype)
    lm_conf = torch.ones(L, dtype=dtype) if confidence is None else torch.as_tensor(confidence, dtype=dtype).clamp(0, 1)
    tri_np = start.triangles if start.triangles is not None else np.repeat(start.vertex_indices[:, None], 3, 1)
    w_np = start.weights if start.weights is not None else np.tile([1.0, 0.0, 0.0], (L, 1))
    lm_tri = torch.as_tensor(tri_np, dtype=torch.long)
    lm_w = torch.as_tensor(w_np, dtype=dtype)
    face_count = model.submesh("face").vertex_count
    if int(lm_tri.max()) >= face_count:
        raise ValueError("landmark vertices must lie in the face sub-mesh")
    size = float(np.sqrt(np.prod(np.ptp(landmarks, axis=0)) + 1e-9))

    # Parameters.
    identity = torch.tensor(start.identity, dtype=dtype, requires_grad=config.fit_identity)
    expression = torch.tensor(start.expression, dtype=dtype, requires_grad=True)
    rot0 = torch.tensor(start.rotation, dtype=dtype)
    omega = torch.zeros(3, dtype=dtype, requires_grad=True)
    depth_scale = float(start.translation[2]) / 500.0
    t0 = torch.tensor(start.translation, dtype=dtype)
    dt = torch.zeros(3, dtype=dtype, requires_grad=True)

    camera = PerspectiveCamera(*(torch.tensor([v], dtype=dtype) for v in (focal, focal, cx, cy)), width, height)

    def geometry() -> tuple[torch.Tensor, torch.Tensor]:
        verts = model(identity[None], expression[None], submesh="face")  # (1, V_face, 3) mm
        rotation = rot0 @ axis_angle_to_matrix(omega)
        cam = verts @ rotation.T + (t0 + dt * depth_scale)
        return cam, camera.project_with_depth(cam)

    # Visibility, observed colours and the initial light / albedo from the landmark fit.
    with torch.no_grad():
        cam, screen = geometry()
        visible = _visibility(screen[:, :n_fit], tris, height, width)
        normals = vertex_normals(cam[:, :n_fit], tris)
        observed = sample_image(image, screen[:, :n_fit, :2])  # (1, N, 3)
        skin = model.skin_mask[:n_fit]
        weights = (visible & skin)[0].to(dtype)
        if float(weights.sum()) < 10:
            weights = visible[0].to(dtype)
        skin_colour = (observed[0] * weights[:, None]).sum(0) / weights.sum().clamp_min(1.0)
        sh0 = estimate_sh(normals, observed, skin_colour.expand(1, n_fit, 3).contiguous(), weights[None], ridge=1e-3)
        # Scale so that the albedo of the skin is about its observed colour under the estimated shading.
        albedo0 = skin_colour.clamp(0.05, 0.95).expand(n_fit, 3).clone()
    sh = sh0[0].clone().requires_grad_(True)
    albedo = albedo0.clone().requires_grad_(True)

    # Fixed structures for the albedo priors.
    edge = mesh_edges(tris)
    with torch.no_grad():
        chroma = _chromaticity(observed[0])
        edge_w = torch.exp(-config.chromaticity_alpha * (chroma[edge[:, 0]] - chroma[edge[:, 1]]).norm(dim=-1))
    rng = np.random.default_rng(config.seed)
    skin_idx = torch.from_numpy(np.flatnonzero(model.skin_mask[:n_fit].numpy()))
    partners = skin_idx[torch.from_numpy(rng.integers(0, len(skin_idx), size=(len(skin_idx), 6)))]
    mirror = model.mirror[:n_fit]
    sym_ok = mirror < n_fit

    optimizer = torch.optim.Adam(
        [
            {"params": [identity, expression] if config.fit_identity else [expression], "lr": config.lr_shape},
            {"params": [omega, dt], "lr": config.lr_pose},
            {"params": [sh], "lr": config.lr_light},
            {"params": [albedo], "lr": config.lr_albedo},
        ]
    )
    use = visible[0].clone()
    occluded = torch.zeros(n_fit, dtype=torch.bool)
    history: list[float] = []
    terms: dict[str, torch.Tensor] = {}
    for step in range(config.iterations + 1):
        cam, screen = geometry()
        if step > 0 and step % config.refresh_every == 0:
            with torch.no_grad():
                visible = _visibility(screen[:, :n_fit].detach(), tris, height, width)
                residual = terms["residual"].detach()
                typical = float(residual[use].median()) if bool(use.any()) else 0.0
                occluded = visible[0] & (residual > max(config.occlusion_factor * typical, config.occlusion_floor))
                use = visible[0] & ~occluded
        normals = vertex_normals(cam[:, :n_fit], tris)
        observed = sample_image(image, screen[:, :n_fit, :2])[0]
        predicted = shade(albedo[None], normals, sh[None])[0]
        residual = (observed - predicted).norm(dim=-1)
        # Vertices seen at a grazing angle count less: near the face's outline in the photo a pixel of misfit
        # samples the background or hair, which the free per-vertex albedo would otherwise learn.
        view_cosine = -(normals[0] * torch.nn.functional.normalize(cam[0, :n_fit], dim=-1)).sum(-1)
        photo_weight = use * (view_cosine.detach() / config.full_weight_cosine).clamp(0.0, 1.0)
        terms = {"residual": residual}
        e_photo = (residual * photo_weight).sum() / photo_weight.sum().clamp_min(1e-6)
        lm_pred = _landmark_pixels(screen[0], lm_tri, lm_w)
        e_lan = (lm_conf * ((lm_pred - lm_target) / size).pow(2).sum(-1)).mean()
        e_id = identity.pow(2).sum() / identity.numel()
        e_exp = expression.pow(2).sum() / expression.numel()
        e_glo = (albedo[skin_idx][:, None] - albedo[partners]).pow(2).sum(-1).mean()
        diff = albedo[edge[:, 0]] - albedo[edge[:, 1]]
        e_ref = (edge_w * (diff.pow(2).sum(-1) + 1e-6).pow(config.sparsity_p / 2)).mean()
        e_sym = (albedo[sym_ok] - albedo[mirror[sym_ok]]).pow(2).sum(-1).mean()
        total = (
            e_photo
            + config.landmark_weight * e_lan
            + config.identity_weight * e_id
            + config.expression_weight * e_exp
            + config.global_weight * e_glo
            + config.sparsity_weight * e_ref
            + config.symmetry_weight * e_sym
        )
        if not torch.isfinite(total):
            raise FitDivergedError(f"the photometric fit diverged at step {step} (energy {float(total)})")
        if step % 10 == 0:
            history.append(float(total.detach()))
        if step == config.iterations:
            break
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        with torch.no_grad():
            expression.clamp_(0.0, 1.0)
            albedo.clamp_(0.0, 1.0)

    with torch.no_grad():
        rotation = rot0 @ axis_angle_to_matrix(omega)
        lm_err = (_landmark_pixels(screen[0], lm_tri, lm_w) - lm_target).norm(dim=-1).numpy()
        losses = {
            "photometric": float(e_photo), "landmarks": float(e_lan), "identity": float(e_id),
            "expression": float(e_exp), "albedo_global": float(e_glo), "albedo_sparsity": float(e_ref),
            "albedo_symmetry": float(e_sym), "total": float(total),
        }  # fmt: skip
    return PhotometricFit(
        identity=identity.detach().clone(),
        expression=expression.detach().clone(),
        rotation=rotation.detach(),
        translation=(t0 + dt * depth_scale).detach(),
        sh=sh.detach().clone(),
        albedo=albedo.detach().clone(),
        visible=visible[0].clone(),
        occluded=occluded.clone(),
        photometric_error=float(e_photo.detach()),
        landmark_error_px=lm_err,
        losses=losses,
        history=tuple(history),
    )


def _landmark_pixels(screen: torch.Tensor, triangles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(L, 2)`` pixel positions of barycentric landmarks, projected exactly (from their 3D points)."""
    # Interpolate in camera space (u*z, v*z, z) so that the projection of the 3D point is exact.
    z = screen[:, 2:3]
    homogeneous = torch.cat([screen[:, :2] * z, z], -1)[triangles]  # (L, 3, 3)
    point = (homogeneous * weights[..., None]).sum(1)
    return point[:, :2] / point[:, 2:3]


def _visibility(screen: torch.Tensor, tris: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(1, N)`` bool: vertices inside the photo, not hidden (z-buffer) and facing the camera."""
    fragments = rasterize(screen, tris, (height, width))
    return vertex_visibility(screen, tris, fragments) & inside_image(screen[..., :2], (height, width))

