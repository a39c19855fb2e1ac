"""The refinement stage's contract (DESIGN.md §5): complete maps + conditions -> refined maps."""
from __future__ import annotations

import torch

from fica.maps import CompleteUV
from fica.unwrap.base import Unwrapped


class Refiner:
    """Stage 3. ``__call__(complete, unwrapped, image [H, W, 3]) -> CompleteUV`` (same resolution)."""

    implementation: str = "unset"

    def __call__(self, complete: CompleteUV, unwrapped: Unwrapped, image: torch.Tensor) -> CompleteUV:
        raise NotImplementedError
