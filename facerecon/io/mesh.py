"""Mesh files by extension: ``.obj`` (+ MTL + PNG), ``.ply`` and ``.glb``, one module per format.

The formats live in :mod:`facerecon.io.obj`, :mod:`facerecon.io.ply` and :mod:`facerecon.io.gltf`, each
ending in a ``READERS`` / ``WRITERS`` table keyed by lower-case extension; this module merges the tables
into :func:`read_mesh` / :func:`write_mesh` and re-exports the OBJ and PLY functions. Imports run one way:
this module → the formats → :mod:`facerecon.io._meshfile` (their shared helpers) → ``core``.

All writers take a :class:`facerecon.core.mesh.Mesh` (model millimetres, y up, z out of the face) and
write every file atomically (:mod:`facerecon.io.atomic`). All readers return a ``Mesh`` and raise
:class:`MeshFileError` (one line naming the file) for a missing file, a wrong extension, or a corrupt or
unsupported file.

Example:
    >>> write_mesh("out/face.glb", mesh)    # metres, with the texture and morph targets  # doctest: +SKIP
    >>> read_mesh("out/face.glb").morph_names[:2]  # doctest: +SKIP
    ('jawOpen', 'eyeBlink_L')
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from facerecon.core.check import describe
from facerecon.core.errors import MeshFileError
from facerecon.core.mesh import Mesh
from facerecon.io import gltf, obj, ply
from facerecon.io._meshfile import fail
from facerecon.io.obj import read_obj, write_obj
from facerecon.io.ply import read_ply, write_ply

__all__ = ["MeshFileError", "read_mesh", "read_obj", "read_ply", "write_mesh", "write_obj", "write_ply"]

_READERS: dict[str, Callable[[str | os.PathLike[str]], Mesh]] = {**obj.READERS, **ply.READERS, **gltf.READERS}
_WRITERS: dict[str, Callable[[str | os.PathLike[str], Mesh], None]] = {**obj.WRITERS, **ply.WRITERS, **gltf.WRITERS}


def _suffix(path: object) -> str:
    return Path(path).suffix.lower() if isinstance(path, (str, os.PathLike)) else ""


def _one_of(table: dict[str, object]) -> str:
    """``".obj, .ply or .glb"``: the extensions of a table, for messages."""
    *rest, last = table
    return f"{', '.join(rest)} or {last}" if rest else last


def write_mesh(path: str | os.PathLike[str], mesh: Mesh) -> None:
    """Write ``mesh`` in the format its extension names: ``.obj`` (+ MTL/PNG), ``.ply`` or ``.glb`` (metres).

    An OBJ's texture is named after it (``face.obj`` → ``face.png``); each format's defaults otherwise.

    Raises:
        ValueError: no path, or an extension no format writes.
        TypeError: not a ``Mesh`` (and the errors of the format's writer).
    """
    suffix = _suffix(path)
    writer = _WRITERS.get(suffix)
    if writer is None:
        got = describe(path) if not suffix else repr(str(path))
        raise ValueError(f"path: expected a file name ending in {_one_of(_WRITERS)}, got {got}")
    writer(path, mesh)


def read_mesh(path: str | os.PathLike[str]) -> Mesh:
    """Read an ``.obj``, ``.ply`` or ``.glb`` file by its extension (see the readers for what comes back).

    Raises:
        TypeError: ``path`` is not a path.
        MeshFileError: an extension no format reads (and the errors of the format's reader).
    """
    reader = _READERS.get(_suffix(path))
    if reader is not None:
        return reader(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {describe(path)}")
    raise fail(Path(path), f"expected a mesh file ending in {_one_of(_READERS)}")
