"""The far side of a turned face (issue 7): the cycle portrait -> avatar -> yaw-45° render -> avatar -> frontal
render, compared with the first avatar's frontal render inside the face (``fica.cycle``), and the registration of
the turned render's head fit that the second avatar's texture is sampled through."""
from __future__ import annotations

import statistics

import pytest

from fica import FiCAPipeline
from fica.cycle import far_side_cycle, turned_registration

PORTRAITS = ("astronaut.jpg", "grace_hopper.jpg", "grace_hopper_smooth.jpg")
CYCLES = [(name, yaw) for name in PORTRAITS for yaw in (45, -45)]
PHOTOS = ("astronaut.jpg", "grace_hopper.jpg")  # the two real faces (the variants repeat Grace Hopper's)
# A face texel sampled this far (fraction of the face width, ~7 px of a 225 px face) from its place blurs an eye
# corner or a lip line into its neighbour, and the mirrored far side doubles it.
REGISTRATION_BAR = 0.03


@pytest.fixture(scope="module")
def pipe() -> FiCAPipeline:
    return FiCAPipeline.from_pretrained()


@pytest.fixture(scope="module")
def gaps(pipe, example_image) -> dict:
    return {(name, yaw): far_side_cycle(pipe, example_image(name).numpy(), yaw).gap_db for name, yaw in CYCLES}


@pytest.fixture(scope="module")
def misregistration(pipe, example_image) -> dict:
    out = {}
    for name in PHOTOS:
        first = pipe(example_image(name).numpy())
        out.update({(name, yaw): turned_registration(first, yaw) for yaw in (45, -45)})
    return out


def test_a_turned_portrait_s_fit_registers_its_face_within_3_percent_of_the_face_width(misregistration):
    """Median over both photos at ±45°: 2.5% (before the fit trusted the featureless landmarks less on turned
    faces: 4.7%, Grace Hopper 7.5% / 6.0%, her fitted head 7-10% too big and shifted)."""
    assert statistics.median(misregistration.values()) <= REGISTRATION_BAR, misregistration


@pytest.mark.xfail(strict=True, reason="Grace Hopper at +45° misregisters by 3.9% of the face width (-45°: 3.0%, "
                   "the astronaut 1.9% / 1.8%): on her turned render MediaPipe also moves the near eye's and brow's "
                   "landmarks outward (10 and 16 px median at +45°; her glasses, painted onto the skin, likely "
                   "widen them), and those the fit keeps trusting")
def test_every_turned_portrait_s_fit_registers_within_3_percent(misregistration):
    assert max(misregistration.values()) <= REGISTRATION_BAR, misregistration


@pytest.mark.xfail(strict=True, reason="issue 7 bar not reached: median gap over the photos 4.7 dB (astronaut +45° "
                   "8.6, -45° 8.0 dB; it moves by ~1 dB with the hair texture's seed: her portrait is lit from one "
                   "side and her fringe is asymmetric, so her unseen cheek is ~30% darker or brighter than the "
                   "mirrored seen one away from the midline the turned view glimpses, which SH shading fitted on the "
                   "seen half cannot tell from symmetric shading (README); B's exact mean brightness would gain only "
                   "0.05 / 1.7 dB; "
                   "Grace Hopper 0.1, 1.4 dB). The registered turned fit sharpened the seen half (astronaut 23.6 -> "
                   "25.2 / 24.4 -> 24.9 dB, Grace Hopper 14.3 -> 15.6 / 15.0 -> 16.0 dB) more than the completed "
                   "one (16.0 -> 16.5 / 17.7 -> 16.8, 14.9 -> 15.4 / 15.6 -> 14.5 dB): the gap was 3.1 dB before")
def test_completed_half_is_within_2_db_of_the_seen_half(gaps):
    photos = [v for k, v in gaps.items() if k[0] in PHOTOS]
    assert statistics.median(photos) <= 2.0, gaps


def test_a_near_symmetric_face_completes_within_3_db(gaps):
    """Grace Hopper's face is close to symmetric, so the mirrored, relit and blended far side must come close to
    the seen one: no cycle of hers (photo and painted variant, both turns) loses more than 3 dB on the completed
    half (before the lit mirror and the membrane blend, yaw +45° lost 3.5 dB)."""
    hopper = {k: v for k, v in gaps.items() if k[0].startswith("grace_hopper")}
    assert max(hopper.values()) <= 3.0, hopper
