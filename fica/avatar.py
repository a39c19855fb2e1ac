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
from fica.render.dispatch import BackendChoice, choose_backend, render
from fica.rig import build_rig, save_rig


class Avatar:
    """A drivable Gaussian head whose Gaussians live on ``device`` (the pipeline's).

    fitted_camera: the portrait's camera (head pose included); fitted_expression: the portrait's expression.
    """

    def __init__(self, prior: Prior, identity: Any, fitted_camera: Camera, fitted_expression: Expression,
                 device: str | torch.device = "cpu"):
        self.prior = prior
        self.identity = identity
        self.fitted_camera = fitted_camera
        self.fitted_expression = fitted_expression
        self.device = torch.device(device)

    def gaussians(self, expression: Expression | None = None, camera: Camera | None = None) -> GaussianSet:
        """The Gaussians at ``expression`` (default: neutral), on ``device``."""
        return self.prior.decode(self.identity, expression or Expression.neutral(), camera).to(self.device)

    def render_backend(self, purpose: str = "still") -> BackendChoice:
        """The renderer ``render`` ("still") and ``animate`` ("video") use on this avatar's device."""
        return choose_backend(self.device, purpose)

    def render(self, camera: Camera | None = None, expression: Expression | None = None,
               background=(1.0, 1.0, 1.0), backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Render at ``camera`` (default: frontal 512²) -> rgb ``[H, W, 3]``, alpha ``[H, W]`` on ``device``.
        ``backend``: a name from ``fica.render.dispatch.BACKENDS``; default ``render_backend("still")``."""
        camera = camera or orbit_camera()
        backend = backend or self.render_backend("still").name
        return render(self.gaussians(expression, camera), camera, background=background, backend=backend)

    def render_portrait_view(self, background=(1.0, 1.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
        """Render as the portrait saw the head: fitted camera and fitted expression."""
        return self.render(self.fitted_camera, self.fitted_expression, background)

    def animate(self, clip: Clip, camera: Camera | None = None, background=(1.0, 1.0, 1.0),
                backend: str | None = None) -> Iterator[np.ndarray]:
        """Frames ``[H, W, 3]`` uint8 (host memory) of ``clip`` seen from ``camera`` (default: frontal 512²).

        backend: a name from ``fica.render.dispatch.BACKENDS``; default ``render_backend("video")`` (surface
        splatting on a CPU, gsplat or the torch compositor on CUDA).
        """
        camera = camera or orbit_camera()
        backend = backend or self.render_backend("video").name
        for expression in clip.frames:
            rgb, _ = render(self.gaussians(expression, camera), camera, background=background, backend=backend)
            yield (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

    def save_ply(self, path: str | Path, expression: Expression | None = None) -> Path:
        from fica.io.splat_files import save_ply

        return save_ply(self.gaussians(expression), path)

    def save_splat(self, path: str | Path, expression: Expression | None = None) -> Path:
        from fica.io.splat_files import save_splat

        return save_splat(self.gaussians(expression), path)

    def save_rig(self, path: str | Path) -> Path:
        """Write the drivable ``avatar_rig.zip`` (fica-rig v1, see ``fica.rig``): neutral Gaussians, ARKit
        position deltas and head-rotation weights, for the live viewer, numpy or any WebGL page."""
        return save_rig(build_rig(self), path)
