"""Embedded refinement: SH shading re-bake of the filled texels, seam blending, light geometry smoothing."""
from __future__ import annotations


import pytest
import torch

from fica.complete.embedded import EmbeddedCompleter
from fica.head.model import default_head
from fica.refine.embedded import KEEP_VISIBILITY, EmbeddedRefiner, fit_sh_shading, sh_basis
from test_complete import painted_truth, synthetic_unwrapped


@pytest.fixture(scope="module")
def stages():
    unwrapped = synthetic_unwrapped(40.0)
    complete = EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3))
    refined = EmbeddedRefiner()(complete, unwrapped, torch.zeros(8, 8, 3))
    return unwrapped, complete, refined


def _skin(resolution: int = 256) -> torch.Tensor:
    return default_head().uv_layout(resolution).region_mask("face", "ears", "neck") > 0.5


def test_confidently_seen_texels_keep_the_photo_exactly(stages):
    unwrapped, complete, refined = stages
    keep = (unwrapped.partial.visibility >= KEEP_VISIBILITY).expand(3, -1, -1)
    assert keep.sum() > 3 * 8000
    assert torch.equal(refined.texture[keep], complete.texture[keep])
    assert refined.texture.min() >= 0 and refined.texture.max() <= 1
    assert refined.texture[:, complete.valid[0] < 0.5].abs().max() == 0


def test_rebaked_shading_brings_the_filled_skin_closer_to_the_truth(stages):
    unwrapped, complete, refined = stages
    _, shaded, _, _ = painted_truth()
    filled = (_skin() & (unwrapped.partial.visibility <= 0.5)).expand(3, -1, -1)
    before = (complete.texture - shaded)[filled].abs().mean()
    after = (refined.texture - shaded)[filled].abs().mean()
    assert after < 0.85 * before, f"filled-skin error {before:.4f} -> {after:.4f}"


def test_seam_across_the_visibility_boundary_is_softened(stages):
    unwrapped, complete, refined = stages
    seen = unwrapped.partial.visibility > 0.5
    skin = _skin()
    straddle = (seen[..., 1:] != seen[..., :-1]) & skin[..., 1:] & skin[..., :-1]  # [1, R, R-1]
    assert straddle.sum() > 100

    def jump(texture):
        return (texture[..., 1:] - texture[..., :-1]).abs().sum(0, keepdim=True)[straddle].mean()

    assert jump(refined.texture) < 0.8 * jump(complete.texture)


def test_geometry_is_smoothed_lightly_and_only_where_unseen(stages):
    unwrapped, complete, refined = stages
    moved = (refined.geometry - complete.geometry).norm(dim=0, keepdim=True)
    seen = unwrapped.partial.visibility >= 1.0
    assert moved.max() < 0.002, "under 2 mm"
    assert moved[seen].max() == 0
    assert moved[unwrapped.partial.visibility < 0.5].max() > 1e-5, "the unseen part is smoothed"


def test_sh_fit_recovers_a_known_lighting():
    torch.manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(4000, 3), dim=1)
    normals = normals[normals[:, 2] > -0.2]  # mostly the front, as a portrait shows
    coeffs = torch.tensor([0.7, 0.1, 0.2, -0.15, 0.02, -0.03, 0.04, 0.01, -0.02])
    luminance = sh_basis(normals) @ coeffs
    luminance[:40] += 0.8  # a few outliers (hair over the skin) are ignored
    fitted = fit_sh_shading(luminance, normals, torch.ones(len(normals)))
    assert (fitted - coeffs).abs().max() < 0.02


@pytest.fixture(scope="module", params=["astronaut.jpg", "grace_hopper.jpg"])
def photo_stages(request, example_image):
    from fica.unwrap.embedded import EmbeddedUnwrapper

    image = example_image(request.param)
    unwrapped = EmbeddedUnwrapper()(image)
    complete = EmbeddedCompleter()(unwrapped, image)
    return unwrapped, complete, EmbeddedRefiner()(complete, unwrapped, image)


def test_photo_is_completed_everywhere_and_its_seen_colours_survive(photo_stages):
    unwrapped, complete, refined = photo_stages
    unseen = (complete.valid[0] > 0.5) & (unwrapped.partial.visibility[0] <= 0.5)
    assert (complete.texture.sum(0)[unseen] > 0.02).all(), "filled texels are never left black"
    seen = (unwrapped.partial.visibility > 0.5).expand(3, -1, -1)
    assert (complete.texture - unwrapped.partial.rgb)[seen].abs().max() < 1 / 255
    keep = (unwrapped.partial.visibility >= KEEP_VISIBILITY).expand(3, -1, -1)
    assert torch.equal(refined.texture[keep], unwrapped.partial.rgb[keep])


def test_photo_refinement_brightens_no_filled_skin_beyond_the_seen_skin(photo_stages):
    unwrapped, complete, refined = photo_stages
    visibility = unwrapped.partial.visibility
    skin = _skin()
    seen_lum = complete.texture.mean(0, keepdim=True)[skin & (visibility > 0.75)]
    filled_lum = refined.texture.mean(0, keepdim=True)[skin & (visibility <= 0.5)]
    assert filled_lum.max() <= torch.quantile(seen_lum, 0.995), "no bright seams or halos in the filled part"
