"""Tests of facerecon.render.sh: basis against closed forms and SciPy, orthonormality, Lambertian constants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch

from facerecon.render import sh
from facerecon.render.sh import (
    LAMBERT_FACTORS,
    SH_DEGREES,
    SH_ORDERS,
    ambient_sh,
    directional_sh,
    estimate_sh,
    irradiance,
    radiance_coefficients,
    sh_basis,
    shade,
    shading_coefficients,
)

D = torch.float64


def _unit(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(*shape, 3, generator=g, dtype=D)
    return v / v.norm(dim=-1, keepdim=True)


def _scipy_real_sh(l: int, m: int, dirs: np.ndarray) -> np.ndarray:
    """Real SH without Condon-Shortley phase from SciPy's complex ones (independent of our closed forms)."""
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    polar = np.arccos(np.clip(z, -1, 1))
    azimuth = np.mod(np.arctan2(y, x), 2 * np.pi)
    if hasattr(scipy.special, "sph_harm_y"):
        y_complex = scipy.special.sph_harm_y(l, abs(m), polar, azimuth)
    else:  # SciPy < 1.15: sph_harm(m, l, azimuth, polar)
        y_complex = scipy.special.sph_harm(abs(m), l, azimuth, polar)
    if m == 0:
        return y_complex.real
    sign = (-1.0) ** m  # removes SciPy's Condon-Shortley phase
    if m > 0:
        return math.sqrt(2) * sign * y_complex.real
    return math.sqrt(2) * sign * y_complex.imag


