"""Complete (DESIGN.md §5): partial UV maps -> complete texture and geometry.

The stage's two implementations, as ``fica.stages`` builds them: ``load_embedded`` (offline, CPU) and ``load_learned``
(weights in a folder that ``fica.hub`` found). An implementation's module is imported only when it is built, so
importing this package loads neither MediaPipe nor diffusers.
"""
from __future__ import annotations

from pathlib import Path

import torch


def load_embedded(*, uv_resolution: int = 256):
    """``EmbeddedCompleter``: mirror + harmonic fill. ``uv_resolution`` is the unwrapper's; this stage follows its input
    maps."""
    from fica.complete.embedded import EmbeddedCompleter

    return EmbeddedCompleter()


def load_learned(folder: Path, *, source: str, uv_resolution: int = 256, device: str | torch.device = "cpu"):
    """``LearnedCompleter``: UV latent diffusion (UVDiT + VAE + CLIP), loaded from ``folder`` (``source`` names it in
    messages and reports)."""
    from fica.complete.learned import LearnedCompleter

    return LearnedCompleter.from_pretrained(folder, source=source, uv_resolution=uv_resolution, device=device)
