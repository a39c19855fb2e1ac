"""Shared test fixtures: the example portraits in examples/ (see examples/README.md), and the browser tests' one
launched app, one Chromium and one generation in it (tests/app_browser.py)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
PHOTOS = ("astronaut.jpg", "grace_hopper.jpg")
STYLIZED = ("astronaut_stylized.jpg", "grace_hopper_smooth.jpg", "astronaut_posterized.png", "grace_hopper_grey.jpg")
NO_FACE = "no_face_coffee.jpg"
TWO_FACES = "two_faces.jpg"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one); run them with `pytest -m gpu`")


def pytest_collection_modifyitems(config, items):
    # The browser tests run last, together: their session-wide app and Chromium stop when the session ends, so
    # nothing of them idles (or draws WebGL frames) while the other tests run.
    items.sort(key=lambda item: "browser_app" in getattr(item, "fixturenames", ()))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@lru_cache(maxsize=16)
def _load(name: str) -> torch.Tensor:
    rgb = np.asarray(Image.open(EXAMPLES_DIR / name).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb)


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The examples/ folder."""
    return EXAMPLES_DIR


@pytest.fixture(scope="session")
def example_image():
    """``example_image(name) -> [H, W, 3]`` float32 0..1 tensor of examples/<name> (cached; clone before editing)."""
    return _load


@pytest.fixture(scope="session")
def portrait() -> torch.Tensor:
    """The astronaut portrait, ``[512, 512, 3]`` float32 0..1."""
    return _load("astronaut.jpg")


@pytest.fixture(params=PHOTOS)
def photo_name(request) -> str:
    """Each real photograph in examples/."""
    return request.param


@pytest.fixture(params=PHOTOS + STYLIZED)
def face_image_name(request) -> str:
    """Each example that shows exactly one face (photos and their stylized variants)."""
    return request.param


@pytest.fixture(scope="session")
def browser_app(tmp_path_factory):
    """app.py launched on loopback and one headless Chromium (app_browser.BrowserApp) with a fake camera, shared by
    every browser test; skipped without Playwright or Debian's chromium."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from app_browser import CHROMIUM, CHROMIUM_ARGS, BrowserApp, fake_camera_args
    from test_app import launched_app

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    camera_video = tmp_path_factory.mktemp("camera") / "camera.y4m"
    with launched_app() as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS + fake_camera_args(camera_video))
        yield BrowserApp(playwright, browser, url, camera_video)
        browser.close()


@pytest.fixture(scope="session")
def app_visit(browser_app):
    """The browser tests' one generation (app_browser.record_visit): its page and the 3D viewer's recorded shots."""
    from app_browser import record_visit

    visit = record_visit(browser_app)
    yield visit
    visit.page.close()
