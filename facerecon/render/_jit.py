"""numba compilation with an on-disk cache when one can be written, and without it otherwise.

``@njit(cache=True)`` stores compiled code beside the source (``__pycache__``) or, when that is read-only,
in numba's per-user cache directory. When neither is writable numba refuses to decorate the function at
all; this helper then compiles without a cache (the first call in each process pays the compile time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def njit_cached(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``numba.njit(cache=True, **options)``, falling back to ``cache=False`` where no cache is writable."""
    import numba

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return numba.njit(cache=False, **options)(func)

    return decorate
