"""Learned refinement stage (DESIGN.md §5 Refine): a UNet predicting residual corrections of the completed maps,
with cross-attention to ViT features (the dense predictor's backbone, as the paper uses Sapiens') of the input
photo and of the mesh rendered with the completed texture.

The "rendered mesh" is the completed texture seen through the portrait's dense uv map: the fitted surface as the
portrait's camera sees it, textured with the completion.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fica.maps import CompleteUV
from fica.models import QUIET_LOAD
from fica.models.inputs import letterbox, resample_partial
from fica.refine.base import Refiner
from fica.unwrap.base import Unwrapped
from fica.uv_ops import resample

COMPONENT = "uv_refiner"
BACKBONE = "dense_predictor"


def render_through_uv(texture: torch.Tensor, uv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Texture ``[B, 3, R, R]`` looked up at per-pixel chart coordinates ``uv [B, H, W, 2]`` -> ``[B, 3, H, W]``,
    zero where ``mask [B, H, W]`` is off. Differentiable in ``texture``."""
    out = F.grid_sample(texture, uv * 2 - 1, mode="bilinear", padding_mode="border", align_corners=False)
    return out * mask[:, None]


def refiner_inputs(texture: torch.Tensor, geometry: torch.Tensor, partial: dict[str, torch.Tensor],
                   valid: torch.Tensor, geometry_scale_m: float) -> torch.Tensor:
    """UNet input ``[B, 17, R, R]`` from complete maps ``[B, 3, R, R]``, batched partial maps and ``valid``."""
    return torch.cat([texture * 2 - 1, geometry / geometry_scale_m, partial["rgb"] * 2 - 1, partial["visibility"],
                      partial["normal"], partial["xyz"] / geometry_scale_m, valid], 1)


def image_tokens(backbone, images: torch.Tensor) -> torch.Tensor:
    """ViT tokens ``[B, N, D]`` of images ``[B, 3, H, W]`` 0..1, letterboxed to the backbone's input size."""
    return backbone.features(torch.cat([letterbox(im, backbone.image_size)[0] for im in images]))


def apply_residual(texture: torch.Tensor, geometry: torch.Tensor, residual: torch.Tensor, valid: torch.Tensor,
                   geometry_residual_m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Refined texture and geometry ``[B, 3, R, R]`` from the UNet's residual ``[B, 6, R, R]``."""
    return ((texture + residual[:, :3]).clamp(0, 1) * valid,
            (geometry + residual[:, 3:] * geometry_residual_m) * valid)


class LearnedRefiner(Refiner):
    def __init__(self, model, backbone, *, implementation: str = "learned", device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.backbone = backbone.to(self.device).eval()
        self.implementation = implementation

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, source: str, uv_resolution: int = 256,
                        device: str | torch.device = "cpu") -> "LearnedRefiner":
        from fica.models.dense_vit import DenseViT
        from fica.models.uv_refiner import UVRefiner

        folder = Path(folder)
        return cls(UVRefiner.from_pretrained(folder / COMPONENT, **QUIET_LOAD),
                   DenseViT.from_pretrained(folder / BACKBONE, **QUIET_LOAD),
                   implementation=f"learned: {source}/{COMPONENT}", device=device)

    @torch.no_grad()
    def __call__(self, complete: CompleteUV, unwrapped: Unwrapped, image: torch.Tensor) -> CompleteUV:

        cfg = self.model.config
        S, R = cfg.resolution, complete.resolution
        maps = complete.to(self.device)
        partial = resample_partial(unwrapped.partial.to(self.device), S)
        x = refiner_inputs(resample(maps.texture, S)[None], resample(maps.geometry, S)[None], partial, partial["valid"],
                           cfg.geometry_scale_m)
        photo = image.to(self.device).permute(2, 0, 1)[None].float()
        dense = unwrapped.dense
        rendered = render_through_uv(maps.texture[None], dense.uv[None].to(self.device),
                                     (dense.mask[None] > 0.5).float().to(self.device))
        residual = self.model(x, image_tokens(self.backbone, photo), image_tokens(self.backbone, rendered))
        residual = resample(residual[0], R)[None]
        texture, geometry = apply_residual(maps.texture[None], maps.geometry[None], residual, maps.valid[None],
                                           cfg.geometry_residual_m)
        return CompleteUV(texture=texture[0], geometry=geometry[0], valid=maps.valid, hair=maps.hair)
