"""The Gradio app as a visitor's script sees it: app.py launched on loopback, called through gradio_client.

Also the Model3D framing, at the start camera of Gradio 6's splat viewer (``gradio_viewer_camera``, which the
browser test checks against what the canvas shows).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from fica.app.pipelines import load_pipeline
from fica.app.viewer import gradio_viewer_camera, to_gradio_viewer
from fica.prior.gaussians import GaussianSet
from fica.rotations import quat_to_matrix

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TEST_EXPRESSIONS = ["smile"]  # one 1 s video per request keeps the suite fast


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def launched_app(timeout_s: float = 120.0):
    """``python app.py`` on a free loopback port, example caching off; yields its URL, stops it afterwards."""
    with launched_app_process(timeout_s) as (url, _):
        yield url


@contextmanager
def launched_app_process(timeout_s: float = 120.0, env: dict[str, str] | None = None):
    """``launched_app`` with extra environment variables ``env``; yields its URL and its ``Popen``."""
    port = _free_port()
    env = {**os.environ, "FICA_CACHE_EXAMPLES": "0", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    log = tempfile.TemporaryFile("w+")  # a pipe nobody reads would stall a server that logs a lot
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    start = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - start > timeout_s:
                raise RuntimeError(f"app.py did not answer on {url} within {timeout_s:.0f} s")
            time.sleep(0.5)
        print(f"app ready in {time.monotonic() - start:.1f} s")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    with launched_app() as url:
        yield Client(url, verbose=False)


def _submit(client, portrait: Path, expressions=TEST_EXPRESSIONS, driving: Path | None = None):
    from gradio_client import handle_file

    return client.submit(handle_file(str(portrait)), 256, expressions,
                         handle_file(str(driving)) if driving else None, 0, 1.0, api_name="/generate")


def _generate(client, *args, **kwargs):
    return _submit(client, *args, **kwargs).result()


@pytest.fixture(scope="module")
def astronaut_job(client):
    start = time.perf_counter()
    job = _submit(client, EXAMPLES / "astronaut.jpg")
    job.result()
    print(f"astronaut via gradio_client: {time.perf_counter() - start:.1f} s")
    return job


@pytest.fixture(scope="module")
def astronaut_result(astronaut_job):
    return astronaut_job.result()


def test_avatar_comes_before_the_rig_and_the_rig_before_the_videos(astronaut_job):
    first, rigged, final = astronaut_job.outputs()
    assert len(first[0]) == 7 and first[1].endswith(".splat"), "UV maps and the splat come first"
    assert rigged[1] == final[1] == {"__type__": "update"}, "the unchanged splat is not sent again (Model3D would reload it)"
    assert first[2] == [] and "building the live rig" in first[5]
    assert "avatar_rig.zip" not in [Path(p).name for p in first[4]]
    assert "avatar_rig.zip" in [Path(p).name for p in rigged[4]] and "rendering videos" in rigged[5]
    assert len(final[2]) == 1 and "rendering videos" not in final[5]


def _app_error_message(client, *args, **kwargs) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        _generate(client, *args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------------------------- Model3D framing

def test_viewer_copy_faces_the_start_camera_centred_and_upright():
    from fica.head.model import default_head

    vertices = default_head().vertices.float()  # [V, 3] head frame, metres
    n = len(vertices)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    head = GaussianSet(vertices, quats, torch.full((n, 3), 0.002), torch.ones(n), torch.rand(n, 3))
    view = to_gradio_viewer(head, screen_height_px=260)
    camera = gradio_viewer_camera(400, 420)
    px, depth = camera.project(view.means)
    px = px - camera.K[:2, 2]  # relative to the canvas centre, y down

    top, chin = vertices[:, 1].argmax(), vertices[:, 1].argmin()
    left, right = vertices[:, 0].argmax(), vertices[:, 0].argmin()  # subject's left is +x
    nose, back = vertices[:, 2].argmax(), vertices[:, 2].argmin()
    mid = (px.quantile(0.99, dim=0) + px.quantile(0.01, dim=0)) / 2
    assert mid.abs().max() < 15, f"head not centred on the canvas: {mid.tolist()} px"
    assert px[top, 1] < -100 and px[chin, 1] > 100, "head not upright"
    assert px[left, 0] > 50 and px[right, 0] < -50, "subject's left must show on the right, as in the photo"
    assert depth[nose] < depth[back], "face must point toward the camera"
    height_px = float(px[:, 1].quantile(0.99) - px[:, 1].quantile(0.01))
    assert 220 < height_px < 320, height_px
    # Orientations turn with the positions: a Gaussian's axes map like the offsets between means do.
    head_to_view = torch.linalg.lstsq(vertices - vertices.mean(0), view.means - view.means.mean(0)).solution.T
    head_to_view = head_to_view / head_to_view.det().abs() ** (1 / 3)
    torch.testing.assert_close(quat_to_matrix(view.quats), head_to_view @ quat_to_matrix(quats), atol=1e-4, rtol=0)
    assert torch.allclose(view.scales / head.scales, view.scales[:1] / head.scales[:1])


def test_unreachable_weights_fall_back_to_embedded_with_a_note(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FICA_MODEL", "fica-test/no-such-weights")
    pipe, note = load_pipeline(uv_resolution=128)
    assert "fica-test/no-such-weights" in note and "embedded" in note
    assert all(impl.startswith("embedded") for impl in pipe.implementations.values())


# ---------------------------------------------------------------------------------------------- the running app

def test_generate_endpoint_returns_every_output_in_order(astronaut_job):
    from plyfile import PlyData

    first, *_, final = astronaut_job.outputs()
    uv_maps, _, videos, driving_video, downloads, report = final
    viewer_splat = first[1]
    captions = [item["caption"] for item in uv_maps]
    assert [c.lower() for c in captions] == ["partial rgb", "visibility", "partial normal", "partial xyz",
                                             "completed texture", "geometry", "refined texture"]
    for item in uv_maps:
        image = np.asarray(Image.open(item["image"]).convert("RGB"))
        assert image.shape == (256, 256, 3) and image.std() > 5, item["caption"]

    names = {Path(p).name: Path(p) for p in downloads}
    assert {"avatar.ply", "avatar.splat", "avatar_rig.zip", "avatar_viewer.html", "smile.mp4",
            "uv_maps.zip"} == set(names)
    avatar = PlyData.read(str(names["avatar.ply"]))["vertex"]
    assert len(avatar) > 10_000
    assert names["avatar.splat"].stat().st_size == Path(viewer_splat).stat().st_size == 32 * len(avatar)
    assert np.ptp(avatar["y"]) < 0.6, "the download stays in metres"
    frames = list(iio.imiter(videos[0]["video"]))
    assert [v["caption"] for v in videos] == ["smile"] and len(frames) >= 24 and frames[0].ndim == 3
    assert driving_video is None
    with zipfile.ZipFile(names["uv_maps.zip"]) as zf:
        assert sorted(zf.namelist()) == sorted(f"uv/{Path(item['image']).name}" for item in uv_maps)
    for stage in ("unwrap", "complete", "refine", "prior"):
        assert f"{stage} " in report
    assert f"{len(avatar):,} Gaussians" in report


def test_generate_is_the_only_public_endpoint(client):
    """The examples' handler and the page's script-only event are not published: a script sees one endpoint."""
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/generate"] and not api["unnamed_endpoints"]


@pytest.mark.parametrize("name, error", [("no_face_coffee.jpg", "NoFaceFound"), ("two_faces.jpg", "MultipleFaces")])
def test_face_errors_show_the_library_message_and_the_app_keeps_serving(client, name, error):
    import fica.errors
    from fica.unwrap.landmarks import detect_landmarks

    image = np.asarray(Image.open(EXAMPLES / name).convert("RGB"), dtype=np.float32) / 255
    with pytest.raises(getattr(fica.errors, error)) as expected:
        detect_landmarks(image)
    assert str(expected.value) in _app_error_message(client, EXAMPLES / name)


def test_unreadable_tiny_and_bad_video_inputs_give_clear_errors(client, tmp_path):
    from fica.errors import ImageTooSmall, UnsupportedInput
    from fica.io.image import load_portrait

    not_an_image = tmp_path / "portrait.png"
    not_an_image.write_text("this is not a picture")
    with pytest.raises(UnsupportedInput) as expected:
        load_portrait(str(not_an_image))
    assert str(expected.value) in _app_error_message(client, not_an_image)

    tiny = tmp_path / "tiny.png"
    Image.open(EXAMPLES / "astronaut.jpg").resize((40, 40)).save(tiny)
    with pytest.raises(ImageTooSmall) as expected:
        load_portrait(str(tiny))
    assert str(expected.value) in _app_error_message(client, tiny)

    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (26 * 2**20))  # over the app's 25 MB upload limit
    with pytest.raises(Exception, match="maximum file size"):
        _generate(client, huge)

    bad_video = tmp_path / "driving.mp4"
    bad_video.write_text("not a video")
    message = _app_error_message(client, EXAMPLES / "astronaut.jpg", driving=bad_video)
    assert "video" in message.lower() and "Traceback" not in message


def test_driving_video_comes_back_beside_the_avatar(client, tmp_path):
    from fica.io.video import write_mp4

    driver = np.asarray(Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB").resize((256, 300)))
    frames = [np.roll(driver, shift, axis=1) for shift in range(0, 12, 2)]  # 6 frames, the face drifting right
    driving = write_mp4(frames, tmp_path / "driving.mp4", fps=12)
    result = _generate(client, EXAMPLES / "astronaut.jpg", expressions=[], driving=driving)
    side = list(iio.imiter(result[3]))
    assert len(side) == len(frames)
    height, width = side[0].shape[:2]
    driver_width = round(driver.shape[1] * height / driver.shape[0])
    assert width >= driver_width + 0.9 * height, "driving | avatar: the avatar's square render sits to the right"
    left = np.asarray(Image.fromarray(side[0][:, :driver_width]).resize((256, 300)), dtype=np.float32)
    assert np.abs(left - frames[0]).mean() < 12, "the left half is the driving video"
    assert {"driving.mp4", "driving.csv"} <= {Path(p).name for p in result[4]}


def test_a_live_link_face_csv_drives_the_avatar(client, tmp_path):
    """The driving input takes an ARKit / Live Link Face CSV as well as a video: the avatar performs it."""
    from fica.drive.arkit_csv import write_arkit_csv
    from fica.drive.presets import preset_clip

    take = write_arkit_csv(preset_clip("surprise", fps=30, seconds=1), tmp_path / "take.csv")
    result = _generate(client, EXAMPLES / "astronaut.jpg", expressions=[], driving=take)
    frames = [frame.astype(int) for frame in iio.imiter(result[3])]
    assert len(frames) == 30
    assert np.abs(frames[15] - frames[0]).mean() > 1, "the jaw drops mid-clip"
    assert {"driving.mp4", "driving.csv"} <= {Path(p).name for p in result[4]}


def test_two_concurrent_clients_get_their_own_results(client, astronaut_result):
    from gradio_client import Client

    url = client.src
    portraits = [EXAMPLES / "astronaut.jpg", EXAMPLES / "grace_hopper.jpg"]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: _generate(Client(url, verbose=False), p, expressions=[]), portraits))

    def partial_rgb(result) -> np.ndarray:
        return np.asarray(Image.open(result[0][0]["image"]).convert("RGB"), dtype=np.float32)

    solo, astronaut, hopper = partial_rgb(astronaut_result), partial_rgb(results[0]), partial_rgb(results[1])
    assert np.abs(astronaut - solo).mean() < 1.0, "the same portrait must give the same maps under load"
    assert np.abs(hopper - astronaut).mean() > 10, "each client must get its own portrait's maps"
    assert results[0][4] != results[1][4], "each client gets its own files"  # [1] is the unchanged-viewer update
