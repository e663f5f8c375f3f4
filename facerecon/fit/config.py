"""The settings of the fitting stages, apart from the stages themselves: plain dataclasses without torch, so that
:class:`~facerecon.pipeline.options.ReconstructOptions` (and a resumed batch, which only compares options) is light."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LandmarkFitConfig", "PhotometricConfig"]


@dataclass(frozen=True)
class LandmarkFitConfig:
    """Settings of the landmark stage.

    Attributes:
        iterations: Levenberg-Marquardt iterations (each: slide contours, one damped Gauss-Newton step).
        landmark_sigma: the landmarks' noise as a fraction of the face size. With residuals measured in face
            sizes, the maximum a-posteriori energy ``sum c_i r_i^2 / sigma^2 + ||a||^2`` (paper 001 E_reg,
            paper 004 E_std: identity ~ N(0, 1)) times ``sigma^2`` gives ``w_id = sigma^2``.
        expression_weight: ``w_exp`` relative to ``w_id``: an L2 pull of the blendshape weights to 0.
        frozen_expressions: expressions held at 0 (or at ``init``): gaze moves the eyeballs, which 68
            landmarks do not see.
        identity_modes: how many identity modes to fit (the leading ones); the rest stay 0.
        sliding_contour: let contour landmarks slide (paper 004 sec. 6.1).
        robust_scale: landmarks whose residual exceeds this fraction of the face size are down-weighted
            (Huber IRLS); None disables it.
        damping: initial Levenberg-Marquardt damping, relative to the mean diagonal of the normal matrix.
    """

    iterations: int = 3
    landmark_sigma: float = 0.02
    expression_weight: float = 4.0
    frozen_expressions: tuple[str, ...] = (
        "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
        "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    )  # fmt: skip
    identity_modes: int = 100
    sliding_contour: bool = True
    robust_scale: float | None = 0.03
    damping: float = 1e-3


@dataclass(frozen=True)
class PhotometricConfig:
    """Settings of the photometric stage (weights are relative to ``w_photo = 1``).

    Attributes:
        iterations: Adam steps.
        refresh_every: re-rasterize for visibility and refresh the occlusion mask every this many steps.
        landmark_weight: ``w_lan`` on the mean squared landmark residual in face sizes.
        identity_weight: ``E_id = identity_weight * ||a||^2 / K_id``.
        expression_weight: ``E_exp = expression_weight * ||b||^2 / K_exp``.
        global_weight: ``w_glo`` (paper 004 eq. 14).
        sparsity_weight: ``w_ref`` (paper 004 eq. 13).
        sparsity_p: ``p`` of eq. 13 (paper 004: 0.9).
        chromaticity_alpha: ``alpha`` of eq. 13's weights (paper 004: 50).
        symmetry_weight: ``w_sym``.
        occlusion_factor: a vertex whose residual exceeds this many times the median residual (and
            ``occlusion_floor``) is treated as occluded.
        occlusion_floor: the smallest residual (RGB distance in [0, 1]) treated as an occluder.
        lr_shape: Adam step for identity and expression.
        lr_pose: Adam step for the rotation (rad) and translation (mm, scaled by the face's depth / 500).
        lr_light: Adam step for SH coefficients.
        lr_albedo: Adam step for albedo.
        fit_region: the sub-mesh whose vertices enter the photometric term (``"narrow_face"``: brow to chin).
        full_weight_cosine: a vertex's photometric residual has full weight from this cosine between its normal
            and the line of sight up, and less below it (0 at grazing view).
        seed: random partners of E_glo.
        fit_identity: refine the identity too (False: hold the start's, as for a person whose identity was fitted
            over several images).
    """

    iterations: int = 80
    refresh_every: int = 20
    landmark_weight: float = 20.0
    identity_weight: float = 0.05
    expression_weight: float = 0.02
    global_weight: float = 0.5
    sparsity_weight: float = 0.3
    sparsity_p: float = 0.9
    chromaticity_alpha: float = 50.0
    symmetry_weight: float = 1.0
    occlusion_factor: float = 3.0
    occlusion_floor: float = 0.12
    lr_shape: float = 0.03
    lr_pose: float = 0.003
    lr_light: float = 0.03
    lr_albedo: float = 0.01
    fit_region: str = "narrow_face"
    full_weight_cosine: float = 0.3
    seed: int = 0
    fit_identity: bool = True
