"""The prior stage's contract (DESIGN.md §5): texture + geometry + expression -> 3D Gaussians."""
from __future__ import annotations

from typing import Any

from fica.drive.expression import Expression
from fica.maps import CompleteUV
from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera


class Prior:
    """Stage 4, in two steps so driving is cheap.

    ``encode(refined) -> identity``: per-person work done once (an opaque object the same prior decodes).
    ``decode(identity, expression, camera=None) -> GaussianSet``: one frame; ``camera`` lets a view-dependent
    decoder see the view direction.
    """

    implementation: str = "unset"

    def encode(self, refined: CompleteUV) -> Any:
        raise NotImplementedError

    def decode(self, identity: Any, expression: Expression, camera: Camera | None = None) -> GaussianSet:
        raise NotImplementedError
