"""A plain triangle mesh container for export and display (NumPy at the edges of the library)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facerecon.core.check import check_index_range, check_shape


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh with optional UVs, texture, vertex colours and named morph targets.

    Attributes:
        vertices: ``(V, 3)`` float positions in model millimetres.
        faces: ``(F, 3)`` int64 vertex indices, counter-clockwise seen from outside.
        uvs: ``(T, 2)`` float texture coordinates in [0, 1], v up (OBJ/glTF-before-flip convention), or None.
        uv_faces: ``(F, 3)`` int64 indices into ``uvs`` per face corner, or None.
        texture: ``(H, W, 3)`` uint8 RGB image; row 0 is the top of the image (v = 1), or None.
        vertex_colors: ``(V, 3)`` uint8 RGB, or None.
        morph_names: names of the morph targets (e.g. ARKit blendshape names).
        morph_deltas: ``(K, V, 3)`` float offsets from ``vertices`` per morph target, mm, or None.
        morph_weights: ``(K,)`` float current weights of the morph targets, or None.
        name: a short name used for files and scene nodes.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    morph_names: tuple[str, ...] = field(default_factory=tuple)
    morph_deltas: np.ndarray | None = None
    morph_weights: np.ndarray | None = None
    name: str = "face"

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        check_shape(self.vertices, "vertices", ("V", 3), sizes)
        check_shape(self.faces, "faces", ("F", 3), sizes)
        check_index_range(self.faces, "faces", sizes["V"])
        if (self.uvs is None) != (self.uv_faces is None):
            raise ValueError("uvs: uvs and uv_faces must be given together, got only one of them")
        if self.uvs is not None:
            check_shape(self.uvs, "uvs", ("T", 2), sizes)
            check_shape(self.uv_faces, "uv_faces", ("F", 3), sizes)
            check_index_range(self.uv_faces, "uv_faces", sizes["T"])
        if self.texture is not None:
            check_shape(self.texture, "texture", (None, None, 3))
            if self.texture.dtype != np.uint8:
                raise TypeError(f"texture: expected dtype uint8, got {self.texture.dtype}")
        if self.vertex_colors is not None:
            check_shape(self.vertex_colors, "vertex_colors", ("V", 3), sizes)
            if self.vertex_colors.dtype != np.uint8:
                raise TypeError(f"vertex_colors: expected dtype uint8, got {self.vertex_colors.dtype}")
        if self.morph_deltas is not None:
            check_shape(self.morph_deltas, "morph_deltas", ("K", "V", 3), sizes)
            if len(self.morph_names) != sizes["K"]:
                raise ValueError(
                    f"morph_names: expected {sizes['K']} names (one per morph target), got {len(self.morph_names)}"
                )
            if self.morph_weights is not None:
                check_shape(self.morph_weights, "morph_weights", ("K",), sizes)
        elif self.morph_names or self.morph_weights is not None:
            raise ValueError("morph_names: given without morph_deltas")
