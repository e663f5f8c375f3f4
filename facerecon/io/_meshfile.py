"""What the mesh formats share: path and mesh checks, one-line file errors, texture PNGs, polygon fans.

Private to :mod:`facerecon.io`: :mod:`~facerecon.io.obj`, :mod:`~facerecon.io.ply` and
:mod:`~facerecon.io.gltf` import this module and nothing of each other (nor :mod:`facerecon.io.mesh`, the
dispatcher that imports them), so imports run one way: ``mesh`` → formats → ``_meshfile`` → ``core``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from facerecon.core.check import describe
from facerecon.core.errors import MeshFileError
from facerecon.core.mesh import Mesh

#: The name the writers put in comments and headers.
GENERATOR = "facerecon"


def fail(path: Path, what: str) -> MeshFileError:
    """``MeshFileError("<path>: <what>")`` on one line (runs of whitespace in ``what`` become one space)."""
    return MeshFileError(f"{path}: {' '.join(str(what).split())}")


def check_mesh(mesh: object, texture: bool = True) -> Mesh:
    """``mesh`` itself when it is a :class:`Mesh`; ``texture``: the format writes the texture, so it needs UVs.

    Raises:
        TypeError: not a ``Mesh``.
        ValueError: ``texture`` and the mesh has a texture but no UVs.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh: expected a facerecon.core.mesh.Mesh, got {describe(mesh)}")
    if texture and mesh.texture is not None and mesh.uvs is None:
        raise ValueError("mesh: has a texture but no uvs/uv_faces, so the texture cannot be mapped")
    return mesh


def output_path(path: object, suffix: str) -> Path:
    """The file a writer is asked for, checked to be a path ending in ``suffix`` (any case).

    Raises:
        TypeError: not a ``str`` or ``os.PathLike``.
        ValueError: another extension.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path ending in {suffix}, got {describe(path)}")
    p = Path(path)
    if p.suffix.lower() != suffix:
        raise ValueError(f"path: expected a file name ending in {suffix}, got {p.name!r}")
    return p


def input_path(path: object, suffixes: tuple[str, ...], kind: str) -> Path:
    """The file a reader is asked for, checked to exist, be a regular file and end in one of ``suffixes``.

    Raises:
        TypeError: not a ``str`` or ``os.PathLike``.
        MeshFileError: another extension, no such file, not a regular file (``kind`` names the format).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {describe(path)}")
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise fail(p, f"expected a {kind} file ({', '.join(suffixes)}), got the extension {p.suffix or '(none)'!r}")
    if not p.exists():
        raise fail(p, "no such file")
    if not p.is_file():
        raise fail(p, "is not a regular file")
    return p


def read_bytes(p: Path) -> bytes:
    """The whole file; ``MeshFileError`` when it cannot be read or is empty."""
    try:
        data = p.read_bytes()
    except OSError as err:
        raise fail(p, f"cannot read the file: {err.strerror or err}") from None
    if not data:
        raise fail(p, "the file is empty")
    return data


#: zlib level of written textures: 3 encodes a 1024 px face texture in 90 ms against 270 ms at Pillow's default 6,
#: for a file 15 % larger (measured: 797 KB against 689 KB); 1 is 57 ms and 26 % larger.
PNG_LEVEL = 3
_PNG_CACHE: dict[bytes, bytes] = {}
_PNG_CACHE_SIZE = 4


def png_bytes(texture: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 RGB texture encoded as PNG (zlib level :data:`PNG_LEVEL`).

    The last few encodings are kept by content digest: the same texture written into several files (``mesh.obj``'s
    ``texture.png``, ``face.glb``, ``mesh_detailed.glb``) is encoded once.
    """
    texture = np.ascontiguousarray(texture)
    key = hashlib.blake2b(texture.data, digest_size=16, key=repr((texture.shape, texture.dtype.str)).encode()).digest()
    cached = _PNG_CACHE.get(key)
    if cached is not None:
        return cached
    buffer = io.BytesIO()
    Image.fromarray(texture, "RGB").save(buffer, "PNG", compress_level=PNG_LEVEL)
    data = buffer.getvalue()
    if len(_PNG_CACHE) >= _PNG_CACHE_SIZE:
        _PNG_CACHE.pop(next(iter(_PNG_CACHE)))
    _PNG_CACHE[key] = data
    return data


def decode_texture(data: bytes, label: str) -> np.ndarray:
    """Decode an embedded or referenced texture to ``(H, W, 3)`` uint8 (alpha dropped: textures are opaque)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except Exception as err:  # any decoder failure is a corrupt texture
        raise MeshFileError(f"{label}: cannot decode the texture image ({' '.join(str(err).split())})") from None


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than ``A-Za-z0-9_.-`` replaced by ``_`` (``"face"`` if empty)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "face"


def fan(counts: np.ndarray) -> np.ndarray:
    """Corner positions of the fan triangles of polygons with ``counts`` corners laid out one after another.

    Polygon ``q`` with corners ``(a, b, c, d, ...)`` gives ``(a, b, c), (a, c, d), ...`` in polygon order
    (the quad split of docs/conventions.md). Returns ``(T, 3)`` int64 indices into the flat corner list.
    """
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per = counts - 2
    poly = np.repeat(np.arange(len(counts)), per)
    step = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per) + 1
    first = starts[poly]
    return np.stack([first, first + step, first + step + 1], axis=1)
