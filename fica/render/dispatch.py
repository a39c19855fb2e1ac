"""The one place that decides which renderer draws the splats (DESIGN.md §5 Render).

Three renderers share one functional signature (plain tensors in, rgb ``[H, W, 3]`` and alpha ``[H, W]`` out):

- "gsplat": ``gsplat.rasterization`` (``fica.render.gsplat_cuda``), CUDA only, when its extension loads;
- "torch": the project's exact compositor (``fica.render.rasterize``), gsplat's maths in pure torch, any device;
- "surface": surface splatting (``fica.render.surface``), approximate (about 32-33 dB from "torch" on
  the astronaut with its hair) and several times faster on a CPU; what videos use there.

``choose_backend(device, purpose)`` picks from the device the Gaussians live on and an availability check, never
from where some tensor happens to be: on CUDA gsplat when its extension loads, else the torch compositor on CUDA
(logged once, with the reason); on a CPU the compositor for stills and surface splatting for videos.
``render`` draws with the chosen one (or the one asked for) and says which.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera
from fica.render.gsplat_cuda import gsplat_status, rasterize_gsplat
from fica.render.rasterize import rasterize_torch
from fica.render.surface import rasterize_surface

log = logging.getLogger(__name__)
BACKENDS = {"gsplat": rasterize_gsplat, "torch": rasterize_torch, "surface": rasterize_surface}
PURPOSES = ("still", "video")
_logged: set[str] = set()


@dataclass(frozen=True)
class BackendChoice:
    name: str  # a key of BACKENDS
    reason: str  # why, in a few words (shown in reports)

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def choose_backend(device: str | torch.device, purpose: str = "still") -> BackendChoice:
    """The renderer for Gaussians on ``device``: "still" (views, exact) or "video" (many frames)."""
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown render purpose {purpose!r}; use 'still' or 'video'.")
    device = torch.device(device)
    if device.type == "cuda":
        loads, why = gsplat_status(device)
        if loads:
            return BackendChoice("gsplat", why)
        choice = BackendChoice("torch", f"torch compositor on CUDA: {why}")
        if choice.reason not in _logged:  # once per reason and process
            _logged.add(choice.reason)
            log.warning("Rendering with the %s", choice.reason)
        return choice
    if purpose == "video":
        return BackendChoice("surface", f"surface splatting on {device.type}: fast for videos")
    return BackendChoice("torch", f"exact compositor on {device.type}")


def render(gaussians: GaussianSet, camera: Camera, background=(1.0, 1.0, 1.0), backend: str = "auto",
           purpose: str = "still") -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``gaussians`` seen by ``camera`` over ``background``. Returns rgb ``[H, W, 3]``, alpha ``[H, W]``
    on the Gaussians' device.

    backend: "auto" (``choose_backend`` for the Gaussians' device and ``purpose``), or a key of ``BACKENDS``.
    """
    device = gaussians.means.device
    if backend == "auto":
        backend = choose_backend(device, purpose).name
    if backend not in BACKENDS:
        raise ValueError(f"Unknown render backend {backend!r}; use 'auto', {', '.join(map(repr, BACKENDS))}.")
    background = torch.as_tensor(background, dtype=torch.float32, device=device)
    return BACKENDS[backend](gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities,
                             gaussians.colors, camera.viewmat.to(device), camera.K.to(device), camera.width,
                             camera.height, background)
