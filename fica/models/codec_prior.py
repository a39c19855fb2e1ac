"""Universal prior: a Gaussian Codec Avatar decoder.

A CNN hypernetwork turns the texture and geometry maps into identity bias maps, one per decoder level. The
decoder starts from the expression code (52 ARKit weights + 3 head rotation angles), the view direction and the
gaze, and upsamples to per-texel Gaussian parameter maps; at each level the identity bias map is added to the
convolution's output (the codec avatars' untied biases), so one network decodes any identity.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

# Output channels per texel: position offset 3, colour offset 3, rotation residual 4, log-scale 3, opacity logit 1.
PARAM_SPLITS = {"offset": 3, "color": 3, "rotation": 4, "scale": 3, "opacity": 1}
CODE_DIM = 52 + 3 + 3 + 2  # expression weights, head rotation, view direction, gaze


class CodecPrior(ModelMixin, ConfigMixin):
    """``encode(maps [B, 7, R, R]) -> identity bias maps`` (list, coarse to fine);
    ``decode(biases, code [B, 60]) -> params [B, 14, R, R]`` (raw, see PARAM_SPLITS).

    maps: texture (2·rgb − 1), geometry / geometry_scale_m, valid; code: ARKit weights, rotation / 90°,
    view direction (unit, head frame), gaze / 90°.
    """

    @register_to_config
    def __init__(self, resolution: int = 256, channels: tuple[int, ...] = (256, 128, 64, 32, 32),
                 geometry_scale_m: float = 0.2):
        super().__init__()
        levels = len(channels)
        if resolution % 2 ** levels:
            raise ValueError("resolution must be divisible by 2 ** len(channels)")
        self.base = resolution // 2 ** levels
        fine_to_coarse = list(reversed(channels))
        enc, c_in = [], 7
        for i, c in enumerate(fine_to_coarse):  # level i runs at resolution / 2 ** i
            down = nn.Conv2d(c_in, c, 3, padding=1) if i == 0 else nn.Conv2d(c_in, c, 4, stride=2, padding=1)
            enc.append(nn.Sequential(down, nn.LeakyReLU(0.2),
                                     nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2)))
            c_in = c
        self.encoder = nn.ModuleList(enc)
        # identity bias maps for the decoder: level k (coarse to fine) at resolution / 2 ** (levels - k - 1)
        self.bias_heads = nn.ModuleList([nn.Conv2d(fine_to_coarse[levels - 1 - k], channels[k], 3, padding=1)
                                         for k in range(levels)])
        self.code_mlp = nn.Sequential(nn.Linear(CODE_DIM, 256), nn.LeakyReLU(0.2),
                                      nn.Linear(256, channels[0] * self.base * self.base))
        dec, c_in = [], channels[0]
        for c in channels:
            dec.append(nn.ConvTranspose2d(c_in, c, 4, stride=2, padding=1))
            c_in = c
        self.decoder = nn.ModuleList(dec)
        self.out = nn.Conv2d(channels[-1], sum(PARAM_SPLITS.values()), 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def encode(self, maps: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], maps
        for layer in self.encoder:
            x = layer(x)
            feats.append(x)
        return [head(feats[len(feats) - 1 - k]) for k, head in enumerate(self.bias_heads)]

    def decode(self, biases: list[torch.Tensor], code: torch.Tensor) -> torch.Tensor:
        x = self.code_mlp(code).view(code.shape[0], -1, self.base, self.base)
        for layer, bias in zip(self.decoder, biases):
            x = F.leaky_relu(layer(x) + bias, 0.2)
        return self.out(x)

    def forward(self, maps: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(maps), code)
