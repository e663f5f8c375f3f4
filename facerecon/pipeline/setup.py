"""A face model ready for reconstruction: installed, and calibrated for the default landmark detector."""

from __future__ import annotations

import os
import sys

from facerecon.models import FaceModel
from facerecon.models import load_model as load_installed_model


def calibrate_model(model: FaceModel, *, progress: bool = True) -> None:
    """Embed MediaPipe's 478 landmarks on ``model`` and save the embedding in its cache (~15 s)."""
    from tqdm import tqdm

    from facerecon.calibrate import calibrate_landmarks, save_embedding

    with tqdm(total=0, desc="calibrating landmarks", unit="render", disable=not progress, leave=False,
              file=sys.stderr) as bar:  # fmt: skip

        def report(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        embedding = calibrate_landmarks(model, progress=report)
    save_embedding(embedding, model.info["cache"])


def load_model(
    *, home: str | os.PathLike[str] | None = None, calibrate: bool = True, progress: bool = True
) -> FaceModel:
    """The ICT model, installed on first use and calibrated for MediaPipe's dense landmarks on first use.

    Args:
        home: cache root (default ``$FACERECON_HOME`` or ``~/.cache/facerecon``).
        calibrate: run the landmark calibration when the cache has no embedding yet (else fitting falls back
            to the 68 iBUG landmarks).
        progress: show progress bars for the download and the calibration.
    """
    model = load_installed_model(home=home, progress=progress)
    if calibrate and "mediapipe478" not in model.landmark_scheme_names:
        calibrate_model(model, progress=progress)
        model = load_installed_model(home=home, install=False)
    return model
