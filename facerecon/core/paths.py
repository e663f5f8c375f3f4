"""Where facerecon keeps its files on disk."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "FACERECON_HOME"


def facerecon_home() -> Path:
    """The cache root: ``$FACERECON_HOME``, else ``~/.cache/facerecon``. Not created here."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "facerecon"
