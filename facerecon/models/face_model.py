"""``FaceModel``: a linear 3D morphable face model as an ``nn.Module`` with registered buffers.

    vertices = mean + sum_k identity_k * identity_basis_k + sum_j expression_j * expression_basis_j

Identity coefficients follow N(0, 1) (the modes are scaled by their standard deviation); expression
weights are blendshape weights in [0, 1] with ARKit-style names. Everything is in millimetres, model
space (y up, z out of the face; see docs/conventions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from facerecon.core.check import check_choice, check_floating, check_same_device, check_shape
from facerecon.core.mesh import Mesh
from facerecon.geometry.mesh_ops import uniform_laplacian, vertex_adjacency
from facerecon.models.regions import Region


@dataclass(frozen=True)
class SubMesh:
    """A named part of the template: its first ``vertex_count`` vertices and ``triangles``.

    Attributes:
        name: e.g. ``"face"`` (fitting), ``"head"`` (display and export), ``"full"``.
        vertex_count: the sub-mesh uses vertices ``[0, vertex_count)``.
        triangles: ``(F, 3)`` int64 indices into those vertices.
        uv_triangles: ``(F, 3)`` int64 indices into the model's UVs.
    """

    name: str
    vertex_count: int
    triangles: torch.Tensor
    uv_triangles: torch.Tensor


@dataclass(frozen=True)
class LandmarkPoseTable:
    """Where a detector puts each landmark on the surface, per head pose: a grid of yaw x pitch cells.

    A detector's landmark need not stay on one surface point as the head turns: MediaPipe places its cheek,
    nose and jaw points from the face's shape, and they move over the surface by a few mm between -30 and +30
    degrees of yaw (the calibration measures this; :mod:`facerecon.calibrate`). A fit looks up the cell of its
    current head pose (:meth:`cell`) and uses that cell's points.

    Attributes:
        yaws: ``(Y,)`` the cells' head yaws, degrees, ascending.
        pitches: ``(P,)`` the cells' head pitches, degrees, ascending.
        triangles: ``(Y, P, L, 3)`` int64 vertex triples per cell (the scheme's own where a cell had no data).
        weights: ``(Y, P, L, 3)`` float barycentric weights per cell.

    Raises:
        ValueError: grids that are not ascending, tables of other shapes.
    """

    yaws: tuple[float, ...]
    pitches: tuple[float, ...]
    triangles: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("yaws", "pitches"):
            values = getattr(self, name)
            if len(values) == 0 or any(b <= a for a, b in zip(values, values[1:])):
                raise ValueError(f"{name}: expected ascending degrees, got {values!r}")
        sizes = {"Y": len(self.yaws), "P": len(self.pitches)}
        check_shape(self.triangles, "triangles", ("Y", "P", "L", 3), sizes)
        check_shape(self.weights, "weights", ("Y", "P", "L", 3), sizes)
        check_floating(self.weights, "weights")

    def cell(self, pitch_deg: float, yaw_deg: float) -> tuple[int, int]:
        """``(yaw index, pitch index)`` of the cell nearest to a head pose (outside the grid: its edge)."""
        return (int(np.argmin(np.abs(np.asarray(self.yaws) - yaw_deg))),
                int(np.argmin(np.abs(np.asarray(self.pitches) - pitch_deg))))  # fmt: skip

    def select(self, indices: np.ndarray) -> LandmarkPoseTable:
        """The table of a subset of the landmarks (``indices`` into ``L``)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return LandmarkPoseTable(self.yaws, self.pitches, self.triangles[:, :, idx], self.weights[:, :, idx])


@dataclass(frozen=True)
class LandmarkScheme:
    """Landmarks defined on the template: single vertices, or points inside triangles (barycentric).

    A landmark's position on any face of the model (any identity and expression) is
    ``sum_j weights[l, j] * vertices[triangles[l, j]]`` (:meth:`points`). A *vertex* scheme (``ibug68``) has
    ``triangles[l] = (i, i, i)`` and ``weights[l] = (1, 0, 0)``; a *barycentric* scheme (``mediapipe478``,
    calibrated by :mod:`facerecon.calibrate`) has real triangles and its ``vertex_indices`` are the corner of
    largest weight (the nearest vertex), for code that works with vertices only.

    Attributes:
        name: e.g. ``"ibug68"``.
        vertex_indices: ``(L,)`` int64.
        contour: ``(L,)`` bool, True for contour landmarks whose surface point slides with pose
            (paper 004, sec. 6.1).
        triangles: ``(L, 3)`` int64 vertex triples; default ``vertex_indices`` repeated.
        weights: ``(L, 3)`` float barycentric weights (each row sums to 1); default ``(1, 0, 0)``.
        valid: ``(L,)`` bool, False for landmarks the scheme does not place on the model (e.g. MediaPipe's
            iris points, which sit on the moving eyeballs); default all True.
        poses: where the landmarks sit per head pose (:class:`LandmarkPoseTable`), for schemes whose points
            move over the surface as the head turns; None: ``triangles`` at every pose.

    Raises:
        TypeError / ValueError: fields of other shapes or dtypes.
    """

    name: str
    vertex_indices: torch.Tensor
    contour: torch.Tensor
    triangles: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    poses: LandmarkPoseTable | None = None

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        check_shape(self.vertex_indices, "vertex_indices", ("L",), sizes)
        if self.poses is not None and self.poses.triangles.shape[2] != self.vertex_indices.shape[0]:
            raise ValueError(
                f"poses: expected tables for {self.vertex_indices.shape[0]} landmarks, got {self.poses.triangles.shape[2]}"
            )
        check_shape(self.contour, "contour", ("L",), sizes)
        if (self.triangles is None) != (self.weights is None):
            raise ValueError("triangles: triangles and weights must be given together, got only one of them")
        idx = self.vertex_indices
        if self.triangles is None:
            object.__setattr__(self, "triangles", idx[:, None].expand(-1, 3).clone())
            weights = torch.zeros(idx.shape[0], 3, device=idx.device)
            weights[:, 0] = 1.0
            object.__setattr__(self, "weights", weights)
        check_shape(self.triangles, "triangles", ("L", 3), sizes)
        check_shape(self.weights, "weights", ("L", 3), sizes)
        check_floating(self.weights, "weights")
        if self.valid is None:
            object.__setattr__(self, "valid", torch.ones(idx.shape[0], dtype=torch.bool, device=idx.device))
        check_shape(self.valid, "valid", ("L",), sizes)

    @classmethod
    def from_barycentric(
        cls,
        name: str,
        triangles: torch.Tensor,
        weights: torch.Tensor,
        contour: torch.Tensor,
        valid: torch.Tensor | None = None,
        poses: LandmarkPoseTable | None = None,
    ) -> LandmarkScheme:
        """A barycentric scheme; ``vertex_indices`` become each landmark's corner of largest weight."""
        check_shape(triangles, "triangles", ("L", 3))
        check_shape(weights, "weights", ("L", 3))
        nearest = triangles.gather(1, weights.argmax(dim=1, keepdim=True))[:, 0]
        return cls(name, nearest, contour, triangles, weights, valid, poses)

    @property
    def size(self) -> int:
        """The number of landmarks ``L``."""
        return int(self.vertex_indices.shape[0])

    @property
    def is_barycentric(self) -> bool:
        """True when some landmark lies inside a triangle rather than on a vertex."""
        return bool((self.triangles != self.vertex_indices[:, None]).any() or (self.weights[:, 0] != 1).any())

    def points(self, vertices: torch.Tensor) -> torch.Tensor:
        """The landmarks' 3D positions on faces of the model.

        Args:
            vertices: ``(B, V, 3)`` vertices in mm (any sub-mesh that contains every landmark's triangle,
                e.g. ``model(..., submesh="face")``).

        Returns:
            ``(B, L, 3)`` mm, in the dtype and on the device of ``vertices``; differentiable w.r.t. them. Rows
            of landmarks that are not ``valid`` are NaN, so that using them by mistake cannot go unnoticed.

        Raises:
            TypeError: non-floating vertices.
            ValueError: wrong shape, or too few vertices for the scheme's triangles.

        Example:
            >>> scheme = model.landmarks("mediapipe478")         # doctest: +SKIP
            >>> scheme.points(model(identity, submesh="face"))   # (B, 478, 3)  # doctest: +SKIP
        """
        check_shape(vertices, "vertices", ("B", "V", 3))
        check_floating(vertices, "vertices")
        tri = self.triangles.to(vertices.device)
        needed = int(tri.max()) + 1 if tri.numel() else 0
        if vertices.shape[1] < needed:
            raise ValueError(
                f"vertices: the scheme {self.name!r} needs at least {needed} vertices, got {vertices.shape[1]}"
            )
        weights = self.weights.to(device=vertices.device, dtype=vertices.dtype)
        # p_l = sum_j w_lj v_{t_lj}: gather the corners (B, L, 3 corners, 3 xyz), weight and sum the corners.
        points = torch.einsum("blkc,lk->blc", vertices[:, tri], weights)
        valid = self.valid.to(vertices.device)
        if bool(valid.all()):
            return points
        return torch.where(valid[None, :, None], points, torch.full_like(points, float("nan")))


class FaceModel(nn.Module):
    """A linear face model with named expressions, regions, UVs, landmarks and a mirror map.

    Buffers (move with ``.to()``, saved in ``state_dict()``):
        mean ``(V, 3)`` mm; identity_basis ``(K_id, V, 3)`` mm per unit coefficient;
        expression_basis ``(K_exp, V, 3)`` mm per unit weight; triangles ``(F, 3)`` int64;
        uvs ``(T, 2)`` in [0, 1] (v up); uv_triangles ``(F, 3)`` int64; mirror ``(V,)`` int64;
        region_labels ``(V,)`` int8 (:class:`~facerecon.models.regions.Region`); skin_mask ``(V,)`` bool;
        region_weights ``(V,)`` float (paper 002's 16:5:4:3:0); albedo_mean / albedo_basis (None for ICT).

    Example:
        >>> model = facerecon.load_model()  # doctest: +SKIP
        >>> v = model(torch.zeros(2, model.identity_count), torch.zeros(2, model.expression_count))
        >>> v.shape  # (2, 26719, 3)
    """

    mean: torch.Tensor
    identity_basis: torch.Tensor
    expression_basis: torch.Tensor
    triangles: torch.Tensor
    uvs: torch.Tensor
    uv_triangles: torch.Tensor
    mirror: torch.Tensor
    region_labels: torch.Tensor
    skin_mask: torch.Tensor
    region_weights: torch.Tensor

    def __init__(
        self,
        *,
        mean: np.ndarray | torch.Tensor,
        identity_basis: np.ndarray | torch.Tensor,
        expression_basis: np.ndarray | torch.Tensor,
        expression_names: list[str] | tuple[str, ...],
        triangles: np.ndarray | torch.Tensor,
        uvs: np.ndarray | torch.Tensor,
        uv_triangles: np.ndarray | torch.Tensor,
        mirror: np.ndarray | torch.Tensor,
        region_labels: np.ndarray | torch.Tensor,
        skin_mask: np.ndarray | torch.Tensor,
        region_weights: np.ndarray | torch.Tensor,
        landmark_schemes: dict[str, LandmarkScheme] | None = None,
        submeshes: dict[str, tuple[int, int]] | None = None,
        albedo_mean: np.ndarray | torch.Tensor | None = None,
        albedo_basis: np.ndarray | torch.Tensor | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        t = torch.as_tensor
        sizes: dict[str, int] = {}
        check_shape(mean, "mean", ("V", 3), sizes)
        check_shape(identity_basis, "identity_basis", ("K_id", "V", 3), sizes)
        check_shape(expression_basis, "expression_basis", ("K_exp", "V", 3), sizes)
        check_shape(triangles, "triangles", ("F", 3), sizes)
        check_shape(uvs, "uvs", ("T", 2), sizes)
        check_shape(uv_triangles, "uv_triangles", ("F", 3), sizes)
        for name, value in (("mirror", mirror), ("region_labels", region_labels), ("skin_mask", skin_mask),
                            ("region_weights", region_weights)):  # fmt: skip
            check_shape(value, name, ("V",), sizes)
        if len(expression_names) != sizes["K_exp"]:
            raise ValueError(
                f"expression_names: expected {sizes['K_exp']} names, got {len(expression_names)}"
            )
        self.register_buffer("mean", t(mean).float())
        self.register_buffer("identity_basis", t(identity_basis).float())
        self.register_buffer("expression_basis", t(expression_basis).float())
        self.register_buffer("triangles", t(triangles).long())
        self.register_buffer("uvs", t(uvs).float())
        self.register_buffer("uv_triangles", t(uv_triangles).long())
        self.register_buffer("mirror", t(mirror).long())
        self.register_buffer("region_labels", t(region_labels).to(torch.int8))
        self.register_buffer("skin_mask", t(skin_mask).bool())
        self.register_buffer("region_weights", t(region_weights).float())
        self.albedo_mean: torch.Tensor | None
        self.albedo_basis: torch.Tensor | None
        self.register_buffer("albedo_mean", None if albedo_mean is None else t(albedo_mean).float())
        self.register_buffer("albedo_basis", None if albedo_basis is None else t(albedo_basis).float())
        self.expression_names: tuple[str, ...] = tuple(expression_names)
        self._landmark_schemes = dict(landmark_schemes or {})
        for name, scheme in self._landmark_schemes.items():
            self.register_buffer(f"_landmarks_{name}", scheme.vertex_indices.long())
            self.register_buffer(f"_contour_{name}", scheme.contour.bool())
            self.register_buffer(f"_lmtriangles_{name}", scheme.triangles.long())
            self.register_buffer(f"_lmweights_{name}", scheme.weights.float())
            self.register_buffer(f"_lmvalid_{name}", scheme.valid.bool())
            poses = scheme.poses
            self.register_buffer(f"_lmposetri_{name}", None if poses is None else poses.triangles.long())
            self.register_buffer(f"_lmposew_{name}", None if poses is None else poses.weights.float())
        self._landmark_pose_grids = {
            name: (scheme.poses.yaws, scheme.poses.pitches) for name, scheme in self._landmark_schemes.items() if scheme.poses
        }
        full = (sizes["V"], sizes["F"])
        self._submesh_sizes: dict[str, tuple[int, int]] = dict(submeshes or {})
        self._submesh_sizes.setdefault("full", full)
        self.info: dict[str, Any] = dict(info or {})

    # ----------------------------------------------------------------------------------------- sizes
    @property
    def vertex_count(self) -> int:
        return int(self.mean.shape[0])

    @property
    def identity_count(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def expression_count(self) -> int:
        return int(self.expression_basis.shape[0])

    @property
    def submesh_names(self) -> tuple[str, ...]:
        return tuple(self._submesh_sizes)

    @property
    def landmark_scheme_names(self) -> tuple[str, ...]:
        return tuple(self._landmark_schemes)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name.lower() for r in Region)

    # ------------------------------------------------------------------------------------ structure
    def submesh(self, name: str = "full") -> SubMesh:
        """The named sub-mesh (``face``, ``narrow_face``, ``skin``, ``head``, ``full``)."""
        check_choice(name, "submesh", self.submesh_names)
        vertex_count, triangle_count = self._submesh_sizes[name]
        return SubMesh(name, vertex_count, self.triangles[:triangle_count], self.uv_triangles[:triangle_count])

    def landmarks(self, scheme: str = "ibug68") -> LandmarkScheme:
        """A landmark scheme (vertex indices, and triangles with barycentric weights) on this model's device.

        ``"ibug68"`` and the jawlines are vertex schemes; ``"mediapipe478"`` is barycentric, with a per-pose table,
        and exists once the model has been calibrated (``facerecon model calibrate``).
        """
        check_choice(scheme, "scheme", self.landmark_scheme_names)
        grid = self._landmark_pose_grids.get(scheme)
        poses = None if grid is None else LandmarkPoseTable(*grid, getattr(self, f"_lmposetri_{scheme}"), getattr(self, f"_lmposew_{scheme}"))
        return LandmarkScheme(
            scheme,
            getattr(self, f"_landmarks_{scheme}"),
            getattr(self, f"_contour_{scheme}"),
            getattr(self, f"_lmtriangles_{scheme}"),
            getattr(self, f"_lmweights_{scheme}"),
            getattr(self, f"_lmvalid_{scheme}"),
            poses,
        )

    def expression_index(self, name: str) -> int:
        """The index of a named expression (e.g. ``"jawOpen"``)."""
        check_choice(name, "expression name", self.expression_names)
        return self.expression_names.index(name)

    def region_mask(self, *regions: Region | str) -> torch.Tensor:
        """``(V,)`` bool: vertices in any of the given regions (enum members or lower-case names)."""
        wanted = [Region[r.upper()] if isinstance(r, str) else Region(r) for r in regions]
        return torch.isin(self.region_labels, torch.tensor([int(r) for r in wanted], dtype=torch.int8, device=self.region_labels.device))

    def vertex_adjacency(self, submesh: str = "full") -> torch.Tensor:
        """The 0/1 vertex adjacency ``(V_sub, V_sub)`` of a sub-mesh (sparse COO, float32)."""
        sub = self.submesh(submesh)
        return vertex_adjacency(sub.triangles, sub.vertex_count)

    def laplacian(self, submesh: str = "full", *, normalized: bool = True) -> torch.Tensor:
        """The uniform Laplacian ``(V_sub, V_sub)`` of a sub-mesh (sparse COO): ``I - D^-1 A`` when normalized.

        ``(L @ x)_i`` is ``x_i`` minus the mean of its neighbours (paper 004's smoothness term, eq. 12).
        """
        sub = self.submesh(submesh)
        return uniform_laplacian(sub.triangles, sub.vertex_count, normalized=normalized)

    def region_weight_map(self, size: int = 256) -> np.ndarray:
        """Paper 002's region weights (16 : 5 : 4 : 3 : 0) painted in UV space.

        Each UV triangle takes the largest weight of its three vertices (so a landmark's neighbourhood keeps
        its weight up to the triangle edges); texels outside every triangle are 0. Rows run top (v = 1) to
        bottom (v = 0), texel centres at ((col + 0.5) / size, 1 - (row + 0.5) / size).

        Returns:
            ``(size, size)`` float32.
        """
        import cv2

        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size: expected an integer >= 8, got {size!r}")
        weights = self.region_weights.cpu().numpy()
        tri_weight = weights[self.triangles.cpu().numpy()].max(axis=1)
        uv = self.uvs.cpu().numpy()
        # cv2 fills pixels whose centres lie inside; texel centre (col + 0.5, row + 0.5) in these units.
        shift = 4
        pts = np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], axis=1)
        pts = np.round(pts * (1 << shift)).astype(np.int32)[self.uv_triangles.cpu().numpy()]
        out = np.zeros((size, size), dtype=np.float32)
        for value in np.unique(tri_weight):  # paint low weights first so high ones win on shared edges
            if value <= 0:
                continue
            cv2.fillPoly(out, list(pts[tri_weight == value]), float(value), lineType=cv2.LINE_8, shift=shift)
        return out

    # -------------------------------------------------------------------------------------- forward
    def forward(
        self,
        identity: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        *,
        submesh: str = "full",
    ) -> torch.Tensor:
        """Vertices of faces with the given coefficients.

        Args:
            identity: ``(B, K_id)`` float identity coefficients (N(0, 1) prior), or None for the mean identity.
            expression: ``(B, K_exp)`` float expression weights (in [0, 1] for plausible faces; not clamped,
                so optimisers may step outside), or None for the neutral expression.
            submesh: compute only this sub-mesh's vertices (``"face"`` for fitting, ``"head"``, ``"full"``).

        Returns:
            ``(B, V_sub, 3)`` vertices in mm, on the inputs' device and in their dtype.
        """
        check_choice(submesh, "submesh", self.submesh_names)
        count = self._submesh_sizes[submesh][0]
        sizes: dict[str, int] = {}
        reference: torch.Tensor | None = None
        for name, value, k in (("identity", identity, self.identity_count),
                               ("expression", expression, self.expression_count)):  # fmt: skip
            if value is None:
                continue
            check_shape(value, name, ("B", k), sizes)
            check_floating(value, name)
            check_same_device("the model's buffers", self.mean, name, value)
            if reference is not None and value.dtype != reference.dtype:
                raise TypeError(f"{name}: expected dtype {reference.dtype} (the dtype of identity), got {value.dtype}")
            reference = value
        dtype = reference.dtype if reference is not None else self.mean.dtype
        batch = sizes.get("B", 1)
        vertices = self.mean[:count].to(dtype).expand(batch, count, 3)
        # v = mean + identity @ identity_basis + expression @ expression_basis, with the bases seen as
        # (K, V*3) matrices; a sub-mesh is a column prefix of that view (strided, so nothing is copied).
        if identity is not None:
            basis = self.identity_basis.view(self.identity_count, -1)[:, : count * 3].to(dtype)
            vertices = vertices + (identity @ basis).view(batch, count, 3)
        if expression is not None:
            basis = self.expression_basis.view(self.expression_count, -1)[:, : count * 3].to(dtype)
            vertices = vertices + (expression @ basis).view(batch, count, 3)
        return vertices if (identity is not None or expression is not None) else vertices.clone()

    # --------------------------------------------------------------------------------------- export
    def to_mesh(
        self,
        vertices: torch.Tensor | None = None,
        *,
        submesh: str = "head",
        expression: torch.Tensor | None = None,
        texture: np.ndarray | None = None,
        vertex_colors: np.ndarray | None = None,
        with_morph_targets: bool = True,
        name: str = "face",
    ) -> Mesh:
        """A :class:`~facerecon.core.mesh.Mesh` for export.

        Args:
            vertices: ``(V, 3)`` or ``(V_sub, 3)`` vertices of one face in mm (default: the mean face). When
                ``expression`` is given these are the posed vertices and the morph targets' base is
                ``vertices - expression @ basis``, so an engine that applies the weights reproduces them.
            submesh: which part to export (``"head"``: skin, mouth, teeth and eyes).
            expression: ``(K_exp,)`` weights to store as the morph targets' default weights.
            texture: ``(H, W, 3)`` uint8 texture for the model's UV layout.
            vertex_colors: ``(V_sub, 3)`` uint8.
            with_morph_targets: include one morph target per expression, named as the model names them.
        """
        sub = self.submesh(submesh)
        n = sub.vertex_count
        if vertices is None:
            vertices = self.mean[:n]
        check_floating(vertices, "vertices")
        if vertices.ndim != 2 or vertices.shape[-1] != 3 or vertices.shape[0] not in (n, self.vertex_count):
            raise ValueError(f"vertices: expected shape ({n}, 3) or ({self.vertex_count}, 3), got {tuple(vertices.shape)}")
        verts = vertices[:n].detach().cpu().double()
        deltas = self.expression_basis[:, :n].detach().cpu().double()
        weights = None
        if expression is not None:
            check_shape(expression, "expression", (self.expression_count,))
            weights = expression.detach().cpu().double()
            verts = verts - torch.einsum("k,kvc->vc", weights, deltas)
        # UVs: keep only the UV entries this sub-mesh uses, re-indexed.
        uv_tri = sub.uv_triangles.cpu().numpy()
        used, uv_faces = np.unique(uv_tri, return_inverse=True)
        return Mesh(
            vertices=verts.numpy(),
            faces=sub.triangles.cpu().numpy(),
            uvs=self.uvs.cpu().numpy()[used].astype(np.float64),
            uv_faces=uv_faces.reshape(-1, 3).astype(np.int64),
            texture=texture,
            vertex_colors=vertex_colors,
            morph_names=self.expression_names if with_morph_targets else (),
            morph_deltas=deltas.numpy() if with_morph_targets else None,
            morph_weights=(weights.numpy() if weights is not None else np.zeros(self.expression_count))
            if with_morph_targets
            else None,
            name=name,
        )

    def extra_repr(self) -> str:
        return (
            f"vertices={self.vertex_count}, triangles={self.triangles.shape[0]}, identity={self.identity_count}, "
            f"expressions={self.expression_count}, submeshes={list(self.submesh_names)}"
        )
