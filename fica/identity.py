"""Does the avatar still look like the person? Measured with a face-recognition model FiCA itself never uses.

dlib's ResNet face descriptor (128-d; two photos of one person are usually < 0.6 apart, of two people > 0.6) from the
dev extras ``dlib-bin`` and ``face-recognition-models`` (requirements-dev.txt; not needed to run FiCA). The avatar is
rendered with the portrait's fitted expression (a descriptor moves with the expression, and the measure is about who,
not how they look) at a frontal camera and turned by ±30°, and each render's descriptor is compared with the
portrait's. Issue 7's bar: ±30° below 0.40.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from fica.render.camera import orbit_camera

IDENTITY_YAWS = (0.0, 30.0, -30.0)
SAME_PERSON = 0.6  # dlib's own threshold for "the same person"
JITTERS = 10  # descriptors averaged over jittered crops: without them a ±30° distance moves by ~0.05 between runs


@lru_cache(maxsize=1)
def _dlib_models():
    import importlib.util

    models = importlib.util.find_spec("face_recognition_models")  # its __init__ needs pkg_resources: not imported
    try:
        import dlib
    except ImportError:
        dlib = None
    if dlib is None or models is None:  # a dev-only measure: say how to get it
        raise ImportError("the identity measure needs the dev extras: pip install dlib-bin face-recognition-models "
                          "(requirements-dev.txt)")
    folder = Path(models.submodule_search_locations[0]) / "models"
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat")))


def face_descriptor(image: np.ndarray) -> np.ndarray | None:
    """dlib's ``[128]`` descriptor of the largest face in ``image`` ``[H, W, 3]`` uint8, or None when dlib's
    detector finds no face."""
    detector, landmarks, encoder = _dlib_models()
    image = np.ascontiguousarray(image)
    faces = detector(image, 1)
    if not faces:
        return None
    face = max(faces, key=lambda rect: rect.area())
    return np.asarray(encoder.compute_face_descriptor(image, landmarks(image, face), JITTERS))


def identity_distances(portrait: np.ndarray, avatar, yaws=IDENTITY_YAWS, size: int = 512) -> dict[float, float]:
    """Descriptor distance between ``portrait`` ``[H, W, 3]`` uint8 and ``avatar`` rendered (fitted expression,
    white background) at each of ``yaws`` in degrees; ``inf`` where dlib finds no face in the render."""
    reference = face_descriptor(portrait)
    if reference is None:
        raise ValueError("dlib finds no face in the portrait; the identity measure needs one")
    distances = {}
    for yaw in yaws:
        rgb, _ = avatar.render(orbit_camera(yaw, 0.0, width=size, height=size), avatar.fitted_expression)
        render = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        descriptor = face_descriptor(render)
        distances[yaw] = float("inf") if descriptor is None else float(np.linalg.norm(descriptor - reference))
    return distances
