"""Avatar: one person's encoded prior, rendered and driven at any camera and expression."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from fica.drive.expression import Clip, Expression
from fica.prior.base import Prior
from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera, orbit_camera


class Avatar:
    """A drivable Gaussian head.

    fitted_camera: the portrait's camera (head pose included); fitted_expression: the portrait's expression.
    """

    def __init__(self, prior: Prior, identity: Any, fitted_camera: Camera, fitted_expression: Expression):
        self.prior = prior
        self.identity = identity
        self.fitted_camera = fitted_camera
        self.fitted_expression = fitted_expression

    def gaussians(self, expression: Expression | None = None, camera: Camera | None = None) -> GaussianSet:
        """The Gaussians at ``expression`` (default: neutral)."""
        return self.prior.decode(self.identity, expression or Expression.neutral(), camera)

    def render(self, camera: Camera | None = None, expression: Expression | None = None,
               background=(1.0, 1.0, 1.0), backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """Render at ``camera`` (default: frontal 512²) -> rgb ``[H, W, 3]``, alpha ``[H, W]``.
        ``backend`` as in ``fica.render.rasterize.render``."""
        from fica.render.rasterize import render

        camera = camera or orbit_camera()
        return render(self.gaussians(expression, camera), camera, background=background, backend=backend)

    def render_portrait_view(self, background=(1.0, 1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
        """Render as the portrait saw the head: fitted camera and fitted expression."""
        return self.render(self.fitted_camera, self.fitted_expression, background)

    def animate(self, clip: Clip, camera: Camera | None = None, background=(1.0, 1.0, 1.0),
                backend: str | None = None) -> Iterator[np.ndarray]:
        """Frames ``[H, W, 3]`` uint8 of ``clip`` seen from ``camera`` (default: frontal 512²).

        backend: as in ``fica.render.rasterize.render``; default "surface" (fast surface splatting) on a CPU,
        "auto" (gsplat) on CUDA.
        """
        from fica.render.rasterize import render

        camera = camera or orbit_camera()
        for expression in clip.frames:
            gaussians = self.gaussians(expression, camera)
            chosen = backend or ("auto" if gaussians.means.is_cuda else "surface")
            rgb, _ = render(gaussians, camera, background=background, backend=chosen)
            yield (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

    def save_ply(self, path: str | Path, expression: Expression | None = None) -> Path:
        from fica.io.splat_files import save_ply

        return save_ply(self.gaussians(expression), path)

    def save_splat(self, path: str | Path, expression: Expression | None = None) -> Path:
        from fica.io.splat_files import save_splat

        return save_splat(self.gaussians(expression), path)
