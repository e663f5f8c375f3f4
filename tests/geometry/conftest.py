"""Fixtures of the geometry tests: the ICT-FaceKit neutral face read straight from the shared archive."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

NEUTRAL = "ICT-FaceKit-master/FaceXModel/generic_neutral_mesh.obj"


def read_obj_from_zip(zip_path: Path, member: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) cm and triangles (F, 3) of an OBJ in a zip; quads (a, b, c, d) -> (a, b, c), (a, c, d)."""
    with zipfile.ZipFile(zip_path) as z:
        lines = z.read(member).decode("ascii").splitlines()
    vertices, triangles = [], []
    for line in lines:
        if line.startswith("v "):
            vertices.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(c.split("/")[0]) - 1 for c in line.split()[1:]]
            for k in range(1, len(idx) - 1):
                triangles.append([idx[0], idx[k], idx[k + 1]])
    return np.asarray(vertices, dtype=np.float64), np.asarray(triangles, dtype=np.int64)


@pytest.fixture(scope="session")
def ict_neutral(ict_zip: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The ICT generic neutral mesh as float64 vertices ``(V, 3)`` in mm and int64 triangles ``(F, 3)``."""
    v, f = read_obj_from_zip(ict_zip, NEUTRAL)
    return torch.from_numpy(v * 10.0), torch.from_numpy(f)
