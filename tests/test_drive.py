"""Expression presets and ARKit / Live Link Face CSV driving."""
import math

import pytest
import torch

from fica.drive.arkit_csv import read_arkit_csv, write_arkit_csv
from fica.drive.expression import ARKIT_NAMES, Clip, Expression
from fica.drive.presets import PRESETS, preset_clip
from fica.errors import UnsupportedInput


def _weights(clip: Clip) -> torch.Tensor:
    return torch.stack([f.weights for f in clip.frames])


def _rotations(clip: Clip) -> torch.Tensor:
    return torch.stack([f.rotation_deg for f in clip.frames])


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_is_smooth_bounded_and_returns_to_neutral(name):
    clip = preset_clip(name, fps=24, seconds=4)
    w, rot = _weights(clip), _rotations(clip)
    assert len(clip) == 96 and clip.fps == 24
    assert w.min() >= 0 and w.max() <= 1
    assert w.max() > 0.3 or rot.abs().max() > 10, "a preset must visibly move something"
    assert w.diff(dim=0).abs().max() <= 0.35, "no weight jumps between frames at 24 fps"
    assert rot.diff(dim=0).abs().max() <= 4.0, "head turns at most 4 degrees a frame at 24 fps"
    assert w[0].abs().max() < 1e-6 and w[-1].abs().max() < 1e-6
    assert rot[0].abs().max() < 1e-4 and rot[-1].abs().max() < 1e-4


def test_presets_named_in_the_brief_exist_and_move_the_right_controls():
    assert {"smile", "talk", "surprise", "blink", "turn"} <= set(PRESETS)
    assert _weights(preset_clip("smile"))[:, ARKIT_NAMES.index("mouthSmileLeft")].max() > 0.5
    assert _weights(preset_clip("talk"))[:, ARKIT_NAMES.index("jawOpen")].max() > 0.2
    assert _weights(preset_clip("blink"))[:, ARKIT_NAMES.index("eyeBlinkRight")].max() > 0.95
    yaw = _rotations(preset_clip("turn"))[:, 0]
    assert yaw.max() > 20 and yaw.min() < -20
    wink = _weights(preset_clip("wink"))
    assert wink[:, ARKIT_NAMES.index("eyeBlinkLeft")].max() > 0.95
    assert wink[:, ARKIT_NAMES.index("eyeBlinkRight")].max() == 0


def test_preset_length_follows_fps_and_seconds():
    assert len(preset_clip("smile", fps=30, seconds=2)) == 60
    assert len(preset_clip(" Glance", fps=10, seconds=1)) == 10


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ValueError, match="smile") as err:
        preset_clip("moonwalk")
    assert "moonwalk" in str(err.value)


@pytest.mark.parametrize("fps,seconds", [(24, 4), (30, 0.4), (60, 1.5)])
def test_csv_round_trip_keeps_weights_rotation_and_fps(tmp_path, fps, seconds):
    clip = preset_clip("talk", fps=fps, seconds=seconds)
    clip.frames[3].gaze = torch.tensor([10.0, -5.0])
    back = read_arkit_csv(write_arkit_csv(clip, tmp_path / "take.csv"))
    assert back.fps == pytest.approx(fps, rel=1e-3)
    assert len(back) == len(clip)
    assert (_weights(back) - _weights(clip)).abs().max() < 1e-5
    assert (_rotations(back) - _rotations(clip)).abs().max() < 1e-3
    assert torch.allclose(back.frames[3].gaze, torch.tensor([10.0, -5.0]), atol=1e-3)


