"""``facerecon serve`` as a real server in its own process, driven by a real HTTP client: a photo in, JSON and a GLB
with the 53 morph targets out; bad uploads refused with a 4xx and nothing left behind; two requests at once; a job
followed stage by stage; samples; the OBJ zip; the page served from the package."""

from __future__ import annotations

import concurrent.futures
import io
import re
import time
import zipfile
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the web extra's tests need httpx (in the test extra)")
pytest.importorskip("fastapi", reason="facerecon serve needs the web extra (in the test extra)")

FORM = {"stages": "landmarks", "faces": "largest"}


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
    assert httpx.get(f"{base}/api/health").json() == {"status": "ok", "workers": 2, "max_upload_bytes": 1_000_000}
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


def _follow(base: str, status_url: str, timeout: float = 300) -> tuple[dict, list[tuple[str, str | None]]]:
    """Poll a job until it is done or failed; returns its last status and the (state, stage) pairs seen."""
    seen: list[tuple[str, str | None]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(base + status_url, timeout=10).json()
        if not seen or seen[-1] != (status["state"], status["stage"]):
            seen.append((status["state"], status["stage"]))
        if status["state"] in ("done", "failed"):
            return status, seen
        time.sleep(0.05)
    raise AssertionError(f"the job did not finish in {timeout} s: {seen}")


@pytest.mark.slow
def test_a_job_reports_its_stages_then_its_result(server, faces_dir: Path) -> None:
    base, jobs = server
    response = httpx.post(f"{base}/api/jobs", files={"image": ("prnet-4.jpg", _small_jpeg(faces_dir, "prnet-4.jpg"))},
                          data={"stages": "all", "faces": "largest"}, timeout=60)  # fmt: skip
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    assert response.json()["status_url"] == f"/api/jobs/{job}"
    status, seen = _follow(base, f"/api/jobs/{job}")
    assert status["state"] == "done", status
    stages = [stage for state, stage in seen if state == "running"]
    # The stages arrive in the pipeline's order (polling may miss the quick ones, never reorder them).
    order = ["read", "detect", "estimate", "albedo", "texture", "details", "write"]
    assert stages and stages == sorted(stages, key=order.index), seen
    assert "estimate" in stages or "texture" in stages, seen
    result = status["result"]
    assert result["job"] == job and result["image"] == "prnet-4.jpg" and len(result["faces"]) == 1
    face = result["faces"][0]
    assert {"albedo.png", "normal_map.png", "landmarks.png", "face.glb"} <= set(face["files"])
    assert face["downloads"]["glb"] == face["files"]["face.glb"]
    # The OBJ download: the mesh with its material and texture, in one zip.
    archive = httpx.get(base + face["downloads"]["obj_zip"], timeout=30)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    assert 'filename="prnet-4-0-obj.zip"' in archive.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert sorted(zipped.namelist()) == ["mesh.mtl", "mesh.obj", "texture.png"]
        assert b"mtllib mesh.mtl" in zipped.read("mesh.obj") and b"texture.png" in zipped.read("mesh.mtl")
    assert httpx.get(f"{base}/api/jobs/{job}/faces/7/obj.zip").status_code == 404
    assert not (jobs / job / "status.json").exists() or (jobs / job / "out").is_dir()
    unknown = httpx.get(f"{base}/api/jobs/{'0' * 32}")
    assert unknown.status_code == 404 and "no job" in unknown.json()["error"]


@pytest.mark.slow
def test_a_failed_job_reports_why_and_leaves_nothing(server) -> None:
    base, jobs = server
    from PIL import Image

    grey = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(grey, "PNG")
    response = httpx.post(f"{base}/api/jobs", files={"image": ("grey.png", grey.getvalue())}, data=FORM, timeout=60)
    assert response.status_code == 202, response.text
    status, _ = _follow(base, response.json()["status_url"])
    assert status["state"] == "failed" and status["http_status"] == 422 and "no face" in status["error"]
    assert not (jobs / response.json()["job"]).exists()
    # Not an image: refused at once, before it queues.
    refused = httpx.post(f"{base}/api/jobs", files={"image": ("notes.jpg", b"plain text\n")}, data=FORM, timeout=60)
    assert refused.status_code == 415 and "not an image" in refused.json()["error"]


@pytest.mark.slow
def test_samples_are_listed_served_and_reconstructed(server, faces_dir: Path) -> None:
    base, _ = server
    samples = httpx.get(f"{base}/api/samples").json()["samples"]
    expected = sorted(p.name for p in faces_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert [s["name"] for s in samples] == expected[:64]
    picture = httpx.get(base + samples[0]["url"])
    assert picture.status_code == 200 and picture.content == (faces_dir / samples[0]["name"]).read_bytes()
    assert httpx.get(f"{base}/api/samples/..%2Fconftest.py").status_code == 404
    response = httpx.post(f"{base}/api/reconstruct", data={**FORM, "sample": "prnet-4.jpg"}, timeout=300)
    assert response.status_code == 200, response.text
    assert response.json()["image"] == "prnet-4.jpg" and len(response.json()["faces"]) == 1
    for form, words in (({"sample": "no-such.jpg"}, "no sample"), ({}, "send a photo")):
        bad = httpx.post(f"{base}/api/reconstruct", data={**FORM, **form}, timeout=60)
        assert bad.status_code == 400 and words in bad.json()["error"], bad.text


def test_the_page_and_its_script_are_served_from_the_package(server) -> None:
    base, _ = server
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/facerecon.js">' in page.text
    # Nothing is fetched from the internet: every script, style and image of the page is the server's own.
    assert re.findall(r'(?:src|href)="(https?:)?//', page.text) == []
    script = httpx.get(f"{base}/static/facerecon.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "morphTargetInfluences" in script.text and "/api/jobs" in script.text
    assert re.findall(r"""(?:import\(|from\s*)["']https?:""", script.text) == []
    assert httpx.get(f"{base}/static/style.css").status_code == 200


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header promises ``width x height`` pixels, with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")


@pytest.mark.slow
def test_hostile_files_get_a_4xx_with_one_line(server, faces_dir: Path) -> None:
    from PIL import Image

    base, jobs = server
    before = set(jobs.iterdir())
    photo = _small_jpeg(faces_dir, "prnet-4.jpg")
    one = io.BytesIO()
    Image.new("RGB", (1, 1)).save(one, "PNG")
    cases = [
        ("truncated.jpg", photo[: len(photo) // 3], 415, "truncated"),
        ("bomb.png", _png_header_only(100_000, 100_000), 415, "decompression bomb"),
        ("drawing.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"></svg>', 415, "SVG"),
        ("one.png", one.getvalue(), 422, "too small to hold a face"),
    ]
    for name, data, status, words in cases:
        response = _post(base, name, data)
        assert response.status_code == status, (name, response.text)
        message = response.json()["error"]
        assert words in message and "\n" not in message and str(jobs) not in message, (name, message)
    # A control character in the file name, sent raw (HTTP clients escape them; a hostile one need not).
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="tab\there.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + photo + b"\r\n--b--\r\n")  # fmt: skip
    response = httpx.post(f"{base}/api/reconstruct", content=body, timeout=60,
                          headers={"content-type": "multipart/form-data; boundary=b"})  # fmt: skip
    assert response.status_code == 400 and "plain file name" in response.json()["error"], response.text
    assert set(jobs.iterdir()) == before
