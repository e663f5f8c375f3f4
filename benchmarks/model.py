"""Benchmark the face model: install from the local archive, cache load, and the batched forward pass.

Usage: python benchmarks/model.py [--source ZIP] [--runs 50]

Prints each figure beside a baseline measured in the same process, and the issue's targets:
install <= 60 s, cache load <= 0.5 s, forward (batch 8, full head) <= 20 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from facerecon.models import load_model
from facerecon.models.ict import install_ict
from facerecon.models.obj_parse import parse_obj_vertices
from _timing import median_ms  # benchmarks/_timing.py (the script folder is on sys.path)

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared/data/ict-facekit/ICT-FaceKit-master.zip"



def _naive_vertices(data: bytes) -> np.ndarray:
    """Baseline OBJ vertex parsing: line by line in Python, as most research code does."""
    rows = []
    for line in data.decode().splitlines():
        if line.startswith("v "):
            rows.append([float(x) for x in line.split()[1:4]])
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        install_ict(args.source, home=home, progress=False)
        install_s = time.perf_counter() - start

        with zipfile.ZipFile(args.source) as zf:
            name = next(n for n in zf.namelist() if n.endswith("FaceXModel/identity000.obj"))
            data = zf.read(name)
        ours_parse = median_ms(lambda: parse_obj_vertices(data), 5)
        naive_parse = median_ms(lambda: _naive_vertices(data), 3)

        load_times = []
        for _ in range(5):
            start = time.perf_counter()
            model = load_model(home=home, install=False)
            load_times.append(time.perf_counter() - start)
        load_s = statistics.median(load_times)

    identity = torch.randn(8, model.identity_count)
    expression = torch.rand(8, model.expression_count)
    forward_ms = median_ms(lambda: model(identity, expression), args.runs)
    forward_face_ms = median_ms(lambda: model(identity, expression, submesh="face"), args.runs)

    def naive_forward() -> torch.Tensor:  # baseline: einsum over the 3-D bases
        return (
            model.mean
            + torch.einsum("bk,kvc->bvc", identity, model.identity_basis)
            + torch.einsum("bk,kvc->bvc", expression, model.expression_basis)
        )

    naive_ms = median_ms(naive_forward, args.runs)
    assert torch.allclose(naive_forward(), model(identity, expression), atol=1e-3)

    print(f"install_s={install_s:.2f} (154 OBJs, zip read + parse + regions + mirror map + atomic write)")
    print(f"obj_parse_ms={ours_parse:.1f} naive_python_ms={naive_parse:.1f} ratio={naive_parse / ours_parse:.1f}x")
    print(f"cache_load_s={load_s:.3f} (vs parsing the OBJs: install_s={install_s:.2f}, ratio={install_s / load_s:.0f}x)")
    print(f"forward_batch8_full_ms={forward_ms:.2f} naive_einsum_ms={naive_ms:.2f} ratio={naive_ms / forward_ms:.2f}x "
          f"vertices={model.vertex_count}")
    print(f"forward_batch8_face_ms={forward_face_ms:.2f} vertices={model.submesh('face').vertex_count}")
    ok = install_s <= 60 and load_s <= 0.5 and forward_ms <= 20
    print(f"targets: install<=60s load<=0.5s forward<=20ms -> {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
