"""Expression presets: short, smoothly eased clips anyone can pick by name (DESIGN.md §3 "Expressions").

Every preset is a function of time ``t_s`` (seconds) and clip length, so a clip is smooth at any frame rate:
weights stay in 0..1, every clip starts and ends at the neutral, forward-facing pose, and no weight changes by
more than ~0.35 (no head angle by more than 4°) between frames at 24 fps.

Head rotations are (yaw, pitch, roll) degrees for ``fica.rotations.rotation_ypr``, whose matrix turns the face
toward +x for positive yaw and tilts it down for positive pitch (as ARKit's HeadPitch does), so a chin-up
laugh has negative pitch.
"""
from __future__ import annotations

import math
from typing import Callable

from fica.drive.expression import Clip, Expression

# Name -> what the user sees.
PRESETS: dict[str, str] = {
    "smile": "A warm smile that grows, holds and relaxes.",
    "talk": "Speech-like jaw and lip motion with small head movements.",
    "surprise": "Brows up, eyes wide, jaw drops.",
    "blink": "Three natural blinks.",
    "turn": "Head turns left and right (yaw sweep).",
    "nod": "Head nods yes (pitch sweep).",
    "wink": "A wink of the left eye with a half smile.",
    "angry": "Brows down, squint, pressed lips.",
    "sad": "Inner brows up, mouth corners down.",
    "kiss": "Lips pucker into a kiss.",
    "laugh": "A big open-mouthed laugh.",
    "glance": "Eyes and head glance left, right and up.",
}


