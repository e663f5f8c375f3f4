"""Time from upload to the 3D view in the page of ``facerecon serve``, against the CLI on the same photos.

Usage: python benchmarks/serve_browser.py [--faces DIR] [--photos prnet-4.jpg,...] [--stages all] [--shots DIR]

For each photo, in this order: ``facerecon reconstruct PHOTO -o TMP --stages S`` as a command (its wall time, start-up
included: what a user of the CLI waits for), then the same photo uploaded on the page of a running server (2 workers,
started before the timing, as a user finds it) in headless Chromium, timed from the click on "Reconstruct" to the
first frame of the face in the 3D view (the page's ``data-seconds``). Prints both per photo, their medians and the
difference (target: page <= CLI + 1 s), and saves a screenshot of each page to --shots. The same browser path is
the test ``tests/serve/test_browser.py``; this script also runs it where CI cannot install Chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serve.harness import MISSING, chromium, running_server  # noqa: E402

DEFAULT_FACES = REPO.parent / "shared/data/faces"
DEFAULT_PHOTOS = "prnet-4.jpg,d3dfr-000002.jpg,3ddfa-emma.jpg,deca-examples-IMG_0392_inputs.jpg,deca-exp-2.jpg"


def cli_seconds(photo: Path, stages: str, home: Path) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "facerecon", "reconstruct", str(photo), "-o", out, "--stages", stages],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "FACERECON_HOME": str(home)})  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"serve_browser: the CLI failed on {photo.name} (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        return time.perf_counter() - start


def page_seconds(driver, base: str, photo: Path, stages: str, shot: Path) -> tuple[float, float]:
    """Seconds from the click to the face in the 3D view, and the job's own seconds (queued to done) in them."""
    import httpx

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(base + "/")
    Select(driver.find_element(By.ID, "stages")).select_by_value(stages)
    driver.find_element(By.ID, "file").send_keys(str(photo))
    driver.find_element(By.ID, "run").click()
    body = driver.find_element(By.TAG_NAME, "body")
    WebDriverWait(driver, 300, poll_frequency=0.05).until(lambda d: body.get_attribute("data-state") in ("ready", "error"))
    if body.get_attribute("data-state") != "ready":
        raise RuntimeError(f"{photo.name}: {driver.find_element(By.ID, 'error').text}")
    driver.save_screenshot(str(shot))
    job = httpx.get(f"{base}/api/jobs/{body.get_attribute('data-job')}", timeout=10).json()
    return float(body.get_attribute("data-seconds")), float(job["elapsed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--photos", default=DEFAULT_PHOTOS)
    parser.add_argument("--stages", default="all", choices=("landmarks", "photometric", "all"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shots", type=Path, default=REPO / "out/serve-browser")
    args = parser.parse_args()
    if MISSING is not None:
        sys.exit(f"serve_browser: {MISSING}")
    home = Path(os.environ.get("FACERECON_HOME") or Path.home() / ".cache/facerecon")
    photos = [args.faces / name for name in args.photos.split(",")]
    args.shots.mkdir(parents=True, exist_ok=True)
    cli = [cli_seconds(photo, args.stages, home) for photo in photos]
    with tempfile.TemporaryDirectory() as jobs, running_server(home, Path(jobs), "--workers", str(args.workers)) as base:
        with chromium() as driver:
            timed = [page_seconds(driver, base, p, args.stages, args.shots / f"{p.stem}.png") for p in photos]
    page, job = [t[0] for t in timed], [t[1] for t in timed]
    print(f"stages={args.stages}, server workers={args.workers}; seconds from the click to the 3D view vs the CLI")
    print(f"{'photo':34s} {'CLI s':>7s} {'page s':>7s} {'(job s)':>8s} {'page - CLI':>10s}")
    for photo, c, p, j in zip(photos, cli, page, job):
        print(f"{photo.name:34s} {c:7.2f} {p:7.2f} {j:8.2f} {p - c:+10.2f}")
    c, p, j = statistics.median(cli), statistics.median(page), statistics.median(job)
    verdict = "met" if p <= c + 1 else "NOT met"
    print(f"{'median':34s} {c:7.2f} {p:7.2f} {j:8.2f} {p - c:+10.2f}   target page <= CLI + 1 s: {verdict}")
    print(f"screenshots: {args.shots}")


if __name__ == "__main__":
    main()
