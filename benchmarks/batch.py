"""Throughput of a batch: wall time per photo of `reconstruct_batch` with 1 worker (this process) and with N workers.

Usage: python benchmarks/batch.py [--faces DIR] [--photos 16] [--workers 2] [--stages all|landmarks]

Both runs reconstruct the same photos (the first --photos of --faces, sorted) with every stage and write the default
outputs into a temporary folder; the wall time includes the workers' start-up (model, MediaPipe, numba), as a user's
`facerecon reconstruct` run does. Prints seconds per photo for each and the ratio, and checks that both wrote the same
params.json (timings aside).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from facerecon.pipeline.batch import BatchItem, reconstruct_batch
from facerecon.pipeline.reconstruction import DEFAULT_OUTPUTS
from facerecon.pipeline.run import ReconstructOptions

DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared/data/faces"


def run(items: list[BatchItem], out: Path, options: ReconstructOptions, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    failed = sum(result.error is not None for result in reconstruct_batch(items, out, options, DEFAULT_OUTPUTS,
                                                                          workers=workers, progress=False))  # fmt: skip
    return time.perf_counter() - start, failed


def params(folder: Path) -> dict:
    found = {}
    for path in sorted(folder.rglob("params.json")):
        data = json.loads(path.read_text())
        data.pop("timings_ms")
        found[str(path.relative_to(folder))] = data
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", choices=("landmarks", "photometric", "all"), default="all")
    args = parser.parse_args()
    paths = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in (".jpg", ".png"))[: args.photos]
    items = [BatchItem(p, p.stem) for p in paths]
    options = ReconstructOptions(stages=args.stages)
    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        serial, serial_failed = run(items, root / "serial", options, 1)
        pooled, pooled_failed = run(items, root / "pool", options, args.workers)
        same = params(root / "serial") == params(root / "pool")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = len(items)
    print(f"photos={n} stages={args.stages} outputs={','.join(DEFAULT_OUTPUTS)}")
    print(f"1 worker (this process): {serial:.1f} s, {serial / n:.2f} s per photo ({serial_failed} failed)")
    print(f"{args.workers} workers: {pooled:.1f} s, {pooled / n:.2f} s per photo ({pooled_failed} failed)")
    print(f"throughput ratio {serial / pooled:.2f}x; params.json identical (timings aside): {same}")


if __name__ == "__main__":
    main()
