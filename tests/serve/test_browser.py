"""The page of ``facerecon serve`` in a real browser (headless Chromium, WebGL on SwiftShader): a shared photo
uploaded, the 3D view drawn, a slider that changes the face, the shading switches, a photo of two faces with its
face picker, and a file that is not a photo. Screenshots go to ``$FACERECON_SCREENSHOTS`` (else a temporary folder).
``benchmarks/serve_browser.py`` runs the same path and times it against the CLI."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.serve.harness import MISSING, chromium

if MISSING is not None:
    pytest.skip(MISSING, allow_module_level=True)

httpx = pytest.importorskip("httpx", reason="the web extra's tests need httpx (in the test extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("FACERECON_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _state(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def _wait_state(driver, states: tuple[str, ...], timeout: float = 300) -> str:
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: _state(d) in states)
    return _state(driver)


def _picture(element, path: Path | None = None) -> np.ndarray:
    """An element as it is on screen, ``(H, W, 3)`` float RGB; saved to ``path`` too."""
    from PIL import Image

    png = element.screenshot_as_png
    if path is not None:
        path.write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


def _changed(element, before: np.ndarray, path: Path, threshold: float = 0.5, timeout: float = 10) -> np.ndarray:
    """Wait until ``element`` looks different from ``before`` (mean absolute difference, levels); its picture."""
    deadline = time.monotonic() + timeout
    while True:
        after = _picture(element, path)
        if np.abs(after - before).mean() > threshold or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def test_upload_a_photo_see_the_face_and_move_a_slider(server, browser, faces_dir: Path, shots: Path) -> None:
    base, _ = server
    browser.get(base + "/")
    assert _state(browser) == "idle"
    browser.find_element(By.ID, "file").send_keys(str(faces_dir / "prnet-4.jpg"))
    run = browser.find_element(By.ID, "run")
    assert run.is_enabled()
    run.click()
    assert _wait_state(browser, ("ready", "error")) == "ready", browser.find_element(By.ID, "error").text
    assert float(browser.find_element(By.TAG_NAME, "body").get_attribute("data-seconds")) > 0
    browser.save_screenshot(str(shots / "page.png"))
    canvas = browser.find_element(By.ID, "view")
    textured = _picture(canvas, shots / "view-texture.png")
    # Not blank: a face on the dark background, in colour.
    background = textured[2, 2]
    face = np.abs(textured - background).sum(axis=2) > 30
    assert 0.05 < face.mean() < 0.9, face.mean()
    assert textured[face].std(axis=0).mean() > 10
    assert textured.var() > 100
    # The landmark picture beside it is drawn.
    assert _picture(browser.find_element(By.ID, "picture"), shots / "landmarks.png").std() > 10
    # One slider per ARKit expression, at the fitted weights; jawOpen pushed to 1 opens the mouth.
    sliders = browser.find_elements(By.CSS_SELECTOR, "#sliders input[type=range]")
    assert len(sliders) == 53
    jaw = browser.find_element(By.CSS_SELECTOR, "#sliders input[data-name=jawOpen]")
    jaw.send_keys(Keys.END)
    assert jaw.get_attribute("value") == "1"
    opened = _changed(canvas, textured, shots / "view-jawopen.png")
    moved = np.abs(opened - textured).sum(axis=2) > 30
    assert moved.mean() > 0.002, moved.mean()
    rows = np.nonzero(moved.any(axis=1))[0]
    assert rows.mean() > np.nonzero(face.any(axis=1))[0].mean() - 0.05 * len(face), "the change is not low on the face"
    # "fitted" puts every slider back: the first picture again.
    browser.find_element(By.ID, "fitted").click()
    back = _changed(canvas, opened, shots / "view-fitted.png")
    assert np.abs(back - textured).mean() < 0.5
    # Plain geometry is grey; the albedo is in colour again; the details change the shading.
    browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=geometry]").click()
    grey = _changed(canvas, back, shots / "view-geometry.png")
    assert grey[face].std(axis=1).mean() < 4  # R = G = B on the face
    browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=albedo]").click()
    albedo = _changed(canvas, grey, shots / "view-albedo.png")
    assert albedo[face].std(axis=1).mean() > 6
    details = browser.find_element(By.ID, "details")
    assert details.is_enabled()
    details.click()
    _changed(canvas, albedo, shots / "view-albedo-details.png")
    # The downloads are the job's files.
    glb = httpx.get(browser.find_element(By.ID, "download-glb").get_attribute("href"), timeout=30)
    assert glb.status_code == 200 and glb.content[:4] == b"glTF"
    archive = httpx.get(browser.find_element(By.ID, "download-obj").get_attribute("href"), timeout=30)
    assert archive.status_code == 200 and archive.content[:2] == b"PK"
    params = httpx.get(browser.find_element(By.ID, "download-params").get_attribute("href"), timeout=30)
    assert len(params.json()["expression"]) == 53


def test_a_sample_with_two_faces_and_the_face_picker(server, browser, shots: Path) -> None:
    base, _ = server
    browser.get(base + "/")
    Select(browser.find_element(By.ID, "stages")).select_by_value("landmarks")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sample-list button"))
    browser.find_element(By.CSS_SELECTOR, "#sample-list button[data-sample='3ddfa-trump_hillary.jpg']").click()
    assert _wait_state(browser, ("ready", "error")) == "ready", browser.find_element(By.ID, "error").text
    buttons = browser.find_elements(By.CSS_SELECTOR, "#face-picker button")
    assert [b.text for b in buttons] == ["Face 1", "Face 2"]
    assert buttons[0].get_attribute("aria-pressed") == "true"
    canvas, picture = browser.find_element(By.ID, "view"), browser.find_element(By.ID, "picture")
    first, first_picture = _picture(canvas, shots / "two-faces-1.png"), _picture(picture)
    buttons[1].click()
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-face") == "1")
    second = _changed(canvas, first, shots / "two-faces-2.png")
    assert np.abs(second - first).mean() > 0.5  # another person's face
    assert buttons[1].get_attribute("aria-pressed") == "true"
    assert np.abs(_changed(picture, first_picture, shots / "two-faces-2-landmarks.png") - first_picture).mean() > 1
    browser.save_screenshot(str(shots / "two-faces-page.png"))


def test_a_file_that_is_not_a_photo_gets_one_clear_line(server, browser, tmp_path: Path) -> None:
    base, jobs = server
    before = set(jobs.iterdir())
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo at all\n")
    browser.get(base + "/")
    browser.find_element(By.ID, "file").send_keys(str(notes))
    browser.find_element(By.ID, "run").click()
    assert _wait_state(browser, ("ready", "error"), timeout=60) == "error"
    message = browser.find_element(By.ID, "error").text
    assert "notes.jpg" in message and "not an image" in message and "\n" not in message
    assert set(jobs.iterdir()) == before
