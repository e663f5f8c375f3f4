"""Install the ICT Face Model Light from its official archive into facerecon's model cache.

The archive (zip, tar(.gz) or an extracted folder; a path or an http(s) URL) is read in memory, its 154
OBJs are parsed, centimetres become millimetres, and a compact cache is written atomically:

``$FACERECON_HOME/models/ict-facekit/``
    ``model.npz``  float32 mean and bases (mm), int64 topology, UVs, regions, mirror map, landmarks;
    ``meta.json``  format version, source, its SHA-256 / size / mtime, counts, licence;
    ``LICENSE``    the model's licence text from the archive.

Example:
    >>> from facerecon.models.ict import install_ict
    >>> result = install_ict("ICT-FaceKit-master.zip")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from facerecon.core.errors import ModelCacheError, ModelSourceError
from facerecon.core.paths import facerecon_home
from facerecon.io.atomic import atomic_directory, write_text_atomic
from facerecon.io.download import DownloadError, download, is_url
from facerecon.models import ict_layout as layout
from facerecon.models.archive import ArchiveReader
from facerecon.models.obj_parse import ObjParseError, parse_obj, parse_obj_vertices, triangulate
from facerecon.models.regions import Region, label_face_regions, region_weights, skin_mask
from facerecon.models.registry import ICT_FACEKIT
from facerecon.models.symmetry import mirror_map

SOURCE_ENV = "FACERECON_ICT_SOURCE"
FORMAT_VERSION = 1
CM_TO_MM = 10.0
CACHE_SUBDIR = Path("models") / "ict-facekit"


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_ict` did.

    Attributes:
        path: the cache directory.
        source: the source it was installed from (path or URL).
        sha256: SHA-256 of the source (of the archive file; for a folder, of its model files).
        installed: True when the cache was (re)written, False when an identical install was reused.
        seconds: wall time of the call.
    """

    path: Path
    source: str
    sha256: str
    installed: bool
    seconds: float


def cache_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """The ICT model's cache directory under ``home`` (default ``$FACERECON_HOME``)."""
    return (Path(home) if home is not None else facerecon_home()) / CACHE_SUBDIR


def default_source() -> str:
    """``$FACERECON_ICT_SOURCE`` when set, else the official archive's URL."""
    return os.environ.get(SOURCE_ENV) or ICT_FACEKIT.url


