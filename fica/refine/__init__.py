"""Refine (DESIGN.md §5): complete UV maps + image conditions -> refined UV maps.

The stage's two implementations, as ``fica.stages`` builds them: ``load_embedded`` (offline, CPU) and ``load_learned``
(weights in a folder that ``fica.hub`` found). An implementation's module is imported only when it is built, so
importing this package loads neither MediaPipe nor diffusers.
"""
from __future__ import annotations

from pathlib import Path

import torch


def load_embedded(*, uv_resolution: int = 256):
    """``EmbeddedRefiner``: shading re-bake + seam blend. ``uv_resolution`` is the unwrapper's; this stage follows its
    input maps."""
    from fica.refine.embedded import EmbeddedRefiner

    return EmbeddedRefiner()


def load_learned(folder: Path, *, source: str, uv_resolution: int = 256, device: str | torch.device = "cpu"):
    """``LearnedRefiner``: the UVRefiner UNet with image features, loaded from ``folder`` (``source`` names it in
    messages and reports)."""
    from fica.refine.learned import LearnedRefiner

    return LearnedRefiner.from_pretrained(folder, source=source, uv_resolution=uv_resolution, device=device)
