"""Installing the ICT model: from the zip, a folder and a real HTTP server; every bad source; re-installs."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from facerecon.core.errors import ModelCacheError, ModelSourceError
from facerecon.models import load_model
from facerecon.models.ict import SOURCE_ENV, cache_dir, install_ict, load_arrays, read_meta

FOLDER = "ICT-FaceKit-master/FaceXModel"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_nothing_installed(home: Path) -> None:
    target = cache_dir(home)
    assert not target.exists()
    leftovers = [p.name for p in target.parent.iterdir()] if target.parent.exists() else []
    assert leftovers == [], leftovers


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /truncated/NAME announces the full length but sends half and closes."""

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def http_server(ict_zip: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the folder of the shared ICT zip."""
    handler = lambda *a, **k: _Handler(*a, directory=str(ict_zip.parent), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_install_from_zip_records_source_and_reuses_it(model_home: Path, ict_zip: Path) -> None:
    meta = read_meta(model_home)
    assert meta is not None
    assert meta["source_sha256"] == _sha256(ict_zip)
    assert meta["vertices"] == 26_719 and meta["identity_modes"] == 100 and meta["expression_modes"] == 53
    assert meta["units"] == "mm" and meta["licence"] == "MIT"
    assert "MIT License" in (cache_dir(model_home) / "LICENSE").read_text()
    again = install_ict(str(ict_zip), home=model_home)
    assert again.installed is False and again.sha256 == meta["source_sha256"]


def test_install_through_http(http_server: str, ict_zip: Path, tmp_path: Path) -> None:
    result = install_ict(f"{http_server}/{ict_zip.name}", home=tmp_path, progress=False)
    assert result.installed and result.sha256 == _sha256(ict_zip)
    arrays, meta = load_arrays(tmp_path)
    assert arrays["identity_basis"].shape == (100, 26_719, 3)
    assert meta["source"].startswith("http://127.0.0.1:")
    assert [p.name for p in cache_dir(tmp_path).parent.iterdir()] == ["ict-facekit"]  # no download left over


def test_http_errors(http_server: str, ict_zip: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="HTTP 404"):
        install_ict(f"{http_server}/missing.zip", home=tmp_path, progress=False)
    with pytest.raises(ModelSourceError, match="ended after"):
        install_ict(f"{http_server}/truncated/{ict_zip.name}", home=tmp_path, progress=False)
    with pytest.raises(ModelSourceError, match="cannot download"):
        install_ict(f"http://127.0.0.1:{_free_port()}/ict.zip", home=tmp_path, progress=False)
    _assert_nothing_installed(tmp_path)


def test_install_from_extracted_folder_and_reinstall_on_change(ict_zip: Path, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "src"
    with zipfile.ZipFile(ict_zip) as zf:
        zf.extractall(folder)
    home = tmp_path / "home"
    monkeypatch.setenv(SOURCE_ENV, str(folder / "ICT-FaceKit-master"))
    model = load_model(home=home)  # installs on first use from the environment's source
    first = read_meta(home)
    assert first is not None and first["source_sha256"] != _sha256(ict_zip)
    assert model.vertex_count == 26_719
    assert load_model(home=home).info["installed_at"] == first["installed_at"]  # unchanged source: reused
    # Change the source: one identity mode moves one vertex by 1 cm. The cache must follow, never be reused.
    obj = folder / "ICT-FaceKit-master" / "FaceXModel" / "identity000.obj"
    text = obj.read_text().splitlines()
    first_v = next(i for i, line in enumerate(text) if line.startswith("v "))
    x, y, z = map(float, text[first_v].split()[1:4])
    text[first_v] = f"v {x + 1.0} {y} {z}"
    obj.write_text("\n".join(text) + "\n")
    changed = load_model(home=home)
    second = read_meta(home)
    assert second["source_sha256"] != first["source_sha256"]
    assert abs(float(changed.identity_basis[0, 0, 0] - model.identity_basis[0, 0, 0]) - 10.0) < 1e-3


def test_install_from_tar_gz(ict_zip: Path, tmp_path: Path) -> None:
    """A tar.gz with the same files (built from a subset plus the real meshes) installs the same model."""
    archive = tmp_path / "ict.tar.gz"
    with zipfile.ZipFile(ict_zip) as zf, tarfile.open(archive, "w:gz", compresslevel=1) as tf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            data = zf.read(info)
            member = tarfile.TarInfo(info.filename)
            member.size = len(data)
            tf.addfile(member, io.BytesIO(data))
    result = install_ict(str(archive), home=tmp_path / "home")
    assert result.installed
    from_tar, _ = load_arrays(tmp_path / "home")
    assert from_tar["mean"].shape == (26_719, 3)


def _small_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _truncated_copy(ict_zip: Path, path: Path) -> Path:
    with open(ict_zip, "rb") as src:
        path.write_bytes(src.read(10_000_000))
    return path


def _corrupted_copy(ict_zip: Path, path: Path) -> Path:
    shutil.copyfile(ict_zip, path)
    with zipfile.ZipFile(ict_zip) as zf:
        info = zf.getinfo(f"{FOLDER}/identity000.obj")
    with open(path, "r+b") as fh:  # flip bytes inside the compressed data of one member
        fh.seek(info.header_offset + 30 + len(info.filename) + 1000)
        chunk = bytearray(fh.read(64))
        fh.seek(-64, 1)
        fh.write(bytes(b ^ 0xFF for b in chunk))
    return path


def _wrong_vertex_count(ict_zip: Path, path: Path) -> Path:
    with zipfile.ZipFile(ict_zip) as zf:
        members = {
            f"{FOLDER}/generic_neutral_mesh.obj": zf.read(f"{FOLDER}/generic_neutral_mesh.obj"),
            f"{FOLDER}/vertex_indices.json": zf.read(f"{FOLDER}/vertex_indices.json"),
            f"{FOLDER}/identity000.obj": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
        }
    return _small_zip(path, members)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda z, p: _truncated_copy(z, p / "truncated.zip"), "corrupt or truncated|not a zip"),
        (lambda z, p: _corrupted_copy(z, p / "corrupt.zip"), "corrupt"),
        (lambda z, p: _small_zip(p / "other.zip", {"README.md": b"hello"}), "no FaceXModel/generic_neutral_mesh.obj"),
        (lambda z, p: _wrong_vertex_count(z, p / "wrong.zip"), "identity000.obj has 3 vertices, expected 26719"),
        (lambda z, p: _small_zip(p / "slip.zip", {"../evil.obj": b"v 0 0 0\n"}), "would leave the extraction folder"),
        (lambda z, p: _small_zip(p / "abs.zip", {"/etc/evil.obj": b"v 0 0 0\n"}), "would leave the extraction folder"),
        (lambda z, p: p / "does-not-exist.zip", "model source not found"),
        (lambda z, p: (p / "notes.txt").write_text("not an archive") and p / "notes.txt", "not a zip, a tar archive or a folder"),
    ],
    ids=["truncated", "corrupt", "no-facexmodel", "wrong-vertex-count", "zip-slip", "absolute-path", "missing", "not-archive"],
)
def test_bad_sources_leave_nothing_behind(ict_zip: Path, tmp_path: Path, make, message: str) -> None:
    source = make(ict_zip, tmp_path)
    home = tmp_path / "home"
    with pytest.raises(ModelSourceError, match=message) as info:
        install_ict(str(source), home=home)
    assert "\n" not in str(info.value)
    _assert_nothing_installed(home)


def test_tar_with_link_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        member = tarfile.TarInfo("FaceXModel/generic_neutral_mesh.obj")
        member.type = tarfile.SYMTYPE
        member.linkname = "/etc/passwd"
        tf.addfile(member)
    with pytest.raises(ModelSourceError, match="is a link"):
        install_ict(str(archive), home=tmp_path / "home")


def test_failed_reinstall_keeps_the_previous_model(model_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(model_home, home)
    before = read_meta(home)
    bad = _small_zip(tmp_path / "other.zip", {"README.md": b"hello"})
    with pytest.raises(ModelSourceError):
        install_ict(str(bad), home=home)
    assert read_meta(home) == before
    assert sorted(p.name for p in cache_dir(home).parent.iterdir()) == ["ict-facekit"]


def test_cache_errors(tmp_path: Path, model_home: Path) -> None:
    with pytest.raises(ModelCacheError, match="no ICT model installed"):
        load_model(home=tmp_path / "empty", install=False)
    home = tmp_path / "old"
    shutil.copytree(model_home, home)
    meta_path = cache_dir(home) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelCacheError, match="format version 0"):
        load_model(home=home, install=False)
    meta["format_version"] = 1
    meta_path.write_text(json.dumps(meta))
    (cache_dir(home) / "model.npz").write_bytes(b"garbage")
    with pytest.raises(ModelCacheError, match="unreadable"):
        load_model(home=home, install=False)