def _sphere_quadrature(n_polar: int, n_azimuth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre in cos(polar) x uniform azimuth: exact for polynomials of degree < 2 n_polar."""
    nodes, w = np.polynomial.legendre.leggauss(n_polar)
    phi = (np.arange(n_azimuth) + 0.5) * 2 * np.pi / n_azimuth
    ct, ph = np.meshgrid(nodes, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    dirs = np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3)
    weights = np.repeat(w, n_azimuth) * (2 * np.pi / n_azimuth)
    return torch.from_numpy(dirs), torch.from_numpy(weights)


# ----------------------------------------------------------------------------------------- basis


def test_basis_known_values_on_axes():
    c0 = 0.5 / math.sqrt(math.pi)
    c1 = math.sqrt(3 / (4 * math.pi))
    y20_pole = 0.25 * math.sqrt(5 / math.pi) * 2  # (3 z^2 - 1) = 2 at the poles
    y20_equator = -0.25 * math.sqrt(5 / math.pi)
    y22_x = 0.25 * math.sqrt(15 / math.pi)
    axes = torch.eye(3, dtype=D)
    b = sh_basis(axes)
    expected = torch.tensor(
        [
            [c0, 0, 0, c1, 0, 0, y20_equator, 0, y22_x],  # +x
            [c0, c1, 0, 0, 0, 0, y20_equator, 0, -y22_x],  # +y
            [c0, 0, c1, 0, 0, 0, y20_pole, 0, 0],  # +z
        ],
        dtype=D,
    )
    torch.testing.assert_close(b, expected, rtol=0, atol=1e-15)


def test_basis_matches_scipy_for_every_function():
    dirs = _unit((500,), seed=1)
    b = sh_basis(dirs).numpy()
    for k, (l, m) in enumerate(zip(SH_DEGREES, SH_ORDERS)):
        np.testing.assert_allclose(b[:, k], _scipy_real_sh(l, m, dirs.numpy()), rtol=0, atol=1e-12, err_msg=f"Y_{l}{m}")


def test_basis_is_orthonormal_by_quadrature():
    # Products of two degree-2 harmonics are degree-4 polynomials: 6 Gauss-Legendre nodes in cos(polar) and
    # 16 azimuth samples integrate them exactly, so the tolerance is round-off only.
    dirs, w = _sphere_quadrature(6, 16)
    b = sh_basis(dirs)
    gram = b.T @ (b * w[:, None])
    torch.testing.assert_close(gram, torch.eye(9, dtype=D), rtol=0, atol=1e-13)
    # A deliberately wrong normalisation would fail: the constant term alone integrates to sqrt(4 pi).
    assert abs(float((b[:, 0] * w).sum()) - math.sqrt(4 * math.pi)) < 1e-12


def test_basis_normalises_input_and_keeps_leading_shape():
    d = _unit((2, 4), seed=2)
    torch.testing.assert_close(sh_basis(3.5 * d), sh_basis(d))
    assert sh_basis(d).shape == (2, 4, 9)
    assert sh_basis(d[0, 0]).shape == (9,)
    assert sh_basis(torch.zeros(1, 3)).tolist()[0][1:] == [0.0] * 5 + [pytest.approx(-0.25 * math.sqrt(5 / math.pi))] + [0.0] * 2


def test_basis_follows_dtype():
    assert sh_basis(torch.tensor([[0.0, 0.0, 1.0]])).dtype == torch.float32
    assert sh_basis(torch.tensor([[0.0, 0.0, 1.0]], dtype=D)).dtype == D


# ----------------------------------------------------------------------------------- irradiance


def test_lambert_factors_are_ramamoorthi_hanrahan_over_pi():
    a = {0: math.pi, 1: 2 * math.pi / 3, 2: math.pi / 4}
    assert LAMBERT_FACTORS == pytest.approx([a[l] / math.pi for l in SH_DEGREES], abs=0)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_constant_environment_gives_constant_shading(batch):
    normals = _unit((batch, 50), seed=batch)
    intensity = torch.tensor([[0.2, 0.7, 1.3]], dtype=D).expand(batch, 3)
    s = irradiance(normals, ambient_sh(intensity))
    assert s.shape == (batch, 50, 3)
    torch.testing.assert_close(s, intensity[:, None].expand(-1, 50, -1), rtol=0, atol=1e-14)


def test_irradiance_equals_cosine_integral_of_radiance():
    """S(n) = 1/pi * integral L(w) max(0, n.w) dw for a band-limited L (checks the convolution constants)."""
    g = torch.Generator().manual_seed(3)
    coeffs = torch.randn(1, 9, 3, generator=g, dtype=D)
    dirs, w = _sphere_quadrature(400, 800)
    radiance = sh_basis(dirs) @ coeffs[0]  # (Q, 3)
    normals = _unit((1, 5), seed=4)
    cos = (normals[0] @ dirs.T).clamp_min(0)  # (5, Q)
    numeric = (cos * w) @ radiance / math.pi  # (5, 3)
    # The clamped cosine has a kink, so the quadrature converges slowly: 1e-5 at this grid size.
    torch.testing.assert_close(irradiance(normals, coeffs)[0], numeric, rtol=0, atol=1e-5)


def test_shade_is_albedo_times_irradiance_and_matches_papers_gamma():
    normals = _unit((2, 7), seed=5)
    g = torch.Generator().manual_seed(6)
    albedo = torch.rand(2, 7, 3, generator=g, dtype=D)
    coeffs = torch.randn(2, 9, 3, generator=g, dtype=D)
    out = shade(albedo, normals, coeffs)
    torch.testing.assert_close(out, albedo * irradiance(normals, coeffs))
    # Paper 004 eq. 5: c = r * sum_b gamma_b H_b(n) with gamma = shading_coefficients(coeffs).
    gamma = shading_coefficients(coeffs)
    torch.testing.assert_close(out, albedo * torch.einsum("bnk,bkc->bnc", sh_basis(normals), gamma))
    torch.testing.assert_close(radiance_coefficients(gamma), coeffs)


def test_shade_known_answer_ambient_and_frontal_light():
    albedo = torch.full((1, 2, 3), 0.5)
    normals = torch.tensor([[[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]])
    torch.testing.assert_close(shade(albedo, normals, ambient_sh(1.0)), albedo)
    # A point light at the camera (from -z) of intensity pi: S(n) = sum_l A_l Y_l(d).Y_l(n); at n = d this is
    # pi * (1/(4 pi) + (2/3)(3/(4 pi)) + (1/4)(5/(4 pi))) = 1/4 + 1/2 + 5/16 = 17/16.
    light = directional_sh(torch.tensor([[0.0, 0.0, -1.0]], dtype=D), torch.full((1, 3), math.pi, dtype=D))
    s = irradiance(torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]], dtype=D), light)
    torch.testing.assert_close(s[0, 0], torch.full((3,), 17 / 16, dtype=D))
    # Opposite side: 1/4 - 1/2 + 5/16 = 1/16 (the ringing of a 3-band clamped cosine).
    torch.testing.assert_close(s[0, 1], torch.full((3,), 1 / 16, dtype=D))


def test_directional_light_is_brightest_towards_the_light():
    d = torch.tensor([[0.3, -0.5, -0.8]], dtype=D)
    light = directional_sh(d, torch.ones(1, 3, dtype=D), ambient=0.1)
    normals = _unit((1, 2000), seed=7)
    s = irradiance(normals, light)[0, :, 0]
    best = normals[0, s.argmax()]
    assert float(best @ (d[0] / d[0].norm())) > 0.99


def test_shade_does_not_modify_inputs():
    normals = _unit((1, 4), seed=8) * 2
    albedo = torch.rand(1, 4, 3, dtype=D)
    coeffs = torch.randn(1, 9, 3, dtype=D)
    copies = [t.clone() for t in (albedo, normals, coeffs)]
    shade(albedo, normals, coeffs)
    estimate_sh(normals, albedo, albedo)
    for a, b in zip((albedo, normals, coeffs), copies):
        assert torch.equal(a, b)


def test_gradcheck_shade_and_estimate():
    normals = _unit((2, 5), seed=9).requires_grad_()
    g = torch.Generator().manual_seed(10)
    albedo = torch.rand(2, 5, 3, generator=g, dtype=D).requires_grad_()
    coeffs = torch.randn(2, 9, 3, generator=g, dtype=D).requires_grad_()
    assert torch.autograd.gradcheck(shade, (albedo, normals, coeffs))
    n2 = _unit((1, 30), seed=11).requires_grad_()
    colors = torch.rand(1, 30, 3, generator=g, dtype=D).requires_grad_()
    assert torch.autograd.gradcheck(lambda n, c: estimate_sh(n, c, ridge=1e-3), (n2, colors))


# ------------------------------------------------------------------------------------- estimate


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_estimate_sh_recovers_known_coefficients(batch):
    g = torch.Generator().manual_seed(12 + batch)
    coeffs = torch.randn(batch, 9, 3, generator=g, dtype=D)
    normals = _unit((batch, 300), seed=batch)
    albedo = 0.2 + 0.8 * torch.rand(batch, 300, 3, generator=g, dtype=D)
    weights = torch.rand(batch, 300, generator=g, dtype=D)
    colors = shade(albedo, normals, coeffs)
    torch.testing.assert_close(estimate_sh(normals, colors, albedo, weights, ridge=0.0), coeffs, rtol=0, atol=1e-9)
    torch.testing.assert_close(
        estimate_sh(normals, irradiance(normals, coeffs), ridge=0.0), coeffs, rtol=0, atol=1e-9
    )


def test_estimate_sh_weights_ignore_outliers():
    coeffs = ambient_sh(0.8, dtype=D)
    normals = _unit((1, 200), seed=13)
    colors = irradiance(normals, coeffs)
    corrupt = colors.clone()
    corrupt[:, :20] = 5.0  # e.g. specular highlights or occluders
    weights = torch.ones(1, 200, dtype=D)
    weights[:, :20] = 0
    torch.testing.assert_close(estimate_sh(normals, corrupt, weights=weights, ridge=0.0), coeffs, rtol=0, atol=1e-9)
    assert float((estimate_sh(normals, corrupt, ridge=0.0) - coeffs).abs().max()) > 0.1


def test_estimate_sh_ridge_keeps_degenerate_problem_finite():
    # Every normal the same: only one direction observed, the 9x9 system is rank 1 without the ridge.
    normals = torch.tensor([[[0.0, 0.0, -1.0]]], dtype=D).expand(1, 10, 3)
    colors = torch.full((1, 10, 3), 0.6, dtype=D)
    est = estimate_sh(normals, colors, ridge=1e-4)
    assert torch.isfinite(est).all()
    torch.testing.assert_close(irradiance(normals, est), colors, rtol=0, atol=1e-3)


# --------------------------------------------------------------------------------------- errors


def test_errors():
    n = _unit((1, 4))
    c = torch.randn(1, 9, 3, dtype=D)
    a = torch.rand(1, 4, 3, dtype=D)
    with pytest.raises(ValueError, match="normals"):
        sh_basis(torch.zeros(4, 2, dtype=D))
    with pytest.raises(TypeError, match="normals"):
        sh_basis(torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="normals"):
        sh_basis(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="normals.*NaN"):
        sh_basis(torch.tensor([[float("nan"), 0.0, 1.0]]))
    with pytest.raises(ValueError, match="coeffs"):
        irradiance(n, torch.zeros(1, 4, 3, dtype=D))
    with pytest.raises(ValueError, match="coeffs.*B=1"):
        irradiance(n, torch.zeros(2, 9, 3, dtype=D))
    with pytest.raises(ValueError, match="normals"):
        irradiance(n[0], c)
    with pytest.raises(TypeError, match="coeffs.*dtype"):
        irradiance(n, c.float())
    with pytest.raises(ValueError, match="coeffs.*NaN"):
        irradiance(n, c * float("inf"))
    with pytest.raises(ValueError, match="normals.*N=4"):
        shade(a, _unit((1, 5)), c)
    with pytest.raises(TypeError, match="albedo"):
        shade(a.to(torch.int32), n, c)
    with pytest.raises(TypeError, match="normals.*dtype"):
        shade(a.float(), n, c)
    with pytest.raises(ValueError, match="albedo.*NaN"):
        shade(a * float("nan"), n, c)
    with pytest.raises(ValueError, match="weights.*non-negative"):
        estimate_sh(n, a, weights=-torch.ones(1, 4, dtype=D))
    with pytest.raises(ValueError, match="weights.*positive total"):
        estimate_sh(n, a, weights=torch.zeros(1, 4, dtype=D))
    with pytest.raises(ValueError, match="weights"):
        estimate_sh(n, a, weights=torch.ones(1, 5, dtype=D))
    with pytest.raises(ValueError, match="ridge"):
        estimate_sh(n, a, ridge=-1.0)
    with pytest.raises(TypeError, match="ridge"):
        estimate_sh(n, a, ridge="0")
    with pytest.raises(ValueError, match="colors"):
        estimate_sh(n, a[:, :3])
    with pytest.raises(ValueError, match="albedo"):
        estimate_sh(n, a, albedo=a[..., :2])
    with pytest.raises(ValueError, match="batch_size"):
        ambient_sh(1.0, batch_size=0)
    with pytest.raises(TypeError, match="intensity"):
        ambient_sh("bright")
    with pytest.raises(ValueError, match="intensity"):
        ambient_sh(float("nan"))
    with pytest.raises(ValueError, match="intensity"):
        ambient_sh(torch.ones(4))
    with pytest.raises(ValueError, match="direction"):
        directional_sh(torch.zeros(1, 2), torch.ones(1, 3))
    with pytest.raises(ValueError, match="color"):
        directional_sh(torch.zeros(1, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="gamma"):
        radiance_coefficients(torch.zeros(1, 3, 3))


def test_ambient_sh_follows_device_and_dtype():
    assert ambient_sh(1.0).dtype == torch.float32
    assert ambient_sh(1.0, 3, dtype=D).shape == (3, 9, 3)
    assert ambient_sh(torch.tensor(0.5, dtype=D), 2).dtype == D
    assert ambient_sh(torch.ones(3, dtype=D), 2).shape == (2, 9, 3)


def test_public_names_exist():
    for name in sh.__all__:
        assert hasattr(sh, name)


# --------------------------------------------------------------------------------------- picture


def test_render_lit_sphere(artifacts_dir):
    """A unit sphere seen by an orthographic camera, lit from the upper left of the image (and saved)."""
    size = 96
    v, u = torch.meshgrid(torch.arange(size, dtype=D), torch.arange(size, dtype=D), indexing="ij")
    x = (u - (size - 1) / 2) / (size / 2 - 2)
    y = (v - (size - 1) / 2) / (size / 2 - 2)
    inside = x**2 + y**2 < 1
    z = -torch.sqrt((1 - x**2 - y**2).clamp_min(0))  # camera space: the visible hemisphere faces -z
    normals = torch.stack([x, y, z], -1)[inside][None]
    to_light = torch.tensor([[-1.0, -1.0, -1.0]], dtype=D)  # from the upper left (x left, y up), in front
    light = directional_sh(to_light, torch.tensor([[2.5, 2.3, 2.0]], dtype=D), ambient=0.15)
    albedo = torch.tensor([0.8, 0.6, 0.5], dtype=D).expand_as(normals)
    colors = shade(albedo, normals, light)[0].clamp(0, 1)
    image = torch.zeros(size, size, 3, dtype=D)
    image[inside] = colors
    lum = image.mean(-1)
    # Upper-left quadrant of the disc is brighter than the lower-right one.
    q = size // 4
    assert float(lum[q : 2 * q, q : 2 * q].mean()) > float(lum[2 * q : 3 * q, 2 * q : 3 * q].mean()) + 0.2
    if artifacts_dir is not None:
        from PIL import Image

        Image.fromarray((image.numpy() * 255).round().astype(np.uint8)).save(artifacts_dir / "sh_lit_sphere.png")
