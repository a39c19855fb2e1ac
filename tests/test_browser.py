"""The app in a real browser: headless Debian Chromium driven by Playwright, WebGL through SwiftShader.

A visitor's path: open the page, upload an example, click Generate, see the UV gallery, the 3D splat canvas and
the expression videos. The screenshot lands in test-artifacts/app.png.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_app import EXAMPLES, ROOT, launched_app

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--enable-unsafe-swiftshader"]
ARTIFACTS = ROOT / "test-artifacts"
OUTPUT_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def page():
    with launched_app() as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_selector("#generate")
        yield page
        browser.close()


def _upload(page, portrait: Path) -> None:
    page.locator("#portrait input[type=file]").set_input_files(str(portrait))
    page.wait_for_selector("#portrait img")


def test_no_face_upload_shows_the_clear_error(page):
    _upload(page, EXAMPLES / "no_face_coffee.jpg")
    page.click("#generate")
    page.get_by_text("No face was found").first.wait_for(timeout=60_000)


def _choose_short_videos(page, presets: list[str], seconds: float) -> None:
    """Open Options, keep only ``presets`` checked and set the video length (keeps the suite fast on a CPU)."""
    page.get_by_text("Options").click()
    page.locator("#expressions").wait_for(state="visible")
    for box in page.locator("#expressions input[type=checkbox]").all():
        box.set_checked(box.get_attribute("name") in presets)
    length = page.locator("#video-seconds input[type=number]")
    length.fill(str(seconds))
    length.press("Enter")
    checked = [box.get_attribute("name") for box in page.locator("#expressions input[type=checkbox]").all()
               if box.is_checked()]
    assert checked == presets, checked


def test_example_upload_shows_uv_gallery_3d_canvas_and_videos(page):
    page.locator("#portrait button[aria-label='Remove Image']").first.click()
    _upload(page, EXAMPLES / "astronaut.jpg")
    _choose_short_videos(page, ["smile"], 1.0)
    start = time.perf_counter()
    page.click("#generate")
    page.wait_for_function("document.querySelector('#report textarea')?.value.includes('Gaussians')",
                           timeout=OUTPUT_TIMEOUT_MS)
    page.wait_for_selector("#avatar-3d canvas", timeout=30_000)
    print(f"click to avatar and UV maps (videos still rendering): {time.perf_counter() - start:.1f} s")
    page.wait_for_function("(v => v.includes('Gaussians') && !v.includes('rendering videos'))"
                           "(document.querySelector('#report textarea')?.value ?? '')", timeout=OUTPUT_TIMEOUT_MS)
    page.wait_for_function("document.querySelectorAll('#uv-maps img').length >= 7", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#expression-videos video').length >= 1", timeout=30_000)
    assert page.locator("#expression-videos video").count() == 1
    print(f"click to all outputs: {time.perf_counter() - start:.1f} s")

    captions = page.locator("#uv-maps").inner_text().lower()
    for label in ("partial rgb", "visibility", "partial normal", "partial xyz", "completed texture", "geometry",
                  "refined texture"):
        assert label in captions
    page.wait_for_timeout(4000)  # the splat viewer fades the Gaussians in
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
    page.locator("#avatar-3d canvas").screenshot(path=str(ARTIFACTS / "avatar_canvas.png"))

    canvas = np.asarray(Image.open(ARTIFACTS / "avatar_canvas.png").convert("RGB"), dtype=np.float32)
    drawn = canvas.max(axis=2) > 40  # the viewer's background is black
    assert drawn.mean() > 0.05, f"the splat canvas is (nearly) empty: {drawn.mean():.3f} of pixels drawn"
    ys, xs = np.nonzero(drawn)
    h, w = drawn.shape
    assert abs(xs.mean() / w - 0.5) < 0.15 and abs(ys.mean() / h - 0.5) < 0.2, "the head is not centred"
