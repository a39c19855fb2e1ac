"""The live viewer's webcam when the page gets no camera (Debian's chromium, the app page, no generation needed): a
visitor who denies the camera reads why in the viewer, and so does one without a camera."""
from __future__ import annotations

import pytest

from app_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT


@pytest.mark.parametrize("camera, message", [
    ("denied", "Camera access was denied"),  # a camera exists; the permission is not granted
    ("missing", "camera"),  # no camera at all
])
def test_a_refused_webcam_is_explained_in_the_viewer(browser_app, camera, message):
    args = CHROMIUM_ARGS + (["--use-fake-device-for-media-stream"] if camera == "denied" else [])
    browser = browser_app.playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    try:
        page = browser.new_context(viewport=VIEWPORT).new_page()  # no permissions granted
        page.goto(browser_app.url)
        page.wait_for_function("window.ficaLive !== undefined", timeout=120_000)
        error = page.evaluate("window.ficaLive.startWebcam().then(() => '', (err) => err.message)")
        status = page.locator(".fica-live .fica-status").inner_text()
    finally:
        browser.close()
    print(f"{camera}: {status}")
    assert message in error and status == error, (error, status)
