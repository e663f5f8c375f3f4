"""What the tests of ``facerecon serve`` and ``benchmarks/serve_browser.py`` run: the server in its own process, and
headless Chromium driven by Selenium (Debian's ``chromium`` and ``chromium-driver``, given by path: nothing is
downloaded)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Why a browser cannot run here, or None when it can.
MISSING: str | None = None
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:
    MISSING = "selenium is not installed (it is in the test extra)"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if MISSING is None and (CHROMIUM is None or CHROMEDRIVER is None):
    MISSING = "Debian's chromium and chromium-driver are not installed (.ci/run installs them with apt-get)"

# No GPU: WebGL runs on SwiftShader. The machine has no internet: Chromium's own background connections are off.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1700")  # fmt: skip


@contextlib.contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, quit on exit."""
    if MISSING is not None:
        raise RuntimeError(MISSING)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(home: Path, jobs: Path, *args: str, timeout: float = 180) -> Iterator[str]:
    """``facerecon serve`` on a free port of 127.0.0.1 with the model cache ``home``, jobs under ``jobs`` and the
    extra arguments ``args``; yields its base URL once ``/api/health`` answers, and stops it on exit."""
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "facerecon", "serve", "--port", str(port), "--jobs", str(jobs), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "FACERECON_HOME": str(home)},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the server did not start: {process.communicate()[1][-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
