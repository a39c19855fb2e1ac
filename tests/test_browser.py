"""The app in a real browser: headless Debian Chromium driven by Playwright, WebGL through SwiftShader.

A visitor's path: open the page, upload an example, click Generate, see the UV gallery, the 3D splat canvas and
the expression videos. The screenshot lands in test-artifacts/app.png. The 3D viewer is watched from the moment the
avatar appears, through the second result and a zoom: no screen-door grid at any moment, and the same picture as
the project's exact compositor at the viewer's start camera (test-artifacts/viewer_*.png).
"""
from __future__ import annotations

import base64
import io
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_erosion, binary_fill_holes, label, median_filter

from test_app import EXAMPLES, ROOT, launched_app

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--enable-unsafe-swiftshader"]
ARTIFACTS = ROOT / "test-artifacts"
OUTPUT_TIMEOUT_MS = 240_000


VIEWPORT = {"width": 1400, "height": 1100}
GRID_DARKER = 12  # grey levels below the 5×5 median that make a pixel part of a screen-door grid
GRID_MAX = 0.02  # of head pixels, at every moment and zoom (DESIGN.md §7)
# Over the head, viewer vs the exact compositor at the viewer's start camera. 30 dB is an RMS difference of 8 grey
# levels, which no one sees on a face in a 3D viewer; the settled viewer gives 38 dB, gsplat.js's fade-in frames
# (splats grown from nothing, a screen-door grid) and an empty canvas give under 20 dB.
VIEWER_PSNR_MIN_DB = 30.0
FIRST_FRAMES = 6  # the viewer's first frames with splats in them, read back from WebGL as they are drawn
# Test-only page script: after each splat draw call (gsplat.js draws a frame in one call), copy the canvas.
RECORD_FIRST_FRAMES = """
window.__viewerFrames = [];
const drawInstanced = WebGL2RenderingContext.prototype.drawArraysInstanced;
WebGL2RenderingContext.prototype.drawArraysInstanced = function (mode, first, count, instances) {
  const result = drawInstanced.call(this, mode, first, count, instances);
  if (instances > 0 && window.__viewerFrames.length < %d) {
    const w = this.drawingBufferWidth, h = this.drawingBufferHeight, pixels = new Uint8Array(w * h * 4);
    this.readPixels(0, 0, w, h, this.RGBA, this.UNSIGNED_BYTE, pixels);
    window.__viewerFrames.push({w: w, h: h, pixels: pixels});
  }
  return result;
};
""" % FIRST_FRAMES
READ_FIRST_FRAMES = """() => window.__viewerFrames.map(f => {
  let text = "";
  for (let i = 0; i < f.pixels.length; i += 32768) {
    text += String.fromCharCode.apply(null, f.pixels.subarray(i, i + 32768));
  }
  return [f.w, f.h, btoa(text)];
})"""


@pytest.fixture(scope="module")
def app():
    """(browser, url) of app.py launched on loopback and one headless Chromium."""
    with launched_app() as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser, url
        browser.close()


def _open(app, script: str | None = None):
    browser, url = app
    page = browser.new_page(viewport=VIEWPORT)
    if script:
        page.add_init_script(script)
    page.goto(url)
    page.wait_for_selector("#generate")
    return page


@pytest.fixture(scope="module")
def page(app):
    return _open(app)


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
    page.wait_for_function("document.querySelectorAll('#uv-maps img').length >= 7", timeout=120_000)
    page.wait_for_function("document.querySelectorAll('#expression-videos video').length >= 1", timeout=120_000)
    assert page.locator("#expression-videos video").count() == 1
    print(f"click to all outputs: {time.perf_counter() - start:.1f} s")

    captions = page.locator("#uv-maps").inner_text().lower()
    for label in ("partial rgb", "visibility", "partial normal", "partial xyz", "completed texture", "geometry",
                  "refined texture"):
        assert label in captions
    page.wait_for_timeout(4000)  # the videos start playing
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True, timeout=120_000)
    page.locator("#avatar-3d canvas").screenshot(path=str(ARTIFACTS / "avatar_canvas.png"), timeout=120_000)

    canvas = np.asarray(Image.open(ARTIFACTS / "avatar_canvas.png").convert("RGB"), dtype=np.float32)
    drawn = canvas.max(axis=2) > 40  # the viewer's background is black
    assert drawn.mean() > 0.05, f"the splat canvas is (nearly) empty: {drawn.mean():.3f} of pixels drawn"
    ys, xs = np.nonzero(drawn)
    h, w = drawn.shape
    assert abs(xs.mean() / w - 0.5) < 0.15 and abs(ys.mean() / h - 0.5) < 0.2, "the head is not centred"


# ---------------------------------------------------------------------------------------------- the 3D viewer

def grid_fraction(grey: np.ndarray, head: np.ndarray) -> float:
    """Fraction of ``head`` pixels (``[H, W]`` bool) more than GRID_DARKER grey levels darker than the median of
    their 5×5 neighbourhood in ``grey [H, W]`` (0..255): the screen-door measure of DESIGN.md §7. 1 when no
    head is drawn at all."""
    if not head.any():
        return 1.0
    return float(((median_filter(grey, size=5) - grey) > GRID_DARKER)[head].mean())


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _drawn_head(grey: np.ndarray) -> np.ndarray:
    """The head on the viewer's black canvas: the largest drawn region (not the viewer's label and download
    button in the corners), holes filled (a gap inside the head counts), less a 3 px rim at the silhouette."""
    regions, count = label(grey > 40)
    if count == 0:
        return np.zeros_like(grey, dtype=bool)
    largest = regions == 1 + np.bincount(regions.ravel())[1:].argmax()
    return binary_erosion(binary_fill_holes(largest), iterations=3)


