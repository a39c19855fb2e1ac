"""Face landmarks and a person mask from MediaPipe 0.10.21's legacy solutions (DESIGN.md §5 "Unwrap").

Faces are found anywhere in the image by the full-range face detector (group photos, faces small in a large
photo); the face mesh then runs on a crop around the chosen face. One graph of each kind per process, created on
first use and shared between threads behind a lock (a MediaPipe graph is not re-entrant).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
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
DOMINANT_AREA_RATIO = 2.5  # a face this many times larger than every other one is the subject
CENTRE_REGION = 0.25  # ...as is the only face whose centre lies within this fraction of the image size of its centre
_TILE_MIN_PX = 768  # photos whose short side is longer are also searched in tiles of half that side
_TILE_EDGE_MARGIN = 0.01  # of the tile's side: a box this close to a tile edge inside the photo is cut there
_CROP_SCALE = 2.4  # the face-mesh crop is this many times the detected box's larger side, square
_CROP_SIDE_PX = 512  # and resized to this side
_RETRY_PAD = 0.25  # the retry pads each side by this fraction of the larger image side...
_RETRY_MAX_SIDE = 512  # ...and scales the padded copy so that its larger side is at most this

_lock = threading.Lock()


@lru_cache(maxsize=1)
def feature_landmarks() -> tuple[int, ...]:
    """Ids of the landmarks on visible facial features (MediaPipe's eye, eyebrow, lip and nose contours), which
    MediaPipe locates from the image; the others (cheeks, forehead, jaw contour) it places from its face-shape
    prior."""
    from mediapipe.python.solutions import face_mesh_connections as mesh

    edges = (mesh.FACEMESH_LEFT_EYE | mesh.FACEMESH_RIGHT_EYE | mesh.FACEMESH_LEFT_EYEBROW
             | mesh.FACEMESH_RIGHT_EYEBROW | mesh.FACEMESH_LIPS | mesh.FACEMESH_NOSE)
    return tuple(sorted({i for edge in edges for i in edge}))


@lru_cache(maxsize=1)
def _face_mesh():
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2, refine_landmarks=True,
                                           min_detection_confidence=0.5)


@lru_cache(maxsize=1)
def _face_detector():
    import mediapipe as mp

    return mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)  # full range


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


@dataclass
class Face:
    """The face the avatar is built from: landmarks ``[478, 3]`` as ``detect_landmarks`` returns them, and a
    sentence for the report when the image held other faces too ('' otherwise)."""

    landmarks: torch.Tensor
    note: str = ""


def _detect_in(rgb: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """``(x0, y0, x1, y1, score)`` in pixels of the faces the full-range detector finds in ``rgb``."""
    h, w = rgb.shape[:2]
    with _lock:
        detections = _face_detector().process(np.ascontiguousarray(rgb)).detections or []
    out = []
    for d in detections:
        box = d.location_data.relative_bounding_box
        out.append((box.xmin * w, box.ymin * h, (box.xmin + box.width) * w, (box.ymin + box.height) * h, d.score[0]))
    return out


def _tiles(length: int, side: int) -> list[int]:
    """Starts of tiles of ``side`` covering ``length`` at half-tile steps."""
    starts = list(range(0, max(1, length - side) + 1, max(1, side // 2)))
    return starts + ([length - side] if length > side and starts[-1] != length - side else [])


def _detect_faces(rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Boxes ``(x0, y0, x1, y1)`` in pixels of every face found in ``rgb``: the detector sees its input at
    192², so it also runs on square tiles (the short side, and half of it in photos over ``_TILE_MIN_PX``),
    where small faces are large enough; a box whose centre lies in a higher-scoring box is the same face. A box
    that reaches an edge of its tile inside the photo is left out: the tile cuts that face (the detector then
    finds a second, partial face, e.g. a chin below the real one), and the tiles, overlapping by half, hold every
    face of up to half a tile whole; larger ones are found in larger tiles or the whole photo."""
    h, w = rgb.shape[:2]
    found = _detect_in(rgb)
    sides = [min(h, w)] + ([min(h, w) // 2] if min(h, w) > _TILE_MIN_PX else [])
    for side in sides:
        margin = _TILE_EDGE_MARGIN * side
        for top in _tiles(h, side):
            for left in _tiles(w, side):
                if (side, side) == (h, w):
                    continue
                for x0, y0, x1, y1, score in _detect_in(rgb[top:top + side, left:left + side]):
                    cut = ((left > 0 and x0 < margin) or (top > 0 and y0 < margin)
                           or (left + side < w and x1 > side - margin) or (top + side < h and y1 > side - margin))
                    if not cut:
                        found.append((x0 + left, y0 + top, x1 + left, y1 + top, score))
    faces: list[tuple] = []
    for box in sorted(found, key=lambda b: -b[4]):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        if not any(f[0] <= cx <= f[2] and f[1] <= cy <= f[3] for f in faces):
            faces.append(box)
    return [f[:4] for f in faces]


def _subject(boxes: list, width: int, height: int) -> int | None:
    """Index of the box that clearly is the subject (alone; larger than every other by ``DOMINANT_AREA_RATIO``;
    or the only one near the image centre), else None."""
    areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes]
    order = sorted(range(len(boxes)), key=lambda i: -areas[i])
    if len(boxes) == 1 or areas[order[0]] >= DOMINANT_AREA_RATIO * areas[order[1]]:
        return order[0]
    central = [i for i, (x0, y0, x1, y1) in enumerate(boxes)
               if abs((x0 + x1) / 2 - width / 2) < CENTRE_REGION * width
               and abs((y0 + y1) / 2 - height / 2) < CENTRE_REGION * height]
    return central[0] if len(central) == 1 else None


def _centre_in(landmarks: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """Whether the centre of ``landmarks [478, 2+]`` (pixels) lies inside ``box`` (x0, y0, x1, y1)."""
    cx, cy = landmarks[:, :2].mean(0)
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _landmarks_in_box(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """Face-mesh landmarks (pixels of ``rgb``) of the face in ``box``: the mesh runs on a square crop around the
    box, resized to ``_CROP_SIDE_PX``; of the faces it finds there, the one centred nearest the box wins."""
    import cv2

    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = _CROP_SCALE * max(x1 - x0, y1 - y0) / 2
    left, top = int(round(cx - half)), int(round(cy - half))
    side = int(round(2 * half))
    h, w = rgb.shape[:2]
    pad = max(0, -left, -top, left + side - w, top + side - h)
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else rgb
    crop = padded[top + pad:top + pad + side, left + pad:left + pad + side]
    scale = _CROP_SIDE_PX / side
    crop = cv2.resize(crop, (_CROP_SIDE_PX, _CROP_SIDE_PX),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    faces = _run_face_mesh(np.ascontiguousarray(crop))
    if not faces:
        return None
    faces = [np.concatenate([f[:, :2] / scale + (left, top), f[:, 2:] / scale], 1) for f in faces]
    return min(faces, key=lambda f: float(np.hypot(*(f[:, :2].mean(0) - (cx, cy)))))


def find_face(image) -> Face:
    """The face the avatar is built from, found anywhere in ``image`` (``[H, W, 3]`` RGB, float 0..1 or uint8).

    The full-range detector counts the faces. With several, the one that clearly is the subject (``_subject``) is
    used, its landmarks from the face mesh on a crop around it, and the note says so; with none clearly the
    subject, MultipleFaces. With one or none (a portrait, or a stylized one the detector misses), the face mesh
    runs on the whole image, and on a crop around the detected face when the face is too small for it; of several
    mesh faces, one the detector found wins over face-like shapes it does not confirm (a cap badge seen from
    above), and the note says so.
    Raises NoFaceFound, MultipleFaces, or ImageTooSmall when the face is under MIN_FACE_WIDTH_PX wide.
    """
    rgb = _to_uint8(image)
    h, w = rgb.shape[:2]
    boxes = _detect_faces(rgb)
    note = ""
    if len(boxes) > 1:
        chosen = _subject(boxes, w, h)
        if chosen is None:
            raise MultipleFaces(f"{len(boxes)} faces were found in the image; crop it to the one person to animate.")
        faces = [f for f in [_landmarks_in_box(rgb, boxes[chosen])] if f is not None]
        note = (f"{len(boxes)} faces were found; the avatar is of the one that stands out (the largest, or the only "
                "one near the centre); crop the photo to choose another.")
    else:
        faces = _run_face_mesh(rgb) or _padded_retry(rgb)
        if not faces and boxes:
            faces = [f for f in [_landmarks_in_box(rgb, boxes[0])] if f is not None]
        if len(faces) > 1 and boxes:
            faces = [f for f in faces if _centre_in(f, boxes[0])] or faces
            if len(faces) == 1:
                note = ("A second face-like shape (a badge, a print, a picture) was found that the face detector "
                        "does not confirm; the avatar is of the detected face.")
    if not faces:
        raise NoFaceFound("No face was found in the image; use a clear, front-facing portrait.")
    if len(faces) > 1:
        raise MultipleFaces(f"{len(faces)} faces were found in the image; crop it to the one person to animate.")
    landmarks = faces[0]
    width_px = float(np.ptp(landmarks[:, 0]))
    if width_px < MIN_FACE_WIDTH_PX:
        raise ImageTooSmall(f"The face is only {width_px:.0f} pixels wide; use a portrait where it is at least "
                            f"{MIN_FACE_WIDTH_PX} pixels wide.")
    return Face(torch.from_numpy(np.ascontiguousarray(landmarks, dtype=np.float32)), note)


def detect_landmarks(image) -> torch.Tensor:
    """MediaPipe face-mesh landmarks of the face in ``image`` (``find_face``).

    image: ``[H, W, 3]`` RGB, float 0..1 (tensor or array) or uint8.
    Returns ``[478, 3]`` float32: x, y in pixels (pixel centres at integer + 0.5) and z, MediaPipe's relative depth
    (smaller is nearer the camera) in the same pixel units as x.
    Raises NoFaceFound, MultipleFaces, or ImageTooSmall when the face is under MIN_FACE_WIDTH_PX wide.
    """
    return find_face(image).landmarks


def person_mask(image) -> torch.Tensor:
    """Soft mask of the person (face, hair, neck, shoulders) from MediaPipe selfie segmentation.

    image: ``[H, W, 3]`` RGB, float 0..1 or uint8. Returns ``[H, W]`` float32 0..1.
    """
    rgb = _to_uint8(image)
    with _lock:
        mask = _selfie_segmentation().process(rgb).segmentation_mask
    return torch.from_numpy(np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0))
