"""UV position maps in the face model's UV layout: mesh -> map, map -> mesh, map -> landmarks, weight masks.

Paper 002 (after PRNet) stores a face as an image in UV space whose texels hold the position of the surface point
they map to: "x, y in image pixels, z depth". The texels here are those of the ``face`` sub-mesh's UV tile
(``[0, 1]^2`` of the ICT layout; ``docs/conventions.md`` for the texel convention), and positions are those of a
face crop seen by its pinhole camera (:mod:`facerecon.nets.crop`), normalised so that the three channels share one
unit (half the crop's side):

* ``x = (u + 0.5) * 2 / S - 1`` and ``y = (v + 0.5) * 2 / S - 1``, the point's projection ``(u, v)`` in the crop of
  side ``S`` px (-1 and +1 are the crop's edges);
* ``z = (Z / Z_ref - 1) * f * 2 / S``, the point's depth ``Z`` relative to a reference depth ``Z_ref`` (the head's
  pivot), in the crop's pixel scale at that depth (``f / Z_ref`` px per mm, the crop pose's ``log_scale``).

A map fixes the face's shape in the crop's camera up to one number, the reference depth: every camera-space point is
``Z_ref`` times a point the map gives (:meth:`PositionMapLayout.unit_points`), so the map of a face twice as far
and twice as large is the same map. :class:`facerecon.fit.points.PointFitter` finds that scale (and the model's
parameters) by fitting the face model to the points, which is how the estimator returns metric meshes.

Texels that no triangle covers but lie within ``pad`` texels of the layout are filled with their nearest covered
texel's value (ground truth and weights alike), so bilinear sampling at a vertex on the layout's border reads
only meaningful texels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from facerecon.core.check import check_finite, check_floating, check_shape, describe
from facerecon.geometry.camera import PerspectiveCamera
from facerecon.models.face_model import FaceModel
from facerecon.render.uv import position_map, rasterize_uv

__all__ = ["MAP_SUBMESH", "WEIGHT_RATIOS", "PositionMapLayout", "check_position_maps"]

#: The sub-mesh whose UV tile a position map covers.
MAP_SUBMESH = "face"
#: The pull of a vertex towards the map's bilinear sample at its UV, against the texels of its triangles (each
#: of weight 1) in :meth:`PositionMapLayout.vertex_points`.
SAMPLE_WEIGHT = 1e-3
#: Paper 002, table 2: r1 = 16 : 5 : 4 : 3 : 0 (area 1 the landmarks, 2 eyes and nose, 3 mouth, 4 forehead and the
#: rest of the face, 5 the neck), and the ablation r2 = 1 : 1 : 1 : 1 : 0.
WEIGHT_RATIOS = ("r1", "r2")


def check_position_maps(maps: object, size: int, name: str = "maps") -> None:
    """Check a batch of position maps: a ``(B, 3, size, size)`` floating tensor of finite values.

    Raises:
        TypeError / ValueError: one line naming what is wrong (another size, an integer dtype, NaN or inf).
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (B, 3, {size}, {size}), got {describe(maps)}")
    check_shape(maps, name, (None, 3, size, size))
    check_floating(maps, name)
    check_finite(maps, name)


