"""A perceptual loss that is one: distances between pretrained VGG-16 features (conv1_2, conv2_2, conv3_3 and
conv4_3 after their ReLUs), each layer's features unit-normalised over channels as LPIPS does, layers weighted
equally.

Weights: torchvision's ImageNet VGG-16 as the Hub repo ``timm/vgg16.tv_in1k`` publishes it (BSD-3-Clause, one
``model.safetensors``), fetched once at training time through huggingface_hub's cache; only its ``features.*``
tensors up to conv4_3 are read. ``source`` may also be a local ``.safetensors`` file or a folder holding one. When
the weights cannot be had (offline and not cached), ``WeightsUnavailable`` says so and how to train without them.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fica.errors import WeightsUnavailable

VGG_REPO = "timm/vgg16.tv_in1k"
VGG_FILE = "model.safetensors"
# torchvision's ``features`` layout up to relu4_3: convolution widths, "M" for a max-pool
LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
TAPS = (3, 8, 15, 22)  # indices in ``features`` of the ReLUs after conv1_2, conv2_2, conv3_3, conv4_3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """``forward(image [B, 3, H, W] sRGB 0..1) -> [B, C_k, H_k, W_k]`` for each tap (frozen)."""

    def __init__(self):
        super().__init__()
        layers, c_in = [], 3
        for c in LAYOUT:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x, out = (image - self.mean) / self.std, []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out


def weights_file(source: str | Path = VGG_REPO) -> Path:
    """The local ``.safetensors`` of ``source`` (a file, a folder holding ``model.safetensors``, or a Hub repo id)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        return path / VGG_FILE
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(str(source), VGG_FILE))
    except Exception as err:  # offline and not cached, no network, unknown repo
        raise WeightsUnavailable(
            f"The VGG-16 weights for the perceptual loss could not be had from the Hub repo '{source}' "
            f"({type(err).__name__}); download them once while online, or train with --image-loss ssim.") from err


def load_vgg(source: str | Path = VGG_REPO) -> VGGFeatures:
    from safetensors.torch import load_file

    model = VGGFeatures()
    state = load_file(str(weights_file(source)))
    n = len(model.features)
    model.features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                    if k.startswith("features.") and int(k.split(".")[1]) < n})
    return model.eval().requires_grad_(False)


@lru_cache(maxsize=4)
def _vgg_on(device: str, source: str) -> VGGFeatures:
    return load_vgg(source).to(device)


def vgg_loss(a: torch.Tensor, b: torch.Tensor, source: str | Path = VGG_REPO) -> torch.Tensor:
    """Mean over taps of the squared distance of channel-normalised VGG features of ``a`` and ``b``
    ``[B, 3, H, W]`` (0..1); 0 for equal images."""
    vgg = _vgg_on(str(a.device), str(source))
    total = a.new_zeros(())
    for fa, fb in zip(vgg(a.float()), vgg(b.float())):
        total = total + (F.normalize(fa, dim=1, eps=1e-10) - F.normalize(fb, dim=1, eps=1e-10)).pow(2).sum(1).mean()
    return total / len(TAPS)
