"""Wall-clock timings of named steps, in milliseconds."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to ``timings[name]`` (ms; a step timed twice adds up).

    Example:
        >>> timings: dict[str, float] = {}
        >>> with timed(timings, "fit"):
        ...     pass
        >>> sorted(timings)
        ['fit']
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1000.0
