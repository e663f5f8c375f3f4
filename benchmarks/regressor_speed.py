"""Benchmark the face regressor (random weights): its size, and its speed with ONNX Runtime and torch.

Usage: python benchmarks/regressor_speed.py [--runs 300] [--batches 64 256] [--threads 2]

Prints the parameter count, FLOPs per face (``torch.utils.flop_counter``, a multiply-add counts 2), the size of
the float32 and float16 safetensors files, then:

* ONNX Runtime, the network alone at batch 1 on one thread: median ms over ``--runs`` runs after a warm-up
  (target: <= 1 ms);
* ONNX Runtime batched on ``--threads`` cores: faces/s at each of ``--batches`` (target: >= 2000/s on 2 cores),
  as ``OnnxNetwork(workers=2)`` runs it (chunks of 16 crops, one thread each, two at a time), and for comparison
  with 2 intra-operator threads on the whole batch, and on one thread;
* torch eager (BatchNorm folded, no grad) as the baseline, at batch 1 on one thread and batched on ``--threads``
  threads, with the time ratio ONNX / torch (below 1 is faster).

Random weights are fine for speed. Run it on a quiet machine: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from facerecon.core.threads import torch_threads
from facerecon.nets.onnx import OnnxNetwork, export_onnx
from facerecon.nets.regressor import FaceRegressor, fold_batchnorm
from facerecon.nets.weights import save_weights
from _timing import median_ms  # benchmarks/_timing.py (the script folder is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs at batch 1 (default 300)")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256], help="batch sizes for throughput")
    parser.add_argument("--threads", type=int, default=2, help="cores for the batched runs (default 2)")
    args = parser.parse_args()

    torch.manual_seed(0)
    net = FaceRegressor().eval()
    size = net.config.input_size
    params = sum(p.numel() for p in net.parameters())
    with FlopCounterMode(display=False) as counter:
        net.forward_vector(torch.rand(1, 3, size, size))
    print(f"parameters: {params:,}; {counter.get_total_flops() / 1e6:.1f} MFLOPs per {size}-px face")

    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (torch.float32, torch.float16):
            file = Path(tmp) / f"net-{dtype}.safetensors"
            save_weights(file, net, face_model_sha256="0" * 64, dtype=dtype)
            print(f"safetensors {str(dtype).removeprefix('torch.')}: {os.path.getsize(file) / 1e6:.2f} MB")
        onnx_file = export_onnx(net, Path(tmp) / "net.onnx")
        print(f"ONNX file: {os.path.getsize(onnx_file) / 1e6:.2f} MB")
        single = OnnxNetwork(onnx_file, threads=1)
        folded = fold_batchnorm(net)
        one = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        one_t = torch.from_numpy(one)

        for _ in range(20):  # warm-up beyond median_ms's one call: ONNX Runtime allocates on the first runs
            single.run_vector(one)
        ort_ms = median_ms(lambda: single.run_vector(one), args.runs)
        with torch.no_grad(), torch_threads(1):
            torch_ms = median_ms(lambda: folded.forward_vector(one_t), args.runs)
        print(f"batch 1, 1 thread: ONNX Runtime {ort_ms:.3f} ms median, torch {torch_ms:.3f} ms "
              f"(ratio {ort_ms / torch_ms:.2f}); target <= 1 ms: {'pass' if ort_ms <= 1.0 else 'FAIL'}")  # fmt: skip
        decoded_ms = median_ms(lambda: single(one), args.runs)
        print(f"batch 1, 1 thread, with the input check and decoding: ONNX Runtime {decoded_ms:.3f} ms median")

        cores = args.threads
        for batch in args.batches:
            crops = np.random.default_rng(1).random((batch, 3, size, size), dtype=np.float32)
            crops_t = torch.from_numpy(crops)
            runs = max(5, 2048 // batch)
            runners = {  # the recommended way first: one thread per chunk, `cores` chunks at a time
                f"{cores} workers x 1 thread, chunks of 16": OnnxNetwork(onnx_file, threads=1, workers=cores),
                f"{cores} intra-op threads, one run": OnnxNetwork(onnx_file, threads=cores, chunk_size=batch),
                "1 thread, chunks of 16": single,
                "1 thread, one run": OnnxNetwork(onnx_file, threads=1, chunk_size=batch),
            }
            rates = {}
            for name, runner in runners.items():
                runner.run_vector(crops)
                rates[name] = batch / (median_ms(lambda r=runner, x=crops: r.run_vector(x), runs) / 1000.0)
            with torch.no_grad(), torch_threads(cores):
                torch_rate = batch / (median_ms(lambda x=crops_t: folded.forward_vector(x), runs) / 1000.0)
            best = next(iter(rates))
            print(f"batch {batch}: ONNX Runtime " + ", ".join(f"{n} {r:,.0f}/s" for n, r in rates.items())
                  + f"; torch {cores} threads {torch_rate:,.0f}/s (time ratio ONNX / torch {torch_rate / rates[best]:.2f}); "
                  f"target >= 2000/s on {cores} cores: {'pass' if rates[best] >= 2000 else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    main()
