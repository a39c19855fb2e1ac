"""GaussianSet: the avatar's 3D Gaussians at one expression (DESIGN.md §3)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class GaussianSet:
    means: torch.Tensor  # [N, 3] head frame, metres
    quats: torch.Tensor  # [N, 4] (w, x, y, z), unit
    scales: torch.Tensor  # [N, 3] linear, metres
    opacities: torch.Tensor  # [N] 0..1
    colors: torch.Tensor  # [N, 3] sRGB 0..1

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def to(self, device) -> "GaussianSet":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def concat(sets: list["GaussianSet"]) -> "GaussianSet":
        return GaussianSet(**{f.name: torch.cat([getattr(s, f.name) for s in sets]) for f in fields(GaussianSet)})
