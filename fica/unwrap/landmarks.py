"""Face landmarks and a person mask from MediaPipe 0.10.21's legacy solutions (DESIGN.md §5 "Unwrap").

One face-mesh graph and one selfie-segmentation graph per process, created on first use and shared between
threads behind a lock (a MediaPipe graph is not re-entrant).
"""
from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
import torch

from fica.errors import ImageTooSmall, MultipleFaces, NoFaceFound
from fica.io.image import to_uint8

NUM_LANDMARKS = 478
MIN_FACE_WIDTH_PX = 48
# Face-oval landmark ids (the jaw and forehead contour): they sit on the silhouette, which slides over the
# surface as the head turns, so the fit trusts them less than the inner-face landmarks.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
_RETRY_PAD = 0.25  # the retry pads each side by this fraction of the larger image side...
_RETRY_MAX_SIDE = 512  # ...and scales the padded copy so that its larger side is at most this

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _face_mesh():
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=True,
                                           min_detection_confidence=0.5)


@lru_cache(maxsize=1)
def _selfie_segmentation():
    import mediapipe as mp

    return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


def _to_uint8(image) -> np.ndarray:
    """``[H, W, 3]`` float 0..1 (tensor or array) or uint8 -> contiguous uint8 RGB."""
    arr = to_uint8(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] RGB image, got shape {list(arr.shape)}")
    return np.ascontiguousarray(arr)


def _run_face_mesh(rgb: np.ndarray) -> list[np.ndarray]:
    """Landmarks of every face found in ``rgb [H, W, 3]`` uint8, each ``[478, 3]`` in pixels (z scaled like x)."""
    h, w = rgb.shape[:2]
    with _lock:
        result = _face_mesh().process(rgb)
    faces = result.multi_face_landmarks or []
    scale = np.array([w, h, w], dtype=np.float32)
    return [np.array([(p.x, p.y, p.z) for p in f.landmark], dtype=np.float32) * scale for f in faces]


def _padded_retry(rgb: np.ndarray) -> list[np.ndarray]:
    """Run the face mesh on a padded, downscaled copy (helps tight crops and very large images); landmarks are
    mapped back to ``rgb``'s pixels."""
    import cv2

    h, w = rgb.shape[:2]
    pad = int(round(_RETRY_PAD * max(h, w)))
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    scale = min(1.0, _RETRY_MAX_SIDE / max(padded.shape[:2]))
    if scale < 1.0:
        padded = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    faces = _run_face_mesh(padded)
    return [np.concatenate([f[:, :2] / scale - pad, f[:, 2:] / scale], 1) for f in faces]


def detect_landmarks(image) -> torch.Tensor:
    """MediaPipe face-mesh landmarks of the one face in ``image``.

    image: ``[H, W, 3]`` RGB, float 0..1 (tensor or array) or uint8.
    Returns ``[478, 3]`` float32: x, y in pixels (pixel centres at integer + 0.5) and z, MediaPipe's relative depth
    (smaller is nearer the camera) in the same pixel units as x.
    Raises NoFaceFound, MultipleFaces, or ImageTooSmall when the face is under MIN_FACE_WIDTH_PX wide.
    """
    rgb = _to_uint8(image)
    faces = _run_face_mesh(rgb)
    if not faces:
        faces = _padded_retry(rgb)
    if not faces:
        raise NoFaceFound("No face was found in the image; use a clear, front-facing portrait.")
    if len(faces) > 1:
        raise MultipleFaces(f"{len(faces)} faces were found in the image; crop it to the one person to animate.")
    landmarks = faces[0]
    width_px = float(np.ptp(landmarks[:, 0]))
    if width_px < MIN_FACE_WIDTH_PX:
        raise ImageTooSmall(f"The face is only {width_px:.0f} pixels wide; use a portrait where it is at least "
                            f"{MIN_FACE_WIDTH_PX} pixels wide.")
    return torch.from_numpy(landmarks)


def person_mask(image) -> torch.Tensor:
    """Soft mask of the person (face, hair, neck, shoulders) from MediaPipe selfie segmentation.

    image: ``[H, W, 3]`` RGB, float 0..1 or uint8. Returns ``[H, W]`` float32 0..1.
    """
    rgb = _to_uint8(image)
    with _lock:
        mask = _selfie_segmentation().process(rgb).segmentation_mask
    return torch.from_numpy(np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0))
