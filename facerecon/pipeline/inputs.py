"""The inputs of a batch: photo files, folders of photos (walked recursively) and lists of paths (``@list.txt``),
each photo paired with the name of its output folder.

Names are stable, so a re-run over the same inputs finds its earlier outputs (:mod:`facerecon.pipeline.manifest`):

* a file named on the command line or in a list: its stem (``photos/ann.jpg`` -> ``ann``);
* a photo found in a folder: its path under that folder without the extension (``celeba/`` + ``a/000001.jpg`` ->
  ``a/000001``), so a dataset's tree is mirrored and equal file names in different sub-folders never collide;
* a name already taken, or a folder above or below a taken one, gets ``-2``, ``-3``, ... in the order the inputs
  were given (folders sorted by path).

The same file given twice is reconstructed once. A folder walk takes files with an image extension
(:data:`IMAGE_EXTENSIONS`, any case), skips hidden files and folders (``.git``, ``.DS_Store``) and never enters the
output folder (a re-run over ``.`` must not pick up its own overlays). A list holds one path per line, relative to
the list's own folder unless absolute; blank lines and lines starting with ``#`` are skipped, and a line may name a
folder. A file named explicitly (on the command line or in a list) is always an input, whatever its extension:
whether it can be read is the reader's to say, in the batch's report.

Example:
    >>> items = collect_inputs(["photos/", "extra.jpg", "@more.txt"], exclude=Path("out"))  # doctest: +SKIP
    >>> [(item.path.name, item.name) for item in items][:2]                                  # doctest: +SKIP
    [('000001.jpg', 'a/000001'), ('extra.jpg', 'extra')]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from facerecon.core.check import describe
from facerecon.core.errors import InputListError

__all__ = ["IMAGE_EXTENSIONS", "BatchItem", "collect_inputs"]

#: Extensions a folder walk takes (compared in lower case): the formats :func:`facerecon.io.image.read_image` reads.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch.

    Attributes:
        path: the photo file, absolute.
        name: its output folder relative to the batch's output (``OUT/<name>/<face>/``); may contain ``/``.
    """

    path: Path
    name: str


def _walk(folder: Path, exclude: Path | None) -> list[Path]:
    """Image files under ``folder``, recursively, sorted by their path relative to it; hidden entries and
    ``exclude`` skipped."""
    found: list[Path] = []

    def failed(err: OSError) -> None:
        raise InputListError(f"{err.filename}: cannot read the folder: {err.strerror or err}")

    for root, dirs, files in os.walk(folder, onerror=failed):
        here = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)]
        found.extend(here / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _read_list(list_file: Path) -> list[str]:
    """The entries of ``@list_file`` as paths (or ``@lists``) taken from the list's folder when relative."""
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputListError(f"@{list_file}: no such list file") from None
    except IsADirectoryError:
        raise InputListError(f"@{list_file}: is a folder, expected a text file of paths (one per line)") from None
    except UnicodeDecodeError:
        raise InputListError(f"@{list_file}: not a UTF-8 text file of paths (one per line)") from None
    except OSError as err:
        raise InputListError(f"@{list_file}: cannot read the list: {err.strerror or err}") from None
    entries = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        nested = entry.startswith("@") and len(entry) > 1
        path = Path(entry[1:] if nested else entry).expanduser()
        path = path if path.is_absolute() else list_file.parent / path
        entries.append(f"@{path}" if nested else str(path))
    return entries


def _sources(inputs: Iterable[str | os.PathLike[str]], exclude: Path | None,
             lists: tuple[Path, ...] = ()) -> Iterable[tuple[Path, str]]:  # fmt: skip
    """``(photo, proposed name)`` for every input, expanded in order."""
    for raw in inputs:
        if not isinstance(raw, (str, os.PathLike)):
            raise TypeError(f"inputs: expected paths, got {describe(raw)}")
        text = os.fspath(raw)
        if isinstance(raw, str) and text.startswith("@") and len(text) > 1:
            list_file = Path(os.path.abspath(Path(text[1:]).expanduser()))
            if list_file.resolve() in lists:
                raise InputListError(f"@{list_file}: the list includes itself")
            yield from _sources(_read_list(list_file), exclude, (*lists, list_file.resolve()))
            continue
        path = Path(os.path.abspath(Path(text).expanduser()))  # absolute, ".." folded (links kept)
        if path.is_dir():
            for photo in _walk(path, exclude):
                yield photo, photo.relative_to(path).with_suffix("").as_posix()
        else:
            yield path, path.stem or path.name


class _Names:
    """Output folder names in use: a name may not equal another, nor be a folder above or below one (``a`` and
    ``a/0`` would share ``OUT/a/``, where ``0`` is also a face's folder)."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names: set[str] = set()
        self._parents: set[str] = set()
        for name in names:
            self.add(name)

    @staticmethod
    def _ancestors(name: str) -> list[str]:
        parts = name.split("/")
        return ["/".join(parts[:k]) for k in range(1, len(parts))]

    def free(self, name: str) -> bool:
        return name not in self._names and name not in self._parents and not any(
            a in self._names for a in self._ancestors(name))

    def add(self, name: str) -> None:
        self._names.add(name)
        self._parents.update(self._ancestors(name))


def collect_inputs(
    inputs: Sequence[str | os.PathLike[str]], *, exclude: str | os.PathLike[str] | None = None,
    names: Mapping[Path, str] | None = None,
) -> list[BatchItem]:  # fmt: skip
    """The photos of ``inputs`` (files, folders, ``@lists``), each with a unique output folder name.

    Args:
        inputs: paths as given on a command line; a ``str`` starting with ``@`` names a list file.
        exclude: a folder never entered by a walk (the batch's output folder).
        names: names fixed beforehand (an earlier run's, from its manifest): a photo listed here keeps its name, and
            no other photo gets one of them.

    Returns:
        One :class:`BatchItem` per distinct photo, in input order.

    Raises:
        InputListError: a list file or a folder cannot be read.
    """
    excluded = None if exclude is None else Path(exclude).expanduser().resolve()
    fixed = dict(names or {})
    taken = _Names(fixed.values())
    seen: set[Path] = set()
    items: list[BatchItem] = []
    for path, proposed in _sources(inputs, excluded):
        key = path.resolve() if path.exists() else path
        if key in seen:
            continue
        seen.add(key)
        name = fixed.get(path)
        if name is None:
            name, k = proposed, 2
            while not taken.free(name):
                name, k = f"{proposed}-{k}", k + 1
            taken.add(name)
        items.append(BatchItem(path, name))
    return items
