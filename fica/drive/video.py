"""Driving clips from a video or a still image of a face (landmarks -> per-frame expression fit -> Clip), or from
an ARKit / Live Link Face CSV."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fica.drive.arkit_csv import read_arkit_csv
from fica.drive.expression import Clip, Expression
from fica.errors import FiCAError, NoFaceFound, UnsupportedInput
from fica.head.model import HeadModel, default_head

MAX_DRIVING_FRAMES = 240  # 10 s at 24 fps
MAX_DRIVING_SIDE_PX = 640
STILL_SECONDS = 2.0
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
CSV_SUFFIXES = {".csv"}
MAX_CSV_FPS = 30.0  # a 60 fps Live Link Face take is rendered at every other row


def read_driving_frames(path: str | Path, max_frames: int = MAX_DRIVING_FRAMES) -> tuple[list[np.ndarray], float]:
    """Frames ``[H, W, 3]`` uint8 and fps of a driving video, or of a still image held for STILL_SECONDS."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from fica.io.image import load_portrait

        frame = (load_portrait(path) * 255 + 0.5).astype(np.uint8)
        fps = 24.0
        return [frame] * int(STILL_SECONDS * fps), fps
    from fica.io.video import read_video

    return read_video(path, max_frames=max_frames, max_side=MAX_DRIVING_SIDE_PX)


def clip_from_frames(frames: list[np.ndarray], fps: float, head: HeadModel | None = None) -> Clip:
    """Fit an Expression to every frame; frames where no face is found hold the previous expression.

    frames: ``[H, W, 3]`` uint8 each. Raises NoFaceFound when no frame shows a face.
    """
    from fica.unwrap.fit import fit_expression
    from fica.unwrap.landmarks import detect_landmarks

    head = head or default_head()
    previous, expressions = None, []
    for frame in frames:
        try:
            landmarks = detect_landmarks(frame.astype(np.float32) / 255.0)
        except FiCAError:
            expressions.append(expressions[-1] if expressions else None)
            continue
        previous = fit_expression(landmarks, frame.shape[:2], head, previous)
        expressions.append(previous.to_expression())
    if previous is None:
        raise NoFaceFound("No face was found in any frame of the driving video.")
    first = next(e for e in expressions if e is not None)
    frames_out = [e if e is not None else first for e in expressions]
    return Clip([Expression(e.weights, e.rotation_deg, e.gaze) for e in frames_out], fps=fps)


def clip_from_video(path: str | Path, head: HeadModel | None = None,
                    max_frames: int = MAX_DRIVING_FRAMES) -> tuple[Clip, list[np.ndarray]]:
    """The driving clip of a video (or still image) file, with its frames ``[H, W, 3]`` uint8 for side by side."""
    if not Path(path).is_file():
        raise UnsupportedInput(f"Driving file {Path(path).name} does not exist.")
    frames, fps = read_driving_frames(path, max_frames)
    if not frames:
        raise UnsupportedInput("The driving video has no frames.")
    return clip_from_frames(frames, fps, head), frames


def read_driving(path: str | Path, head: HeadModel | None = None,
                 max_frames: int = MAX_DRIVING_FRAMES) -> tuple[Clip, list[np.ndarray] | None]:
    """The driving clip of a video, still image or ARKit CSV, with the video's frames (None for a CSV).

    A CSV above MAX_CSV_FPS keeps every n-th row so it plays at or below that rate; at most ``max_frames``
    frames are kept either way.
    """
    if Path(path).suffix.lower() not in CSV_SUFFIXES:
        return clip_from_video(path, head, max_frames)
    clip = read_arkit_csv(path)
    step = max(1, round(clip.fps / MAX_CSV_FPS))
    return Clip(clip.frames[::step][:max_frames], clip.fps / step), None
