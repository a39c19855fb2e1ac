"""Place MediaPipe's 478 face-mesh landmarks on the head model: run MediaPipe on a frontal Lambert render of the
neutral head and read back the triangle and barycentrics under each landmark (DESIGN.md §4).

A frontal view is used because portraits are mostly frontal and MediaPipe's jaw-contour landmarks follow the
silhouette of the view they are detected in. The detections are made left/right symmetric (the head and
MediaPipe's topology both are), and a landmark whose pixel shows an eyeball, the mouth cavity or nothing is moved
to the nearest skin pixel, so lid and lip landmarks follow the eyelids and lips. The render has the mouth a little
open, so the upper and lower inner-lip landmarks land on different lips (on a closed mouth they coincide).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from scipy.optimize import linear_sum_assignment

from fica.render.camera import orbit_camera
from fica.render.mesh import rasterize_mesh, shade

EMBED_SIZE_PX = 768
EMBED_DISTANCE_M = 0.75
EMBED_JAW_OPEN = 0.35
IRIS_LANDMARKS = range(468, 478)  # refine_landmarks' iris points: these belong on the eyeballs


def _detect(image: np.ndarray) -> np.ndarray:
    """MediaPipe landmarks ``[478, 2]`` in pixels of an ``[H, W, 3]`` float image."""
    from fica.unwrap.landmarks import detect_landmarks

    return detect_landmarks(image)[:, :2].numpy()


def _symmetric(pixels: np.ndarray, width: int) -> np.ndarray:
    """Average each landmark ``[478, 2]`` with the mirror image of its one-to-one left/right twin."""
    mirrored = pixels * np.array([-1.0, 1.0]) + np.array([width, 0.0])
    cost = np.linalg.norm(mirrored[:, None] - pixels[None], axis=-1)
    _, twin = linear_sum_assignment(cost)
    return 0.5 * (pixels + mirrored[twin])


def embed_landmarks(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return landmark_face ``[478]`` int32 and landmark_bary ``[478, 3]`` float32 for the head asset arrays."""
    from fica.head.model import REGIONS, HeadModel

    from fica.drive.expression import ARKIT_INDEX

    head = HeadModel(arrays)
    jaw = torch.zeros(len(head.expression_basis))
    jaw[ARKIT_INDEX["jawOpen"]] = EMBED_JAW_OPEN
    vertices = head.deform(expression=jaw)
    camera = orbit_camera(0.0, 0.0, width=EMBED_SIZE_PX, height=EMBED_SIZE_PX, distance_m=EMBED_DISTANCE_M)
    image = shade(vertices, head.faces, camera, normals=head.vertex_normals(vertices)).numpy()
    pixels = _symmetric(_detect(image), EMBED_SIZE_PX)
    face_index, bary, _ = rasterize_mesh(vertices, head.faces, camera)
    region = head.face_region[face_index.clamp(min=0)]
    covered = face_index >= 0
    skin = covered & ~torch.isin(region, torch.tensor([REGIONS.index("eyes"), REGIONS.index("mouth")]))
    eyes = covered & (region == REGIONS.index("eyes"))
    px = np.clip(np.floor(pixels).astype(int), 0, EMBED_SIZE_PX - 1)
    face = np.zeros(len(px), np.int32)
    weights = np.zeros((len(px), 3), np.float32)
    for allowed, ids in ((skin, np.setdiff1d(np.arange(len(px)), IRIS_LANDMARKS)), (eyes, np.array(IRIS_LANDMARKS))):
        # For every pixel, the nearest allowed pixel (itself where it is allowed).
        _, (near_y, near_x) = distance_transform_edt(~allowed.numpy(), return_indices=True)
        y, x = near_y[px[ids, 1], px[ids, 0]], near_x[px[ids, 1], px[ids, 0]]
        face[ids], weights[ids] = face_index[y, x].numpy(), bary[y, x].numpy()
    return face, weights
