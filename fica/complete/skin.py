"""Skin the portrait does not show, continued from the skin it shows (issue 7, "a seamless far side").

Seen from the side, a frontal portrait's face must not end in an edge where the completed head begins. Four
things made that edge, and each has its answer here (maps are ``[C, R, R]``, masks ``[1, R, R]`` bool):

1. Hand-over (``handover_weight``). Near the face's outline the portrait sees the skin edge-on: smeared, darkened,
   mixed with shadow, background or strands of hair. Kept as they were, those texels drew a dark line around the face seen from
   the side. Within ``HANDOVER_TEXELS`` of the outline the portrait's weight fades with the view cosine over
   ``HANDOVER_COS``, with the portrait's hair mask and, for texels seen very obliquely (``DARK_COS``), with
   darkness (``DARK_RANGE``); the completion takes the rest, and the portrait's share keeps its detail but takes
   the completion's colour as it falls (``match_brightness``). Features inside the face seen obliquely (the sides of the nose) stay the photo's,
   and so does what the portrait camera itself shows inside the face.
2. Colour (``skin_median``, ``skin_offset``). The completed skin's albedo is the robust median of the squarely
   seen skin's, plus an offset that continues the seen skin's slowly varying colour (its deviation from that
   median, clipped, blurred and extended from the confidently seen texels) and decays with the distance from them
   over ``OFFSET_DECAY_TEXELS``: next to the face it matches what the portrait shows, far from it it is the
   face's typical skin, not a colour smeared from whatever the outline held.
3. Texture (``carried_detail``, ``skin_grain``). A flat fill reads as a mask's edge against photographed skin.
   Next to the seen skin the completion carries the photo's own fine detail across the outline: each completed
   texel takes the detail of its reflection across the border of the confidently seen skin, so wrinkles, pores and
   freckles run on past the outline and fade over ``CARRY_TEXELS`` (grain at the seen skin's strength read as
   leather; the photo's own detail reads as skin). Farther away it gets grain with the seen skin's luminance
   spread in ``GRAIN_SCALES`` bands (robust spread, so wrinkles and brows do not inflate it), from a fixed seed:
   the chart completion stays deterministic.
4. Light (``even_light``). The photo darkens steeply toward its outline while the completion beyond it is lit
   flat: near the outline, the light (the luminance's local mean) is evened out across it.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.ndimage as ndi
import torch

from fica.head.model import UVLayout
from fica.render.camera import sample_pixels
from fica.uv_ops import dilate, push_pull_fill, smoothstep, weighted_blur

HANDOVER_TEXELS = (4.0, 14.0)  # the outline's band (texels at R = 256), beyond which the portrait keeps its colour
HANDOVER_COS = (0.15, 0.5)  # in the band the portrait's weight rises from 0 to 1 over this range of view cosines
DARK_RANGE = (0.55, 0.8)  # ... and with the albedo's luminance over the skin's median over this range,
DARK_COS = (0.3, 0.45)  # ... for texels seen more obliquely than this (glasses and brows nearer the front stay)
MATCH_BLUR_TEXELS = 3.0  # the scale of the brightness the hand-over band matches (match_brightness)
MATCH_RANGE = (0.6, 1.6)
CONFIDENT = 0.9  # texels whose portrait weight reaches this anchor the colour offset
OFFSET_BLUR_TEXELS = 3.0
OFFSET_DECAY_TEXELS = 40.0
OFFSET_CLIP_SIGMAS = 3.0  # deviations from the median skin beyond this many robust sigmas are clipped
GRAIN_SCALES = (1.0, 2.0)  # texels at R = 256: the grain's bands (difference of blurs at s and 2 s; finer reads as pixel noise)
# Completed texels cover more of the head than the face's (the chart spends its texels on the face), so grain of
# the seen spread per texel is coarser there: at the full spread it read as blotches, at a third as skin.
GRAIN_GAIN = 0.35
GRAIN_SEED = 0
SMOOTH_TEXELS = 4.0  # the neighbourhood (texels at R = 256) over which skin counts as smooth for the grain
MIN_SKIN_TEXELS = 50
DETAIL_BLUR_TEXELS = 3.0  # the carried detail: the albedo's log against its blur at this scale (texels at R = 256)
FEATURE_SIGMAS = 3.0  # seen texels whose detail exceeds this many robust sigmas (a glasses' rim, a mole, a deep
FEATURE_TEXELS = 1  # ... fold), and those this close to them, are no skin texture to carry
CARRY_TEXELS = (10.0, 30.0)  # the carried detail's strength falls from 1 to 0 over these distances from the skin
CARRIED_MAX_LOG = 0.4  # the carried detail changes the log albedo by at most this (pores and wrinkles; a drawing's
# ink and highlights, carried at up to 20 times their brightness in the hand-over band, smudged a stylized face's side)
MIX_GAIN_MAX = 4.0  # in the hand-over band the carried detail is raised by at most this much (carried_detail)
LIGHT_DETAIL_TEXELS = 2.0  # even_light: the luminance's mean over this scale (texels at R = 256) is its light, ...
LIGHT_BLUR_TEXELS = 8.0  # ... evened out by a blur over this scale ...
LIGHT_REACH_TEXELS = (8.0, 20.0)  # ... fully within the first distance of the outline, not beyond the second
LIGHT_MAX_LOG = 0.15  # ... by at most this much (log luminance): hair strands in the band stay dark, not olive


def _scaled(texels: float, resolution: int) -> float:
    return texels * resolution / 256


def _robust_sigma(values: torch.Tensor) -> torch.Tensor:
    """1.4826 × the median absolute deviation of ``values [C, N]`` per row. ``[C]``."""
    median = values.median(dim=1, keepdim=True).values
    return 1.4826 * (values - median).abs().median(dim=1).values


def handover_weight(cos: torch.Tensor, seen: torch.Tensor, brightness: torch.Tensor, hair: torch.Tensor,
                    resolution: int) -> torch.Tensor:
    """``[1, R, R]`` 0..1: how much of each ``seen`` texel's colour (step 1) comes from the portrait; 0 outside
    ``seen``. ``cos``: the view cosines; ``brightness``: the albedo's luminance over the skin's median (a shadow,
    dark hair or the background the outline holds is far darker than skin, ``DARK_RANGE``); ``hair``: 0..1, how
    much the portrait's hair mask covers the texel's pixel (strands over the cheek's edge). The outline is the
    border of ``seen`` with its holes (eyes, mouth) closed."""
    region = ndi.binary_fill_holes(seen[0].cpu().numpy())
    distance = torch.from_numpy(ndi.distance_transform_edt(region).astype(np.float32))[None].to(cos.device)
    inner = smoothstep(distance, *(_scaled(t, resolution) for t in HANDOVER_TEXELS))
    dark = (1 - smoothstep(brightness, *DARK_RANGE)) * (1 - smoothstep(cos, *DARK_COS))
    facing = smoothstep(cos, *HANDOVER_COS) * (1 - dark) * (1 - hair)
    return (1 - (1 - facing) * (1 - inner)) * seen


def match_brightness(photo: torch.Tensor, completed: torch.Tensor, seen: torch.Tensor, weight: torch.Tensor
                     ) -> torch.Tensor:
    """The portrait's colours ``photo [3, R, R]`` on the ``seen`` texels, their local mean colour (blurred over
    ``MATCH_BLUR_TEXELS``, per channel) moved toward the ``completed [3, R, R]`` colours' by ``1 - weight`` (the
    portrait's share, ``handover_weight``): the hand-over band keeps the photo's detail but not the darkening and
    tint it shows toward the outline, which read as a line where the completion begins."""
    sigma = _scaled(MATCH_BLUR_TEXELS, photo.shape[-1])
    photo_mean = weighted_blur(photo, seen.float(), sigma)
    completed_mean = weighted_blur(completed, torch.ones_like(weight), sigma)
    ratio = (completed_mean / photo_mean.clamp(min=1e-3)).clamp(*MATCH_RANGE)
    return photo * ratio ** (1 - weight)


def skin_median(albedo: torch.Tensor, square: torch.Tensor, fallback: torch.Tensor) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """Median albedo ``[3, 1, 1]`` of the ``square`` texels and its robust spread ``[3, 1, 1]``; ``fallback``
    (and zero spread) with fewer than ``MIN_SKIN_TEXELS``."""
    if int(square.sum()) < MIN_SKIN_TEXELS:
        return fallback, torch.zeros_like(fallback)
    values = albedo[:, square[0]]
    return values.median(dim=1).values[:, None, None], _robust_sigma(values)[:, None, None]


def anchor_decay(confident: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[1, R, R]``: exp(-distance from the ``confident`` texels / ``OFFSET_DECAY_TEXELS``), 1 on them."""
    distance = ndi.distance_transform_edt(~confident[0].cpu().numpy())
    decay = np.exp(-distance / _scaled(OFFSET_DECAY_TEXELS, resolution)).astype(np.float32)
    return torch.from_numpy(decay)[None].to(confident.device)


