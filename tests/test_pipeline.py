"""End to end on the embedded default: a real portrait in, a drivable avatar out that reproduces the portrait."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fica import Expression, FiCAPipeline
from fica.maps import Source
from fica.render.camera import orbit_camera
from fica.unwrap.landmarks import FACE_OVAL, detect_landmarks


@pytest.fixture(scope="module")
def pipe() -> FiCAPipeline:
    return FiCAPipeline.from_pretrained()


@pytest.fixture(scope="module")
def runs(pipe, example_image):
    return {name: (example_image(name), pipe(example_image(name).numpy())) for name in
            ("astronaut.jpg", "grace_hopper.jpg")}


def face_mask(landmarks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[H, W]`` bool: inside MediaPipe's face oval, eroded by 4% of the face width. The oval's landmarks sit on
    the silhouette, where photo pixels mix face and background; the margin keeps the comparison on the face."""
    import cv2
    from PIL import Image, ImageDraw

    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in landmarks[list(FACE_OVAL), :2].tolist()], fill=1)
    face_width = float(landmarks[:, 0].max() - landmarks[:, 0].min())
    k = 2 * round(0.04 * face_width) + 1
    return torch.from_numpy(cv2.erode(np.asarray(mask, np.uint8), np.ones((k, k), np.uint8)).astype(bool))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def _mouth_gap(landmarks: torch.Tensor) -> float:
    """Inner-lip opening (landmarks 13/14) over face height (10/152)."""
    return float((landmarks[14, 1] - landmarks[13, 1]) / (landmarks[152, 1] - landmarks[10, 1]))


def _eye_gaps(landmarks: torch.Tensor) -> tuple[float, float]:
    """(subject's left, right) eyelid openings over face height."""
    h = float(landmarks[152, 1] - landmarks[10, 1])
    return float(landmarks[374, 1] - landmarks[386, 1]) / h, float(landmarks[145, 1] - landmarks[159, 1]) / h


FRONTAL_PSNR_DB = 25.0


@pytest.mark.parametrize("uv_resolution", [256, 512])  # the default, and the finest chart the app offers
@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg"])
def test_frontal_render_matches_photo_in_face_region(pipe, example_image, name, uv_resolution):
    """The avatar seen by the portrait's camera with the portrait's expression reproduces the photo inside the
    face: covered, 25 dB, and the landmarks of the render where the photo's are."""
    image = example_image(name)
    out = pipe.with_uv_resolution(uv_resolution)(image.numpy())
    rgb, alpha = out.avatar.render_portrait_view()
    assert rgb.shape == image.shape
    truth = detect_landmarks(image.numpy())
    face = face_mask(truth, *image.shape[:2])
    assert float(alpha[face].min()) > 0.98
    psnr = _psnr(rgb[face], image[face])
    assert psnr >= FRONTAL_PSNR_DB, f"PSNR in the face region {psnr:.1f} dB at R = {uv_resolution}"
    rendered = detect_landmarks(rgb.numpy())
    face_width = float(truth[:, 0].max() - truth[:, 0].min())
    err = (rendered[:, :2] - truth[:, :2]).norm(dim=1) / face_width
    assert float(err.mean()) < 0.03, f"mean landmark offset {float(err.mean()):.3f} of face width"


def test_every_valid_texel_is_filled_and_visible_texels_hold_the_photo(runs):
    _, out = runs["astronaut.jpg"]
    valid = out.complete.valid[0] > 0
    texture = out.complete.texture
    assert torch.isfinite(texture).all() and texture.min() >= 0 and texture.max() <= 1
    unseen = valid & (out.partial.visibility[0] == 0)
    left_empty = unseen & (texture.sum(0) == 0)  # the photo has black pixels, so a rare exact zero is fill
    assert int(unseen.sum()) > 0.3 * int(valid.sum()) and int(left_empty.sum()) < 1e-3 * int(unseen.sum())
    visible = (out.partial.visibility[0] > 0.9) & valid
    seen = out.complete.source[0] == Source.SEEN  # what the completer kept from the photo
    from_photo = seen | (out.complete.source[0] == Source.BLENDED)  # and what it handed over near the outline
    assert int(seen.sum()) > 0.15 * int(valid.sum()) and float(from_photo[visible].float().mean()) > 0.95
    assert float((out.complete.texture - out.partial.rgb).abs().amax(0)[seen].max()) < 1.5 / 255


