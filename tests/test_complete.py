"""Embedded completion: mirror + region-aware fill of the partial UV maps."""
from __future__ import annotations

import math

import pytest
import torch

from fica.complete.embedded import HAIR_FALLBACK, EmbeddedCompleter, view_cosine
from fica.drive.expression import Expression
from fica.head.model import default_head
from fica.maps import PartialUV, Source, geometry_normals
from fica.render.camera import orbit_camera
from fica.unwrap.base import DenseMaps, Unwrapped
from fica.uv_ops import smoothstep

SKIN = (0.80, 0.60, 0.50)
CHEEK = (0.30, 0.70, 0.30)  # painted on the subject's left cheek (+x)
HAIR = (0.25, 0.15, 0.08)
LIGHT = (-0.5, 0.5, 1.0)  # from the subject's upper right, toward the face


def painted_truth(resolution: int = 256):
    """A painted head: ``(texture [3, R, R], shaded [3, R, R], geometry [3, R, R], left_cheek [1, R, R] bool)``.

    Skin, a green left cheek, brown scalp; ``shaded`` is the texture under one Lambert light plus ambient.
    """
    head = default_head()
    layout = head.uv_layout(resolution)
    geometry = layout.vertices_to_map(head.vertices)
    normals = geometry_normals(geometry, layout.valid)
    colour = lambda rgb: torch.tensor(rgb)[:, None, None]  # noqa: E731
    region = lambda *names: layout.region_mask(*names) > 0.5  # noqa: E731
    x, y, z = geometry[0:1], geometry[1:2], geometry[2:3]
    cheek = region("face") & (x > 0.035) & (y < 0.0) & (y > -0.06) & (z > 0.03)
    texture = colour(SKIN).expand(3, resolution, resolution)
    texture = torch.where(cheek, colour(CHEEK), texture)
    texture = torch.where(region("scalp"), colour(HAIR), texture) * layout.valid
    light = torch.nn.functional.normalize(torch.tensor(LIGHT), dim=0)[:, None, None]
    shading = 0.55 + 0.45 * (normals * light).sum(0, keepdim=True).clamp(min=0)
    return texture, texture * shading, geometry, cheek


def synthetic_unwrapped(yaw_deg: float = 40.0, resolution: int = 256, hide: tuple[str, ...] = ("mouth",)):
    """What an unwrap of a photo of the painted head from ``yaw_deg`` would give: visibility from the view angle
    (orthographic, no self-occlusion), colours shaded, the ``hide`` regions unseen."""
    head = default_head()
    layout = head.uv_layout(resolution)
    _, shaded, geometry, _ = painted_truth(resolution)
    normals = geometry_normals(geometry, layout.valid)
    yaw = math.radians(yaw_deg)
    view = torch.tensor([math.sin(yaw), 0.0, math.cos(yaw)])[:, None, None]
    visibility = smoothstep((normals * view).sum(0, keepdim=True), 0.05, 0.35) * layout.valid
    if hide:
        visibility = visibility * (1 - layout.region_mask(*hide))
    seen = (visibility > 0).float()
    partial = PartialUV(shaded * seen, visibility, normals * seen, geometry * seen, layout.valid.clone())
    dense = DenseMaps(torch.zeros(8, 8, 2), torch.zeros(8, 8, 3), torch.zeros(8, 8, 3), torch.zeros(8, 8))
    return Unwrapped(partial, dense, orbit_camera(yaw_deg), Expression.neutral(), geometry)


@pytest.fixture(scope="module")
def completed():
    unwrapped = synthetic_unwrapped(40.0)
    return unwrapped, EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3))


def test_every_valid_texel_is_filled_and_nothing_outside(completed):
    unwrapped, complete = completed
    valid = complete.valid[0] > 0.5
    assert complete.texture.shape == (3, 256, 256)
    assert (complete.texture.sum(0)[valid] > 0.02).all(), "every valid texel gets a colour"
    assert complete.texture[:, ~valid].abs().max() == 0
    assert complete.texture.min() >= 0 and complete.texture.max() <= 1
    assert torch.equal(complete.geometry, unwrapped.fitted_geometry)