def skin_offset(albedo: torch.Tensor, base: torch.Tensor, spread: torch.Tensor, confident: torch.Tensor,
                decay: torch.Tensor) -> torch.Tensor:
    """The completed skin's offset ``[3, R, R]`` from ``base`` (step 2): the ``confident`` texels' deviation from
    it (clipped at ``OFFSET_CLIP_SIGMAS`` × ``spread``), blurred, extended everywhere and faded by ``decay``
    (``anchor_decay``)."""
    if int(confident.sum()) == 0:
        return torch.zeros_like(albedo)
    limit = OFFSET_CLIP_SIGMAS * spread
    deviation = torch.maximum(torch.minimum(albedo - base, limit), -limit)
    weight = confident.float()
    blurred = weighted_blur(deviation, weight, _scaled(OFFSET_BLUR_TEXELS, albedo.shape[-1]))
    return push_pull_fill(blurred, weight) * decay


def _band(values: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """Difference of the ``weight``-normalised blurs of ``values`` at ``sigma`` and ``2 sigma``."""
    return weighted_blur(values, weight, sigma) - weighted_blur(values, weight, 2 * sigma)


def carried_detail(albedo: torch.Tensor, anchors: torch.Tensor, domain: torch.Tensor, valid: torch.Tensor,
                   share: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The seen skin's own fine detail carried across its outline (step 3): ``[1, R, R]`` log-luminance detail over
    ``domain`` and ``[1, R, R]`` its strength 0..1. The detail of the ``anchors`` texels (confidently seen skin) is
    their log albedo, averaged over the channels, against its blur over ``DETAIL_BLUR_TEXELS``; texels near detail beyond ``FEATURE_SIGMAS``
    (``FEATURE_TEXELS``) carry none. A ``domain`` texel takes it from its reflection across the anchors' border,
    within the same chart island of ``valid``: the texel as deep inside as it lies outside, so wrinkles and pores
    run on across the border instead of ending there. The strength falls with the distance from the anchors
    over ``CARRY_TEXELS``. Where the portrait keeps a ``share [1, R, R]`` w of the texel (the hand-over band), its
    own detail and the carried one mix as independent textures, sqrt(w² + (1 - w)²) of either, a smoother strip
    along the outline: the carried detail is raised by sqrt(1 - w²) / (1 - w) (up to ``MIX_GAIN_MAX``), so that
    the mix keeps the detail of one. Skin texture is light and shade: carried per channel, a drawing's ink and
    highlights tinted the side of its face. What the detail adds stays within ``CARRIED_MAX_LOG``."""
    resolution = albedo.shape[-1]
    detail = torch.zeros_like(albedo[:1])
    strength = torch.zeros_like(albedo[:1])
    if int(anchors.sum()) < MIN_SKIN_TEXELS or not bool(domain.any()):
        return detail, strength
    log_luminance = albedo.clamp(min=1e-3).log().mean(0, keepdim=True)  # [1, R, R]
    own = log_luminance - weighted_blur(log_luminance, anchors.float(), _scaled(DETAIL_BLUR_TEXELS, resolution))
    spread = float(_robust_sigma(own[:, anchors[0]]))
    feature = ((own.abs() > FEATURE_SIGMAS * spread) & anchors).float()
    weight = anchors.float() * (dilate(feature, round(_scaled(FEATURE_TEXELS, resolution))) < 0.5)
    source = torch.cat([own * weight, weight]).permute(1, 2, 0)  # [R, R, 2]: the detail premultiplied, its weight
    labels, count = ndi.label(valid[0].cpu().numpy())
    anchor_map, domain_map = anchors[0].cpu().numpy(), domain[0].cpu().numpy()
    for island in range(1, count + 1):
        here = labels == island
        targets = domain_map & here
        if not (targets.any() and (anchor_map & here).any()):
            continue
        distance, (iy, ix) = ndi.distance_transform_edt(~(anchor_map & here), return_indices=True)
        ys, xs = np.nonzero(targets)
        border = np.stack([ix[ys, xs], iy[ys, xs]], -1)
        mirrored = torch.from_numpy(2 * border - np.stack([xs, ys], -1) + 0.5).to(source)
        sampled = sample_pixels(source * torch.from_numpy(here)[..., None].to(source), mirrored)
        carried = sampled[:, :1] / sampled[:, 1:].clamp(min=1e-3) * (sampled[:, 1:] > 0.1)
        detail[:, ys, xs] = carried.T
        strength[0, ys, xs] = 1 - smoothstep(torch.from_numpy(distance[ys, xs]).to(strength),
                                             *(_scaled(t, resolution) for t in CARRY_TEXELS))
    mix_gain = ((1 - share ** 2).clamp(min=0).sqrt() / (1 - share).clamp(min=1e-3)).clamp(max=MIX_GAIN_MAX)
    strength = strength * mix_gain
    bound = CARRIED_MAX_LOG / strength.clamp(min=1e-3)  # what it adds to the log albedo stays skin texture
    return detail.clamp(-bound, bound), strength


def even_light(texture: torch.Tensor, skin: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """``texture [3, R, R]`` with the light of its ``skin`` texels near the outline of the ``seen`` ones (both
    ``[1, R, R]`` bool) evened out (step 4). The photo darkens steeply toward its outline (the cheek turning away
    from the light, shadow) where the completion beyond it is lit flat: seen from the side, that kink in the light
    reads as an edge, and where the completion is lit brighter than the band's outer rim, as a dark valley along
    it. Within ``LIGHT_REACH_TEXELS`` of the outline (the border of ``seen`` with its holes closed), on either
    side, the log luminance's local mean (over ``LIGHT_DETAIL_TEXELS``) is moved to its blur over
    ``LIGHT_BLUR_TEXELS``, by at most ``LIGHT_MAX_LOG`` (strands of dark hair on the temple, brightened fully,
    turned olive), fading back to the texture's own beyond; the hue and the finer detail stay."""
    resolution = texture.shape[-1]
    region = ndi.binary_fill_holes(seen[0].cpu().numpy())
    distance = ndi.distance_transform_edt(region) + ndi.distance_transform_edt(~region)
    near = 1 - smoothstep(torch.from_numpy(distance.astype(np.float32))[None].to(texture.device),
                          *(_scaled(t, resolution) for t in LIGHT_REACH_TEXELS))
    log_luminance = texture.mean(0, keepdim=True).clamp(min=1e-3).log()
    light = weighted_blur(log_luminance, skin.float(), _scaled(LIGHT_DETAIL_TEXELS, resolution))
    even = weighted_blur(light, skin.float(), _scaled(LIGHT_BLUR_TEXELS, resolution))
    return texture * (near * skin * (even - light).clamp(-LIGHT_MAX_LOG, LIGHT_MAX_LOG)).exp()


def skin_grain(albedo: torch.Tensor, square: torch.Tensor, domain: torch.Tensor, decay: torch.Tensor,
               layout: UVLayout) -> torch.Tensor:
    """Log-luminance grain ``[1, R, R]`` over ``domain`` (step 3), zero elsewhere: per band of ``GRAIN_SCALES``,
    noise with ``GRAIN_GAIN`` times the robust spread that band has over the smoothest half of the ``square``
    texels of ``albedo`` (plain cheek skin, not wrinkles, brows or glasses), faded away from the seen skin by
    ``decay`` (``anchor_decay``): next to the face the skin looks alike, far from it it is smooth. Where both a
    texel and its ``layout`` mirror are in ``domain`` the grain is mirror-symmetric (the back of the head is
    filled so)."""
    resolution = albedo.shape[-1]
    if int(square.sum()) < MIN_SKIN_TEXELS or not bool(domain.any()):
        return torch.zeros_like(albedo[:1])
    log_luminance = albedo.mean(0, keepdim=True).clamp(min=1e-3).log()
    weight = square.float()
    structure = weighted_blur(_band(log_luminance, weight, _scaled(GRAIN_SCALES[-1], resolution)).abs(), weight,
                              _scaled(SMOOTH_TEXELS, resolution))
    smooth = square & (structure <= structure[square].median())
    generator = torch.Generator().manual_seed(GRAIN_SEED)
    noise = torch.randn(albedo[:1].shape, generator=generator).to(albedo.device)
    both = domain & (layout.mirror(domain.float()) > 0.5)
    noise = torch.where(both, (noise + layout.mirror(noise)) / math.sqrt(2), noise)
    everywhere = torch.ones_like(noise)
    grain = torch.zeros_like(noise)
    for scale in GRAIN_SCALES:
        sigma = _scaled(scale, resolution)
        target = _robust_sigma(_band(log_luminance, weight, sigma)[smooth][None])[0]
        noise_band = _band(noise, everywhere, sigma)
        grain = grain + GRAIN_GAIN * noise_band * target / noise_band[domain].std().clamp(min=1e-6)
    return grain * decay * domain
