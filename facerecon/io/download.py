"""Downloads with a progress bar, written atomically, hashed while they stream."""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from facerecon.core.errors import FaceReconError
from facerecon.io.atomic import atomic_open

CHUNK_BYTES = 1 << 20


class DownloadError(FaceReconError):
    """A URL could not be fetched (unreachable host, HTTP error, interrupted transfer)."""


def is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) or file URL rather than a local path."""
    return source.startswith(("http://", "https://", "file://"))


def download(
    url: str, target: str | os.PathLike[str], *, timeout_s: float = 60.0, progress: bool = True
) -> str:
    """Fetch ``url`` into ``target`` atomically and return the SHA-256 (hex) of what was written.

    Args:
        url: an http(s) or file URL.
        target: the file to create; it appears only when the transfer is complete.
        timeout_s: socket timeout in seconds for connecting and for each read.
        progress: show a tqdm progress bar on stderr (only when stderr is a terminal or CI log).

    Raises:
        DownloadError: the host is unreachable, the server answers with an error, or the transfer
            ends before the announced length.
    """
    from tqdm import tqdm

    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http/https/file only)
            total = response.headers.get("Content-Length")
            expected = int(total) if total and total.isdigit() else None
            received = 0
            with atomic_open(target, "wb") as out, tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"downloading {Path(url).name or url}",
                disable=not progress,
                file=sys.stderr,
                leave=False,
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                if expected is not None and received != expected:
                    raise DownloadError(
                        f"download of {url} ended after {received} of {expected} bytes; try again"
                    )
    except urllib.error.HTTPError as err:
        raise DownloadError(f"cannot download {url}: the server answered HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise DownloadError(f"cannot download {url}: {err.reason}") from None
    except OSError as err:  # timeouts, resets, refused connections
        raise DownloadError(f"cannot download {url}: {err}") from None
    return digest.hexdigest()
