"""The side of a frontal portrait's head (issue 7, "a seamless far side"): seen from yaw ±60° and ±90°, the face the
portrait shows must not end in an edge where the completed head begins (``fica.seam``)."""
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
# The reference lines of the measure lie on skin that reads as one surface in the pictures (its own shading,
# texture, wrinkles); an outline whose step is within half again of theirs does not read as an edge.
SEAMLESS_RATIO = 1.5


@pytest.fixture(scope="module")
def outputs(example_image) -> dict:
    pipe = FiCAPipeline.from_pretrained()
    return {name: pipe(example_image(name).numpy()) for name in PHOTOS}


@pytest.fixture(scope="module")
def seams(outputs) -> dict:
    return {name: side_seams(out) for name, out in outputs.items()}


@pytest.mark.xfail(strict=True, reason="issue 7 bar not reached: median seam ratio over yaw ±60/±90 astronaut 3.0, "
                   "Grace Hopper 2.8 (median outline steps 20 grey levels on both): what is left is the photo's "
                   "cheek against a smoother completion and the astronaut's lighter seen neck front. The ratio does "
                   "not yet follow the pictures: before the hand-over (visibly a mask's edge) it read 1.6 and 2.05, "
                   "its reference being the then noisier completed skin")
def test_the_face_s_outline_does_not_show_from_the_side(seams):
    ratios = {name: float(np.median([r.ratio for r in per_yaw.values()])) for name, per_yaw in seams.items()}
    assert max(ratios.values()) <= SEAMLESS_RATIO, ratios


def test_the_measure_sees_a_painted_seam(outputs, seams):
    """The completed skin of Grace Hopper's avatar painted 25 % darker (a hard edge where the portrait's view ends)
    must read as a seam: its ratio rises by more than half and above the bar."""
    out = outputs["grace_hopper.jpg"]
    refined = out.refined
    completed = (refined.source != Source.SEEN) & (refined.source != Source.BLENDED) & (refined.valid > 0.5)
    darker = replace(refined, texture=torch.where(completed, 0.75 * refined.texture, refined.texture))
    prior = out.avatar.prior
    avatar = Avatar(prior, prior.encode(darker), out.avatar.fitted_camera, out.avatar.fitted_expression)
    painted = side_seams(replace(out, refined=darker, avatar=avatar))
    before = np.median([r.ratio for r in seams["grace_hopper.jpg"].values()])
    after = np.median([r.ratio for r in painted.values()])
    assert after > max(1.5 * before, SEAMLESS_RATIO), (before, after)
