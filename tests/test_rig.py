"""The rigged avatar file (fica-rig v1) as a third party reads it: zip + numpy only, the README's formula written
out here, checked against the prior's own Gaussians over every preset's frames."""
from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from fica.drive.expression import ARKIT_NAMES, Expression
from fica.drive.presets import PRESETS, preset_clip

PLY_FIELDS = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


@pytest.fixture(scope="module")
def avatar(portrait):
    from fica import FiCAPipeline

    return FiCAPipeline.from_pretrained()(portrait).avatar


@pytest.fixture(scope="module")
def rig_path(avatar, tmp_path_factory):
    return avatar.save_rig(tmp_path_factory.mktemp("rig") / "avatar_rig.zip")


def read_rig(path):
    """The rig with zipfile and numpy: manifest, neutral means [N, 3] and quats [N, 4], moving [M],
    deltas [52, M, 3], head_weight [N]."""
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        ply = zf.read("gaussians.ply")
        body = ply[ply.index(b"end_header\n") + len(b"end_header\n"):]
        table = np.frombuffer(body, "<f4").reshape(manifest["count"], len(PLY_FIELDS))
        moving = np.frombuffer(zf.read("moving_index.u32"), "<u4")
        deltas = np.frombuffer(zf.read("deltas.f16"), "<f2").reshape(52, manifest["moving"], 3)
        head_weight = np.frombuffer(zf.read("head_weight.f32"), "<f4")
    return manifest, table[:, :3].astype(np.float64), table[:, 13:17], moving, deltas, head_weight


def head_turn(rig, yaw_pitch_roll_deg) -> tuple[np.ndarray, np.ndarray]:
    """Axis a ``[3]`` and each Gaussian's angle head_weight·θ ``[N]`` of the head rotation
    R = Ry(yaw) Rx(pitch) Rz(roll)."""
    head_weight = rig[5]
    y, x, z = (math.radians(a) for a in yaw_pitch_roll_deg)
    Ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    Rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    R = Ry @ Rx @ Rz
    theta = math.acos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if theta < 1e-9:
        return np.array([0.0, 0.0, 1.0]), np.zeros(len(head_weight))
    return axis / np.linalg.norm(axis), head_weight.astype(np.float64) * theta


def turn(vectors: np.ndarray, axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rot(axis, angles[i]) applied to ``vectors [N, 3]`` (Rodrigues)."""
    c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
    return vectors * c + np.cross(axis, vectors) * s + axis * (vectors @ axis)[:, None] * (1 - c)


def rig_means(rig, weights, yaw_pitch_roll_deg):
    """pivot + Rot(a, head_weight·θ)·(neutral + Σ_k w_k·delta_k − pivot), R = Ry(yaw) Rx(pitch) Rz(roll)."""
    manifest, neutral, _, moving, deltas, _ = rig
    p = neutral.copy()
    p[moving] += np.tensordot(weights, deltas.astype(np.float64), 1)
    pivot = np.asarray(manifest["neck_pivot"])
    return pivot + turn(p - pivot, *head_turn(rig, yaw_pitch_roll_deg))


def test_rig_files_and_manifest_are_as_documented(rig_path, avatar):
    with zipfile.ZipFile(rig_path) as zf:
        assert sorted(zf.namelist()) == sorted(["manifest.json", "gaussians.ply", "moving_index.u32", "deltas.f16",
                                                "head_weight.f32"])
    manifest, neutral, quats, moving, deltas, head_weight = read_rig(rig_path)
    n = len(avatar.gaussians())
    assert manifest["format"] == "fica-rig" and manifest["version"] == 1
    assert manifest["count"] == n and manifest["expressions"] == list(ARKIT_NAMES)
    assert manifest["units"] == "metre" and manifest["frame"].startswith("head frame")
    assert 0 < manifest["moving"] < n and len(moving) == manifest["moving"] and moving.max() < n
    np.testing.assert_allclose(neutral, avatar.gaussians().means.numpy(), atol=1e-6)
    # jawOpen moves the chin down by centimetres; the neck's base stays on the torso, the head turns fully
    jaw = deltas[ARKIT_NAMES.index("jawOpen")].astype(np.float64)
    assert jaw[:, 1].min() < -0.01
    assert head_weight.min() == 0.0 and np.median(head_weight) == 1.0
    bottom = neutral[:, 1] < neutral[:, 1].min() + 0.002
    assert head_weight[bottom].max() < 0.1


def test_rig_follows_the_prior_over_every_preset(rig_path, avatar):
    rig = read_rig(rig_path)
    errors = []
    for name in PRESETS:
        for expression in preset_clip(name, fps=6, seconds=4).frames:
            expected = avatar.gaussians(expression).means.numpy()
            got = rig_means(rig, expression.weights.numpy(), expression.rotation_deg.numpy())
            errors.append(np.linalg.norm(got - expected, axis=1))
    errors_mm = np.concatenate(errors) * 1000
    print(f"rig vs prior over {len(errors)} preset frames: mean {errors_mm.mean():.4f} mm, "
          f"99th percentile {np.percentile(errors_mm, 99):.4f} mm, max {errors_mm.max():.2f} mm")
    assert errors_mm.mean() <= 0.3 and np.percentile(errors_mm, 99) <= 2.0


def test_rig_head_turn_matches_the_prior_at_large_angles(rig_path, avatar):
    rig = read_rig(rig_path)
    for ypr in ((40.0, 0.0, 0.0), (0.0, -25.0, 0.0), (20.0, 10.0, -15.0)):
        expression = Expression.from_dict({"jawOpen": 0.7, "mouthSmileLeft": 0.5}, ypr)
        error = np.linalg.norm(rig_means(rig, expression.weights.numpy(), ypr)
                               - avatar.gaussians(expression).means.numpy(), axis=1)
        assert error.mean() < 3e-4 and np.percentile(error, 99) < 2e-3, ypr


def test_rig_orientations_turn_with_the_head(rig_path, avatar):
    """The formula's second half: each Gaussian's quaternion is pre-multiplied by the rotation that moves its
    centre, so its three axes (the columns of its rotation matrix) turn by Rot(a, head_weight·θ). Compared as
    matrices, the quaternion's sign being free. Measured: under 0.03° for every Gaussian."""
    import torch

    from fica.rotations import quat_to_matrix

    rig = read_rig(rig_path)
    axes = quat_to_matrix(torch.from_numpy(rig[2].copy())).double().numpy()  # [N, 3, 3]
    for ypr in ((40.0, 0.0, 0.0), (0.0, -25.0, 0.0), (20.0, 10.0, -15.0)):
        axis, angles = head_turn(rig, ypr)
        expected = np.stack([turn(axes[:, :, j], axis, angles) for j in range(3)], 2)
        got = quat_to_matrix(avatar.gaussians(Expression(rotation_deg=torch.tensor(ypr))).quats).double().numpy()
        cos = (np.einsum("nij,nij->n", expected, got) - 1) / 2  # trace(expectedᵀ got) = 1 + 2 cos(angle between)
        error_deg = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        assert np.percentile(error_deg, 99) < 1.0 and error_deg.max() < 5.0, (ypr, error_deg.max())


def test_load_rig_reads_what_save_rig_wrote(rig_path, avatar):
    from fica.rig import load_rig

    rig = load_rig(rig_path)
    expression = Expression.from_dict({"browInnerUp": 1.0, "jawOpen": 0.4}, (10.0, -5.0, 3.0))
    error = np.linalg.norm(rig.means(expression.weights.numpy(), expression.rotation_deg.numpy())
                           - avatar.gaussians(expression).means.numpy(), axis=1)
    assert error.mean() < 3e-4
