"""The completion stage's contract (DESIGN.md §5): partial maps -> complete texture and geometry."""
from __future__ import annotations

import torch

from fica.maps import CompleteUV
from fica.unwrap.base import Unwrapped


class Completer:
    """Stage 2. ``__call__(unwrapped, image [H, W, 3], generator) -> CompleteUV`` at the partial maps' resolution."""

    implementation: str = "unset"

    def __call__(self, unwrapped: Unwrapped, image: torch.Tensor,
                 generator: torch.Generator | None = None) -> CompleteUV:
        raise NotImplementedError
