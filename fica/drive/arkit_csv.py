"""ARKit / Live Link Face CSV files <-> expression clips (DESIGN.md §3 "Expressions").

Live Link Face writes one row per captured frame::

    Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,...,RightEyeRoll
    14:03:52:28.207,61,0.0123,...

Blendshape columns are the 52 ARKit names in PascalCase (camelCase is accepted too, any column order); head and
eye angles are in radians. The head frame of ARKit's face anchor (+x the subject's left, +y up, +z out of the
face) is ours, so HeadYaw/HeadPitch/HeadRoll map to ``Expression.rotation_deg`` unchanged apart from units, and the
mean of both eyes' yaw/pitch becomes ``Expression.gaze`` when a file carries eye angles.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import torch

from fica.drive.expression import ARKIT_NAMES, Clip, Expression
from fica.errors import UnsupportedInput

DEFAULT_FPS = 60.0
# Timecode frame rates tried when reading HH:MM:SS:FF(.fraction) stamps, most likely (Live Link Face's) first.
TIMECODE_RATES = (60, 30, 24, 25, 50, 48, 120)
HEAD_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
_TIMECODE = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[:;](\d+)(?:\.(\d+))?\s*$")
MAX_ROWS = 200_000


def _key(name: str) -> str:
    return name.strip().lower()


def _parse_timecode(stamp: str) -> tuple[int, float] | None:
    """``"HH:MM:SS:FF.fff"`` -> (whole seconds, frame number with its fraction), or None if not a timecode."""
    m = _TIMECODE.match(stamp)
    if m is None:
        return None
    hours, minutes, seconds, frame = (int(g) for g in m.groups()[:4])
    fraction = float("0." + m.group(5)) if m.group(5) else 0.0
    return hours * 3600 + minutes * 60 + seconds, frame + fraction


def _fps_from_timecodes(stamps: list[str]) -> float:
    """Frame rate of rows stamped ``stamps``, or DEFAULT_FPS when they are missing, unparsable or constant.

    The timecode's own frame rate is not written in the file: among the usual rates above the largest frame
    number, the one that makes the row spacing most even wins (an ambiguity only for clips within one second,
    where the rows' spacing in frames is the same under any rate and Live Link Face's 60 is kept).
    """
    parsed = [_parse_timecode(s) for s in stamps]
    if len(parsed) < 2 or any(p is None for p in parsed):
        return DEFAULT_FPS
    max_frame = max(f for _, f in parsed)
    best: tuple[float, float] | None = None
    for rate in TIMECODE_RATES:
        if rate <= math.floor(max_frame):
            continue
        times = torch.tensor([s + f / rate for s, f in parsed], dtype=torch.float64)
        dt = times.diff()
        if (dt <= 0).all():
            return DEFAULT_FPS
        spread = float(dt.std()) if len(dt) > 1 else 0.0
        fps = (len(times) - 1) / float(times[-1] - times[0])
        if best is None or spread < best[0] - 1e-9:
            best = (spread, fps)
    if best is None or not math.isfinite(best[1]) or best[1] <= 0:
        return DEFAULT_FPS
    return round(best[1], 3)


def read_arkit_csv(path: str | Path) -> Clip:
    """Read an ARKit / Live Link Face CSV into a clip. A file that is not such a CSV raises ``UnsupportedInput``."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UnsupportedInput(f"Could not read the ARKit CSV {path.name}: {e}.") from e
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise UnsupportedInput(f"{path.name} has no frames: an ARKit CSV needs a header row and at least one row.")
    if len(rows) > MAX_ROWS + 1:
        raise UnsupportedInput(f"{path.name} has {len(rows) - 1} frames; at most {MAX_ROWS} are accepted.")
    header = {_key(name): i for i, name in enumerate(rows[0])}
    shape_columns = {name: header[_key(name)] for name in ARKIT_NAMES if _key(name) in header}
    if not shape_columns:
        raise UnsupportedInput(f"{path.name} has no ARKit blendshape columns (EyeBlinkLeft, JawOpen, ...).")
    head = [header.get(_key(c)) for c in HEAD_COLUMNS]
    eyes = [header.get(_key(c)) for c in EYE_COLUMNS]

    def value(row: list[str], i: int | None, line: int) -> float:
        if i is None:
            return 0.0
        try:
            v = float(row[i])
        except (IndexError, ValueError):
            raise UnsupportedInput(f"{path.name}, line {line}: column {rows[0][i]!r} is not a number.") from None
        if not math.isfinite(v):
            raise UnsupportedInput(f"{path.name}, line {line}: column {rows[0][i]!r} is not finite.")
        return v

    frames, gazes = [], []
    for line, row in enumerate(rows[1:], start=2):
        weights = {name: value(row, i, line) for name, i in shape_columns.items()}
        rotation_deg = [math.degrees(value(row, i, line)) for i in head]
        ly, lp, _, ry, rp, _ = (math.degrees(value(row, i, line)) for i in eyes)
        gazes.append(((ly + ry) / 2, (lp + rp) / 2))
        frames.append(Expression.from_dict(weights, rotation_deg))
    if any(g != (0.0, 0.0) for g in gazes):  # files without eye angles (or all zero) follow the blendshapes
        for frame, gaze in zip(frames, gazes):
            frame.gaze = torch.tensor(gaze, dtype=torch.float32)
    time_column = header.get("timecode")
    stamps = [row[time_column] if time_column < len(row) else "" for row in rows[1:]] if time_column is not None else []
    return Clip(frames, _fps_from_timecodes(stamps))


def _timecode(frame_index: int, fps: float, rate: int = 60) -> str:
    """Timecode of frame ``frame_index`` of a clip at ``fps``, counted in ``rate`` frames a second."""
    ticks = round(frame_index / fps * rate * 1000)  # thousandths of a timecode frame
    frames, millis = divmod(ticks, 1000)
    seconds, frame = divmod(frames, rate)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frame:02d}.{millis:03d}"


def write_arkit_csv(clip: Clip, path: str | Path) -> Path:
    """Write ``clip`` as a Live Link Face CSV (PascalCase columns, radians, 60-frame timecodes)."""
    path = Path(path)
    pascal = [n[0].upper() + n[1:] for n in ARKIT_NAMES]
    header = ["Timecode", "BlendShapeCount", *pascal, *HEAD_COLUMNS, *EYE_COLUMNS]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, e in enumerate(clip.frames):
            yaw, pitch, roll = (math.radians(float(a)) for a in e.rotation_deg)
            gy, gp = (math.radians(float(a)) for a in e.gaze) if e.gaze is not None else (0.0, 0.0)
            writer.writerow([_timecode(i, clip.fps), len(ARKIT_NAMES) + 9, *(f"{float(w):.6f}" for w in e.weights),
                             *(f"{a:.6f}" for a in (yaw, pitch, roll, gy, gp, 0.0, gy, gp, 0.0))])
    return path
