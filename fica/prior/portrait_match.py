"""The seen texels' colours matched to the portrait through the splats (one step of back-projection).

A surface Gaussian per texel is a soft, overlapping disc of its texel's colour, and opaque discs composite in depth
order, so a render at the portrait camera is the photo blurred and smeared a little: on Grace Hopper (a 183-px-wide
face, ~1.8 photo pixels per texel at R = 256) it matches the photo to 24.1 dB inside the face, where the texture
re-sampled straight into the image gives 28.0. Sharpening the texture in the chart (an unsharp mask) gains 0.1 dB:
the loss is not a symmetric blur but the splats' own footprint and overlap order. So the step renders the avatar
once at the portrait camera and expression and adds the residual (photo − render) at each correctable texel's pixel
to its colour: the splats' blur is compensated where the photo says what the colour should be (25.8 dB; astronaut
25.7 → 27.7; 25.2 and 26.7 since smooth skin's splats are wider, ``fica.prior.analytic.texel_footprints``). The
footprint is defined on the surface, so the compensation holds at turned views too. A second step gains 0.4 dB
more there but makes the skin of turned views blotchy (band-pass energy of the astronaut's cheek at yaw ±45° 17-20 %
above one step's, which matches the old avatar's): one step.

Correctable texels: the portrait's own colour (``Source.SEEN``, or visibility alone after a completer that reports
no sources), seen well (``MIN_VISIBILITY``), not under the portrait's hair (the hair shell lies in front of them),
and where the render covers its pixel. The step is bounded (``MAX_STEP``) so a misregistered edge cannot turn into
a speck.
"""
from __future__ import annotations

import torch

from fica.maps import CompleteUV, Source
from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera, sample_pixels
from fica.render.dispatch import render
from fica.unwrap.base import Unwrapped

MIN_VISIBILITY = 0.5
MAX_STEP = 0.25  # the most a colour channel moves (0..1)
COVERED_ALPHA = 0.99  # a residual counts where the render covers its pixel at least this much
MARGIN_PX = 4  # the render's crop reaches this far beyond the correctable texels' pixels


def correctable_texels(texel: torch.Tensor, pixels: torch.Tensor, refined: CompleteUV,
                       unwrapped: Unwrapped) -> torch.Tensor:
    """``[N]`` bool: which texels (``texel [N]`` flat chart indices, seen at ``pixels [N, 2]`` of the portrait)
    hold the portrait's colour, seen well and not under its hair."""
    visibility = unwrapped.partial.visibility.reshape(-1)[texel]
    ok = visibility > MIN_VISIBILITY
    if refined.source is not None:
        ok &= refined.source.reshape(-1)[texel] == Source.SEEN
    if unwrapped.hair_mask is not None:
        ok &= sample_pixels(unwrapped.hair_mask[..., None], pixels)[:, 0] < 0.01
    return ok


def matched_colours(colors: torch.Tensor, pixels: torch.Tensor, correctable: torch.Tensor, gaussians: GaussianSet,
                    portrait: torch.Tensor, camera: Camera) -> torch.Tensor:
    """``colors [N, 3]`` of the texel Gaussians (the first N of ``gaussians``, which hold the whole avatar at the
    portrait's expression), seen at ``pixels [N, 2]`` by ``camera``, after one step of back-projection toward
    ``portrait [H, W, 3]`` on the ``correctable [N]`` texels. Returns ``[N, 3]`` in 0..1."""
    if not bool(correctable.any()):
        return colors
    H, W = portrait.shape[:2]
    lo = (pixels[correctable].amin(0) - MARGIN_PX).floor().clamp(min=0)
    hi = (pixels[correctable].amax(0) + MARGIN_PX).ceil()
    hi = torch.minimum(hi, hi.new_tensor([W, H]))
    x0, y0, x1, y1 = (int(v) for v in (*lo.tolist(), *hi.tolist()))
    if x1 <= x0 or y1 <= y0:
        return colors
    crop = _cropped(camera, x0, y0, x1 - x0, y1 - y0)
    rgb, alpha = render(gaussians, crop, background=(1.0, 1.0, 1.0), purpose="still")
    residual = (portrait[y0:y1, x0:x1].to(rgb) - rgb) * (alpha[..., None] >= COVERED_ALPHA)
    step = sample_pixels(residual, pixels - pixels.new_tensor([x0, y0])).to(colors).clamp(-MAX_STEP, MAX_STEP)
    return (colors + step * correctable[:, None]).clamp(0, 1)


def _cropped(camera: Camera, x0: int, y0: int, width: int, height: int) -> Camera:
    """``camera`` seeing only the pixels ``[y0, y0 + height) × [x0, x0 + width)`` of its image."""
    K = camera.K.clone()
    K[0, 2] -= x0
    K[1, 2] -= y0
    return Camera(camera.viewmat, K, width, height)

