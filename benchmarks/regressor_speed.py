"""Benchmark the face regressor (random weights): its size, and its speed with ONNX Runtime and torch.

Usage: python benchmarks/regressor_speed.py [--runs 300] [--batches 64 256] [--threads 2]

Prints the parameter count, FLOPs per face (``torch.utils.flop_counter``, a multiply-add counts 2), the size of
the float32 and float16 safetensors files, then:

* ONNX Runtime, the network alone at batch 1 on one thread: median ms over ``--runs`` runs after a warm-up
  (target: <= 1 ms);
* ONNX Runtime batched on ``--threads`` threads: faces/s at each of ``--batches`` (target: >= 2000/s on 2 cores),
  and on one thread (on a shared machine the second core is often busy: twice this is the 2-core ceiling);
* torch eager (BatchNorm folded, no grad) at the same settings, the baseline, with the ratio ONNX / torch
  (below 1 is faster).

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
from facerecon.nets.onnx import OnnxRegressor, export_onnx
from facerecon.nets.regressor import FaceRegressor, fold_batchnorm
from facerecon.nets.weights import save_weights
from _timing import median_ms  # benchmarks/_timing.py (the script folder is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed runs at batch 1 (default 300)")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256], help="batch sizes for throughput")
    parser.add_argument("--threads", type=int, default=2, help="threads for the batched runs (default 2)")
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
        single = OnnxRegressor(onnx_file, threads=1)
        multi = OnnxRegressor(onnx_file, threads=args.threads)
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
        print(f"batch 1, 1 thread, with input check and decoding: ONNX Runtime {decoded_ms:.3f} ms median")

        for batch in args.batches:
            crops = np.random.default_rng(1).random((batch, 3, size, size), dtype=np.float32)
            crops_t = torch.from_numpy(crops)
            runs = max(5, 2048 // batch)
            ort_rate = batch / (median_ms(lambda x=crops: multi.run_vector(x), runs) / 1000.0)
            one_rate = batch / (median_ms(lambda x=crops: single.run_vector(x), runs) / 1000.0)
            with torch.no_grad(), torch_threads(args.threads):
                torch_rate = batch / (median_ms(lambda x=crops_t: folded.forward_vector(x), runs) / 1000.0)
            print(f"batch {batch}, {args.threads} threads: ONNX Runtime {ort_rate:,.0f} faces/s, torch "
                  f"{torch_rate:,.0f} faces/s (time ratio {torch_rate / ort_rate:.2f}); target >= 2000/s: "
                  f"{'pass' if ort_rate >= 2000 else 'FAIL'}; on 1 thread {one_rate:,.0f} faces/s")  # fmt: skip


if __name__ == "__main__":
    main()
