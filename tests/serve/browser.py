"""Headless Chromium driven by Selenium, for the page of ``facerecon serve``: Debian's ``chromium`` and
``chromium-driver`` (nothing is downloaded: the driver and the browser are given by path)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

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
