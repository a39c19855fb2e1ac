"""The browser tests' shared session (fixtures in conftest.py): app.py launched once, one headless Debian Chromium
(WebGL through SwiftShader) driven by Playwright, and one visitor's generation that test_browser.py and
test_live_viewer.py all look at, so the suite generates in a browser once.

The visit: open the page, upload the astronaut example, keep one 1 s expression video, click Generate, and watch
the 3D viewer (Gradio's Model3D) from the first frame it draws with splats in it (read back from WebGL as drawn:
screenshots take seconds on a loaded CPU), at 1 s and 3 s after the avatar appeared, at the second result (videos)
and a second later. The live viewer loads the rig in the same page.
"""
from __future__ import annotations

import base64
import io
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion, binary_fill_holes, label

from test_app import EXAMPLES, ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--enable-unsafe-swiftshader", "--allow-file-access-from-files"]


def fake_camera_args(video: Path) -> list[str]:
    """Chromium flags for a camera that plays ``video`` (y4m) in a loop, granted without asking. Chromium opens the
    file when a page opens the camera, so it may be written after the launch."""
    return ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"]
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORT = {"width": 1400, "height": 1300}
OUTPUT_TIMEOUT_MS = 240_000
VISIT_PRESETS = ["smile"]
VISIT_VIDEO_SECONDS = 1.0  # the shortest video keeps the visit fast; the viewers are what these tests check
FIRST_FRAMES = 6  # the Model3D viewer's first frames with splats in them, read back from WebGL as they are drawn
# Test-only page script: after each splat draw call (gsplat.js draws a frame in one drawArraysInstanced call; the
# live viewer's Spark draws with drawElementsInstanced), copy the canvas; and count those draws.
RECORD_FIRST_FRAMES = """
window.__viewerFrames = [];
window.__viewerDraws = 0;
const drawInstanced = WebGL2RenderingContext.prototype.drawArraysInstanced;
WebGL2RenderingContext.prototype.drawArraysInstanced = function (mode, first, count, instances) {
  const result = drawInstanced.call(this, mode, first, count, instances);
  window.__viewerDraws += 1;
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
RESULTS_DONE = ("(v => v.includes('Gaussians') && !v.includes('rendering videos'))"
                "(document.querySelector('#report textarea')?.value ?? '')")


@dataclass
class BrowserApp:
    """The launched app's ``url``, the Playwright driver and its ``browser``, whose fake camera plays
    ``camera_video`` (a y4m that the webcam test writes before it opens the camera)."""
    playwright: object
    browser: object
    url: str
    camera_video: Path

    def open(self, script: str | None = None):
        """A new page on the app (``script`` runs before the page's own), its Generate button ready."""
        page = self.browser.new_page(viewport=VIEWPORT)
        if script:
            page.add_init_script(script)
        page.goto(self.url)
        page.wait_for_selector("#generate")
        return page


@dataclass
class Visit:
    """The generation every browser test looks at: its ``page`` (results shown, live viewer loaded), when the
    avatar ``appeared`` in the 3D viewer (time.monotonic()) and the viewer's ``shots``: (label, seconds after it
    appeared, ``[H, W, 3]`` float32 0..255)."""
    page: object
    appeared: float = 0.0
    shots: list = field(default_factory=list)


def upload(page, portrait: Path) -> None:
    page.locator("#portrait input[type=file]").set_input_files(str(portrait))
    page.wait_for_selector("#portrait img")


def choose_short_videos(page, presets: list[str], seconds: float) -> None:
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


def grey(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def drawn_head(grey_image: np.ndarray) -> np.ndarray:
    """The head on the Model3D viewer's black canvas: the largest drawn region (not the viewer's label and
    download button in the corners), holes filled (a gap inside the head counts), less a 3 px rim at the
    silhouette."""
    regions, count = label(grey_image > 40)
    if count == 0:
        return np.zeros_like(grey_image, dtype=bool)
    largest = regions == 1 + np.bincount(regions.ravel())[1:].argmax()
    return binary_erosion(binary_fill_holes(largest), iterations=3)


def shows_the_avatar(grey_image: np.ndarray) -> bool:
    """The viewer shows a head on its black background (not Gradio's white progress overlay, not empty)."""
    sides = np.concatenate([grey_image[40:, :10].ravel(), grey_image[40:, -10:].ravel(), grey_image[-10:].ravel()])
    return float(np.median(sides)) < 40 and drawn_head(grey_image).mean() > 0.05


def model3d_canvas(page) -> np.ndarray:
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


def record_visit(app: BrowserApp) -> Visit:
    """Generate the astronaut in a fresh page and record the 3D viewer as it shows the avatar (module docstring)."""
    page = app.open(RECORD_FIRST_FRAMES)
    upload(page, EXAMPLES / "astronaut.jpg")
    choose_short_videos(page, VISIT_PRESETS, VISIT_VIDEO_SECONDS)
    start = time.perf_counter()
    page.click("#generate")
    page.wait_for_selector("#avatar-3d canvas", timeout=OUTPUT_TIMEOUT_MS)
    visit = Visit(page)
    first = model3d_canvas(page)
    while not shows_the_avatar(grey(first)):
        assert time.perf_counter() - start < OUTPUT_TIMEOUT_MS / 1000, "the avatar never appeared in the viewer"
        first = model3d_canvas(page)
    appeared = visit.appeared = time.monotonic()
    print(f"click to the avatar in the 3D viewer: {time.perf_counter() - start:.1f} s")
    visit.shots += [(f"drawn frame {i + 1}", 0.0, frame) for i, frame in enumerate(_first_frames(page))]
    visit.shots.append(("first screenshot", 0.0, first))

    def shoot(label_text: str) -> None:
        visit.shots.append((label_text, time.monotonic() - appeared, model3d_canvas(page)))

    for after_s in (1.0, 3.0):
        page.wait_for_timeout(max(0.0, after_s - (time.monotonic() - appeared)) * 1000)
        shoot(f"{after_s:.0f} s")
    page.wait_for_function(RESULTS_DONE, timeout=OUTPUT_TIMEOUT_MS)
    print(f"click to all outputs: {time.perf_counter() - start:.1f} s")
    shoot("second result")
    page.wait_for_timeout(1000)
    shoot("second result + 1 s")
    return visit