class PositionMapLayout:
    """The ``face`` sub-mesh's UV tile at ``size x size`` texels, and the conversions between meshes and maps.

    Args:
        model: the face model.
        size: texels per side (the network's map side).
        pad: texels outside the layout filled from their nearest covered texel.

    Attributes:
        size: the map's side.
        vertex_count: ``V``, the ``face`` sub-mesh's vertices (the vertices a map holds).
        covered: ``(size, size)`` bool, texels that hold a position (covered or filled).
    """

    def __init__(self, model: FaceModel, size: int, *, pad: int = 2) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ValueError(f"size: expected an int >= 8 (texels per side), got {size!r}")
        sub = model.submesh(MAP_SUBMESH)
        self.size = size
        self.vertex_count = sub.vertex_count
        self.triangles = sub.triangles.cpu()
        uvs = model.uvs.detach().cpu().double()
        self._fragments = rasterize_uv(uvs, sub.uv_triangles.cpu(), size)
        inside = self._fragments.mask[0].cpu().numpy()
        distance, nearest = ndimage.distance_transform_edt(~inside, return_indices=True)
        source = nearest[0] * size + nearest[1]
        keep = distance <= pad
        self.fill_index = torch.from_numpy(np.where(keep, source, np.arange(size * size).reshape(size, size)).ravel())
        self.covered = torch.from_numpy(keep)
        # Each vertex's UV (a vertex on a seam has several; any one holds its position).
        vertex_uv = torch.zeros(sub.vertex_count, 2, dtype=torch.float64)
        vertex_uv[self.triangles.flatten()] = uvs[sub.uv_triangles.cpu().flatten()]
        self.vertex_grid = _grid(vertex_uv)
        scheme = model.landmarks("ibug68")
        self.landmark_grid = _grid((vertex_uv[scheme.triangles.cpu()] * scheme.weights.cpu().double()[..., None]).sum(1))
        self._vertex_weights = model.region_weights.detach().cpu().numpy()
        self._texels, self._scatter, self._solver = _least_squares(self._fragments, self.triangles, sub.vertex_count)
        self._model = model

    # ------------------------------------------------------------------------------------ mesh -> map
    def encode(self, vertices: torch.Tensor, camera: PerspectiveCamera, reference_depth: torch.Tensor) -> torch.Tensor:
        """The position maps of faces seen by crop cameras.

        Args:
            vertices: ``(B, V, 3)`` the ``face`` sub-mesh in each crop camera's space, mm.
            camera: the crops' cameras (batch ``B`` or 1; square pixels, ``width == height == S``).
            reference_depth: ``(B,)`` mm, each face's ``Z_ref`` (its pivot's depth).

        Returns:
            ``(B, 3, size, size)`` maps (module docstring), filled ``pad`` texels beyond the layout, 0 elsewhere;
            differentiable in ``vertices``.
        """
        check_shape(vertices, "vertices", (None, self.vertex_count, 3))
        points = self.normalise(vertices, camera, reference_depth)
        b = points.shape[0]
        maps = position_map(points, self.triangles.to(points.device), self._fragments)
        flat = maps.reshape(b, 3, -1)[:, :, self.fill_index.to(points.device)]
        return (flat * self.covered.reshape(1, 1, -1).to(flat)).reshape(b, 3, self.size, self.size)

    @staticmethod
    def normalise(points: torch.Tensor, camera: PerspectiveCamera, reference_depth: torch.Tensor) -> torch.Tensor:
        """Camera-space points ``(B, N, 3)`` mm -> the map's units ``(B, N, 3)`` (module docstring)."""
        cam = camera.to(dtype=points.dtype, device=points.device)
        size = float(cam.width)
        uv = cam.project(points)
        f = cam.fx.reshape(-1, 1)
        z = (points[..., 2] / reference_depth.to(points).reshape(-1, 1) - 1.0) * f * (2.0 / size)
        return torch.cat([(uv + 0.5) * (2.0 / size) - 1.0, z[..., None]], dim=-1)

    # ------------------------------------------------------------------------------------ map -> mesh
    def sample(self, maps: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Bilinear samples of ``maps (B, 3, M, M)`` at ``grid (N, 2)`` (``grid_sample`` coordinates): ``(B, N, 3)``."""
        g = grid.to(maps).expand(maps.shape[0], -1, -1)[:, None]  # (B, 1, N, 2)
        return F.grid_sample(maps, g, mode="bilinear", padding_mode="border", align_corners=False)[:, :, 0].transpose(1, 2)

    def vertex_points(self, maps: torch.Tensor) -> torch.Tensor:
        """The ``face`` sub-mesh's vertices read from maps: ``(B, V, 3)`` in the map's units (float64).

        A map rasterised from a mesh is linear over each triangle's texels, so the vertices are the least-squares
        solution of ``sum_texels |sum_k bary_k v_k - map|^2`` (exact for such a map, a projection onto meshes of
        the model's topology for a network's map); each vertex is also pulled, with the small weight
        :data:`SAMPLE_WEIGHT`, towards the map's bilinear sample at its UV, which decides the vertices that no
        texel centre falls on (triangles smaller than a texel in UV). Not differentiable (NumPy/SciPy).
        """
        check_position_maps(maps, self.size)
        maps = maps.detach().double().cpu()
        sampled = self.sample(maps, self.vertex_grid).numpy()  # (B, V, 3)
        texels = maps.numpy().reshape(maps.shape[0], 3, -1)[:, :, self._texels]  # (B, 3, T)
        out = np.empty_like(sampled)
        for b in range(maps.shape[0]):
            rhs = self._scatter @ texels[b].T + SAMPLE_WEIGHT * sampled[b]
            out[b] = self._solver.solve(rhs)
        return torch.from_numpy(out)

    @staticmethod
    def unit_points(points: torch.Tensor, camera: PerspectiveCamera) -> torch.Tensor:
        """Points in the map's units ``(B, N, 3)`` -> camera-space points divided by ``Z_ref`` (the inverse of
        :meth:`normalise` up to that one scale): multiply by the reference depth for millimetres."""
        cam = camera.to(dtype=points.dtype, device=points.device)
        size = float(cam.width)
        f = cam.fx.reshape(-1, 1)
        depth = 1.0 + points[..., 2] * size / (2.0 * f)  # Z / Z_ref
        u = (points[..., 0] + 1.0) * (size / 2.0) - 0.5
        v = (points[..., 1] + 1.0) * (size / 2.0) - 0.5
        x = (u - cam.cx.reshape(-1, 1)) / f * depth
        y = (v - cam.cy.reshape(-1, 1)) / cam.fy.reshape(-1, 1) * depth
        return torch.stack([x, y, depth], dim=-1)

    def landmarks(self, maps: torch.Tensor, crop_size: int) -> torch.Tensor:
        """The iBUG 68 landmarks' projections read from maps: ``(B, 68, 2)`` px in a crop of side ``crop_size``."""
        check_position_maps(maps, self.size)
        xy = self.sample(maps, self.landmark_grid)[..., :2]
        return (xy + 1.0) * (crop_size / 2.0) - 0.5

    def resolved_vertices(self, tolerance_mm: float = 0.5, *, faces: int = 8, seed: int = 0) -> np.ndarray:
        """``(V,)`` bool: the vertices a map of this size holds to within ``tolerance_mm``.

        Where the UV layout packs a lot of surface into few texels (eyelid rims, the inner lips, nostrils) a map
        cannot hold the shape, whatever predicts it. Measured, not assumed: ``faces`` random faces of the model
        (identities N(0, 0.8^2), sparse random expressions, heads turned up to 40 degrees; seeded) are written to
        maps and read back (:meth:`encode`, :meth:`vertex_points`); a vertex is resolved when its largest error is
        below the tolerance.
        """
        from facerecon.geometry.rotation import head_angles_to_camera_rotation

        rng = np.random.default_rng(seed)
        model = self._model
        camera = PerspectiveCamera.from_focal(300.0, 128, 128, dtype=torch.float64)
        depth = torch.tensor([600.0], dtype=torch.float64)
        worst = np.zeros(self.vertex_count)
        with torch.no_grad():
            for _ in range(faces):
                identity = torch.from_numpy(rng.normal(scale=0.8, size=(1, model.identity_count))).to(model.mean)
                on = rng.random((1, model.expression_count)) < 0.15
                expression = torch.from_numpy(on * rng.random((1, model.expression_count))).to(model.mean)
                vertices = model(identity, expression, submesh=MAP_SUBMESH).cpu().double()
                rotation = head_angles_to_camera_rotation(torch.from_numpy(np.radians(rng.uniform(-40, 40, 3))))
                cam = vertices @ rotation.T + torch.tensor([0.0, 0.0, 600.0], dtype=torch.float64)
                back = self.unit_points(self.vertex_points(self.encode(cam, camera, depth)), camera) * depth
                worst = np.maximum(worst, (back - cam).norm(dim=-1)[0].numpy())
        return worst < tolerance_mm

    # ---------------------------------------------------------------------------------------- weights
    def weight_mask(self, ratio: str = "r1") -> torch.Tensor:
        """Paper 002's loss weights ``(size, size)`` float32 (module constants :data:`WEIGHT_RATIOS`): ``"r1"``
        16 : 5 : 4 : 3 : 0, ``"r2"`` 1 : 1 : 1 : 1 : 0 (1 wherever r1 is not 0), filled beyond the layout as the
        maps are."""
        if ratio not in WEIGHT_RATIOS:
            raise ValueError(f"ratio: expected one of {', '.join(WEIGHT_RATIOS)}, got {ratio!r}")
        painted = torch.from_numpy(self._model.region_weight_map(self.size)).reshape(-1)
        mask = painted[self.fill_index].reshape(self.size, self.size) * self.covered
        return mask if ratio == "r1" else (mask > 0).float()

    def vertex_weights(self, ratio: str = "r1") -> np.ndarray:
        """The per-vertex weights of the ``face`` sub-mesh ``(V,)`` float32 with the same ratio."""
        if ratio not in WEIGHT_RATIOS:
            raise ValueError(f"ratio: expected one of {', '.join(WEIGHT_RATIOS)}, got {ratio!r}")
        w = self._vertex_weights[: self.vertex_count].astype(np.float32)
        return w if ratio == "r1" else (w > 0).astype(np.float32)


