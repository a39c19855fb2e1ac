"""The analytic prior: texel Gaussians driven by the head model's ARKit blendshapes, gaze and head rotation."""
from __future__ import annotations

import math

import pytest
import torch

from fica.drive.expression import Expression
from fica.head.model import default_head
from fica.maps import CompleteUV, geometry_tangents
from fica.prior.analytic import NECK_PIVOT_M, AnalyticPrior
from fica.rotations import (axis_angle_to_quat, gaze_rotation, matrix_to_quat, quat_to_matrix, rotate_about_axis,
                            rotation_ypr)

R = 256


@pytest.fixture(scope="module")
def refined() -> CompleteUV:
    head = default_head()
    layout = head.uv_layout(R)
    texture = torch.rand(3, R, R, generator=torch.Generator().manual_seed(0)) * layout.valid
    return CompleteUV(texture, layout.vertices_to_map(head.vertices), layout.valid.clone())


@pytest.fixture(scope="module")
def prior_and_identity(refined):
    prior = AnalyticPrior()
    return prior, prior.encode(refined)


def _texels(refined: CompleteUV, values: torch.Tensor) -> torch.Tensor:
    """``[C, R, R]`` map -> ``[N, C]`` at the valid texels, in the prior's order."""
    return values[:, refined.valid[0] > 0.5].T


def test_one_gaussian_per_texel_plus_a_hair_layer_and_the_neck_cap(refined, prior_and_identity):
    prior, identity = prior_and_identity
    g = prior.decode(identity, Expression.neutral())
    layout = default_head().uv_layout(R)
    n_valid, n_scalp = int(refined.valid.sum()), int(layout.region_mask("scalp").sum())
    assert len(g) == n_valid + n_scalp + len(identity.cap) and len(identity.cap) > 100
    assert torch.allclose(g.quats.norm(dim=1), torch.ones(len(g)), atol=1e-5)
    assert (g.scales > 0).all() and (g.opacities >= 0).all() and (g.opacities <= 1).all()
    faded = g.opacities[:n_valid] < 0.5  # only the neck below its cut fades out
    assert 0 < int(faded.sum()) < int(layout.region_mask("neck").sum())
    assert torch.equal(g.colors[:n_valid], _texels(refined, refined.texture))


def test_neutral_means_are_the_geometry_map(refined, prior_and_identity):
    prior, identity = prior_and_identity
    g = prior.decode(identity, Expression.neutral())
    n = int(refined.valid.sum())
    assert torch.equal(g.means[:n], _texels(refined, refined.geometry))


def test_scales_follow_the_texel_footprint_and_are_thin_along_the_normal(refined, prior_and_identity):
    prior, identity = prior_and_identity
    g = prior.decode(identity, Expression.neutral())
    n = int(refined.valid.sum())
    du, dv = geometry_tangents(refined.geometry, refined.valid)
    spacing = 0.5 * (_texels(refined, du).norm(dim=1) + _texels(refined, dv).norm(dim=1))
    tangential = g.scales[:n, :2].mean(1)
    ratio = (tangential / spacing.clamp(min=1e-6)).median()
    assert 0.5 < ratio < 1.0, f"tangential scale {ratio:.2f} texel spacings"
    assert (g.scales[:n, 2] < 0.5 * g.scales[:n, :2].min(1).values + 1e-6).float().mean() > 0.95
    # the third axis of each Gaussian is the surface normal
    axis3 = quat_to_matrix(g.quats[:n])[:, :, 2]
    normals = _texels(refined, refined.normals())
    assert ((axis3 * normals).sum(1) > 0.99).float().mean() > 0.98


def test_jaw_open_moves_the_chin_down_more_than_a_centimetre(refined, prior_and_identity):
    prior, identity = prior_and_identity
    p = _texels(refined, refined.geometry)
    chin = (p[:, 0].abs() < 0.01) & (p[:, 1] < -0.085) & (p[:, 1] > -0.105) & (p[:, 2] > 0.05)
    assert chin.sum() > 50
    g = prior.decode(identity, Expression.from_dict({"jawOpen": 1.0}))
    dy = g.means[: len(p)][chin, 1] - p[chin, 1]
    assert dy.mean() < -0.01


def test_blink_left_closes_the_left_upper_eyelid_only(refined, prior_and_identity):
    prior, identity = prior_and_identity
    p = _texels(refined, refined.geometry)
    face = _texels(refined, default_head().uv_layout(R).region_mask("face"))[:, 0] > 0.5
    lid = face & (p[:, 1] > 0.012) & (p[:, 1] < 0.02) & (p[:, 2] > 0.075)
    left, right = lid & (p[:, 0] > 0.02) & (p[:, 0] < 0.045), lid & (p[:, 0] < -0.02) & (p[:, 0] > -0.045)
    assert left.sum() > 10 and right.sum() > 10
    d = prior.decode(identity, Expression.from_dict({"eyeBlinkLeft": 1.0})).means[: len(p)] - p
    assert d[left, 1].mean() < -0.004, "the left upper lid comes down"
    assert d[right].norm(dim=1).max() < 1e-4, "the right one stays"


