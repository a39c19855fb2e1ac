"""Universal prior: a Gaussian Codec Avatar decoder that decodes expression, view and gaze itself.

- An expression encoder maps the expression (52 ARKit weights + head rotation) to a latent code ``z``.
- A CNN hypernetwork turns the identity's texture and geometry maps into identity bias maps, one per decoder
  level and decoder (the codec avatars' untied biases), so one network decodes any identity.
- A geometry decoder turns ``(z, gaze)`` into per-texel position offset δx, rotation, log-scale and opacity;
  an appearance decoder turns ``(z, view direction, gaze)`` into the colour offset δc (view-dependent shading
  lives only in colour, as in Gaussian Codec Avatars). Each upsamples from a small grid to the chart resolution
  and adds its identity bias map after every convolution.

Everything that moves is decoded: the head's own expression and its rotation are in ``z``; δx is measured from
the identity's neutral surface (``fica.prior.learned`` places the Gaussians).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from fica.drive.expression import NUM_BLENDSHAPES

# Output channels per texel, in order: the geometry decoder's, then the appearance decoder's.
GEOMETRY_SPLITS = {"offset": 3, "rotation": 4, "scale": 3, "opacity": 1}
APPEARANCE_SPLITS = {"color": 3}
PARAM_SPLITS = {**GEOMETRY_SPLITS, **APPEARANCE_SPLITS}
EXPRESSION_DIM = NUM_BLENDSHAPES + 3  # ARKit weights, head rotation (yaw, pitch, roll) / 90°
VIEW_DIM, GAZE_DIM = 3, 2
MAP_CHANNELS = 7  # texture 3, geometry 3, valid 1


class UVDecoder(nn.Module):
    """``(code [B, code_dim], biases list of [B, C_k, r_k, r_k]) -> maps [B, out_channels, R, R]``: an MLP to a
    ``base × base`` grid, then one stride-2 transposed convolution per level, each followed by its bias map."""

    def __init__(self, code_dim: int, channels: tuple[int, ...], base: int, out_channels: int):
        super().__init__()
        self.base = base
        self.code_mlp = nn.Sequential(nn.Linear(code_dim, 256), nn.LeakyReLU(0.2),
                                      nn.Linear(256, channels[0] * base * base))
        self.levels = nn.ModuleList(nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1)
                                    for c_in, c in zip((channels[0], *channels[:-1]), channels))
        self.out = nn.Conv2d(channels[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # an untrained decoder leaves the neutral surface as it is
        nn.init.zeros_(self.out.bias)

    def forward(self, code: torch.Tensor, biases: list[torch.Tensor]) -> torch.Tensor:
        x = self.code_mlp(code).view(code.shape[0], -1, self.base, self.base)
        for level, bias in zip(self.levels, biases):
            x = F.leaky_relu(level(x) + bias, 0.2)
        return self.out(x)


class CodecPrior(ModelMixin, ConfigMixin):
    """``encode(maps [B, 7, R, R]) -> (geometry biases, appearance biases)`` (lists, coarse to fine);
    ``encode_expression(expression [B, 55]) -> z [B, latent_dim]``;
    ``decode(biases, z, view [B, 3], gaze [B, 2]) -> params [B, 14, R, R]`` (raw, channels as PARAM_SPLITS);
    ``forward(maps, expression, view, gaze)`` does all three.

    maps: texture (2·rgb − 1), geometry / geometry_scale_m, valid; expression: ARKit weights, rotation / 90°;
    view: unit direction toward the camera in the head's frame; gaze: (yaw, pitch) / 90°.
    The offset channels are in units of ``offset_scale_m``.
    """

    @register_to_config
    def __init__(self, resolution: int = 256, channels: tuple[int, ...] = (256, 128, 64, 32, 32),
                 latent_dim: int = 128, geometry_scale_m: float = 0.2, offset_scale_m: float = 0.05):
        super().__init__()
        levels = len(channels)
        if resolution % 2 ** levels:
            raise ValueError("resolution must be divisible by 2 ** len(channels)")
        base = resolution // 2 ** levels
        fine_to_coarse = list(reversed(channels))
        enc, c_in = [], MAP_CHANNELS
        for i, c in enumerate(fine_to_coarse):  # level i runs at resolution / 2 ** i
            down = nn.Conv2d(c_in, c, 3, padding=1) if i == 0 else nn.Conv2d(c_in, c, 4, stride=2, padding=1)
            enc.append(nn.Sequential(down, nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2)))
            c_in = c
        self.hypernetwork = nn.ModuleList(enc)
        # decoder level k (coarse to fine) runs at resolution / 2 ** (levels - k - 1), the hypernetwork's level
        # levels - 1 - k
        bias_heads = lambda: nn.ModuleList(nn.Conv2d(fine_to_coarse[levels - 1 - k], channels[k], 3, padding=1)  # noqa: E731
                                           for k in range(levels))
        self.geometry_bias_heads, self.appearance_bias_heads = bias_heads(), bias_heads()
        self.expression_encoder = nn.Sequential(nn.Linear(EXPRESSION_DIM, 256), nn.LeakyReLU(0.2),
                                                nn.Linear(256, 256), nn.LeakyReLU(0.2), nn.Linear(256, latent_dim))
        self.geometry_decoder = UVDecoder(latent_dim + GAZE_DIM, channels, base, sum(GEOMETRY_SPLITS.values()))
        self.appearance_decoder = UVDecoder(latent_dim + VIEW_DIM + GAZE_DIM, channels, base,
                                            sum(APPEARANCE_SPLITS.values()))

    def encode(self, maps: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats, x = [], maps
        for layer in self.hypernetwork:
            x = layer(x)
            feats.append(x)
        coarse_first = feats[::-1]
        return ([head(f) for head, f in zip(self.geometry_bias_heads, coarse_first)],
                [head(f) for head, f in zip(self.appearance_bias_heads, coarse_first)])

    def encode_expression(self, expression: torch.Tensor) -> torch.Tensor:
        return self.expression_encoder(expression)

    def decode(self, biases: tuple[list[torch.Tensor], list[torch.Tensor]], z: torch.Tensor, view: torch.Tensor,
               gaze: torch.Tensor) -> torch.Tensor:
        geometry_biases, appearance_biases = biases
        geometry = self.geometry_decoder(torch.cat([z, gaze], 1), geometry_biases)
        appearance = self.appearance_decoder(torch.cat([z, view, gaze], 1), appearance_biases)
        return torch.cat([geometry, appearance], 1)

    def forward(self, maps: torch.Tensor, expression: torch.Tensor, view: torch.Tensor,
                gaze: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(maps), self.encode_expression(expression), view, gaze)
