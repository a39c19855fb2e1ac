"""MP4 writing and video reading through imageio-ffmpeg's bundled ffmpeg; side-by-side frames."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import imageio_ffmpeg
import numpy as np

from fica.errors import UnsupportedInput
from fica.io._atomic import atomic_path
from fica.io.image import to_uint8

# Constant quality (x264 CRF) and web playback from the first byte.
_X264_PARAMS = ["-crf", "18", "-preset", "veryfast", "-movflags", "+faststart"]


def write_mp4(frames: Iterable[np.ndarray], path: str | Path, fps: float) -> Path:
    """Encode ``[H, W, 3]`` frames (uint8, or float 0..1) as H.264 / yuv420p MP4. Returns the path.

    Frames with an odd width or height get one replicated pixel column / row (yuv420p needs even sizes); every
    frame must have the first one's size. Atomic: a failure (or no frames at all) leaves no file behind.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        writer, size = None, None
        try:
            for frame in frames:
                frame = to_uint8(frame)
                if frame.ndim != 3 or frame.shape[2] != 3:
                    raise ValueError(f"write_mp4 expects [H, W, 3] frames; got shape {frame.shape}.")
                if size is None:
                    size = frame.shape[:2]
                    even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp), (even[1], even[0]), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                        quality=None, macro_block_size=1, output_params=_X264_PARAMS)
                    writer.send(None)
                elif frame.shape[:2] != size:
                    raise ValueError(f"All frames must be {size[1]}×{size[0]}; got {frame.shape[1]}×{frame.shape[0]}.")
                frame = np.pad(frame, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
                writer.send(np.ascontiguousarray(frame))
            if writer is None:
                raise ValueError("write_mp4 got no frames.")
        finally:
            if writer is not None:
                writer.close()
    return path


def read_video(path: str | Path, max_frames: int | None = None, max_side: int | None = None
               ) -> tuple[list[np.ndarray], float]:
    """Decode a video into ``[H, W, 3]`` uint8 frames and its frame rate.

    max_frames: stop after this many frames; max_side: downscale (area) frames whose long side exceeds it.
    Raises UnsupportedInput when the file is missing, not a video, has no frames, or decodes to fewer than 90 %
    of the frames its container announces (a truncated download).
    """
    path = Path(path)
    if not path.is_file():
        raise UnsupportedInput(f"The video {path.name} does not exist or is not a file.")
    frames: list[np.ndarray] = []
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = reader.__next__()
        width, height = meta["size"]
        fps = float(meta.get("fps") or 0) or 24.0
        for raw in reader:
            frame = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
            if max_side is not None and max(width, height) > max_side:
                scale = max_side / max(width, height)
                frame = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))),
                                   interpolation=cv2.INTER_AREA)
            frames.append(frame.copy() if frame.base is not None else frame)
            if max_frames is not None and len(frames) >= max_frames:
                break
    except (RuntimeError, OSError, ValueError, KeyError, StopIteration) as error:
        raise UnsupportedInput("The file is not a readable video; use an MP4, MOV, WebM or AVI clip.") from error
    finally:
        reader.close()
    if not frames:
        raise UnsupportedInput("The video has no frames that could be decoded.")
    expected = round(float(meta.get("duration") or 0) * fps)
    if (max_frames is None or len(frames) < max_frames) and len(frames) < 0.9 * expected - 1:
        raise UnsupportedInput(f"The video is damaged or truncated: only {len(frames)} of its {expected} frames "
                               "could be decoded.")
    return frames, fps


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` and ``[H', W', 3]`` -> ``[H, W + W'', 3]``: right scaled to the left's height (aspect kept).

    Both become uint8 (float inputs are taken as 0..1).
    """
    left, right = to_uint8(left), to_uint8(right)
    height = left.shape[0]
    if right.shape[0] != height:
        width = max(1, round(right.shape[1] * height / right.shape[0]))
        shrink = height < right.shape[0]
        right = cv2.resize(right, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.concatenate([left, right], 1)