def test_only_the_texels_that_hold_the_photo_are_matched_to_it_through_the_splats(runs):
    """The prior's back-projection step (``fica.prior.portrait_match``) corrects the colours of the seen face
    texels, by at most ``MAX_STEP``, and leaves every texel the completer made or blended as it was."""
    from fica.prior.portrait_match import MAX_STEP

    _, out = runs["astronaut.jpg"]
    identity = out.avatar.identity
    texture = out.refined.texture.reshape(3, -1)[:, identity.texel].T
    source = out.refined.source.reshape(-1)[identity.texel]
    change = (identity.colors - texture).abs().amax(1)
    assert float(change[source != Source.SEEN].max()) < 1e-6
    seen = change[source == Source.SEEN]
    assert float(seen.max()) <= MAX_STEP + 1e-6 and float((seen > 2 / 255).float().mean()) > 0.2
    assert torch.equal(out.avatar.gaussians().colors[:len(texture)], identity.colors)  # the exported set too


def test_outputs_say_which_implementation_ran(runs):
    _, out = runs["astronaut.jpg"]
    assert set(out.implementations) == {"unwrap", "complete", "refine", "prior"}
    assert all(v.startswith("embedded") for v in out.implementations.values())
    assert set(out.timings) >= {"unwrap", "complete", "refine", "prior", "total"}


def test_the_report_says_which_face_of_a_group_was_used(pipe):
    """The group photo of the dominance test (tests/test_unwrap.py): report.json and the app's report line say
    that several faces were found and how to choose another; the subject alone on the same wall gets no note."""
    from fica.app.generate import report_line
    from fica.export import build_report
    from test_unwrap import DOMINATED_GROUP, _group_photo

    def report(size, people) -> dict:
        out = pipe(_group_photo(size, people))
        return build_report(out, len(out.avatar.gaussians()), {"still": "torch", "video": "surface"})

    group = report(*DOMINATED_GROUP)
    assert "5 faces" in group["face_note"] and "crop" in group["face_note"]
    assert report_line(group).endswith(group["face_note"])
    size, people = DOMINATED_GROUP
    alone = report(size, people[:1])
    assert alone["face_note"] == "" and "faces" not in report_line(alone)


def test_jaw_open_opens_the_mouth_and_blink_closes_one_eye_in_the_render(runs):
    _, out = runs["astronaut.jpg"]
    camera = orbit_camera(0, 0, width=512, height=512)
    neutral = detect_landmarks(out.avatar.render(camera, Expression.neutral())[0].numpy())
    jaw = detect_landmarks(out.avatar.render(camera, Expression.from_dict({"jawOpen": 1.0}))[0].numpy())
    assert _mouth_gap(jaw) > _mouth_gap(neutral) + 0.05
    blink = detect_landmarks(out.avatar.render(camera, Expression.from_dict({"eyeBlinkLeft": 1.0}))[0].numpy())
    (left0, right0), (left1, right1) = _eye_gaps(neutral), _eye_gaps(blink)
    assert left1 < 0.5 * left0
    assert right1 > 0.7 * right0


@pytest.mark.parametrize("yaw", [-30.0, 30.0])
def test_turned_views_keep_a_face(runs, yaw):
    _, out = runs["grace_hopper.jpg"]
    rgb, alpha = out.avatar.render(orbit_camera(yaw, 0, width=512, height=512))
    landmarks = detect_landmarks(rgb.numpy())  # raises if the turned head is not a face any more
    centre = landmarks[:, :2].mean(0)
    assert (centre - 256).abs().max() < 80  # head centred in the view
    assert 0.1 < float(alpha.mean()) < 0.6
