"""The HTTP API of ``facerecon serve`` (FastAPI; the optional extra ``facerecon[web]``).

Endpoints:

* ``POST /api/reconstruct``: a multipart form with the photo as ``image`` and, as optional fields, ``method``
  (``fit`` | ``regress``), ``stages`` (``landmarks`` | ``photometric`` | ``all``) and ``faces`` (``all`` |
  ``largest``). Answers ``{"job", "image", "seconds", "faces": [{"index", "params", "files": {name: url}}],
  "skipped"}`` once the faces are written; the URLs are those of the next endpoint.
* ``GET /api/jobs/{job}/files/{path}``: a file of a job's outputs; nothing outside the job's output folder.
* ``GET /api/health``: ``{"status": "ok", "workers": N}``.

Errors are JSON ``{"error": "one line"}`` with a 4xx status for what the client can fix: 400 a bad option, an empty
upload or a file name with a path; 413 an upload above the size limit; 415 not an image of a supported kind; 422 no
face in the photo; 404 no such job or file. A refused upload leaves nothing behind.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations (UploadFile, imported
# inside create_app because fastapi is optional) when they are defined.
import json
import re
import time
from pathlib import Path

from facerecon.core.optional import require
from facerecon.serve.jobs import JobRunner

__all__ = ["MAX_UPLOAD_BYTES", "create_app"]

#: The default upload limit: 20 MB.
MAX_UPLOAD_BYTES = 20_000_000
_CHUNK = 1 << 20
_OPTIONS = {"method": ("fit", "regress"), "stages": ("landmarks", "photometric", "all"), "faces": ("all", "largest")}
_NAME = re.compile(r"^[^/\\\x00]{1,200}$")


def _error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def create_app(runner: JobRunner, *, max_upload_bytes: int = MAX_UPLOAD_BYTES):
    """The FastAPI application serving ``runner``'s jobs."""
    fastapi = require("fastapi", extra="web", purpose="facerecon serve")
    require("multipart", extra="web", purpose="uploads to facerecon serve (python-multipart)")
    from fastapi import File, Form, Request, UploadFile
    from fastapi.responses import FileResponse

    from facerecon.core.errors import ImageReadError
    from facerecon.pipeline.reconstruction import DEFAULT_OUTPUTS
    from facerecon.pipeline.run import ReconstructOptions

    app = fastapi.FastAPI(title="facerecon", description="Photos of faces to 3D faces", docs_url=None, redoc_url=None)

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "workers": runner.workers}

    @app.post("/api/reconstruct")
    def reconstruct(request: Request, image: UploadFile = File(...), method: str = Form("fit"),
                    stages: str = Form("all"), faces: str = Form("all")):  # fmt: skip
        for key, value in (("method", method), ("stages", stages), ("faces", faces)):
            if value not in _OPTIONS[key]:
                return _error(400, f"{key}: expected one of {', '.join(_OPTIONS[key])}, got {value!r}")
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
        options = ReconstructOptions(method=method, stages=stages, faces=faces)
        start = time.perf_counter()
        done = runner.run(job, photo, Path(name).stem or "photo", options, tuple(DEFAULT_OUTPUTS))
        result = done.result
        if result.error is not None:
            message = result.error.replace(str(photo), name)  # the server's paths stay on the server
            if result.error_type == ImageReadError.__name__:
                return _error(415, message)
            if result.error_type == "NoFaceError":
                return _error(422, message)
            return _error(500, message)
        if not result.faces:
            return _error(422, f"{name}: no face reconstructed: " + "; ".join(result.skipped))
        rows = []
        for face in result.faces:
            face_folder = folder / "out" / result.item.name / str(face.face_index)
            params = json.loads((face_folder / "params.json").read_text())
            files = {p.name: f"/api/jobs/{job}/files/{result.item.name}/{face.face_index}/{p.name}"
                     for p in sorted(face_folder.iterdir()) if p.is_file()}  # fmt: skip
            rows.append({"index": face.face_index, "params": params, "files": files})
        return {"job": job, "image": name, "seconds": round(time.perf_counter() - start, 3), "faces": rows,
                "skipped": list(result.skipped)}  # fmt: skip

    @app.get("/api/jobs/{job}/files/{path:path}")
    def job_file(job: str, path: str):
        folder = runner.folder(job)
        if folder is None:
            return _error(404, f"no job {job!r} (finished jobs are removed after {runner.keep_seconds / 60:.0f} min)")
        base = (folder / "out").resolve()
        target = (base / path).resolve()
        if base not in target.parents or not target.is_file():
            return _error(404, f"no file {path!r} in job {job}")
        return FileResponse(target)

    return app
