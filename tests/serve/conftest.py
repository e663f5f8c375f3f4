"""The server of ``facerecon serve`` in its own process, shared by the API and browser tests of this folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def server(model_home: Path, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The server on a free port of 127.0.0.1 with 2 workers, a 1 MB upload limit and the shared photos as its
    samples; yields (base URL, jobs folder)."""
    pytest.importorskip("httpx", reason="the web extra's tests need httpx (in the test extra)")
    pytest.importorskip("fastapi", reason="facerecon serve needs the web extra (in the test extra)")
    from tests.serve.harness import running_server

    jobs = tmp_path_factory.mktemp("jobs")
    try:
        with running_server(model_home, jobs, "--workers", "2", "--max-upload-mb", "1", "--samples", str(faces_dir)) as base:
            yield base, jobs
    except RuntimeError as err:
        pytest.fail(str(err))
