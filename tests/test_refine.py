"""Embedded refinement: gradient-domain seam blending from the completer's source map, light geometry smoothing;
the SH lighting fit the completer relights with."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from scipy.ndimage import label

from fica.complete.embedded import EmbeddedCompleter
from fica.head.chart_seams import chart_seams
from fica.head.model import default_head
from fica.maps import Source
from fica.refine.embedded import EmbeddedRefiner
from fica.shading import fit_sh_shading, sh_basis
from test_complete import painted_truth, synthetic_unwrapped


@pytest.fixture(scope="module")
def stages():
    unwrapped = synthetic_unwrapped(40.0)
    complete = EmbeddedCompleter()(unwrapped, torch.zeros(8, 8, 3))
    refined = EmbeddedRefiner()(complete, unwrapped, torch.zeros(8, 8, 3))
    return unwrapped, complete, refined


def _skin(resolution: int = 256) -> torch.Tensor:
    return default_head().uv_layout(resolution).region_mask("face", "ears", "neck") > 0.5


def test_seen_texels_keep_the_photo_exactly(stages):
    unwrapped, complete, refined = stages
    keep = (complete.source == Source.SEEN).expand(3, -1, -1)
    assert keep.sum() > 3 * 8000
    assert torch.equal(refined.texture[keep], complete.texture[keep])
    assert refined.texture.min() >= 0 and refined.texture.max() <= 1
    assert refined.texture[:, complete.valid[0] < 0.5].abs().max() == 0


def test_no_colour_step_where_the_seen_texels_meet_the_completed_ones(stages):
    """Across the boundary between seen and completed skin, neighbouring texels differ as the painted truth's do:
    far less than when the mirror half is pasted in as the photo shows it (the cheek patch's edge excluded)."""
    unwrapped, complete, refined = stages
    _, shaded, _, cheek = painted_truth()
    seen = complete.source == Source.SEEN
    skin = _skin() & ~(cheek | cheek.flip(-1))
    straddle = (seen[..., 1:] != seen[..., :-1]) & skin[..., 1:] & skin[..., :-1]  # [1, R, R-1]
    assert straddle.sum() > 100

    def step_error(texture):
        step = texture[..., 1:] - texture[..., :-1]
        truth = shaded[..., 1:] - shaded[..., :-1]
        return (step - truth).abs().sum(0, keepdim=True)[straddle].mean()

    pasted = torch.where(seen, unwrapped.partial.rgb, unwrapped.partial.rgb.flip(-1))
    assert step_error(refined.texture) < 0.25 * step_error(pasted)
    assert step_error(refined.texture) < 0.15, "under ~4 grey levels a channel"


def test_mirrored_texels_the_portrait_glimpses_take_its_brightness(stages):
    """The painted head is lit from its right (-x), the side a 40° camera sees obliquely. The completer mirrors that
    side from the lit left one, relit by an SH fit that holds the one-sided terms back; where the portrait still
    glimpses those texels, the refiner's membrane brings them to the brightness the portrait shows."""
    unwrapped, complete, refined = stages
    _, shaded, _, cheek = painted_truth()
    glimpsed = (complete.source == Source.MIRRORED) & (unwrapped.partial.visibility > 0.2) & _skin()
    glimpsed = glimpsed & ~(cheek | cheek.flip(-1))  # the painted cheek patch is not symmetric
    assert glimpsed.sum() > 1000

    def error(texture):
        return float((texture - shaded).abs().mean(0, keepdim=True)[glimpsed].mean())

    assert error(refined.texture) < 0.4 * error(complete.texture)
    assert error(refined.texture) < 0.02, "about 5 grey levels"


def test_only_texels_the_source_map_calls_mirrored_follow_the_portrait_s_glimpse(stages):
    """The refiner reads the completer's source map instead of re-deriving mirroring: the same glimpsed far-cheek
    texels, reported FILLED (as the completer reports texels beyond the face's outline that hold a collar or hair),
    keep the completer's colour instead of moving toward what the portrait shows of them."""
    unwrapped, complete, refined = stages
    glimpsed = (complete.source == Source.MIRRORED) & (unwrapped.partial.visibility > 0.2) & _skin()
    filled = replace(complete, source=torch.where(glimpsed, int(Source.FILLED), complete.source).to(torch.uint8))
    kept = EmbeddedRefiner()(filled, unwrapped, torch.zeros(8, 8, 3))

    def distance_to_glimpse(texture):
        return float((texture - unwrapped.partial.rgb).abs().mean(0, keepdim=True)[glimpsed].mean())

    assert distance_to_glimpse(refined.texture) < 0.5 * distance_to_glimpse(complete.texture)
    assert distance_to_glimpse(kept.texture) > 0.8 * distance_to_glimpse(complete.texture)


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
    # the terms odd in x (a light from one side) are held back by a stronger ridge, so they come out a little weaker
    symmetric = [0, 1, 2, 5, 6, 8]
    assert (fitted - coeffs)[symmetric].abs().max() < 0.02
    assert (fitted - coeffs).abs().max() < 0.03


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
    left_black = unseen & (complete.texture.sum(0) <= 0.02)  # the photo has black pixels (a collar): a rare one is fill
    assert int(left_black.sum()) < 1e-3 * int(unseen.sum()), "filled texels are never left black"
    seen = (complete.source == Source.SEEN).expand(3, -1, -1)
    assert (complete.texture - unwrapped.partial.rgb)[seen].abs().max() < 1 / 255
    assert torch.equal(refined.texture[seen], unwrapped.partial.rgb[seen])


def test_photo_refinement_brightens_no_filled_skin_beyond_the_seen_skin(photo_stages):
    unwrapped, complete, refined = photo_stages
    visibility = unwrapped.partial.visibility
    skin = _skin()
    seen = complete.source == Source.SEEN
    seen_lum = complete.texture.mean(0, keepdim=True)[skin & seen]
    filled_lum = refined.texture.mean(0, keepdim=True)[skin & ~seen & (visibility <= 0.5)]
    assert filled_lum.max() <= torch.quantile(seen_lum, 0.995), "no bright seams or halos in the filled part"


def test_photo_skin_agrees_across_the_chart_s_cuts(photo_stages):
    """The under-jaw (face island) and the neck (its own island) meet on the head: texels paired across the cut
    by ``chart_seams`` hold the same colour after refinement. Before the refiner closed the cuts, their median
    luminance difference was 0.04 on both photos, the mean 0.08 (astronaut) and 0.13 (Grace Hopper): from the
    side, a light neck band under a diagonal from the chin toward the ear. Now 0.000 and at most 0.005."""
    _, complete, refined = photo_stages
    head = default_head()
    cuts = chart_seams(head, refined.resolution)
    skin = _skin(refined.resolution).reshape(-1)
    partner = cuts.partner.reshape(-1)
    paired = ((partner >= 0) & skin & skin[partner.clamp(min=0)]).nonzero()[:, 0]
    islands = torch.from_numpy(label((refined.valid[0] > 0.5).numpy())[0]).reshape(-1)
    across = paired[islands[paired] != islands[partner[paired]]]
    assert len(across) >= 200, "the under-jaw's cut to the neck island is found"  # 398 at R = 256
    flat = refined.texture.mean(0).reshape(-1)
    difference = (flat[across] - flat[partner[across]]).abs()
    assert float(difference.median()) <= 0.005 and float(difference.mean()) <= 0.02, \
        (float(difference.median()), float(difference.mean()))