def test_reads_camel_case_live_link_rows_with_subframe_timecodes(tmp_path):
    # 60 rows a second on a 30-frame timecode (every other row at .500), crossing a second boundary.
    lines = ["Timecode,BlendShapeCount,jawOpen,eyeBlinkLeft,HeadYaw,HeadPitch,HeadRoll"]
    for i in range(90):
        frame = 28 * 2 + i  # start at frame 28.0 of second 10
        s, half = divmod(frame, 2)
        sec, ff = divmod(s, 30)
        lines.append(f"10:20:{10 + sec:02d}:{ff:02d}.{500 * half:03d},61,{i / 89:.4f},-0.01,{math.radians(20)},0,0")
    path = tmp_path / "llf.csv"
    path.write_text("\n".join(lines) + "\n")
    clip = read_arkit_csv(path)
    assert clip.fps == pytest.approx(60, rel=1e-3)
    assert clip.frames[-1]["jawOpen"] == pytest.approx(1.0, abs=1e-4)
    assert clip.frames[0]["eyeBlinkLeft"] == 0.0, "weights are clamped into 0..1"
    assert float(clip.frames[5].rotation_deg[0]) == pytest.approx(20.0, abs=1e-3)
    assert clip.frames[0].gaze is None


def test_csv_without_timecodes_plays_at_60_fps(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("MouthSmileLeft,MouthSmileRight\n0.1,0.2\n0.3,0.4\n")
    clip = read_arkit_csv(path)
    assert clip.fps == 60 and len(clip) == 2
    assert clip.frames[1].as_dict() == {"mouthSmileLeft": 0.3, "mouthSmileRight": 0.4}


@pytest.mark.parametrize("text,message", [
    ("", "no frames"),
    ("Timecode,Foo,Bar\n00:00:00:00,1,2\n", "no ARKit blendshape columns"),
    ("Timecode,JawOpen\n00:00:00:00,wide\n", "not a number"),
    ("Timecode,JawOpen\n00:00:00:00,nan\n", "not finite"),
])
def test_bad_csv_raises_unsupported_input(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UnsupportedInput, match=message):
        read_arkit_csv(path)


def test_binary_file_is_not_an_arkit_csv(tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(UnsupportedInput):
        read_arkit_csv(path)


def test_expression_rotation_survives_write(tmp_path):
    clip = Clip([Expression.from_dict({"tongueOut": 1.0}, rotation_deg=(-30.0, 12.5, 3.0))], fps=24)
    back = read_arkit_csv(write_arkit_csv(clip, tmp_path / "one.csv"))
    assert back.frames[0]["tongueOut"] == 1.0
    assert torch.allclose(back.frames[0].rotation_deg, torch.tensor([-30.0, 12.5, 3.0]), atol=1e-3)


def test_webcam_regression_agrees_with_the_python_driving_fit(portrait):
    """The map the browser applies to its face-mesh landmarks (fica/web/landmark_regression.json), in Python,
    against the driving-video fit it stands in for, on renders of an avatar."""
    from fica import FiCAPipeline
    from fica.drive.landmark_regression import apply_regression, load_model
    from fica.head.model import default_head
    from fica.render.camera import orbit_camera
    from fica.unwrap.fit import fit_expression, fit_head
    from fica.unwrap.landmarks import detect_landmarks

    avatar = FiCAPipeline.from_pretrained()(portrait).avatar
    model, head = load_model(), default_head()
    camera = orbit_camera(width=384, height=384)
    rgb, _ = avatar.render(camera, backend="surface")
    base = fit_head(detect_landmarks(rgb.clamp(0, 1)), (384, 384), head, correct=False)
    jaw = ARKIT_NAMES.index("jawOpen")
    read = {}
    for name, expression in {"neutral": Expression(), "jaw": Expression.from_dict({"jawOpen": 1.0}),
                             "turn": Expression(rotation_deg=(20.0, 0.0, 0.0))}.items():
        rgb, _ = avatar.render(camera, expression, backend="surface")
        landmarks = detect_landmarks(rgb.clamp(0, 1))
        weights, ypr = apply_regression(model, landmarks.numpy())
        fitted = fit_expression(landmarks, (384, 384), head, base).to_expression()
        read[name] = (weights[jaw], ypr[0], fitted["jawOpen"], float(fitted.rotation_deg[0]))
        assert abs(read[name][0] - read[name][2]) < 0.2 and abs(read[name][1] - read[name][3]) < 5, (name, read)
    assert read["jaw"][0] > read["neutral"][0] + 0.2
    assert read["turn"][1] > 12
