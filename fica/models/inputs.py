"""Fitting the pipeline's images and UV maps to a network's input size (shared by the learned stages and their
training recipes)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.maps import PartialUV


def letterbox(image: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Fit ``image [3, H, W]`` into ``size = (h, w)`` keeping its aspect, centred on black.

    Returns ``[1, 3, h, w]`` and the box ``(top, left, height, width)`` the image occupies.
    """
    h, w = size
    H, W = image.shape[-2:]
    scale = min(h / H, w / W)
    nh, nw = max(1, round(H * scale)), max(1, round(W * scale))
    resized = F.interpolate(image[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (h - nh) // 2, (w - nw) // 2
    return F.pad(resized, (left, w - nw - left, top, h - nh - top)), (top, left, nh, nw)


def unletterbox(maps: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``letterbox`` for maps ``[B, C, h, w]`` -> ``[B, C, H, W]``."""
    top, left, nh, nw = box
    return F.interpolate(maps[..., top:top + nh, left:left + nw], size=size, mode="bilinear", align_corners=False)



def resample_partial(partial: PartialUV, resolution: int) -> dict[str, torch.Tensor]:
    """Partial maps batched ``[1, C, S, S]`` at ``resolution``: visibility-weighted area averages."""
    maps = partial.as_dict()
    if partial.resolution == resolution:
        return {k: v[None] for k, v in maps.items()}
    vis = F.interpolate(maps["visibility"][None], size=(resolution,) * 2, mode="area")
    out = {"visibility": vis,
           "valid": F.interpolate(maps["valid"][None], size=(resolution,) * 2, mode="nearest")}
    for k in ("rgb", "normal", "xyz"):
        weighted = F.interpolate((maps[k] * maps["visibility"])[None], size=(resolution,) * 2, mode="area")
        out[k] = weighted / vis.clamp(min=1e-6) * (vis > 1e-6)
    return out
