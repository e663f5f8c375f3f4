"""Shared fixtures: the real ICT-FaceKit archive and photos from ../shared, a session-wide model cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ICT_ZIP = SHARED / "data" / "ict-facekit" / "ICT-FaceKit-master.zip"
FACES_DIR = SHARED / "data" / "faces"
VIDEO = SHARED / "data" / "video" / "obama.mp4"

# Set to save reference renders and overlays for a person to look at: FACERECON_SAVE_IMAGES=1 pytest
SAVE_IMAGES = os.environ.get("FACERECON_SAVE_IMAGES", "") not in ("", "0")
ARTIFACTS = REPO / "test-artifacts"


def pytest_configure(config: pytest.Config) -> None:
    if not ICT_ZIP.is_file():
        raise pytest.UsageError(f"the shared data is missing: expected {ICT_ZIP} (clone beside ../shared)")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def ict_zip() -> Path:
    return ICT_ZIP


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return FACES_DIR


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FACERECON_HOME for the whole session with the ICT model installed once from the shared zip."""
    from facerecon.models.ict import install_ict

    home = tmp_path_factory.mktemp("facerecon-home")
    install_ict(str(ICT_ZIP), home=home)
    return home


@pytest.fixture(scope="session")
def face_model(model_home: Path):
    """The installed ICT FaceModel (float32, CPU). Shared: tests must not modify it."""
    from facerecon.models import load_model

    return load_model(home=model_home, install=False)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path | None:
    """Where tests save images for a person to look at, or None when FACERECON_SAVE_IMAGES is unset."""
    if not SAVE_IMAGES:
        return None
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
