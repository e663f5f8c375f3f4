"""Real spherical-harmonic (SH) lighting of Lambertian surfaces: 3 bands, 9 coefficients per RGB channel.

What the coefficients mean (the one place where this is decided):

* ``coeffs`` of shape ``(B, 9, 3)`` are the SH coefficients ``L_lm`` of the **incoming radiance** of a distant
  environment, per RGB channel, in the orthonormal real basis :func:`sh_basis` (order below). A white
  environment of constant radiance 1 has ``L_00 = sqrt(4 pi)`` and all other coefficients 0
  (see :func:`ambient_sh`).
* A Lambertian surface with normal ``n`` receives the irradiance
  ``E(n) = sum_lm A_l L_lm Y_lm(n)`` with the convolution constants ``A_0 = pi``, ``A_1 = 2 pi / 3``,
  ``A_2 = pi / 4`` (Ramamoorthi & Hanrahan 2001, "An Efficient Representation for Irradiance Environment
  Maps", eq. 8). It reflects the radiance ``albedo / pi * E(n)``.
* This module works with the **shading** ``S(n) = E(n) / pi = sum_lm (A_l / pi) L_lm Y_lm(n)``, so that the
  image colour is ``C = albedo * S(n)`` (:func:`shade`): the rendering equation of paper 001
  (``C = L^T phi(n) rho``) and eq. 5 of paper 004 (Tewari et al., ``B = r . sum_b gamma_b H_b(n)``).
  With :func:`ambient_sh` of intensity ``k`` every normal gets ``S = k`` and the colour is ``k * albedo``.
* The papers leave the convolution constants inside their free coefficients: their
  ``gamma_b = (A_l / pi) L_lm``. :func:`shading_coefficients` converts ours to theirs and
  :func:`radiance_coefficients` back. A network or optimiser may predict either; whichever it predicts, the
  factor ``A_l / pi`` (:data:`LAMBERT_FACTORS`) is applied here and nowhere else.

Basis order and normalisation (``docs/conventions.md``): ``(l, m)`` = (0,0), (1,-1), (1,0), (1,1), (2,-2),
(2,-1), (2,0), (2,1), (2,2); real, orthonormal on the unit sphere (``integral Y_i Y_j dw = delta_ij``), with
no Condon-Shortley phase (the graphics convention, e.g. Sloan 2008, "Stupid Spherical Harmonics Tricks")::

    Y_00  = 1/2 sqrt(1/pi)
    Y_1-1 = sqrt(3/(4 pi)) y        Y_10 = sqrt(3/(4 pi)) z        Y_11 = sqrt(3/(4 pi)) x
    Y_2-2 = 1/2 sqrt(15/pi) x y     Y_2-1 = 1/2 sqrt(15/pi) y z    Y_20 = 1/4 sqrt(5/pi) (3 z^2 - 1)
    Y_21  = 1/2 sqrt(15/pi) x z     Y_22  = 1/4 sqrt(15/pi) (x^2 - y^2)

Normals are in camera space (OpenCV: x right, y down, z forward), so a face looking into the camera has
normals with ``z < 0`` and light coming from the camera is ``L_10 < 0``.

Example:
    >>> import torch
    >>> n = torch.tensor([[[0.0, 0.0, -1.0]]])            # (B=1, N=1, 3) facing the camera
    >>> shade(torch.full((1, 1, 3), 0.5), n, ambient_sh(2.0, batch_size=1))
    tensor([[[1.0000, 1.0000, 1.0000]]])
"""

from __future__ import annotations

import math

import torch

from facerecon.core.check import check_finite, check_floating, check_shape, describe

__all__ = [
    "SH_DEGREES",
    "SH_ORDERS",
    "LAMBERT_FACTORS",
    "NUM_SH",
    "sh_basis",
    "irradiance",
    "shade",
    "ambient_sh",
    "directional_sh",
    "estimate_sh",
    "shading_coefficients",
    "radiance_coefficients",
]

NUM_SH = 9
"""Number of SH coefficients per colour channel (3 bands)."""

