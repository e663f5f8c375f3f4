"""Throughput of a photo collection: 1 worker against N local workers against Ray with N CPUs, and a resumed run.

Usage: python benchmarks/batch.py [--faces DIR] [--photos 20] [--workers 2] [--stages landmarks,all]
                                  [--engines local,ray]

For each stage setting, the same photos (the first --photos of --faces, sorted) go through the same code as
``facerecon reconstruct DIR -o OUT`` (plan_collection + run_collection: manifest and summary written, default outputs)
into a fresh temporary folder: with 1 worker (this process), with --workers processes, and as Ray tasks on a local
Ray instance with --workers CPUs (started by the run: its start-up is part of what a user waits for, as the
workers' is). Then the N-worker command is run again over its finished folder: the resume. Prints seconds per photo,
the throughput ratios against 1 worker (target >= 1.8x for 2 workers; Ray within 15 % of the local workers) and the
resume's share of the first run's time (target <= 5 %), and checks that every run wrote the same params.json
(timings aside).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facerecon.pipeline.collection import plan_collection, run_collection
from facerecon.pipeline.outputs import DEFAULT_OUTPUTS
from facerecon.pipeline.options import ReconstructOptions
from facerecon.pipeline.setup import load_model

DEFAULT_FACES = Path(__file__).resolve().parents[2] / "shared/data/faces"


def run(folder: Path, out: Path, options: ReconstructOptions, engine: str, workers: int) -> tuple[float, int, int]:
    """Seconds, photos done and photos failed of one command-equivalent run."""
    start = time.perf_counter()
    plan = plan_collection([folder], out, options, DEFAULT_OUTPUTS)
    failed = done = 0
    for result in run_collection(plan, engine=engine, workers=workers, progress=False):
        done += 1
        failed += result.error is not None
    return time.perf_counter() - start, done, failed


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
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stages", default="landmarks,all")
    parser.add_argument("--engines", default="local,ray")
    args = parser.parse_args()
    load_model()  # installed and calibrated before any timing
    engines = args.engines.split(",")
    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    photos = root / "photos"
    photos.mkdir()
    for path in sorted(p for p in args.faces.iterdir() if p.suffix.lower() in (".jpg", ".png"))[: args.photos]:
        shutil.copyfile(path, photos / path.name)
    n = len(list(photos.iterdir()))
    print(f"photos={n} workers={args.workers} outputs={','.join(DEFAULT_OUTPUTS)}")
    try:
        for stages in args.stages.split(","):
            options = ReconstructOptions(stages=stages)
            runs = {"1 worker (this process)": ("local", 1)}
            if "local" in engines:
                runs[f"{args.workers} local workers"] = ("local", args.workers)
            if "ray" in engines:
                runs[f"ray, {args.workers} CPUs"] = ("ray", args.workers)
            seconds, outs = {}, {}
            for label, (engine, workers) in runs.items():
                out = root / f"{stages}-{engine}-{workers}"
                elapsed, done, failed = run(photos, out, options, engine, workers)
                seconds[label], outs[label] = elapsed, out
                print(f"[{stages}] {label}: {elapsed:.1f} s, {elapsed / n:.2f} s per photo ({done} done, {failed} failed)")
            base = seconds["1 worker (this process)"]
            for label in list(runs)[1:]:
                print(f"[{stages}] throughput {label} / 1 worker: {base / seconds[label]:.2f}x")
            local, ray_label = f"{args.workers} local workers", f"ray, {args.workers} CPUs"
            if local in seconds and ray_label in seconds:
                print(f"[{stages}] ray time / local workers time: {seconds[ray_label] / seconds[local]:.3f}")
            reference = params(outs["1 worker (this process)"])
            same = all(params(out) == reference for out in outs.values())
            print(f"[{stages}] params.json identical across runs (timings aside): {same} ({len(reference)} faces)")
            last = list(runs)[1] if len(runs) > 1 else list(runs)[0]
            engine, workers = runs[last]
            resumed, done, _ = run(photos, outs[last], options, engine, workers)
            print(f"[{stages}] resumed run over the finished folder ({last}): {resumed:.2f} s, {done} redone, "
                  f"{resumed / seconds[last] * 100:.1f} % of the first run")  # fmt: skip
            command = [sys.executable, "-m", "facerecon", "reconstruct", str(photos), "-o", str(outs[last]), "--stages",
                       stages, "--workers", str(workers), "--engine", engine, "--quiet"]  # fmt: skip
            start = time.perf_counter()
            code = subprocess.run(command, check=False, stdin=subprocess.DEVNULL).returncode
            resumed = time.perf_counter() - start
            summary = json.loads((outs[last] / "summary.json").read_text())
            print(f"[{stages}] the same command again (`facerecon reconstruct`, interpreter start-up included): "
                  f"{resumed:.2f} s, exit {code}, {summary['reconstructed'] + summary['failed']} redone, "
                  f"{resumed / seconds[last] * 100:.1f} % of the first run")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
