"""Expression: 52 ARKit blendshape weights + head rotation (+ optional gaze), and clips of them (DESIGN.md §3)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# ARKit blendshape names in the order Apple's ARFaceAnchor / Live Link Face CSVs list them.
# "Left"/"Right" are the subject's own left and right.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
ARKIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_NAMES)}
NUM_BLENDSHAPES = len(ARKIT_NAMES)


@dataclass
class Expression:
    """One frame of facial expression and head pose.

    weights: ``[52]`` in ARKIT_NAMES order, each 0..1.
    rotation_deg: ``[3]`` head (yaw, pitch, roll) in degrees, as ``fica.rotations.rotation_ypr``.
    gaze: ``[2]`` optional (yaw, pitch) of both eyes in degrees, or None to follow the blendshapes.
    """

    weights: torch.Tensor = field(default_factory=lambda: torch.zeros(NUM_BLENDSHAPES))
    rotation_deg: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    gaze: torch.Tensor | None = None

    def __post_init__(self):
        self.weights = torch.as_tensor(self.weights, dtype=torch.float32).clamp(0, 1)
        self.rotation_deg = torch.as_tensor(self.rotation_deg, dtype=torch.float32)
        if self.weights.shape != (NUM_BLENDSHAPES,):
            raise ValueError(f"Expression weights must have shape [{NUM_BLENDSHAPES}], got {list(self.weights.shape)}")
        if self.gaze is not None:
            self.gaze = torch.as_tensor(self.gaze, dtype=torch.float32)

    @classmethod
    def neutral(cls) -> "Expression":
        return cls()

    @classmethod
    def from_dict(cls, weights: dict[str, float], rotation_deg=(0.0, 0.0, 0.0), gaze=None) -> "Expression":
        """Build from ``{"jawOpen": 1.0, ...}``; unknown names raise ``ValueError`` naming them."""
        unknown = sorted(set(weights) - set(ARKIT_INDEX))
        if unknown:
            raise ValueError(f"Unknown ARKit blendshape name(s): {', '.join(unknown)}")
        w = torch.zeros(NUM_BLENDSHAPES)
        for name, value in weights.items():
            w[ARKIT_INDEX[name]] = float(value)
        return cls(w, torch.tensor(rotation_deg, dtype=torch.float32), gaze)

    def as_dict(self) -> dict[str, float]:
        """Non-zero blendshape weights by name."""
        return {n: round(float(v), 4) for n, v in zip(ARKIT_NAMES, self.weights) if float(v) > 0}

    def __getitem__(self, name: str) -> float:
        return float(self.weights[ARKIT_INDEX[name]])


@dataclass
class Clip:
    """A sequence of expressions played at ``fps`` frames per second."""

    frames: list[Expression]
    fps: float = 24.0

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps
