"""Read members of a model archive (zip, tar, tar.gz or an extracted folder) safely, without extracting.

Members are read into memory by name; nothing is written to disk, and an archive with a member that
would leave an extraction folder (absolute path, ``..``, a link) is refused as a whole, because such an
archive is not the one we expect and may be hostile.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from facerecon.core.errors import ModelSourceError


def _check_member_name(name: str, archive: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise ModelSourceError(f"unsafe archive {archive}: member {name!r} would leave the extraction folder")


class ArchiveReader:
    """Uniform, read-only access to the files of a zip, a tar(.gz) or a folder.

    Example:
        >>> with ArchiveReader.open("ICT-FaceKit-master.zip") as archive:  # doctest: +SKIP
        ...     names = archive.names()
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, object] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ArchiveReader:
        """Open ``path`` and index its members.

        Raises:
            ModelSourceError: missing path, not an archive, corrupt or truncated archive, unsafe member.
        """
        p = Path(path)
        reader = cls(p)
        if not p.exists():
            raise ModelSourceError(f"model source not found: {p}")
        try:
            if p.is_dir():
                for root, _dirs, files in os.walk(p):
                    for f in files:
                        full = Path(root) / f
                        if full.is_symlink():
                            continue
                        reader._members[full.relative_to(p).as_posix()] = full
            elif zipfile.is_zipfile(p):
                reader._zip = zipfile.ZipFile(p)
                for info in reader._zip.infolist():
                    _check_member_name(info.filename, p)
                    if not info.is_dir():
                        reader._members[info.filename] = info
            elif tarfile.is_tarfile(p):
                reader._tar = tarfile.open(p, "r:*")
                for member in reader._tar.getmembers():
                    _check_member_name(member.name, p)
                    if member.issym() or member.islnk():
                        raise ModelSourceError(f"unsafe archive {p}: member {member.name!r} is a link")
                    if member.isfile():
                        reader._members[member.name] = member
            else:
                raise ModelSourceError(f"model source is not a zip, a tar archive or a folder: {p}")
        except ModelSourceError:
            reader.close()
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
            reader.close()
            raise ModelSourceError(f"corrupt or truncated archive {p}: {err}") from None
        return reader

    def names(self) -> list[str]:
        """Member paths (posix style, relative to the archive root), files only."""
        return list(self._members)

    def read(self, name: str) -> bytes:
        """The bytes of member ``name``.

        Raises:
            ModelSourceError: the member is missing or its data is corrupt (bad CRC, truncated stream).
        """
        member = self._members.get(name)
        if member is None:
            raise ModelSourceError(f"{self.path} has no member {name!r}")
        try:
            if self._zip is not None:
                return self._zip.read(member)  # type: ignore[arg-type]
            if self._tar is not None:
                fh = self._tar.extractfile(member)  # type: ignore[arg-type]
                if fh is None:
                    raise ModelSourceError(f"{self.path}: member {name!r} is not a regular file")
                return fh.read()
            return Path(member).read_bytes()  # type: ignore[arg-type]
        except ModelSourceError:
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as err:
            raise ModelSourceError(f"corrupt or truncated archive {self.path}: member {name!r}: {err}") from None
        except Exception as err:  # zlib.error and friends from a damaged stream
            raise ModelSourceError(f"corrupt archive {self.path}: member {name!r}: {err}") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
