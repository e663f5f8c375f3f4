"""The web app and HTTP API of ``facerecon serve`` (FastAPI; the optional extra ``facerecon[web]``).

The page (``GET /``, its script and styles under ``/static/``, shipped in the package: nothing is fetched from the
internet) uploads a photo or picks a sample, follows the job's progress, then shows the result in a 3D view. The
JSON API behind it:

* ``POST /api/reconstruct``: a multipart form with the photo as ``image`` (or ``sample``, the name of one of
  ``GET /api/samples``) and, as optional fields, ``method`` (``fit`` | ``regress`` | ``posmap``), ``stages`` (``landmarks`` |
  ``photometric`` | ``all``) and ``faces`` (``all`` | ``largest``). Waits for the job and answers its result
  ``{"job", "image", "seconds", "faces": [{"index", "params", "files": {name: url}, "downloads": {...}}],
  "skipped"}``.
* ``POST /api/jobs``: the same form; answers ``202 {"job", "status_url"}`` at once.
* ``GET /api/jobs/{job}``: ``{"job", "state": "queued"|"running"|"done"|"failed", "stage", "face", "faces",
  "ahead", "elapsed"}``, with ``"result"`` (as above) once done, ``"error"`` and ``"http_status"`` once failed.
* ``GET /api/jobs/{job}/files/{path}``: a file of a job's outputs; nothing outside the job's output folder.
* ``GET /api/jobs/{job}/faces/{index}/obj.zip``: the face's ``mesh.obj`` with its ``mesh.mtl`` and ``texture.png``.
* ``GET /api/samples`` (``{"samples": [{"name", "url"}]}``) and ``GET /api/samples/{name}``: the photos of
  ``facerecon serve --samples DIR``.
* ``GET /api/health``: ``{"status": "ok", "workers": N, "max_upload_bytes": B}``.

Errors are JSON ``{"error": "one line"}`` with a 4xx status for what the client can fix: 400 a bad option, an empty
upload, a file name with a path or an unknown sample; 413 an upload above the size limit; 415 not an image of a
supported kind; 422 no face in the photo; 404 no such job or file. A refused upload leaves nothing behind.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations (UploadFile, imported
# inside create_app because fastapi is optional) when they are defined.
import io
import json
import re
import shutil
import time
import zipfile
from importlib import resources
from pathlib import Path

from facerecon.core.optional import require
from facerecon.serve.jobs import JobResult, JobRunner

__all__ = ["MAX_UPLOAD_BYTES", "SAMPLE_SUFFIXES", "create_app", "list_samples"]

#: The default upload limit: 20 MB.
MAX_UPLOAD_BYTES = 20_000_000
#: The files of a samples folder that are offered (by suffix, lower case).
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_CHUNK = 1 << 20
_OPTIONS = {"method": ("fit", "regress", "posmap"), "stages": ("landmarks", "photometric", "all"), "faces": ("all", "largest")}
_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,200}$")
_OBJ_FILES = ("mesh.obj", "mesh.mtl", "texture.png")


def list_samples(folder: Path | None, limit: int = 64) -> dict[str, Path]:
    """The sample photos of ``folder`` (not its subfolders), by file name, sorted; at most ``limit``."""
    if folder is None or not folder.is_dir():
        return {}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SAMPLE_SUFFIXES
                   and not p.name.startswith("."))  # fmt: skip
    return {p.name: p for p in files[:limit]}


def _error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _failure(done: JobResult) -> tuple[int, str]:
    """The HTTP status and one-line message of a failed job (the server's paths replaced by the file name)."""
    result = done.result
    name = result.item.path.name
    if result.error is None:
        return 422, f"{name}: no face reconstructed: " + "; ".join(result.skipped)
    message = result.error.replace(str(result.item.path), name)
    status = {"ImageReadError": 415, "NoFaceError": 422}.get(result.error_type or "", 500)
    return status, message


def _payload(done: JobResult, seconds: float) -> dict:
    """The JSON of a finished job: every face's parameters and the URLs of its files."""
    result, job = done.result, done.job
    rows = []
    for face in result.faces:
        folder = done.folder / "out" / result.item.name / str(face.face_index)
        base = f"/api/jobs/{job}/files/{result.item.name}/{face.face_index}"
        files = {p.name: f"{base}/{p.name}" for p in sorted(folder.iterdir()) if p.is_file() and p.name[0] != "."}
        downloads = {"glb": files.get("face.glb"), "params": files.get("params.json"),
                     "obj_zip": f"/api/jobs/{job}/faces/{face.face_index}/obj.zip" if "mesh.obj" in files else None}  # fmt: skip
        rows.append({"index": face.face_index, "params": json.loads((folder / "params.json").read_text()),
                     "files": files, "downloads": downloads})  # fmt: skip
    return {"job": job, "image": result.item.path.name, "seconds": round(seconds, 3), "faces": rows, "skipped": list(result.skipped)}


def create_app(runner: JobRunner, *, max_upload_bytes: int = MAX_UPLOAD_BYTES, samples: Path | None = None):
    """The FastAPI application serving the page and ``runner``'s jobs; ``samples`` is a folder of photos offered
    on the page (none when None)."""
    fastapi = require("fastapi", extra="web", purpose="facerecon serve")
    require("multipart", extra="web", purpose="uploads to facerecon serve (python-multipart)")
    from fastapi import File, Form, Request, UploadFile
    from fastapi.responses import FileResponse, Response
    from fastapi.staticfiles import StaticFiles

    from facerecon.core.errors import ImageReadError
    from facerecon.io.image import check_image
    from facerecon.pipeline.outputs import DEFAULT_OUTPUTS
    from facerecon.pipeline.options import ReconstructOptions

    static = Path(str(resources.files("facerecon.serve") / "static"))
    app = fastapi.FastAPI(title="facerecon", description="Photos of faces to 3D faces", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "workers": runner.workers, "max_upload_bytes": max_upload_bytes}

    @app.get("/api/samples")
    def sample_list() -> dict:
        return {"samples": [{"name": n, "url": f"/api/samples/{n}"} for n in list_samples(samples)]}

    @app.get("/api/samples/{name}")
    def sample_file(name: str):
        path = list_samples(samples).get(name)
        if path is None:
            return _error(404, f"no sample {name!r}")
        return FileResponse(path)

    def accept(request: Request, image, sample, method: str, stages: str, faces: str):
        """Check the form and store the photo in a new job; returns (job, photo, options) or an error."""
        for key, value in (("method", method), ("stages", stages), ("faces", faces)):
            if value not in _OPTIONS[key]:
                return _error(400, f"{key}: expected one of {', '.join(_OPTIONS[key])}, got {value!r}")
        if (image is None) == (sample is None):
            return _error(400, "send a photo as the form field 'image', or the name of a sample as 'sample'")
        if sample is not None:
            source = list_samples(samples).get(sample)
            if source is None:
                return _error(400, f"no sample {sample!r} (GET /api/samples lists them)")
            job, folder = runner.new_job()
            photo = folder / "input" / source.name
            shutil.copyfile(source, photo)
        else:
            name = image.filename or ""
            if not _NAME.match(name) or name in (".", "..") or name.startswith("."):
                return _error(400, f"file name {name!r}: expected a plain file name, without a folder or a leading dot")
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_upload_bytes + 65536:
                return _error(413, f"upload of {int(declared):,} bytes is above the limit of {max_upload_bytes:,} bytes")
            job, folder = runner.new_job()
            photo = folder / "input" / name
            size = 0
            with open(photo, "wb") as out:
                while chunk := image.file.read(_CHUNK):
                    size += len(chunk)
                    if size > max_upload_bytes:
                        out.close()
                        runner.discard(job)
                        return _error(413, f"upload is above the limit of {max_upload_bytes:,} bytes")
                    out.write(chunk)
            if size == 0:
                runner.discard(job)
                return _error(400, f"{name}: the file is empty")
        try:
            check_image(photo)  # the header: not an image, or too many pixels, is refused before it queues
        except ImageReadError as err:
            runner.discard(job)
            return _error(415, str(err).replace(str(photo), photo.name))
        return job, photo, ReconstructOptions(method=method, stages=stages, faces=faces)

    def start(accepted):
        job, photo, options = accepted
        return runner.submit(job, photo, photo.stem or "photo", options, tuple(DEFAULT_OUTPUTS))

    @app.post("/api/reconstruct")
    def reconstruct(request: Request, image: UploadFile | None = File(None), sample: str | None = Form(None),
                    method: str = Form("fit"), stages: str = Form("all"), faces: str = Form("all")):  # fmt: skip
        accepted = accept(request, image, sample, method, stages, faces)
        if isinstance(accepted, Response):
            return accepted
        begin = time.perf_counter()
        done = start(accepted).result()
        if done.result.error is not None or not done.result.faces:
            return _error(*_failure(done))
        return _payload(done, time.perf_counter() - begin)

    @app.post("/api/jobs", status_code=202)
    def submit(request: Request, image: UploadFile | None = File(None), sample: str | None = Form(None),
               method: str = Form("fit"), stages: str = Form("all"), faces: str = Form("all")):  # fmt: skip
        accepted = accept(request, image, sample, method, stages, faces)
        if isinstance(accepted, Response):
            return accepted
        start(accepted)
        return {"job": accepted[0], "status_url": f"/api/jobs/{accepted[0]}"}

    @app.get("/api/jobs/{job}")
    def job_status(job: str):
        status = runner.status(job)
        if status is None:
            return _error(404, f"no job {job!r} (finished jobs are removed after {runner.keep_seconds / 60:.0f} min)")
        now = status.finished or time.time()
        body = {"job": job, "state": status.state, "stage": status.stage, "face": status.face, "faces": status.faces,
                "ahead": status.ahead, "elapsed": round(now - status.submitted, 3)}  # fmt: skip
        if status.state == "done" and status.result is not None:
            body["result"] = _payload(status.result, now - status.submitted)
        elif status.state == "failed" and status.result is not None:
            body["http_status"], body["error"] = _failure(status.result)
        return body

    def face_folder(job: str, index: int) -> Path | None:
        folder = runner.folder(job)
        if folder is None or index < 0:
            return None
        photos = [p for p in (folder / "out").glob("*") if p.is_dir()]  # one photo per job
        return next((p / str(index) for p in photos if (p / str(index)).is_dir()), None)

    @app.get("/api/jobs/{job}/files/{path:path}")
    def job_file(job: str, path: str):
        folder = runner.folder(job)
        if folder is None:
            return _error(404, f"no job {job!r} (finished jobs are removed after {runner.keep_seconds / 60:.0f} min)")
        base = (folder / "out").resolve()
        target = (base / path).resolve()
        if base not in target.parents or not target.is_file() or target.name.startswith("."):
            return _error(404, f"no file {path!r} in job {job}")
        return FileResponse(target)

    @app.get("/api/jobs/{job}/faces/{index}/obj.zip")
    def obj_zip(job: str, index: int):
        folder = face_folder(job, index)
        if folder is None or not (folder / "mesh.obj").is_file():
            return _error(404, f"no face {index} with an OBJ in job {job!r}")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in _OBJ_FILES:
                if (folder / name).is_file():
                    archive.write(folder / name, name)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", folder.parent.name)  # out/<the photo's stem>/<face>
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{stem}-{index}-obj.zip"'})  # fmt: skip

    return app
