"""The far side of a turned face (issue 7): the cycle portrait -> avatar -> yaw-45° render -> avatar -> frontal
render, compared with the first avatar's frontal render inside the face (``fica.cycle``)."""
from __future__ import annotations

import statistics

import pytest

from fica import FiCAPipeline
from fica.cycle import far_side_cycle

PORTRAITS = ("astronaut.jpg", "grace_hopper.jpg", "grace_hopper_smooth.jpg", "grace_hopper_grey.jpg",
             "astronaut_posterized.png")  # astronaut_stylized.jpg: its yaw-45° render shows MediaPipe two faces
CYCLES = [(name, yaw) for name in PORTRAITS for yaw in (45, -45)]


@pytest.fixture(scope="module")
def pipe() -> FiCAPipeline:
    return FiCAPipeline.from_pretrained()


@pytest.fixture(scope="module")
def gaps(pipe, example_image) -> dict:
    return {(name, yaw): far_side_cycle(pipe, example_image(name).numpy(), yaw).gap_db for name, yaw in CYCLES}


@pytest.mark.xfail(strict=True, reason="issue 7 bar not reached yet: median gap 2.3 dB on the examples (was 3.2); "
                   "the astronaut's asymmetric fringe and smile cannot be mirrored")
def test_completed_half_is_within_2_db_of_the_seen_half(gaps):
    assert statistics.median(gaps.values()) <= 2.0, gaps


def test_completed_half_is_never_far_worse_than_the_seen_half(gaps):
    """A bound that the mirror of a near-symmetric face must keep (Grace Hopper): no cycle of hers loses more than
    3 dB on the completed half."""
    hopper = {k: v for k, v in gaps.items() if k[0].startswith("grace_hopper")}
    assert max(hopper.values()) <= 3.0, hopper
