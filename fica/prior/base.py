"""The prior stage's contract (DESIGN.md §5): texture + geometry + expression -> 3D Gaussians."""
from __future__ import annotations

from typing import Any

import torch

from fica.drive.expression import Expression
from fica.maps import CompleteUV
from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera
from fica.unwrap.base import Unwrapped


class Prior:
    """Stage 4, in two steps so driving is cheap.

    ``encode(refined) -> identity``: per-person work done once (an opaque object the same prior decodes).
    ``match_portrait(identity, portrait, unwrapped, refined) -> identity``: the identity made to reproduce the
    portrait at its own camera where the portrait showed the head (a prior whose decoder learnt that returns it
    as it is).
    ``decode(identity, expression, camera=None) -> GaussianSet``: one frame; ``camera`` lets a view-dependent
    decoder see the view direction.
    """

    implementation: str = "unset"

    def encode(self, refined: CompleteUV) -> Any:
        raise NotImplementedError

    def match_portrait(self, identity: Any, portrait: torch.Tensor, unwrapped: Unwrapped,
                       refined: CompleteUV) -> Any:
        return identity

    def decode(self, identity: Any, expression: Expression, camera: Camera | None = None) -> GaussianSet:
        raise NotImplementedError
