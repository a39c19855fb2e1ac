"""Unwrap (DESIGN.md §5): portrait -> landmarks and head fit, or a dense predictor -> partial UV maps.

The stage's two implementations, as ``fica.stages`` builds them: ``load_embedded`` (offline, CPU) and ``load_learned``
(weights in a folder that ``fica.hub`` found). An implementation's module is imported only when it is built, so
importing this package loads neither MediaPipe nor diffusers.
"""
from __future__ import annotations

from pathlib import Path

import torch


def load_embedded(*, uv_resolution: int = 256):
    """``EmbeddedUnwrapper``: MediaPipe face mesh + MakeHuman head fit."""
    from fica.unwrap.embedded import EmbeddedUnwrapper

    return EmbeddedUnwrapper(uv_resolution=uv_resolution)


def load_learned(folder: Path, *, source: str, uv_resolution: int = 256, device: str | torch.device = "cpu"):
    """``LearnedUnwrapper``: the DenseViT dense predictor, loaded from ``folder`` (``source`` names it in messages and
    reports)."""
    from fica.unwrap.learned import LearnedUnwrapper

    return LearnedUnwrapper.from_pretrained(folder, source=source, uv_resolution=uv_resolution, device=device)