def test_yaw_rotates_the_head_about_the_neck_pivot(refined, prior_and_identity):
    prior, identity = prior_and_identity
    n = int(refined.valid.sum())
    neutral = prior.decode(identity, Expression.neutral()).means[:n]
    turned = prior.decode(identity, Expression(rotation_deg=torch.tensor([30.0, 0.0, 0.0]))).means[:n]
    pivot = torch.tensor(NECK_PIVOT_M)
    head = neutral[:, 1] > pivot[1]
    expected = (neutral[head] - pivot) @ rotation_ypr(30.0, 0.0, 0.0).T + pivot
    assert (turned[head] - expected).norm(dim=1).max() < 1e-5
    assert torch.allclose((turned - pivot).norm(dim=1), (neutral - pivot).norm(dim=1), atol=1e-5)
    base = neutral[:, 1] < neutral[:, 1].min() + 1e-4
    assert (turned[base] - neutral[base]).norm(dim=1).max() < 1e-6, "the base of the neck stays on the torso"
    nose = neutral[head][:, 2].argmax()
    assert turned[head][nose, 0] > neutral[head][nose, 0] + 0.03, "positive yaw turns the face toward +x"


def test_gaze_turns_the_eyeballs_about_their_centres(refined, prior_and_identity):
    prior, identity = prior_and_identity
    n = int(refined.valid.sum())
    p = _texels(refined, refined.geometry)
    g = prior.decode(identity, Expression(gaze=torch.tensor([20.0, 0.0]))).means[:n]
    for i, side in enumerate((-1, 1)):
        eye = identity.eye_side == side
        centre = identity.eye_centres[i]
        assert torch.allclose((g[eye] - centre).norm(dim=1), (p[eye] - centre).norm(dim=1), atol=1e-5)
        pupil = p[eye][:, 2].argmax()
        assert g[eye][pupil, 0] - p[eye][pupil, 0] > 0.003, "positive gaze yaw looks toward +x"
    assert torch.equal(g[identity.eye_side == 0], p[identity.eye_side == 0])
    up = gaze_rotation(0.0, 15.0) @ torch.tensor([0.0, 0.0, 1.0])
    assert up[1] > 0.25


def test_mouth_cavity_stays_behind_the_lips_and_chin(refined, prior_and_identity):
    prior, identity = prior_and_identity
    e = Expression.from_dict({"jawOpen": 1.0, "mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "mouthPucker": 0.5})
    forward = prior.decode(identity, e).means[: len(identity.positions), 2] - identity.positions[:, 2]
    mouth = identity.mouth
    assert (forward[mouth] <= forward[identity.mouth_partner][mouth] + 1e-6).all()
    behind = identity.positions[identity.mouth_partner][mouth, 2] - identity.positions[mouth, 2]
    assert (behind > 0).float().mean() > 0.95, "partners are skin in front of the cavity"
    unclamped = prior.deform(identity, Expression.neutral())
    assert torch.equal(unclamped, identity.positions), "the clamp leaves the neutral mouth alone"


def test_matrix_to_quat_round_trips():
    torch.manual_seed(1)
    angles = torch.rand(300, 3) * 360 - 180
    mats = torch.stack([rotation_ypr(*a.tolist()) for a in angles])
    mats = torch.cat([mats, torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]])  # a 180° turn
    back = quat_to_matrix(matrix_to_quat(mats))
    assert (back - mats).abs().max() < 1e-5


def test_rotate_about_axis_turns_each_point_by_its_own_angle():
    torch.manual_seed(2)
    points, axis = torch.randn(200, 3, dtype=torch.float64), torch.nn.functional.normalize(torch.randn(3), dim=0)
    angles = torch.rand(200) * 2 * math.pi - math.pi
    turned = rotate_about_axis(points, axis, angles)
    expected = (quat_to_matrix(axis_angle_to_quat(axis, angles)).double() @ points[:, :, None])[:, :, 0]
    assert turned.dtype == torch.float64 and (turned - expected).abs().max() < 1e-6
    assert torch.allclose(rotate_about_axis(points, axis, torch.zeros(200)), points)


def _unwrapped_on(unwrapped, device):
    from dataclasses import replace

    return replace(unwrapped, partial=unwrapped.partial.to(device),
                   fitted_geometry=unwrapped.fitted_geometry.to(device))


@pytest.mark.gpu
def test_complete_refine_prior_run_on_cuda_like_on_cpu():
    from fica.complete.embedded import EmbeddedCompleter
    from fica.refine.embedded import EmbeddedRefiner
    from test_complete import synthetic_unwrapped

    unwrapped = synthetic_unwrapped(30.0)
    image = torch.zeros(8, 8, 3)
    results = []
    for u in (unwrapped, _unwrapped_on(unwrapped, "cuda")):
        complete = EmbeddedCompleter()(u, image)
        maps = EmbeddedRefiner()(complete, u, image)
        prior = AnalyticPrior()
        e = Expression.from_dict({"jawOpen": 0.5}, rotation_deg=(20.0, 5.0, 0.0), gaze=(5.0, 0.0))
        results.append(prior.decode(prior.encode(maps), e))
    cpu, cuda = results
    assert cuda.means.is_cuda
    assert (cuda.means.cpu() - cpu.means).abs().max() < 1e-4
    assert (cuda.colors.cpu() - cpu.colors).abs().max() < 1e-3
