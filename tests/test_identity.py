"""The avatar keeps the person's identity (issue 7), judged by dlib's face descriptor, a face-recognition model the
project does not use (fica.identity): turned by ±30° it stays within 0.40 of the portrait, and the measure tells two
people apart, so a wrong texture or a collapsed face fails."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from fica.identity import SAME_PERSON, face_descriptor, identity_distances
from fica.pipeline import FiCAPipeline
from tests.conftest import EXAMPLES_DIR, PHOTOS, STYLIZED

TURNED_BAR = 0.40  # issue 7: "bring ±30° below 0.40"
ONE_FACE = PHOTOS + STYLIZED + ("long_hair_clipart.jpg",)


@lru_cache(maxsize=1)
def _pipe() -> FiCAPipeline:
    return FiCAPipeline.from_pretrained()


def _portrait(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(EXAMPLES_DIR / name).convert("RGB"))


@pytest.mark.parametrize("name", ONE_FACE)
def test_turned_avatar_keeps_the_identity(name):
    portrait = _portrait(name)
    distances = identity_distances(portrait, _pipe()(portrait).avatar)
    assert distances[0.0] < TURNED_BAR, distances
    assert max(distances[30.0], distances[-30.0]) < TURNED_BAR, distances


def test_identity_measure_tells_two_people_apart():
    astronaut, grace = _portrait("astronaut.jpg"), _portrait("grace_hopper.jpg")
    assert np.linalg.norm(face_descriptor(astronaut) - face_descriptor(grace)) > SAME_PERSON
    distances = identity_distances(grace, _pipe()(astronaut).avatar, yaws=(0.0, 30.0))
    assert min(distances.values()) > SAME_PERSON, distances