def test_seen_texels_keep_the_photo_colours(completed):
    unwrapped, complete = completed
    seen = (complete.source == Source.SEEN).expand(3, -1, -1)
    assert seen.sum() > 3 * 10_000
    assert (complete.texture - unwrapped.partial.rgb)[seen].abs().max() < 1 / 255


def test_source_map_mirrors_the_far_cheek_from_the_near_one_and_keeps_a_frontal_face():
    complete = EmbeddedCompleter()(synthetic_unwrapped(40.0), torch.zeros(8, 8, 3))
    _, _, _, left_cheek = painted_truth()  # the subject's left (+x): the side a 40° camera sees
    source = complete.source
    assert source.dtype == torch.uint8 and source.shape == (1, 256, 256)
    assert (source[complete.valid < 0.5] == Source.FILLED).all()
    hidden_right_cheek = left_cheek.flip(-1) & (synthetic_unwrapped(40.0).partial.visibility <= 0.5)
    assert hidden_right_cheek.sum() > 500
    assert (source[hidden_right_cheek] == Source.MIRRORED).float().mean() > 0.95, "the far cheek: the near one's"
    glimpsed_right_cheek = left_cheek.flip(-1) & (synthetic_unwrapped(40.0).partial.visibility > 0.5)
    assert glimpsed_right_cheek.sum() > 100
    assert (source[glimpsed_right_cheek] == Source.MIRRORED).float().mean() > 0.95, \
        "the part of the far cheek seen obliquely is mirrored too: one source, no patches"
    assert (source[left_cheek] == Source.SEEN).float().mean() > 0.95
    mirrored = source == Source.MIRRORED
    from_portrait = (source == Source.SEEN) | (source == Source.BLENDED)
    assert from_portrait.flip(-1)[mirrored].all(), "a mirrored texel's mirror is seen"
    unwrapped = synthetic_unwrapped(0.0)
    frontal = EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3)).source
    visible_face = (default_head().uv_layout(256).region_mask("face") > 0.5) & (unwrapped.partial.visibility > 0.5)
    assert (frontal[visible_face] == Source.MIRRORED).float().mean() < 0.01, "a frontal face keeps both halves"
    assert ((frontal[visible_face] == Source.SEEN) | (frontal[visible_face] == Source.BLENDED)).float().mean() > 0.9


def test_a_dark_blot_the_photo_shows_beyond_the_face_outline_is_not_kept():
    """Where the fitted head is wider than the face, its texels beyond the face's outline (the ring seen edge-on)
    catch a collar or the hair in the photo; seen from the side they were dark blots on the cheek. Painted so on
    the frontal head's sides, they are completed as skin instead."""
    unwrapped = synthetic_unwrapped(0.0)
    partial = unwrapped.partial
    layout = default_head().uv_layout(256)
    cos = view_cosine(partial, unwrapped.camera)
    face = (layout.region_mask("face") > 0.5) & (partial.visibility > 0.5)
    blot = face & (cos < 0.3) & (layout.vertices_to_map(default_head().vertices)[1:2] < -0.03)  # the lower sides
    assert blot.sum() > 50
    partial.rgb[:] = torch.where(blot, torch.full_like(partial.rgb, 0.05), partial.rgb)
    complete = EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3))
    assert (complete.source[blot] == Source.SEEN).float().mean() < 0.05
    assert float(complete.texture.mean(0, keepdim=True)[blot].median()) > 0.25, "skin, not the blot's 0.05"