def _grid(uv: torch.Tensor) -> torch.Tensor:
    """UVs ``(N, 2)`` (v up) -> ``grid_sample`` coordinates (``align_corners=False``: -1 and 1 are the outer edges
    of the border texels, so texel centres sit at ``(col + 0.5) / M``, the texel convention)."""
    return torch.stack([uv[:, 0] * 2.0 - 1.0, (1.0 - uv[:, 1]) * 2.0 - 1.0], dim=-1).float()


def _least_squares(fragments, triangles: torch.Tensor, vertex_count: int):
    """The covered texels' flat indices ``(T,)``, ``B^T`` (the vertices-by-texels sparse barycentric matrix) and a
    factorisation of ``B^T B + SAMPLE_WEIGHT * I`` for :meth:`PositionMapLayout.vertex_points`."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    mask = fragments.mask[0].cpu().numpy().ravel()
    texels = np.flatnonzero(mask)
    face = fragments.face_index[0].cpu().numpy().ravel()[texels]
    bary = fragments.bary[0].cpu().numpy().reshape(-1, 3)[texels].astype(np.float64)
    corners = triangles.numpy()[face]  # (T, 3)
    rows = np.repeat(np.arange(len(texels)), 3)
    b = sp.csr_matrix((bary.ravel(), (rows, corners.ravel())), shape=(len(texels), vertex_count))
    normal = (b.T @ b + SAMPLE_WEIGHT * sp.identity(vertex_count)).tocsc()
    return texels, b.T.tocsr(), splu(normal)

