"""The unwrap stage's contract: a portrait in, partial UV maps and the fitted head out (DESIGN.md §5)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fica.drive.expression import Expression
from fica.maps import PartialUV
from fica.render.camera import Camera


@dataclass
class DenseMaps:
    """Per-pixel predictions for the portrait (the contract the paper's fine-tuned Sapiens produces)."""

    uv: torch.Tensor  # [H, W, 2] chart coordinates 0..1 (u right, v down)
    xyz: torch.Tensor  # [H, W, 3] head frame, metres (neutral-expression surface point seen at the pixel)
    normal: torch.Tensor  # [H, W, 3] head frame, unit
    mask: torch.Tensor  # [H, W] 0..1, pixels on the head surface


@dataclass
class Unwrapped:
    """Everything the later stages need from the portrait.

    camera: maps the head frame to the portrait's pixels (head pose included), portrait-sized.
    expression: the expression seen in the portrait (weights only; the pose lives in ``camera``).
    fitted_geometry: ``[3, R, R]`` the fitted head's geometry map at neutral expression.
    landmarks: ``[478, 3]`` MediaPipe landmarks in pixels (x, y) and relative depth, or None.
    person_mask: ``[H, W]`` 0..1, the person (selfie segmentation), or None.
    hair_mask: ``[H, W]`` 0/1, the hair (and headwear) in the portrait, all zero for a bald head, or None.
    """

    partial: PartialUV
    dense: DenseMaps
    camera: Camera
    expression: Expression
    fitted_geometry: torch.Tensor
    landmarks: torch.Tensor | None = None
    person_mask: torch.Tensor | None = None
    hair_mask: torch.Tensor | None = None


class Unwrapper:
    """Stage 1. ``__call__(image [H, W, 3] float 0..1) -> Unwrapped``."""

    implementation: str = "unset"

    def __call__(self, image: torch.Tensor) -> Unwrapped:
        raise NotImplementedError
