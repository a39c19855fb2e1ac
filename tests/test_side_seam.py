"""The side of a frontal portrait's head (issue 7, "a seamless far side"): seen from yaw ±60°, in both renderers, the face the portrait shows must not end in an edge where the completed head begins, and the under-jaw
must run into the neck without one where the chart is cut (``fica.seam``)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from fica import FiCAPipeline
from fica.avatar import Avatar
from fica.maps import Source
from fica.seam import side_seams

PHOTOS = ("astronaut.jpg", "grace_hopper.jpg")
BACKENDS = ("torch", "surface")
YAWS = (60.0, -60.0)
SIZE_PX = 384
# A long straight edge across smooth skin shows from about 2 % of its brightness, some 3 grey levels a channel
# (5 as the RGB length the measure gives). Grace Hopper's under-jaw before the chart's cuts were closed read 7.6 at
# yaw -60 and showed as a diagonal from the chin to the ear; the astronaut's light neck band read 25-30.
EDGE_MAX = 7.0
# The fine texture (pores, wrinkles, grain) on the two sides of the outline within a factor of 1.4: half an octave.
TEXTURE_OCTAVES_MAX = 0.5


@pytest.fixture(scope="module")
def outputs(example_image) -> dict:
    pipe = FiCAPipeline.from_pretrained()
    return {name: pipe(example_image(name).numpy()) for name in PHOTOS}


@pytest.fixture(scope="module")
def seams(outputs) -> dict:
    return {(name, backend): side_seams(out, YAWS, SIZE_PX, backend) for name, out in outputs.items()
            for backend in BACKENDS}


def _edges(seams, backend: str, kind: str, measure: str = "edge") -> dict:
    return {(name, yaw): round(getattr(views[kind], measure), 2) for (name, b), per_yaw in seams.items()
            if b == backend for yaw, views in per_yaw.items() if kind in views}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_under_jaw_runs_into_the_neck_without_an_edge(seams, backend):
    """Before the refiner closed the chart's cuts, the neck (its own chart island) took the step of its seen front
    and the under-jaw beside it that of the jaw: a light band on the astronaut's neck, bounded by a diagonal from
    the chin toward the ear (25-30 grey levels at yaw -60)."""
    edges = _edges(seams, backend, "cut")
    assert len(edges) == len(PHOTOS) * len(YAWS), edges  # the cut is seen at every side view of both photos
    assert max(edges.values()) <= EDGE_MAX, edges


@pytest.mark.parametrize("backend", [
    "torch",
    pytest.param("surface", marks=pytest.mark.xfail(
        strict=True, reason="issue 7 bar not reached by the surface renderer: Grace Hopper's outline reads 7.9 / 6.7 "
        "grey levels at yaw +60 / -60 (the astronaut's 5.9 / 6.0; the exact compositor's worst view 6.4), "
        "15.7 / 12.2 before the completion carried the photo's detail across the outline and the light near the "
        "outline was evened out (fica.complete.skin.even_light), where the photo darkens steeply toward its outline "
        "and the completion beyond it was lit flat"))])
def test_the_face_s_outline_does_not_show_from_the_side(seams, backend):
    """The exact compositor's worst side view reads 6.4 grey levels (Grace Hopper, yaw -60; 6.7 while the carried
    detail was per channel and unbounded); 11.0 before the completion carried the photo's detail across the outline
    and evened out the light near it."""
    edges = _edges(seams, backend, "outline")
    assert max(edges.values()) <= EDGE_MAX, edges


@pytest.mark.xfail(strict=True, reason="issue 7 bar not reached: the seen skin has up to 1.8 times the fine texture "
                   "of the completion beyond the astronaut's outline (0.79 octaves at yaw +60, exact; 0.31-0.48 at "
                   "the other views), Grace Hopper's 0.40-0.86 octaves (exact and surface, yaw ±60). Before the "
                   "completion carried the photo's own detail across the outline: 0.4-1.0 and 1.2-1.7. The carried "
                   "detail fades over 10-30 texels and mixes with the smeared photo in the hand-over band. Noise grain "
                   "at the seen skin's strength read as leather, not as skin")
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_completed_skin_carries_the_seen_skin_s_texture_past_the_outline(seams, backend):
    textures = _edges(seams, backend, "outline", "texture")
    assert max(textures.values()) <= TEXTURE_OCTAVES_MAX, textures


def test_the_measure_sees_a_painted_seam(outputs, seams):
    """The completed skin of Grace Hopper's avatar painted 25 % darker (a hard edge where the portrait's view ends)
    must read as an edge well above the bar."""
    out = outputs["grace_hopper.jpg"]
    refined = out.refined
    completed = (refined.source != Source.SEEN) & (refined.source != Source.BLENDED) & (refined.valid > 0.5)
    darker = replace(refined, texture=torch.where(completed, 0.75 * refined.texture, refined.texture))
    prior = out.avatar.prior
    avatar = Avatar(prior, prior.encode(darker), out.avatar.fitted_camera, out.avatar.fitted_expression)
    painted = side_seams(replace(out, refined=darker, avatar=avatar), YAWS, SIZE_PX, "torch")
    before = np.mean([v["outline"].edge for v in seams["grace_hopper.jpg", "torch"].values()])
    after = np.mean([v["outline"].edge for v in painted.values()])
    assert after > max(2 * before, 2 * EDGE_MAX), (before, after)
