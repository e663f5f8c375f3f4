"""Scoped control of torch's intra-op thread count, and of the BLAS threads of NumPy.

Fitting works on tensors of a few thousand vertices: torch's thread pool costs more than it gains there, and on
a machine whose other core is busy a 2-thread pool stalls (measured here: the photometric stage of one face
took 1.1 s on 1 thread and 9-39 s on 2 threads with the other core loaded). Pipelines run their fits inside
``torch_threads(1)``; the previous setting is restored on exit. Like any change of torch's global thread count
it affects other threads of the process while it is active.

:func:`compute_threads` also limits the BLAS libraries NumPy and SciPy call (threadpoolctl): a matrix product split
over another number of threads sums in another order, so without it a photo's last digits would depend on the
machine's cores and on the engine (Ray starts its workers with ``OMP_NUM_THREADS=1``), and a batch in worker
processes or on Ray would not reproduce a serial run exactly.
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


@contextlib.contextmanager
def compute_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch threads and ``count`` BLAS threads (None: leave both alone)."""
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with torch_threads(count), threadpool_limits(limits=count, user_api="blas"):
        yield