def _shows_the_avatar(grey: np.ndarray) -> bool:
    """The viewer shows a head on its black background (not Gradio's white progress overlay, not empty)."""
    sides = np.concatenate([grey[40:, :10].ravel(), grey[40:, -10:].ravel(), grey[-10:].ravel()])
    return float(np.median(sides)) < 40 and _drawn_head(grey).mean() > 0.05


def _canvas(page) -> np.ndarray:
    """The 3D viewer's canvas as the visitor sees it, ``[H, W, 3]`` float32 0..255."""
    box = page.locator("#avatar-3d canvas").bounding_box()
    shot = page.screenshot(clip=box, timeout=120_000)  # a frame can take many seconds on a loaded CPU
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.float32)


def _first_frames(page) -> list[np.ndarray]:
    """The frames RECORD_FIRST_FRAMES copied, ``[H, W, 3]`` float32 0..255 each, as shown on the black canvas."""
    frames = []
    for width, height, data in page.evaluate(READ_FIRST_FRAMES):
        rgba = np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)
        frames.append(rgba[::-1, :, :3].astype(np.float32))  # WebGL rows run bottom-up
    return frames


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    mse = float(((a - b) ** 2)[mask].mean())
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-6))


def test_viewer_is_right_from_its_first_frame_at_every_zoom(app):
    """From the first frame it draws (read back from WebGL: screenshots take seconds on a loaded CPU), through the
    second result (videos) and a zoom, the viewer shows no screen-door grid; unzoomed it shows what the exact
    compositor renders at ``gradio_viewer_camera``."""
    from fica.app.viewer import gradio_viewer_camera
    from fica.io.splat_files import load_splat
    from fica.render.dispatch import render

    page = _open(app, RECORD_FIRST_FRAMES)
    _upload(page, EXAMPLES / "astronaut.jpg")
    _choose_short_videos(page, ["smile"], 1.0)
    page.click("#generate")
    page.wait_for_selector("#avatar-3d canvas", timeout=OUTPUT_TIMEOUT_MS)
    start = time.monotonic()
    while not _shows_the_avatar(_grey(first := _canvas(page))):
        assert time.monotonic() - start < 120, "the avatar never appeared in the viewer"
    appeared = time.monotonic()
    shots = [(f"drawn frame {i + 1}", 0.0, frame) for i, frame in enumerate(_first_frames(page))]
    assert len(shots) == FIRST_FRAMES, f"only {len(shots)} frames were read back"
    shots.append(("first screenshot", 0.0, first))

    def shoot(label: str) -> None:
        shots.append((label, time.monotonic() - appeared, _canvas(page)))

    for after_s in (1.0, 3.0):
        page.wait_for_timeout(max(0.0, after_s - (time.monotonic() - appeared)) * 1000)
        shoot(f"{after_s:.0f} s")
    page.wait_for_function("(v => v.includes('Gaussians') && !v.includes('rendering videos'))"
                           "(document.querySelector('#report textarea')?.value ?? '')", timeout=OUTPUT_TIMEOUT_MS)
    shoot("second result")
    page.wait_for_timeout(1000)
    shoot("second result + 1 s")
    unzoomed = len(shots)

    url = page.locator("#avatar-3d a[data-testid='model3d-download-link']").get_attribute("href")
    splat_path = ARTIFACTS / "viewer_avatar.splat"
    ARTIFACTS.mkdir(exist_ok=True)
    with urllib.request.urlopen(urllib.parse.urljoin(page.url, url)) as response:
        splat_path.write_bytes(response.read())
    height, width = first.shape[:2]
    with torch.no_grad():
        rgb, alpha = render(load_splat(splat_path), gradio_viewer_camera(width, height), background=(0.0, 0.0, 0.0))
    reference = rgb.clamp(0, 1).numpy() * 255
    head = binary_erosion(alpha.numpy() > 0.5, iterations=2)
    Image.fromarray(reference.round().astype(np.uint8)).save(ARTIFACTS / "viewer_compositor.png")

    box = page.locator("#avatar-3d canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -480)  # the orbit radius eases from 5 to about 2: the face fills the canvas
    for label in ("zooming", "zoomed in"):
        page.wait_for_timeout(1500)
        shoot(label)

    failures = []
    reference_grid = grid_fraction(_grey(reference), head)
    print(f"\nexact compositor at the start camera: grid {100 * reference_grid:.2f}%")
    for i, (label, t, shot) in enumerate(shots):
        name = label.replace(" ", "_").replace("+", "plus")
        Image.fromarray(shot.astype(np.uint8)).save(ARTIFACTS / f"viewer_{i}_{name}.png")
        grid = grid_fraction(_grey(shot), _drawn_head(_grey(shot)))
        line = f"{label:>20s} at {t:5.1f} s: grid {100 * grid:5.2f}%"
        if grid > GRID_MAX:
            failures.append(line)
        if i < unzoomed:
            psnr = _psnr(shot, reference, head)
            line += f", PSNR vs compositor {psnr:5.1f} dB"
            if psnr < VIEWER_PSNR_MIN_DB:
                failures.append(line)
        print(line)
    assert _drawn_head(_grey(shots[-1][2])).mean() > 2 * head.mean(), "the zoom did not bring the head closer"
    assert not failures, failures
