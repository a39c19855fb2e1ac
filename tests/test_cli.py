"""``python -m fica generate``: the files it promises, and clean failures that write nothing."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
UV_FILES = ("partial_rgb", "visibility", "partial_normal", "partial_xyz", "texture", "geometry", "refined_texture")


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fica", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("cli") / "astronaut"
    result = _cli("generate", "examples/astronaut.jpg", "--out", str(out), "--views", "0,30,-30",
                  "--expressions", "smile,blink", "--seconds", "1")
    return result, out


def test_generate_writes_every_promised_file(generated):
    result, out = generated
    assert result.returncode == 0, result.stderr
    for stem in UV_FILES:
        image = np.asarray(Image.open(out / "uv" / f"{stem}.png"))
        assert image.shape[:2] == (256, 256) and image.std() > 1, stem
    portrait = Image.open(ROOT / "examples" / "astronaut.jpg")
    assert Image.open(out / "views" / "input.png").size == portrait.size
    for name in ("yaw_+000", "yaw_+030", "yaw_-030"):
        assert Image.open(out / "views" / f"{name}.png").size == (512, 512)
    for name in ("smile", "blink"):
        frames = list(iio.imiter(out / "expressions" / f"{name}.mp4"))
        assert len(frames) == 24 and frames[0].shape == (512, 512, 3)
    report = json.loads((out / "report.json").read_text())
    assert set(report["implementations"]) == {"unwrap", "complete", "refine", "prior"}
    assert report["uv_resolution"] == 256 and report["gaussians"] > 10000
    assert {"unwrap", "complete", "refine", "prior", "total"} <= set(report["timings_s"])
    ply = (out / "avatar.ply").read_bytes()
    header_end = ply.index(b"end_header\n") + len(b"end_header\n")
    assert len(ply) - header_end == 17 * 4 * report["gaussians"]  # x y z, n, f_dc, opacity, scale, rot: float32
    assert (out / "avatar.splat").stat().st_size == 32 * report["gaussians"]
    with zipfile.ZipFile(out / "avatar_rig.zip") as zf:
        assert json.loads(zf.read("manifest.json"))["count"] == report["gaussians"]
        assert zf.read("gaussians.ply") == ply, "the rig's neutral Gaussians are avatar.ply"
    assert (out / "avatar_viewer.html").read_text().startswith("<!doctype html>")


@pytest.fixture(scope="module")
def driving_video(tmp_path_factory) -> Path:
    """An expression video of an example: the astronaut's avatar talking, 16 frames at 8 fps, frontal 384²."""
    from fica import FiCAPipeline
    from fica.drive.presets import preset_clip
    from fica.io.video import write_mp4
    from fica.render.camera import orbit_camera

    avatar = FiCAPipeline.from_pretrained()(ROOT / "examples" / "astronaut.jpg").avatar
    clip = preset_clip("talk", fps=8, seconds=2)
    path = tmp_path_factory.mktemp("driving") / "talk.mp4"
    return write_mp4(avatar.animate(clip, orbit_camera(width=384, height=384)), path, fps=clip.fps)


def test_driving_video_weights_written_as_csv_render_the_same_frames(driving_video, tmp_path):
    from fica import FiCAPipeline
    from fica.drive.video import read_driving

    out = tmp_path / "hopper"
    result = _cli("generate", "examples/grace_hopper.jpg", "--out", str(out), "--views", "0", "--expressions",
                  "smile", "--seconds", "1", "--driving", str(driving_video))
    assert result.returncode == 0, result.stderr
    header = (out / "expressions" / "driving.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert header[-9:-6] == ["HeadYaw", "HeadPitch", "HeadRoll"] and len(header) == 2 + 52 + 9
    fitted, _ = read_driving(driving_video)
    back, frames = read_driving(out / "expressions" / "driving.csv")
    assert frames is None and len(back) == len(fitted) == 16 and back.fps == pytest.approx(fitted.fps, rel=1e-3)
    avatar = FiCAPipeline.from_pretrained()(ROOT / "examples" / "grace_hopper.jpg").avatar
    for a, b in zip(avatar.animate(fitted), avatar.animate(back)):  # the CSV keeps 6 decimals of each value
        diff = np.abs(a.astype(int) - b.astype(int))
        print(f"round trip: mean {diff.mean():.4f} grey levels, {(diff > 2).mean():.5f} of values off by > 2")
        assert diff.mean() < 0.05 and (diff > 2).mean() < 1e-3


def test_generate_renders_a_live_link_face_csv(tmp_path):
    from fica.drive.arkit_csv import write_arkit_csv
    from fica.drive.presets import preset_clip

    take = write_arkit_csv(preset_clip("surprise", fps=60, seconds=1), tmp_path / "take.csv")
    out = tmp_path / "out"
    result = _cli("generate", "examples/astronaut.jpg", "--out", str(out), "--views", "0", "--expressions",
                  "smile", "--seconds", "1", "--driving", str(take))
    assert result.returncode == 0, result.stderr
    frames = list(iio.imiter(out / "expressions" / "driving.mp4"))
    assert len(frames) == 30 and frames[0].shape == (512, 512, 3)  # 60 rows a second, rendered at 30 fps
    assert np.abs(frames[15].astype(int) - frames[0].astype(int)).mean() > 1  # the jaw drops mid-clip


def test_views_are_rgba_whose_alpha_is_the_avatars_coverage(generated):
    """A user composites views/*.png over their own background: over white it must be the avatar's render over
    white, and alpha must be the render's coverage (the PLY of the same run, rendered by the exact compositor)."""
    from fica.io.splat_files import load_ply
    from fica.render.camera import orbit_camera
    from fica.render.dispatch import render

    _, out = generated
    for name in ("input", "yaw_+000", "yaw_+030"):
        assert Image.open(out / "views" / f"{name}.png").mode == "RGBA", name
    view = np.asarray(Image.open(out / "views" / "yaw_+000.png"), dtype=np.float32) / 255
    rgb, alpha = render(load_ply(out / "avatar.ply"), orbit_camera(0.0, 0.0, width=512, height=512))
    rgb, alpha = rgb.numpy(), alpha.numpy()
    assert np.abs(view[..., 3] - alpha).max() <= 1.5 / 255, "alpha is not the avatar's coverage"
    assert 0.1 < (alpha > 0.5).mean() < 0.7 and view[0, 0, 3] == 0 and view[256, 256, 3] == 1
    over_white = view[..., :3] * view[..., 3:] + (1 - view[..., 3:])
    assert np.abs(over_white - rgb).max() <= 2.5 / 255, "composited over white, the view is not the render"


@pytest.mark.parametrize("make_input, message", [
    (lambda d: ROOT / "examples" / "no_face_coffee.jpg", "no face"),
    (lambda d: ROOT / "examples" / "two_faces.jpg", "faces were found"),
    (lambda d: _write(d / "notes.jpg", b"this is not an image"), "image"),
    (lambda d: _tiny(d / "tiny.png"), "64 pixels"),
])
def test_bad_portrait_exits_2_with_one_line_and_writes_nothing(tmp_path, make_input, message):
    portrait = make_input(tmp_path)
    out = tmp_path / "out"
    result = _cli("generate", str(portrait), "--out", str(out), "--expressions", "smile", "--seconds", "1")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0].lower()
    assert not out.exists() or not any(out.iterdir())
    assert not any(p.name.startswith(".fica-") for p in tmp_path.iterdir())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tiny(path: Path) -> Path:
    Image.open(ROOT / "examples" / "astronaut.jpg").resize((40, 40)).save(path)
    return path
