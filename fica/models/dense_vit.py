"""Dense predictor: a Sapiens-style ViT (patch 16, 1024×768 input, 0.3b dims by default) with a convolutional
head for per-pixel uv (2), xyz (3), normal (3) and mask (1) — the DenseMaps contract (fica/unwrap/base.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DenseViT(ModelMixin, ConfigMixin):
    """ViT backbone + dense head. The backbone has Sapiens' layout (``fica.models.sapiens`` loads its checkpoints).

    ``forward(image [B, 3, H, W] sRGB 0..1)`` at ``(image_height, image_width)`` returns raw maps
    ``[B, 9, H, W]``; ``activate`` applies the activations; ``features`` gives the backbone tokens ``[B, N, D]``.
    xyz is predicted in units of ``xyz_scale_m`` metres.
    """

    @register_to_config
    def __init__(self, image_height: int = 1024, image_width: int = 768, patch_size: int = 16,
                 hidden_size: int = 1024, num_layers: int = 24, num_heads: int = 16, mlp_ratio: float = 4.0,
                 head_channels: tuple[int, ...] = (256, 128, 64, 32), xyz_scale_m: float = 0.2,
                 layer_norm_eps: float = 1e-6):
        super().__init__()
        if image_height % patch_size or image_width % patch_size:
            raise ValueError("image size must be a multiple of patch_size")
        self.grid = (image_height // patch_size, image_width // patch_size)
        self.patch_embed = nn.Conv2d(3, hidden_size, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.randn(1, self.grid[0] * self.grid[1], hidden_size) * 0.02)
        layer = nn.TransformerEncoderLayer(hidden_size, num_heads, int(hidden_size * mlp_ratio), dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True,
                                           layer_norm_eps=layer_norm_eps)
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        head, c_in = [], hidden_size
        for c in head_channels:  # each stage doubles the resolution
            head += [nn.ConvTranspose2d(c_in, c, 2, stride=2), nn.GroupNorm(min(8, c), c), nn.SiLU(),
                     nn.Conv2d(c, c, 3, padding=1), nn.SiLU()]
            c_in = c
        head.append(nn.Conv2d(c_in, 9, 1))
        self.head = nn.Sequential(*head)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.config.image_height, self.config.image_width

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Backbone tokens ``[B, N, D]`` (N = H/patch_size · W/patch_size) of ``image [B, 3, H, W]`` 0..1 at the
        model's size."""
        x = self.patch_embed((image - self.mean) / self.std)  # [B, D, h, w]
        x = x.flatten(2).transpose(1, 2) + self.pos_embed
        return self.norm(self.blocks(x))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Raw dense maps ``[B, 9, H, W]``: uv logits (2), xyz / xyz_scale_m (3), normal (3), mask logit (1)."""
        tokens = self.features(image)
        b, n, d = tokens.shape
        x = tokens.transpose(1, 2).reshape(b, d, *self.grid)
        x = self.head(x)
        return F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)

    def activate(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw maps ``[B, 9, H, W]`` -> uv ``[B, 2, H, W]`` 0..1, xyz metres, unit normal, mask 0..1."""
        return {"uv": raw[:, 0:2].sigmoid(), "xyz": raw[:, 2:5] * self.config.xyz_scale_m,
                "normal": F.normalize(raw[:, 5:8], dim=1, eps=1e-6), "mask": raw[:, 8:9].sigmoid()}