def test_mirrored_skin_is_lit_by_its_own_normal_not_the_mirror_s(completed):
    """The 40° view is lit from the subject's upper right (-x): the seen left cheek is darker than the mirrored
    right cheek should be. Copying the left cheek's colours as they are carries its shading over; relighting the
    copied albedo brings the right cheek closer to the truth."""
    unwrapped, complete = completed
    _, shaded, _, _ = painted_truth()
    skin = default_head().uv_layout(256).region_mask("face", "ears", "neck") > 0.5
    mirrored = (skin & (complete.source == Source.MIRRORED)).expand(3, -1, -1)
    assert mirrored.sum() > 3 * 2000
    plain_copy = unwrapped.partial.rgb.flip(-1)
    before = (plain_copy - shaded)[mirrored].abs().mean()
    after = (complete.texture - shaded)[mirrored].abs().mean()
    assert after < 0.85 * before, f"mirrored-skin error {before:.4f} -> {after:.4f}"


def test_mirror_fill_puts_the_left_cheek_on_the_unseen_right_cheek(completed):
    unwrapped, complete = completed
    _, _, _, left_cheek = painted_truth()
    unseen_right_cheek = left_cheek.flip(-1) & (unwrapped.partial.visibility <= 0.5)
    assert unseen_right_cheek.sum() > 0.7 * left_cheek.sum(), "most of the right cheek is unseen"
    r, g, b = complete.texture[:, unseen_right_cheek[0]]
    assert ((g > r + 0.1) & (g > b + 0.1)).float().mean() > 0.95


def test_back_of_the_head_is_filled_symmetrically_so_the_back_seam_closes(completed):
    unwrapped, complete = completed
    vis = unwrapped.partial.visibility
    neither = (vis <= 0.5) & (vis.flip(-1) <= 0.5) & (complete.valid > 0.5)
    assert neither.sum() > 5000
    # the chart's left and right borders meet down the back midline: texels there and their mirrors agree
    x, z = complete.geometry[0:1], complete.geometry[2:3]
    seam = neither & (x.abs() < 0.005) & (z < 0)
    assert seam.sum() > 50
    texture = complete.texture
    assert (texture - texture.flip(-1))[seam.expand(3, -1, -1)].abs().max() < 0.02


def test_unseen_scalp_takes_the_hair_seen_in_the_photo(completed):
    unwrapped, complete = completed
    layout = default_head().uv_layout(256)
    scalp = layout.region_mask("scalp") > 0.5
    unseen_scalp = scalp & (unwrapped.partial.visibility <= 0.5) & (unwrapped.partial.visibility.flip(-1) <= 0.5)
    assert unseen_scalp.sum() > 1000
    filled = complete.texture[:, unseen_scalp[0]]
    seen_hair = unwrapped.partial.rgb[:, (scalp & (unwrapped.partial.visibility > 0.5))[0]]
    lo, hi = seen_hair.min(1).values, seen_hair.max(1).values
    assert ((filled >= lo[:, None] - 1e-3) & (filled <= hi[:, None] + 1e-3)).all(), "hair colours, nothing else"
    assert (filled.mean(1) - torch.tensor(HAIR) * 0.8).abs().max() < 0.12


def test_background_on_the_grazing_scalp_rim_does_not_spread_over_the_head():
    unwrapped = synthetic_unwrapped(0.0)
    partial = unwrapped.partial
    scalp = default_head().uv_layout(256).region_mask("scalp") > 0.5
    rim = scalp & (partial.visibility > 0.5) & (partial.visibility < 0.75)
    assert rim.sum() > 100
    partial.rgb = torch.where(rim, torch.ones_like(partial.rgb), partial.rgb)  # white studio background
    complete = EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3))
    unseen_scalp = scalp & (partial.visibility <= 0.5)
    assert complete.texture[:, unseen_scalp[0]].mean(0).max() < 0.35, "the back of the head stays hair-dark"


def test_scalp_falls_back_to_dark_hair_when_none_is_seen():
    unwrapped = synthetic_unwrapped(0.0, hide=("mouth", "scalp"))
    complete = EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3))
    scalp = default_head().uv_layout(256).region_mask("scalp")[0] > 0.5
    # the fallback is the hair's albedo, lit like the rest of the head
    assert torch.allclose(complete.texture[:, scalp].median(1).values, torch.tensor(HAIR_FALLBACK), atol=0.02)


