"""The registry of model assets facerecon knows how to install: where they come from and their terms."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Asset:
    """A downloadable model asset.

    Attributes:
        name: the asset's id, also its cache folder name.
        url: the default source (overridable per asset, e.g. ``FACERECON_ICT_SOURCE``).
        sha256: the expected SHA-256 of the download, or None for a moving source (a branch archive);
            the installer then records the SHA-256 of what it installed and re-installs when it changes.
        licence: the asset's licence (SPDX id or name).
        homepage: where its terms and documentation are.
        description: one line on what it is.
        registration_required: True for models behind a licence form; those are loaded from a path the
            user gives and never downloaded.
    """

    name: str
    url: str
    sha256: str | None
    licence: str
    homepage: str
    description: str
    registration_required: bool = False


ICT_FACEKIT = Asset(
    name="ict-facekit",
    url="https://github.com/ICT-VGL/ICT-FaceKit/archive/refs/heads/master.zip",
    sha256=None,  # the master-branch archive changes with the repository; its hash is recorded at install
    licence="MIT",
    homepage="https://github.com/ICT-VGL/ICT-FaceKit",
    description="ICT Face Model Light: 100 identity PCA modes, 53 ARKit-named expressions, full head with eyes",
)

ASSETS: dict[str, Asset] = {ICT_FACEKIT.name: ICT_FACEKIT}
