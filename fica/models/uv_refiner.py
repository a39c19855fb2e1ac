"""UV refiner: a diffusers ``UNet2DConditionModel`` run feed-forward (timestep 0) on the completed and partial
maps, with cross-attention to ViT tokens of the input photo and of the mesh rendered with the completed
texture. It predicts residuals: texture (sRGB) and geometry (in units of ``geometry_residual_m``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

# texture 3 + geometry 3 (/ geometry_scale_m) + partial rgb 3, visibility 1, normal 3, xyz 3 (scaled) + valid 1
MAP_CHANNELS = 17


class UVRefiner(ModelMixin, ConfigMixin):
    """``forward(maps [B, 17, R, R], photo_tokens [B, N, D], render_tokens [B, M, D]) -> residual [B, 6, R, R]``.

    ``resolution`` is the UV resolution it is trained at (the stage resamples to it). The output convolution starts
    at zero, so an untrained refiner is the identity.
    """

    @register_to_config
    def __init__(self, resolution: int = 512, feature_dim: int = 1024,
                 block_out_channels: tuple[int, ...] = (64, 128, 256, 256), layers_per_block: int = 2,
                 attention_head_dim: int = 8, norm_num_groups: int = 32, geometry_scale_m: float = 0.2,
                 geometry_residual_m: float = 0.01):
        super().__init__()
        n = len(block_out_channels)
        self.unet = UNet2DConditionModel(
            in_channels=MAP_CHANNELS, out_channels=6, block_out_channels=tuple(block_out_channels),
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
            layers_per_block=layers_per_block, cross_attention_dim=feature_dim,
            attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups)
        self.source_embed = nn.Parameter(torch.zeros(2, feature_dim))  # tells photo tokens from render tokens
        nn.init.zeros_(self.unet.conv_out.weight)
        nn.init.zeros_(self.unet.conv_out.bias)

    def forward(self, maps: torch.Tensor, photo_tokens: torch.Tensor, render_tokens: torch.Tensor) -> torch.Tensor:
        context = torch.cat([photo_tokens + self.source_embed[0], render_tokens + self.source_embed[1]], 1)
        t = torch.zeros(maps.shape[0], device=maps.device)
        return self.unet(maps, t, encoder_hidden_states=context).sample