def read_meta(home: str | os.PathLike[str] | None = None) -> dict | None:
    """The installed cache's ``meta.json``, or None when nothing (readable) is installed."""
    meta_path = cache_dir(home) / "meta.json"
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _folder_sha256(path: Path) -> str:
    """A digest of a folder's model files: their relative names and contents, in sorted order."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and "FaceXModel" in p.parts):
        digest.update(f.relative_to(path).as_posix().encode() + b"\0")
        digest.update(_file_sha256(f).encode())
    return digest.hexdigest()


def source_fingerprint(source: str) -> dict:
    """Size and modification time of a local source (for a folder: over its files), to notice changes cheaply."""
    p = Path(source)
    if is_url(source) or not p.exists():
        return {}
    if p.is_dir():
        stats = [f.stat() for f in p.rglob("*") if f.is_file()]
        return {
            "files": len(stats),
            "size": sum(st.st_size for st in stats),
            "mtime_ns": max((st.st_mtime_ns for st in stats), default=0),
        }
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _find_model_folder(names: list[str], source: str) -> str:
    """The archive prefix that holds ``FaceXModel/generic_neutral_mesh.obj``."""
    hits = [n for n in names if PurePosixPath(n).name == "generic_neutral_mesh.obj" and "FaceXModel" in n]
    if not hits:
        raise ModelSourceError(
            f"{source} is not the ICT-FaceKit archive: it has no FaceXModel/generic_neutral_mesh.obj"
        )
    return str(PurePosixPath(sorted(hits, key=len)[0]).parent)


def _parse_archive(archive: ArchiveReader, source: str) -> dict[str, np.ndarray | list | str]:
    names = archive.names()
    folder = _find_model_folder(names, source)

    def member(name: str) -> str:
        path = f"{folder}/{name}"
        if path not in archive.names():
            raise ModelSourceError(f"{source} is incomplete: {path} is missing")
        return path

    try:
        index = json.loads(archive.read(member("vertex_indices.json")))
        expression_names = [str(n) for n in index["expressions"]]
    except (ValueError, KeyError, TypeError) as err:
        raise ModelSourceError(f"{source}: FaceXModel/vertex_indices.json is unreadable: {err}") from None
    try:
        neutral = parse_obj(archive.read(member("generic_neutral_mesh.obj")))
    except ObjParseError as err:
        raise ModelSourceError(f"{source}: generic_neutral_mesh.obj: {err}") from None
    if len(neutral.vertices) != layout.VERTEX_COUNT or len(neutral.corner_counts) != layout.POLYGON_COUNT:
        raise ModelSourceError(
            f"{source}: generic_neutral_mesh.obj has {len(neutral.vertices)} vertices and "
            f"{len(neutral.corner_counts)} faces, expected {layout.VERTEX_COUNT} and {layout.POLYGON_COUNT}"
        )
    if (neutral.uv_index[:, :3] < 0).any():
        raise ModelSourceError(f"{source}: generic_neutral_mesh.obj has faces without texture coordinates")

    def deltas(file_names: list[str]) -> np.ndarray:
        out = np.empty((len(file_names), layout.VERTEX_COUNT, 3), dtype=np.float32)
        for k, name in enumerate(file_names):
            try:
                shape = parse_obj_vertices(archive.read(member(name)))
            except ObjParseError as err:
                raise ModelSourceError(f"{source}: {name}: {err}") from None
            if shape.shape != (layout.VERTEX_COUNT, 3):
                raise ModelSourceError(
                    f"{source}: {name} has {len(shape)} vertices, expected {layout.VERTEX_COUNT}"
                )
            out[k] = (shape - neutral.vertices) * CM_TO_MM
        return out

    identity = deltas([f"identity{k:03d}.obj" for k in range(layout.IDENTITY_COUNT)])
    expression = deltas([f"{name}.obj" for name in expression_names])
    licence_path = str(PurePosixPath(folder).parent / "LICENSE")  # the archive root, beside FaceXModel/
    licence = archive.read(licence_path).decode("utf-8", "replace") if licence_path in names else ""
    return {
        "neutral": neutral,
        "identity": identity,
        "expression": expression,
        "expression_names": expression_names,
        "licence": licence,
    }


def _build_arrays(parsed: dict) -> dict[str, np.ndarray]:
    neutral = parsed["neutral"]
    mean = (neutral.vertices * CM_TO_MM).astype(np.float64)
    triangles, polygon_of_triangle = triangulate(neutral.vertex_index, neutral.corner_counts)
    uv_triangles, _ = triangulate(neutral.uv_index, neutral.corner_counts)
    G = layout.GEOMETRIES
    mirror = mirror_map(mean, [(G[a][0], G[b][0]) for a, b in layout.MIRROR_PARTS])
    other_parts = {
        Region.NECK_BACK_OF_HEAD: [G["head_and_neck"][0]],
        Region.MOUTH_INTERIOR: [G["mouth_socket"][0], G["gums_and_tongue"][0], G["teeth"][0]],
        Region.EYEBALLS: [r for name, (r, _) in G.items() if name.startswith(("eye", "lacrimal"))],
    }
    labels = label_face_regions(mean, layout.IBUG68, G["face"][0], layout.NARROW_FACE[0], other_parts)
    # Triangle counts of each sub-mesh prefix (quads become two triangles).
    submesh_names = list(layout.SUBMESH_PREFIXES)
    triangle_counts = [
        int(np.searchsorted(polygon_of_triangle, polygons, side="left"))
        for _, polygons in layout.SUBMESH_PREFIXES.values()
    ]
    return {
        "mean": mean.astype(np.float32),
        "identity_basis": parsed["identity"],
        "expression_basis": parsed["expression"],
        "triangles": triangles.astype(np.int64),
        "uvs": neutral.uvs.astype(np.float32),
        "uv_triangles": uv_triangles.astype(np.int64),
        "polygon_of_triangle": polygon_of_triangle.astype(np.int64),
        "mirror": mirror,
        "region_labels": labels,
        "skin_mask": skin_mask(labels),
        "region_weights": region_weights(mean, labels, layout.IBUG68),
        "ibug68": np.asarray(layout.IBUG68, dtype=np.int64),
        "right_jawline": np.asarray(layout.RIGHT_JAWLINE, dtype=np.int64),
        "left_jawline": np.asarray(layout.LEFT_JAWLINE, dtype=np.int64),
        "right_jawline_extended": np.asarray(layout.RIGHT_JAWLINE_EXTENDED, dtype=np.int64),
        "left_jawline_extended": np.asarray(layout.LEFT_JAWLINE_EXTENDED, dtype=np.int64),
        "expression_names": np.asarray(parsed["expression_names"]),
        "region_names": np.asarray([r.name.lower() for r in Region]),
        "submesh_names": np.asarray(submesh_names),
        "submesh_vertex_counts": np.asarray([v for v, _ in layout.SUBMESH_PREFIXES.values()], dtype=np.int64),
        "submesh_triangle_counts": np.asarray(triangle_counts, dtype=np.int64),
    }


def _resolve_source(source: str, home: str | os.PathLike[str] | None, progress: bool) -> tuple[Path, str, Path | None]:
    """A local path for ``source`` and its SHA-256; a URL is downloaded into a scratch folder first.

    Returns:
        ``(path, sha256, scratch)``; the caller removes ``scratch`` (None for local sources).
    """
    if is_url(source):
        parent = cache_dir(home).parent
        parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".download.", dir=parent))
        target = scratch / (PurePosixPath(source.split("?")[0]).name or "ict-facekit.zip")
        try:
            sha = download(source, target, progress=progress)
        except DownloadError as err:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ModelSourceError(str(err)) from None
        return target, sha, scratch
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelSourceError(f"model source not found: {path}")
    return path, (_folder_sha256(path) if path.is_dir() else _file_sha256(path)), None


def install_ict(
    source: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> InstallResult:
    """Install (or verify) the ICT Face Model Light in the cache.

    Args:
        source: archive or folder path, or URL; default ``$FACERECON_ICT_SOURCE``, else the official URL.
        home: cache root; default ``$FACERECON_HOME`` or ``~/.cache/facerecon``.
        force: rewrite the cache even if it was installed from the same source bytes.
        progress: show a progress bar while downloading.

    Returns:
        An :class:`InstallResult`. An existing cache is reused only when its format version and the
        source's SHA-256 match; a source with another SHA-256 is always re-installed.

    Raises:
        ModelSourceError: missing path, unreachable URL, corrupt/truncated/unsafe archive, an archive
            without FaceXModel, or OBJs with the wrong vertex count. Nothing is left in the cache.
    """
    started = time.perf_counter()
    source = str(source) if source is not None else default_source()
    target = cache_dir(home)
    local, sha, scratch = _resolve_source(source, home, progress)
    try:
        meta = read_meta(home)
        if (
            not force
            and meta is not None
            and meta.get("format_version") == FORMAT_VERSION
            and meta.get("source_sha256") == sha
            and (target / "model.npz").is_file()
        ):
            if meta.get("source") != source or meta.get("source_fingerprint") != source_fingerprint(source):
                meta.update(source=source, source_fingerprint=source_fingerprint(source))
                write_text_atomic(target / "meta.json", json.dumps(meta, indent=2))
            return InstallResult(target, source, sha, False, time.perf_counter() - started)
        with ArchiveReader.open(local) as archive:
            parsed = _parse_archive(archive, source)
        arrays = _build_arrays(parsed)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    with atomic_directory(target) as tmp:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        (tmp / "model.npz").write_bytes(buffer.getvalue())
        (tmp / "LICENSE").write_text(parsed["licence"] or f"{ICT_FACEKIT.licence}: see {ICT_FACEKIT.homepage}\n")
        meta = {
            "format_version": FORMAT_VERSION,
            "name": ICT_FACEKIT.name,
            "description": ICT_FACEKIT.description,
            "licence": ICT_FACEKIT.licence,
            "attribution": layout.ATTRIBUTION,
            "homepage": ICT_FACEKIT.homepage,
            "source": source,
            "source_sha256": sha,
            "source_fingerprint": source_fingerprint(source),
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "units": "mm",
            "vertices": int(arrays["mean"].shape[0]),
            "triangles": int(arrays["triangles"].shape[0]),
            "source_polygons": layout.POLYGON_COUNT,
            "identity_modes": int(arrays["identity_basis"].shape[0]),
            "expression_modes": int(arrays["expression_basis"].shape[0]),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return InstallResult(target, source, sha, True, time.perf_counter() - started)


def ensure_installed(home: str | os.PathLike[str] | None = None, *, progress: bool = True) -> Path:
    """Install on first use, or re-install when ``$FACERECON_ICT_SOURCE`` names a local file that changed.

    A changed local source (other size or mtime than recorded) is hashed; a different SHA-256 means a
    re-install, never a silent reuse. URL sources are not re-fetched once installed.

    Returns:
        The cache directory.
    """
    meta = read_meta(home)
    target = cache_dir(home)
    if meta is None or not (target / "model.npz").is_file():
        install_ict(home=home, progress=progress)
        return target
    if meta.get("format_version") != FORMAT_VERSION:
        install_ict(meta.get("source") or None, home=home, progress=progress, force=True)
        return target
    env_source = os.environ.get(SOURCE_ENV)
    if env_source and not is_url(env_source):
        if env_source != meta.get("source") or source_fingerprint(env_source) != meta.get("source_fingerprint"):
            install_ict(env_source, home=home, progress=progress)
    return target


def load_arrays(home: str | os.PathLike[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The cache's arrays and metadata.

    Raises:
        ModelCacheError: the cache is missing, of another format version, or unreadable.
    """
    target = cache_dir(home)
    meta = read_meta(home)
    if meta is None:
        raise ModelCacheError(f"no ICT model installed in {target}; run `facerecon model install`")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelCacheError(
            f"the ICT model cache in {target} has format version {meta.get('format_version')}, this facerecon "
            f"reads version {FORMAT_VERSION}; run `facerecon model install --force`"
        )
    try:
        with np.load(target / "model.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise ModelCacheError(f"the ICT model cache in {target} is unreadable ({err}); run `facerecon model install --force`") from None
    return arrays, meta
