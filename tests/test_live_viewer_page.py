"""The live viewer's panel on the app page before any avatar (Debian's chromium, no generation needed): its
controls, and a webcam the page cannot have (a visitor who denies the camera reads why in the viewer, and so does
one without a camera)."""
from __future__ import annotations

import pytest

from app_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from fica.drive.expression import ARKIT_NAMES
from fica.drive.presets import PRESETS

GROUPS = {"Brows": ("brow",), "Eyes": ("eye",), "Cheeks and nose": ("cheek", "nose"), "Jaw": ("jaw",),
          "Mouth": ("mouth", "tongue")}


def test_the_controls_are_52_grouped_sliders_head_angles_presets_and_reset(browser_app):
    """Every ARKit weight has one slider, in the group its name says; yaw, pitch and roll have theirs; the presets
    are offered; a slider moved by the visitor sets the weight or angle, Reset takes all back to zero."""
    page = browser_app.browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(browser_app.url)
        page.wait_for_function("window.ficaLive !== undefined", timeout=120_000)
        groups = page.evaluate("""Array.from(document.querySelectorAll('.fica-controls details')).map((d) => [
            d.querySelector('summary').textContent,
            Array.from(d.querySelectorAll('.fica-row label')).map((l) => l.textContent)])""")
        presets = page.evaluate("Array.from(document.querySelectorAll('.fica-controls select option'))"
                                ".map((o) => o.value)")

        def drag(name: str, value: float) -> None:
            page.evaluate("""([name, value]) => {
                const row = Array.from(document.querySelectorAll('.fica-row')).find(
                    (r) => r.querySelector('label').textContent === name);
                const input = row.querySelector('input');
                input.value = value;
                input.dispatchEvent(new Event('input'));
            }""", [name, value])

        drag("jawOpen", 0.8)
        drag("yaw", 20)
        moved = page.evaluate("[window.ficaLive.weights.jawOpen, window.ficaLive.rotation.yaw]")
        page.get_by_role("button", name="Reset").click()
        reset = page.evaluate("[window.ficaLive.weights.jawOpen, window.ficaLive.rotation.yaw]")
    finally:
        page.close()
    titles = [title for title, _ in groups]
    assert titles == ["Head", *GROUPS], titles
    assert groups[0][1] == ["yaw", "pitch", "roll"]
    for title, names in groups[1:]:
        assert names and all(name.startswith(GROUPS[title]) for name in names), (title, names)
    assert sorted(name for _, names in groups[1:] for name in names) == sorted(ARKIT_NAMES)
    assert presets == list(PRESETS)
    assert moved == [pytest.approx(0.8), 20] and reset == [0, 0]


@pytest.mark.parametrize("camera, message", [
    ("denied", "Camera access was denied"),  # a camera exists; the permission is not granted
    ("missing", "No camera was found. Connect one, or drive the avatar"),  # no camera at all
])
def test_a_refused_webcam_is_explained_in_the_viewer(browser_app, camera, message):
    """The viewer says what happened and what the visitor can do, in words (the browser's error name, e.g.
    NotFoundError, only in the status' tooltip)."""
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
    assert "Error" not in status, status


def test_the_webcam_video_stays_in_the_browser(browser_app):
    """While the webcam runs (Chromium's fake camera, every frame through the face mesh in the page), the page sends
    the server nothing but small requests: no frame, not even a compressed one, goes out."""
    args = CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    browser = browser_app.playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    try:
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(browser_app.url)
        page.wait_for_function("window.ficaLive !== undefined", timeout=120_000)
        sent = []
        page.on("request", lambda request: sent.append((request.method, request.url,
                                                        len(request.post_data_buffer or b""))))
        page.evaluate("window.ficaLive.startWebcam()")  # resolves once the face mesh runs on the camera's frames
        page.wait_for_timeout(5000)
        status = page.locator(".fica-live .fica-status").inner_text()
        page.evaluate("window.ficaLive.stopWebcam()")
    finally:
        browser.close()
    print(f"webcam ran ({status!r}); the page sent {len(sent)} requests, largest body "
          f"{max([size for _, _, size in sent], default=0)} bytes")
    assert "webcam driving" in status, status
    assert all(size < 4096 for _, _, size in sent), [s for s in sent if s[2] >= 4096]