SH_DEGREES: tuple[int, ...] = (0, 1, 1, 1, 2, 2, 2, 2, 2)
"""The degree ``l`` of each of the 9 basis functions, in basis order."""

SH_ORDERS: tuple[int, ...] = (0, -1, 0, 1, -2, -1, 0, 1, 2)
"""The order ``m`` of each of the 9 basis functions, in basis order."""

# Ramamoorthi & Hanrahan 2001, eq. 8: A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4; divided by pi because a
# Lambertian surface of albedo rho reflects rho / pi times its irradiance. THE one place these constants live.
_A_OVER_PI = {0: 1.0, 1: 2.0 / 3.0, 2: 1.0 / 4.0}
LAMBERT_FACTORS: tuple[float, ...] = tuple(_A_OVER_PI[l] for l in SH_DEGREES)
"""``A_l / pi`` per basis function: multiplies radiance coefficients to give shading coefficients."""

_C0 = 0.5 * math.sqrt(1.0 / math.pi)
_C1 = math.sqrt(3.0 / (4.0 * math.pi))
_C2 = 0.5 * math.sqrt(15.0 / math.pi)
_C20 = 0.25 * math.sqrt(5.0 / math.pi)
_C22 = 0.25 * math.sqrt(15.0 / math.pi)


def _check_normals(normals: torch.Tensor, name: str = "normals") -> None:
    if not isinstance(normals, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (..., 3), got {describe(normals)}")
    if normals.dim() < 1 or normals.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (..., 3), got {describe(normals)}")
    check_floating(normals, name)
    check_finite(normals, name)


def _check_like(ref_name: str, ref: torch.Tensor, name: str, value: torch.Tensor) -> None:
    if value.dtype != ref.dtype:
        raise TypeError(f"{name}: expected dtype {ref.dtype} (the dtype of {ref_name}), got {describe(value)}")
    if value.device != ref.device:
        raise ValueError(f"{name}: expected device {ref.device} (the device of {ref_name}), got {value.device}")


def _check_coeffs(coeffs: torch.Tensor, sizes: dict[str, int], name: str = "coeffs") -> None:
    check_shape(coeffs, name, ("B", NUM_SH, 3), sizes)
    if not isinstance(coeffs, torch.Tensor):
        raise TypeError(f"{name}: expected a torch tensor, got {describe(coeffs)}")
    check_floating(coeffs, name)
    check_finite(coeffs, name)


def _factors(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(LAMBERT_FACTORS, dtype=like.dtype, device=like.device)


# The basis is linear in the 10 monomials (1, x, y, z, x^2, y^2, z^2, xy, yz, xz) of the unit normal:
# Y = monomials @ _MONOMIAL_TO_SH, one matrix product instead of nine small tensors.
_MONOMIAL_TO_SH: tuple[tuple[float, ...], ...] = (
    #  Y00  Y1-1  Y10  Y11  Y2-2 Y2-1  Y20        Y21  Y22
    (_C0, 0.0, 0.0, 0.0, 0.0, 0.0, -_C20, 0.0, 0.0),  # 1
    (0.0, 0.0, 0.0, _C1, 0.0, 0.0, 0.0, 0.0, 0.0),  # x
    (0.0, _C1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # y
    (0.0, 0.0, _C1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # z
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, _C22),  # x^2
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -_C22),  # y^2
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0 * _C20, 0.0, 0.0),  # z^2
    (0.0, 0.0, 0.0, 0.0, _C2, 0.0, 0.0, 0.0, 0.0),  # xy
    (0.0, 0.0, 0.0, 0.0, 0.0, _C2, 0.0, 0.0, 0.0),  # yz
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, _C2, 0.0),  # xz
)


def _monomials(normals: torch.Tensor) -> torch.Tensor:
    """``(..., 10)`` monomials of the normalised normals (zero vectors stay zero)."""
    n = torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)
    quad = n[..., [0, 1, 0]] * n[..., [1, 2, 2]]  # xy, yz, xz
    return torch.cat([torch.ones_like(n[..., :1]), n, n * n, quad], dim=-1)


def _monomial_matrix(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_MONOMIAL_TO_SH, dtype=like.dtype, device=like.device)


