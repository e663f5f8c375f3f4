"""The server of ``facerecon serve`` in its own process, shared by the API and browser tests of this folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(model_home: Path, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The server on a free port of 127.0.0.1 with 2 workers, a 1 MB upload limit and the shared photos as its
    samples; yields (base URL, jobs folder)."""
    httpx = pytest.importorskip("httpx", reason="the web extra's tests need httpx (in the test extra)")
    pytest.importorskip("fastapi", reason="facerecon serve needs the web extra (in the test extra)")
    jobs = tmp_path_factory.mktemp("jobs")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "facerecon", "serve", "--port", str(port), "--workers", "2", "--jobs", str(jobs),
         "--max-upload-mb", "1", "--samples", str(faces_dir)],
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