def ease(x: float) -> float:
    """Smoothstep of ``x`` clamped to 0..1 (zero slope at both ends)."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def envelope(t_s: float, duration_s: float, rise_s: float = 0.6) -> float:
    """0 at both ends, 1 in the middle: eased rise over ``rise_s``, hold, eased fall over ``rise_s``."""
    rise_s = min(rise_s, duration_s / 2)
    return ease(t_s / rise_s) * ease((duration_s - t_s) / rise_s)


def pulse(t_s: float, start_s: float, width_s: float) -> float:
    """A raised-cosine bump of height 1 over ``[start_s, start_s + width_s]``, zero elsewhere."""
    x = (t_s - start_s) / width_s
    return 0.5 - 0.5 * math.cos(2 * math.pi * x) if 0.0 < x < 1.0 else 0.0


def _smile(t, d):
    e = envelope(t, d, 0.8)
    w = {"mouthSmileLeft": 0.9 * e, "mouthSmileRight": 0.9 * e, "cheekSquintLeft": 0.5 * e,
         "cheekSquintRight": 0.5 * e, "eyeSquintLeft": 0.3 * e, "eyeSquintRight": 0.3 * e,
         "mouthDimpleLeft": 0.3 * e, "mouthDimpleRight": 0.3 * e}
    return w, (0.0, -3.0 * e, 0.0)


def _talk(t, d):
    e = envelope(t, d, 0.3)
    # Syllables at ~4 Hz with a slower amplitude wobble; kept smooth by using sums of sines.
    syllable = 0.5 - 0.5 * math.cos(2 * math.pi * 4.0 * t)
    loud = 0.6 + 0.4 * math.sin(2 * math.pi * 0.7 * t)
    rounding = 0.5 + 0.5 * math.sin(2 * math.pi * 1.3 * t)
    w = {"jawOpen": 0.45 * e * syllable * loud, "mouthFunnel": 0.35 * e * rounding * syllable,
         "mouthPucker": 0.25 * e * rounding * (1 - syllable), "mouthStretchLeft": 0.2 * e * (1 - rounding),
         "mouthStretchRight": 0.2 * e * (1 - rounding), "mouthLowerDownLeft": 0.3 * e * syllable,
         "mouthLowerDownRight": 0.3 * e * syllable, "browInnerUp": 0.25 * e * loud}
    rot = (4.0 * e * math.sin(2 * math.pi * 0.4 * t), 2.0 * e * math.sin(2 * math.pi * 0.9 * t), 0.0)
    return w, rot


def _surprise(t, d):
    e = envelope(t, d, 0.5)
    w = {"browInnerUp": e, "browOuterUpLeft": 0.9 * e, "browOuterUpRight": 0.9 * e, "eyeWideLeft": 0.8 * e,
         "eyeWideRight": 0.8 * e, "jawOpen": 0.55 * e, "mouthFunnel": 0.3 * e}
    return w, (0.0, -4.0 * e, 0.0)


def _blink_times(d):
    return [d * f for f in (0.15, 0.5, 0.8)]


def _blink(t, d):
    b = sum(pulse(t, s, 0.4) for s in _blink_times(d))
    return {"eyeBlinkLeft": b, "eyeBlinkRight": b}, (0.0, 0.0, 0.0)


def _turn(t, d):
    return {}, (35.0 * math.sin(2 * math.pi * t / d) * ease(t / 0.3) * ease((d - t) / 0.3), 0.0, 0.0)


def _nod(t, d):
    return {}, (0.0, 15.0 * math.sin(2 * math.pi * 2 * t / d) * ease(t / 0.3) * ease((d - t) / 0.3), 0.0)


def _wink(t, d):
    e = envelope(t, d, 0.8)
    closed = ease((t - 0.3 * d) / 0.25) * ease((0.7 * d - t) / 0.25)
    w = {"eyeBlinkLeft": closed, "eyeSquintLeft": 0.4 * e, "cheekSquintLeft": 0.4 * e,
         "mouthSmileLeft": 0.6 * e, "mouthSmileRight": 0.25 * e}
    return w, (0.0, 0.0, 4.0 * e)


def _angry(t, d):
    e = envelope(t, d, 0.6)
    w = {"browDownLeft": e, "browDownRight": e, "eyeSquintLeft": 0.6 * e, "eyeSquintRight": 0.6 * e,
         "noseSneerLeft": 0.5 * e, "noseSneerRight": 0.5 * e, "mouthPressLeft": 0.6 * e, "mouthPressRight": 0.6 * e,
         "mouthFrownLeft": 0.4 * e, "mouthFrownRight": 0.4 * e, "jawForward": 0.2 * e}
    return w, (0.0, 4.0 * e, 0.0)


def _sad(t, d):
    e = envelope(t, d, 0.8)
    w = {"browInnerUp": 0.8 * e, "mouthFrownLeft": 0.8 * e, "mouthFrownRight": 0.8 * e,
         "mouthShrugLower": 0.4 * e, "eyeLookDownLeft": 0.3 * e, "eyeLookDownRight": 0.3 * e}
    return w, (0.0, 6.0 * e, 0.0)


def _kiss(t, d):
    e = envelope(t, d, 0.6)
    w = {"mouthPucker": 0.95 * e, "mouthFunnel": 0.3 * e, "cheekSquintLeft": 0.2 * e, "cheekSquintRight": 0.2 * e,
         "eyeBlinkLeft": 0.5 * e, "eyeBlinkRight": 0.5 * e}
    return w, (0.0, -3.0 * e, 5.0 * e)


def _laugh(t, d):
    e = envelope(t, d, 0.5)
    shake = 0.5 - 0.5 * math.cos(2 * math.pi * 3.0 * t)
    w = {"mouthSmileLeft": e, "mouthSmileRight": e, "jawOpen": e * (0.35 + 0.25 * shake),
         "cheekSquintLeft": 0.7 * e, "cheekSquintRight": 0.7 * e, "eyeSquintLeft": 0.6 * e,
         "eyeSquintRight": 0.6 * e, "mouthUpperUpLeft": 0.3 * e, "mouthUpperUpRight": 0.3 * e}
    return w, (0.0, -e * (6.0 + 2.0 * shake), 0.0)


def _glance(t, d):
    x = t / d
    left, right, up = pulse(x, 0.05, 0.3), pulse(x, 0.35, 0.3), pulse(x, 0.65, 0.3)
    w = {"eyeLookOutLeft": 0.8 * left, "eyeLookInRight": 0.8 * left, "eyeLookInLeft": 0.8 * right,
         "eyeLookOutRight": 0.8 * right, "eyeLookUpLeft": 0.7 * up, "eyeLookUpRight": 0.7 * up,
         "browInnerUp": 0.3 * up}
    return w, (12.0 * (left - right), -6.0 * up, 0.0)


_CURVES: dict[str, Callable[[float, float], tuple[dict[str, float], tuple[float, float, float]]]] = {
    "smile": _smile, "talk": _talk, "surprise": _surprise, "blink": _blink, "turn": _turn, "nod": _nod,
    "wink": _wink, "angry": _angry, "sad": _sad, "kiss": _kiss, "laugh": _laugh, "glance": _glance,
}


def preset_clip(name: str, fps: float = 24, seconds: float = 4) -> Clip:
    """The clip of preset ``name``: ``round(fps * seconds)`` frames spanning the preset from its first to its
    last pose. Unknown names raise ``ValueError`` listing the valid ones."""
    key = name.strip().lower()
    if key not in _CURVES:
        raise ValueError(f"Unknown expression preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    if fps <= 0 or seconds <= 0:
        raise ValueError(f"A preset clip needs fps > 0 and seconds > 0, got fps={fps}, seconds={seconds}.")
    n = max(1, round(fps * seconds))
    frames = []
    for i in range(n):
        weights, rotation_deg = _CURVES[key](seconds * i / max(n - 1, 1), seconds)
        frames.append(Expression.from_dict({k: min(max(v, 0.0), 1.0) for k, v in weights.items()}, rotation_deg))
    return Clip(frames, float(fps))
