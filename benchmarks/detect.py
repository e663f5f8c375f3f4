"""Benchmark of face detection + 478 landmarks (target: <= 15 ms per face on a 640 px photo).

Prints the median time per face of ``facerecon.detect`` (MediaPipe: two BlazeFace models, then face mesh on
a crop of each face) on photos of ../shared/data/faces scaled to 640 px on the long side, and as the
baseline, measured in the same process, MediaPipe's own face mesh on the whole photo (one pass, its short
range detector only). Run: ``python benchmarks/detect.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from facerecon.detect import create_detector
from facerecon.io.image import read_image

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
PHOTOS = ("d3dfr-000126.jpg", "d3dfr-015309.jpg", "deca-exp-4.jpg", "3ddfa-JianzhuGuo.jpg", "d3dfr-vd070.png",
          "prnet-4.jpg", "3ddfa-trump_hillary.jpg", "3ddfa-emma.jpg")
TARGET_MS = 15.0


def at_640(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    s = 640 / max(h, w)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(image, (round(w * s), round(h * s)), interpolation=interp))


def timed(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import mediapipe as mp

    images = {name: at_640(read_image(FACES / name)) for name in PHOTOS}
    baseline = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=True)
    print(f"{'photo (640 px)':28s} {'faces':>5s} {'ours ms/face':>13s} {'baseline ms/face':>17s} {'ratio':>6s}")
    ours_per_face, base_per_face = [], []
    with create_detector("mediapipe") as detector:
        for name, image in images.items():
            ms, dets = timed(lambda: detector.detect(image), args.repeats)
            n = max(len(dets), 1)
            bms, res = timed(lambda: baseline.process(image), args.repeats)
            bn = max(len(res.multi_face_landmarks or []), 1)
            ours_per_face.append(ms / n)
            base_per_face.append(bms / bn)
            print(f"{name:28s} {len(dets):5d} {ms / n:13.1f} {bms / bn:17.1f} {ms / n / (bms / bn):6.2f}"
                  f"{'' if bn == len(dets) else f'  (baseline found {bn if res.multi_face_landmarks else 0})'}")
    with create_detector("mediapipe", mode="video") as tracker:
        frame = images["d3dfr-000126.jpg"]
        vms, _ = timed(lambda: tracker.detect(frame), args.repeats)
    baseline.close()
    med, bmed = statistics.median(ours_per_face), statistics.median(base_per_face)
    worst = max(ours_per_face)
    print(f"median per face: ours {med:.1f} ms, baseline {bmed:.1f} ms, ratio {med / bmed:.2f}; "
          f"worst photo {worst:.1f} ms/face")
    print(f"video mode (tracking, same photo as frames): {vms:.1f} ms/frame")
    print(f"target <= {TARGET_MS:.0f} ms per face: {'met' if med <= TARGET_MS else 'NOT met'} (median)")
    baseline = None


if __name__ == "__main__":
    main()
