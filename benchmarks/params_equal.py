"""Check that two ``facerecon reconstruct`` output folders hold the same fits: every ``params.json`` equal but for
timings (a refactor must not change results).

    python benchmarks/params_equal.py BEFORE_DIR AFTER_DIR [--tolerance 0]

Prints one line per face that differs (the first differing keys) and a summary; exit 1 when any differ or a face is
missing on one side.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

IGNORED = {"timings_ms"}


def _differences(a: object, b: object, path: str, tolerance: float, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in IGNORED:
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'after' if key not in a else 'before'}")
            else:
                _differences(a[key], b[key], f"{path}.{key}", tolerance, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _differences(x, y, f"{path}[{i}]", tolerance, out)
    elif isinstance(a, float) and isinstance(b, float):
        same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tolerance * max(1.0, abs(a))
        if not same:
            out.append(f"{path}: {a!r} != {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.0, help="relative tolerance on floats (default: exact)")
    args = parser.parse_args()
    before = {p.relative_to(args.before).parent for p in args.before.rglob("params.json")}
    after = {p.relative_to(args.after).parent for p in args.after.rglob("params.json")}
    bad = 0
    for face in sorted(before ^ after):
        print(f"{face}: only in {'before' if face in before else 'after'}")
        bad += 1
    for face in sorted(before & after):
        diffs: list[str] = []
        a = json.loads((args.before / face / "params.json").read_text())
        b = json.loads((args.after / face / "params.json").read_text())
        _differences(a, b, "", args.tolerance, diffs)
        if diffs:
            bad += 1
            print(f"{face}: {len(diffs)} differences, e.g. {'; '.join(diffs[:3])}")
    print(f"faces compared: {len(before & after)}, differing or missing: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
