"""The unwrap stage's contract: a portrait in, partial UV maps and the fitted head out (DESIGN.md §5)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

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

    def to(self, device) -> "DenseMaps":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


@dataclass
class Unwrapped:
    """Everything the later stages need from the portrait.

    camera: maps the head frame to the portrait's pixels (head pose included), portrait-sized.
    expression: the expression seen in the portrait (weights only; the pose lives in ``camera``).
    fitted_geometry: ``[3, R, R]`` the fitted head's geometry map at neutral expression.
    landmarks: ``[478, 3]`` MediaPipe landmarks in pixels (x, y) and relative depth, or None.
    person_mask: ``[H, W]`` 0..1, the person (selfie segmentation), or None.
    hair_mask: ``[H, W]`` 0/1, the hair (and headwear) in the portrait, all zero for a bald head, or None.
    headwear_mask: ``[H, W]`` 0/1, the part of ``hair_mask`` that is a hat or a cap (all zero without one), or None.
    hair_colour_mask: ``[H, W]`` 0/1, the pixels that show the hair's own colour (``hair_colour_mask``), or None.
    face_note: a sentence for the user when the image held several faces and one was chosen, else ''.
    """

    partial: PartialUV
    dense: DenseMaps
    camera: Camera
    expression: Expression
    fitted_geometry: torch.Tensor
    landmarks: torch.Tensor | None = None
    person_mask: torch.Tensor | None = None
    hair_mask: torch.Tensor | None = None
    headwear_mask: torch.Tensor | None = None
    hair_colour_mask: torch.Tensor | None = None
    face_note: str = ""

    def to(self, device) -> "Unwrapped":
        """Every map, mask, the camera and the landmarks on ``device`` (the expression is a driving parameter: it
        stays where it is, and each prior moves its weights)."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if f.name != "expression" and hasattr(getattr(self, f.name), "to")}
        return replace(self, **moved)


class Unwrapper:
    """Stage 1. ``__call__(image [H, W, 3] float 0..1) -> Unwrapped``.

    ``device``: where the stage computes and what its results live on; ``FiCAPipeline`` hands it the portrait
    there and moves its results to the pipeline's device.
    """

    implementation: str = "unset"
    device: torch.device = torch.device("cpu")

    def __call__(self, image: torch.Tensor) -> Unwrapped:
        raise NotImplementedError