def _basis(normals: torch.Tensor) -> torch.Tensor:
    """Basis without input checks; ``normals`` normalised here (zero vectors stay zero)."""
    return _monomials(normals) @ _monomial_matrix(normals)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 real orthonormal SH basis functions at the directions ``normals``.

    Args:
        normals: ``(..., 3)`` floating directions (any leading shape). They are normalised to unit length
            here; a zero vector gives direction (0, 0, 0), i.e. only the constant term ``Y_00``.

    Returns:
        ``(..., 9)`` values ``Y_lm(n)`` in the order of :data:`SH_DEGREES` / :data:`SH_ORDERS`, same dtype and
        device as ``normals``.

    Raises:
        TypeError: ``normals`` is not a floating tensor.
        ValueError: the last dimension is not 3, or it holds NaN/inf.

    Example:
        >>> sh_basis(torch.tensor([0.0, 0.0, 1.0]))[2]        # Y_10 at +z = sqrt(3 / (4 pi))
        tensor(0.4886)
    """
    _check_normals(normals)
    return _basis(normals)


def shading_coefficients(coeffs: torch.Tensor) -> torch.Tensor:
    """Radiance coefficients ``L_lm`` to shading coefficients ``gamma = (A_l / pi) L_lm`` (paper 004's gamma).

    Args:
        coeffs: ``(B, 9, 3)`` radiance SH coefficients.

    Returns:
        ``(B, 9, 3)`` coefficients ``gamma`` with ``S(n) = sum_b gamma_b Y_b(n)``.
    """
    sizes: dict[str, int] = {}
    _check_coeffs(coeffs, sizes)
    return coeffs * _factors(coeffs)[:, None]


def radiance_coefficients(gamma: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`shading_coefficients`: ``L_lm = gamma_lm / (A_l / pi)``.

    Args:
        gamma: ``(B, 9, 3)`` shading coefficients (the papers' free SH parameters).

    Returns:
        ``(B, 9, 3)`` radiance coefficients as used by every other function of this module.
    """
    sizes: dict[str, int] = {}
    _check_coeffs(gamma, sizes, "gamma")
    return gamma / _factors(gamma)[:, None]


def irradiance(normals: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """The shading ``S(n) = E(n) / pi`` per point and channel: the colour of a white Lambertian surface.

    Args:
        normals: ``(B, N, 3)`` camera-space normals (normalised here).
        coeffs: ``(B, 9, 3)`` radiance SH coefficients (see the module docstring).

    Returns:
        ``(B, N, 3)`` shading, i.e. irradiance divided by pi (unitless for radiance 1; a constant environment
        of radiance ``k`` gives ``k`` everywhere). Negative values are not clamped.

    Raises:
        TypeError: non-floating inputs, or different dtypes.
        ValueError: wrong shapes, mismatched batch sizes or devices, NaN/inf.
    """
    sizes: dict[str, int] = {}
    check_shape(normals, "normals", ("B", "N", 3), sizes)
    _check_normals(normals)
    _check_coeffs(coeffs, sizes)
    _check_like("normals", normals, "coeffs", coeffs)
    # S(n) = sum_k Y_k(n) (A_k / pi) L_k per channel; Y = monomials @ M, so S = monomials @ (M @ gamma).
    gamma = coeffs * _factors(coeffs)[:, None]  # (B, 9, 3)
    return torch.bmm(_monomials(normals), _monomial_matrix(coeffs) @ gamma)


def shade(albedo: torch.Tensor, normals: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Lambertian SH shading ``C = albedo * S(n)`` (paper 004 eq. 5; paper 001's rendering equation).

    Args:
        albedo: ``(B, N, 3)`` RGB reflectance, typically in [0, 1].
        normals: ``(B, N, 3)`` camera-space normals (normalised here).
        coeffs: ``(B, 9, 3)`` radiance SH coefficients.

    Returns:
        ``(B, N, 3)`` shaded RGB colours (not clamped).

    Raises:
        TypeError: non-floating inputs, or different dtypes.
        ValueError: wrong shapes, mismatched sizes or devices, NaN/inf.

    Example:
        >>> albedo = torch.full((1, 2, 3), 0.5)
        >>> normals = torch.tensor([[[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]])
        >>> shade(albedo, normals, ambient_sh(1.0, batch_size=1))
        tensor([[[0.5000, 0.5000, 0.5000],
                 [0.5000, 0.5000, 0.5000]]])
    """
    sizes: dict[str, int] = {}
    check_shape(albedo, "albedo", ("B", "N", 3), sizes)
    if not isinstance(albedo, torch.Tensor):
        raise TypeError(f"albedo: expected a torch tensor, got {describe(albedo)}")
    check_floating(albedo, "albedo")
    check_finite(albedo, "albedo")
    check_shape(normals, "normals", ("B", "N", 3), sizes)
    _check_like("albedo", albedo, "normals", normals)
    return albedo * irradiance(normals, coeffs)


def ambient_sh(
    intensity: float | torch.Tensor = 1.0,
    batch_size: int = 1,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Radiance coefficients of a constant environment: every normal gets shading ``intensity``.

    This is the default light of the renderer (``intensity = 1`` renders the albedo unchanged).

    Args:
        intensity: a number, or a ``(3,)`` RGB or ``(B, 3)`` tensor of shading values.
        batch_size: ``B`` when ``intensity`` has no batch dimension.
        device: device of the result (default: that of ``intensity`` if a tensor, else CPU).
        dtype: dtype of the result (default: that of ``intensity`` if a floating tensor, else float32).

    Returns:
        ``(B, 9, 3)`` coefficients with ``L_00 = intensity * sqrt(4 pi)`` and all others 0.

    Example:
        >>> ambient_sh(1.0)[0, :, 0]
        tensor([3.5449, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000])
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if isinstance(intensity, torch.Tensor):
        check_floating(intensity, "intensity")
        check_finite(intensity, "intensity")
        dtype = dtype or intensity.dtype
        device = device or intensity.device
        if intensity.dim() == 0:
            value = intensity.reshape(1, 1).expand(batch_size, 3)
        elif intensity.dim() == 1:
            check_shape(intensity, "intensity", (3,))
            value = intensity.reshape(1, 3).expand(batch_size, 3)
        else:
            check_shape(intensity, "intensity", (None, 3))
            value = intensity
        value = value.to(device=device, dtype=dtype)
    else:
        if isinstance(intensity, bool) or not isinstance(intensity, (int, float)):
            raise TypeError(f"intensity: expected a number or a tensor, got {describe(intensity)}")
        if not math.isfinite(intensity):
            raise ValueError(f"intensity: expected a finite number, got {intensity!r}")
        value = torch.full((batch_size, 3), float(intensity), device=device, dtype=dtype or torch.float32)
    # Constant radiance k: L_00 = integral k Y_00 dw = k * 4 pi * Y_00 = k sqrt(4 pi); S = (A_0/pi) L_00 Y_00 = k.
    first = (value * math.sqrt(4.0 * math.pi))[:, None, :]
    rest = torch.zeros(value.shape[0], NUM_SH - 1, 3, device=value.device, dtype=value.dtype)
    return torch.cat([first, rest], dim=1)


def directional_sh(
    direction: torch.Tensor,
    color: torch.Tensor,
    ambient: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Radiance coefficients of a distant point light (projected to 3 bands) plus an ambient term.

    A point light of radiant intensity ``color`` coming *from* unit direction ``d`` has radiance
    ``color * delta(w - d)``, whose coefficients are ``L_lm = color * Y_lm(d)``. Its 3-band shading is
    ``color / pi * sum_l A_l Y_l(d).Y_l(n)``, a smooth approximation of ``color / pi * max(0, n.d)``.

    Args:
        direction: ``(B, 3)`` camera-space directions towards the light (normalised here); e.g. ``(0, 0, -1)``
            is a light at the camera.
        color: ``(B, 3)`` RGB intensity of the light.
        ambient: a number or ``(B, 3)`` tensor of constant shading added (as in :func:`ambient_sh`).

    Returns:
        ``(B, 9, 3)`` radiance coefficients.
    """
    sizes: dict[str, int] = {}
    check_shape(direction, "direction", ("B", 3), sizes)
    _check_normals(direction, "direction")
    check_shape(color, "color", ("B", 3), sizes)
    check_floating(color, "color")
    check_finite(color, "color")
    _check_like("direction", direction, "color", color)
    coeffs = _basis(direction)[:, :, None] * color[:, None, :]
    if isinstance(ambient, torch.Tensor):
        check_shape(ambient, "ambient", ("B", 3), sizes)
        _check_like("direction", direction, "ambient", ambient)
    return coeffs + ambient_sh(ambient, sizes["B"], device=direction.device, dtype=direction.dtype)


def estimate_sh(
    normals: torch.Tensor,
    colors: torch.Tensor,
    albedo: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """Least-squares radiance coefficients that best explain ``colors`` as ``albedo * S(n)``.

    Solves, per batch item and channel ``c``, the ridge-regularised weighted problem
    ``min_L sum_i w_i (albedo_ic * sum_k (A_k/pi) Y_k(n_i) L_kc - colors_ic)^2 + ridge * N_eff * |L_c|^2``
    with ``N_eff = sum_i w_i`` (so ``ridge`` does not depend on the number of points). Differentiable.

    Args:
        normals: ``(B, N, 3)`` camera-space normals (normalised here).
        colors: ``(B, N, 3)`` observed RGB colours.
        albedo: ``(B, N, 3)`` reflectance, or None for a white surface (albedo 1).
        weights: ``(B, N)`` non-negative per-point weights (e.g. visibility), or None for all ones.
        ridge: non-negative Tikhonov weight; keeps the solve defined when the normals span too few directions.

    Returns:
        ``(B, 9, 3)`` radiance coefficients (pass them to :func:`shade`).

    Raises:
        TypeError: non-floating inputs, different dtypes.
        ValueError: wrong shapes, NaN/inf, negative weights or ridge, a batch item whose weights sum to 0.
    """
    sizes: dict[str, int] = {}
    check_shape(normals, "normals", ("B", "N", 3), sizes)
    _check_normals(normals)
    check_shape(colors, "colors", ("B", "N", 3), sizes)
    check_floating(colors, "colors")
    check_finite(colors, "colors")
    _check_like("normals", normals, "colors", colors)
    if albedo is not None:
        check_shape(albedo, "albedo", ("B", "N", 3), sizes)
        check_floating(albedo, "albedo")
        check_finite(albedo, "albedo")
        _check_like("normals", normals, "albedo", albedo)
    if weights is not None:
        check_shape(weights, "weights", ("B", "N"), sizes)
        check_floating(weights, "weights")
        check_finite(weights, "weights")
        _check_like("normals", normals, "weights", weights)
        if sizes["N"] > 0 and bool((weights < 0).any()):
            raise ValueError("weights: expected non-negative values, got negative entries")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)):
        raise TypeError(f"ridge: expected a number, got {describe(ridge)}")
    if not math.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge: expected a finite non-negative number, got {ridge!r}")

    w = weights if weights is not None else torch.ones_like(normals[..., 0])
    n_eff = w.sum(dim=1)  # (B,)
    if bool((n_eff <= 0).any()):
        raise ValueError("weights: every batch item needs a positive total weight, got a batch item with 0")
    design = _basis(normals) * _factors(normals)  # (B, N, 9): S = design @ L
    if albedo is not None:
        design_c = design[:, None] * albedo.permute(0, 2, 1)[..., None]  # (B, 3, N, 9)
    else:
        design_c = design[:, None].expand(-1, 3, -1, -1)
    wd = design_c * w[:, None, :, None]
    normal_mat = wd.transpose(-1, -2) @ design_c  # (B, 3, 9, 9)
    eye = torch.eye(NUM_SH, dtype=normals.dtype, device=normals.device)
    normal_mat = normal_mat + (ridge * n_eff)[:, None, None, None] * eye
    rhs = wd.transpose(-1, -2) @ colors.permute(0, 2, 1)[..., None]  # (B, 3, 9, 1)
    solution = torch.linalg.solve(normal_mat, rhs)[..., 0]  # (B, 3, 9)
    return solution.permute(0, 2, 1).contiguous()
