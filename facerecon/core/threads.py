"""Scoped control of torch's intra-op thread count.

Fitting works on tensors of a few thousand vertices: torch's thread pool costs more than it gains there, and on
a machine whose other core is busy a 2-thread pool stalls (measured here: the photometric stage of one face
took 1.1 s on 1 thread and 9-39 s on 2 threads with the other core loaded). Pipelines run their fits inside
``torch_threads(1)``; the previous setting is restored on exit. Like any change of torch's global thread count
it affects other threads of the process while it is active.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch threads (None: leave the setting alone)."""
    if count is None:
        yield
        return
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count: expected a positive integer or None, got {count!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
