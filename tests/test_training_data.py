"""Training data beyond the synthetic generator: a multi-view capture in NeRSemble's layout (a tiny one, rendered
here from the head model with calibrated cameras) and a folder of portraits distilled through the embedded
pipeline, both giving samples every recipe reads."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fica.render.camera import orbit_camera
from fica.train.synthetic import load_dataset, random_person, sample, save_dataset

YAWS = {"220700191": 0.0, "221501007": -35.0, "222200037": 35.0}
WORLD_FROM_HEAD = torch.tensor([[0.9848, 0.0, 0.1736, 0.05], [0.0, 1.0, 0.0, 1.60], [-0.1736, 0.0, 0.9848, -0.02],
                                [0.0, 0.0, 0.0, 1.0]])  # the capture's world: the head 10° turned, 1.6 m up


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A NeRSemble-layout participant '001', sequence 'EXP-1', one frame seen by three cameras (unshaded renders,
    so texel colours can be checked against the true texture), plus the truth."""
    from fica.head.model import default_head

    head = default_head()
    root = tmp_path_factory.mktemp("nersemble")
    generator = torch.Generator().manual_seed(4)
    person = random_person(head, head.uv_layout(64), generator)
    from fica.drive.expression import Expression

    expression = Expression.from_dict({"jawOpen": 0.3, "mouthSmileLeft": 0.4, "mouthSmileRight": 0.4})
    frame = root / "001" / "sequences" / "EXP-1" / "frame_00000"
    (frame / "images-2x").mkdir(parents=True)
    (frame / "alpha_map").mkdir()
    world_2_cam, truth = {}, {}
    for serial, yaw in YAWS.items():
        camera = orbit_camera(yaw, 0.0, width=256, height=256)
        s = sample(head, image_size=256, uv_resolution=64, generator=generator, person=person,
                   expression=expression, camera=camera)
        Image.fromarray((s.target.numpy() * 255).round().astype(np.uint8)).save(frame / "images-2x" / f"cam_{serial}.png")
        Image.fromarray((s.target_mask.numpy() * 255).round().astype(np.uint8)).save(
            frame / "alpha_map" / f"cam_{serial}.png")
        world_2_cam[serial] = (camera.viewmat @ torch.linalg.inv(WORLD_FROM_HEAD)).tolist()
        truth[serial] = s
    K_full = orbit_camera(width=256, height=256).K.clone()
    K_full[:2] *= 2  # calibration at the full sensor size; images-2x are half of it
    (root / "001" / "camera_params.json").write_text(json.dumps({"world_2_cam": world_2_cam,
                                                                  "intrinsics": K_full.tolist()}))
    return root, truth


def test_nersemble_capture_gives_every_view_a_sample_through_its_calibrated_camera(capture, tmp_path):
    from fica.train.capture import NeRSembleCapture, capture_samples

    root, truth = capture
    data = NeRSembleCapture(root, 1, "EXP-1")
    assert data.timesteps == [0]
    frame = data.frame(0)
    assert sorted(frame.images) == sorted(YAWS) and sorted(frame.masks) == sorted(YAWS)
    assert torch.allclose(frame.cameras["220700191"].K, truth["220700191"].camera.K, atol=1e-4)

    samples = capture_samples(frame, uv_resolution=64)
    assert len(samples) == 3
    reference = samples[0].camera.viewmat  # the frontal camera: its fit places the head
    coverage = []
    for s, serial in zip(samples, frame.images):
        # every view's camera is the reference's moved by the calibration (camera-to-camera transforms agree)
        relative = s.camera.viewmat @ torch.linalg.inv(reference)
        true_relative = truth[serial].camera.viewmat @ torch.linalg.inv(truth["220700191"].camera.viewmat)
        assert torch.allclose(relative, true_relative, atol=1e-3), serial
        seen = s.partial.visibility[0] > 0.5
        coverage.append(int(seen.sum()))
        # the photos are unshaded, so every seen texel takes the true texture's colour
        error = float((s.partial.rgb - truth[serial].complete.texture).abs().mean(0)[seen].median())
        assert error < 0.06, serial  # measured 0.007 frontal, 0.04 at ±35°
    assert int(sum(coverage)) > 1.5 * max(coverage)  # the side cameras add texels the frontal one misses
    assert float(samples[0].expression["jawOpen"]) > 0.1  # the fitted expression is the frame's code
    save_dataset(samples, tmp_path / "ds")
    assert len(load_dataset(tmp_path / "ds")) == 3


def test_a_folder_of_portraits_distills_into_partial_complete_pairs(examples_dir, tmp_path):
    import shutil

    from fica.train.distill import distill_samples

    for name in ("astronaut.jpg", "no_face_coffee.jpg"):
        shutil.copy(examples_dir / name, tmp_path / name)
    skipped = []
    samples = distill_samples(tmp_path, uv_resolution=64, log=skipped.append)
    assert len(samples) == 1 and len(skipped) == 1 and "no_face_coffee" in skipped[0]
    s = samples[0]
    seen = s.partial.visibility[0] > 0.5
    assert int(seen.sum()) > 300
    assert (s.complete.texture - s.partial.rgb).abs().mean(0)[seen].mean() < 0.1  # the teacher keeps what it saw
    unseen = (s.partial.visibility[0] < 0.01) & (s.complete.valid[0] > 0)
    assert float(s.complete.texture[:, unseen].mean()) > 0.1  # and fills what it did not