def test_unseen_eyes_get_a_white_sclera_around_a_dark_iris():
    unwrapped = synthetic_unwrapped(0.0, hide=("mouth", "eyes"))
    complete = EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3))
    layout = default_head().uv_layout(256)
    eyes = layout.region_mask("eyes")[0] > 0.5
    points = complete.geometry[:, eyes].T
    lum = complete.texture[:, eyes].mean(0)
    front = points[:, 2] > points[:, 2].max() - 0.001  # the cornea's front: the iris
    rim = points[:, 2] < points[:, 2].min() + 0.003  # the eyeball's edge: the sclera
    assert front.sum() > 5 and rim.sum() > 20
    assert lum[front].max() < 0.35 and lum[rim].min() > 0.6


def test_unseen_mouth_is_dark_red_inside_with_teeth_at_the_front(completed):
    _, complete = completed
    layout = default_head().uv_layout(256)
    mouth = layout.region_mask("mouth")[0] > 0.5
    z = complete.geometry[2][mouth]
    rgb = complete.texture[:, mouth]
    deep = z < z.max() - 0.03
    assert (rgb[0, deep] > rgb[1, deep]).all() and rgb[:, deep].mean() < 0.25, "dark red throat"
    assert (rgb.mean(0) > 0.7).sum() > 5, "teeth just behind the lips"


# The UV-map helpers (fica.uv_ops) the completion is built from, which other stages reuse.


def test_push_pull_keeps_known_texels_and_fills_a_constant_field_exactly():
    from fica.uv_ops import push_pull_fill

    torch.manual_seed(0)
    values = torch.rand(3, 37, 50)
    known = (torch.rand(1, 37, 50) > 0.8).float()
    filled = push_pull_fill(values, known)
    assert torch.equal(filled[known.expand(3, -1, -1) > 0], values[known.expand(3, -1, -1) > 0])
    lo, hi = values.amin(dim=(1, 2)), values.amax(dim=(1, 2))
    assert ((filled >= lo[:, None, None] - 1e-6) & (filled <= hi[:, None, None] + 1e-6)).all()
    constant = torch.full((3, 37, 50), 0.25) * known
    assert torch.allclose(push_pull_fill(constant, known), torch.full((3, 37, 50), 0.25), atol=1e-6)


def test_harmonic_fill_stays_inside_its_domain_and_island():
    from fica.uv_ops import harmonic_fill

    values = torch.zeros(1, 20, 40)
    values[:, :, :3] = 1.0  # known bright strip on the left island
    known = torch.zeros(1, 20, 40)
    known[:, :, :3] = 1
    domain = torch.zeros(1, 20, 40)
    domain[:, :, :15] = 1  # left island; columns 15.. are another island or outside the chart
    filled = harmonic_fill(values, known, domain, iterations=20)
    assert torch.allclose(filled[:, :, :15], torch.ones(1, 20, 15))
    assert filled[:, :, 15:].abs().max() == 0, "nothing written outside the domain"


def test_laplacian_blend_returns_either_input_under_a_constant_alpha_and_mixes_across_a_seam():
    from fica.uv_ops import laplacian_blend

    torch.manual_seed(1)
    a, b = torch.rand(3, 64, 64), torch.rand(3, 64, 64)
    assert torch.allclose(laplacian_blend(a, b, torch.ones(1, 64, 64)), a, atol=1e-5)
    assert torch.allclose(laplacian_blend(a, b, torch.zeros(1, 64, 64)), b, atol=1e-5)
    alpha = torch.zeros(1, 64, 64)
    alpha[..., :32] = 1
    flat_a, flat_b = torch.full((3, 64, 64), 0.8), torch.full((3, 64, 64), 0.2)
    mixed = laplacian_blend(flat_a, flat_b, alpha)
    assert 0.3 < float(mixed[0, 32, 32]) < 0.7, "the low band mixes across the seam"
    assert torch.allclose(mixed[..., :4], flat_a[..., :4], atol=0.02) and torch.allclose(
        mixed[..., -4:], flat_b[..., -4:], atol=0.02)
