"""``facerecon serve`` as a real server in its own process, driven by a real HTTP client: a photo in, JSON and a GLB
with the 53 morph targets out; bad uploads refused with a 4xx and nothing left behind; two requests at once."""

from __future__ import annotations

import concurrent.futures
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the web extra's tests need httpx (in the test extra)")
pytest.importorskip("fastapi", reason="facerecon serve needs the web extra (in the test extra)")

REPO = Path(__file__).resolve().parents[2]
FORM = {"stages": "landmarks", "faces": "largest"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """The server on a free port of 127.0.0.1 with 2 workers and a 1 MB upload limit; yields (base URL, jobs folder)."""
    jobs = tmp_path_factory.mktemp("jobs")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "facerecon", "serve", "--port", str(port), "--workers", "2", "--jobs", str(jobs),
         "--max-upload-mb", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "FACERECON_HOME": str(model_home)},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not start: {process.communicate()[1][-2000:]}")
        time.sleep(0.2)
    yield base, jobs
    process.terminate()
    process.wait(timeout=30)


def _post(base: str, name: str, data: bytes, **form: str) -> httpx.Response:
    return httpx.post(f"{base}/api/reconstruct", files={"image": (name, data, "application/octet-stream")},
                      data={**FORM, **form}, timeout=300)  # fmt: skip


def _small_jpeg(faces_dir: Path, name: str) -> bytes:
    """A shared photo as a JPEG under the 1 MB limit of the test server."""
    from PIL import Image

    with Image.open(faces_dir / name) as im:
        im = im.convert("RGB")
        im.thumbnail((800, 800))
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.slow
def test_a_photo_in_json_and_a_glb_out(server, faces_dir: Path, tmp_path: Path) -> None:
    pygltflib = pytest.importorskip("pygltflib")
    base, jobs = server
    assert httpx.get(f"{base}/api/health").json() == {"status": "ok", "workers": 2}
    response = _post(base, "prnet-4.jpg", _small_jpeg(faces_dir, "prnet-4.jpg"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == "prnet-4.jpg" and len(body["faces"]) == 1 and body["skipped"] == []
    face = body["faces"][0]
    assert len(face["params"]["expression"]) == 53 and "jawOpen" in face["params"]["expression"]
    assert {"face.glb", "mesh.obj", "params.json", "texture.png"} <= set(face["files"])
    glb = httpx.get(base + face["files"]["face.glb"])
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    (tmp_path / "face.glb").write_bytes(glb.content)
    gltf = pygltflib.GLTF2().load(str(tmp_path / "face.glb"))
    assert len(gltf.meshes[0].primitives[0].targets) == 53
    assert len(gltf.meshes[0].extras["targetNames"]) == 53
    # Nothing outside the job's output folder is served, however the path is spelt.
    job = body["job"]
    for path in ("..%2F..%2Finput%2Fprnet-4.jpg", "%2E%2E/input/prnet-4.jpg", "..%2F..%2F..%2Fetc%2Fpasswd"):
        assert httpx.get(f"{base}/api/jobs/{job}/files/{path}").status_code == 404, path
    assert httpx.get(f"{base}/api/jobs/not-a-job/files/x").status_code == 404
    assert (jobs / job / "out" / "prnet-4" / "0" / "face.glb").is_file()


@pytest.mark.slow
def test_bad_uploads_get_a_4xx_and_leave_nothing(server, faces_dir: Path) -> None:
    base, jobs = server
    before = set(jobs.iterdir())
    cases = [
        ("big.jpg", b"\xff\xd8\xff" + bytes(1_100_000), {}, 413, "above the limit"),
        ("notes.txt", b"this is not a photo\n", {}, 415, "not an image"),
        ("empty.jpg", b"", {}, 400, "empty"),
        ("../../escape.jpg", _small_jpeg(faces_dir, "prnet-4.jpg"), {}, 400, "plain file name"),
        ("face.jpg", _small_jpeg(faces_dir, "prnet-4.jpg"), {"stages": "everything"}, 400, "stages"),
    ]
    for name, data, form, status, words in cases:
        response = _post(base, name, data, **form)
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["error"], (name, response.json())
        assert "\n" not in response.json()["error"] and str(jobs) not in response.json()["error"]
    grey = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (320, 240), (128, 128, 128)).save(grey, "PNG")
    response = _post(base, "grey.png", grey.getvalue())
    assert response.status_code == 422 and "no face" in response.json()["error"]
    assert set(jobs.iterdir()) == before  # every refused upload left nothing


@pytest.mark.slow
def test_two_requests_at_once_both_succeed(server, faces_dir: Path) -> None:
    base, _ = server
    photos = [("prnet-4.jpg", _small_jpeg(faces_dir, "prnet-4.jpg")), ("d3dfr-000002.jpg", _small_jpeg(faces_dir, "d3dfr-000002.jpg"))]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda p: _post(base, *p), photos))
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert [r.json()["image"] for r in responses] == ["prnet-4.jpg", "d3dfr-000002.jpg"]
    assert responses[0].json()["job"] != responses[1].json()["job"]
