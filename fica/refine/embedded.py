"""Embedded refinement (DESIGN.md §5 "Refine"): gradient-domain seam blending of the completed texels and light
smoothing of the unseen geometry. CPU.

The embedded completer reports which source filled each texel (``CompleteUV.source``: seen, mirrored, filled);
this refiner reads that map instead of re-deriving it:

1. Texture: the texels the completer kept from the portrait (SEEN) stay exactly. The completed ones keep their
   detail (their gradients) but take a smooth offset, a membrane: at the boundary it is the colour step between
   the seen texels and the completed colours beside them; at completed texels the portrait still
   glimpses and whose mirror it shows (the far side of a turned face, seen obliquely: blurred, but as bright as
   it is) it is the step to that glimpse, unless the glimpse is far brighter than the mirrored colour (background
   mixed in at the silhouette); elsewhere it is harmonic (``harmonic_fill``). So no colour step or seam
   remains at the visibility boundary, and a far side that a light from one side darkens keeps the brightness the
   portrait glimpses. The membrane is solved per region group (skin and face features, scalp), so hair and skin
   do not bleed into each other; the scalp a hair shell leaves bare is skin, as the completer made it
   (``fica.complete.hair.bare_scalp``). After a completer that reports no sources, texels with visibility >= 0.9
   count as seen.
   The chart is cut into islands (the under-jaw ends on the face island, the neck goes on on its own island), so
   a membrane solved on the chart's grid steps where two islands meet on the head: the neck took the step of its
   seen front, the under-jaw beside it that of the jaw. The completed skin is then made to agree across the cuts
   (``fica.uv_ops.close_seams`` over ``fica.head.chart_seams``).
2. Geometry: a few light Laplacian smoothing sweeps over the unseen, interior texels of the skin and scalp.
"""
from __future__ import annotations

import torch

from fica.complete.hair import bare_scalp
from fica.head.chart_seams import chart_seams
from fica.head.model import HeadModel, UVLayout, default_head
from fica.maps import CompleteUV, PartialUV, Source
from fica.refine.base import Refiner
from fica.unwrap.base import Unwrapped
from fica.threads import one_thread
from fica.uv_ops import (cap_luminance, close_seams, dilate, erode, harmonic_fill, neighbour_mean,
                          weighted_blur)

KEEP_VISIBILITY = 0.9  # without a source map, texels at least this visible count as seen
BAND_TEXELS = 2  # seen texels this close to the completed ones set the membrane's boundary
GLIMPSE_VISIBILITY = 0.2  # completed texels the portrait shows at least this well, their mirror seen, set it too,
GLIMPSE_MARGIN_TEXELS = 4  # ... unless, this close (at R = 256) to texels it does not see (the silhouette), ...
GLARE_RATIO = 1.25  # ... they are brighter than this times their mirrored colour (the background mixed in)
STEP_BLUR_TEXELS = 3.0  # the boundary step is smoothed along the boundary first (no streaks from single texels)
MEMBRANE_SWEEPS = 20
BRIGHTEST_SEEN = 0.99  # quantile of the seen skin's luminance that completed skin may not exceed
SEEN_RANGE = (0.005, 0.995)  # quantiles of the seen colours that bound where the membrane may move a colour
GEOMETRY_SWEEPS = 2
GEOMETRY_STEP = 0.25


def seen_texels(complete: CompleteUV, visibility: torch.Tensor) -> torch.Tensor:
    """``[1, R, R]`` bool: the texels holding the portrait's colour (the completer's SEEN texels, and the BLENDED
    ones where the completer already handed the portrait's colour over to the completion)."""
    if complete.source is not None:
        return (complete.source == int(Source.SEEN)) | (complete.source == int(Source.BLENDED))
    return (visibility >= KEEP_VISIBILITY) & (complete.valid > 0.5)


def mirrored_texels(complete: CompleteUV, seen: torch.Tensor, layout: UVLayout) -> torch.Tensor:
    """``[1, R, R]`` bool: the texels completed from their mirror, as the completer's source map says (MIRRORED);
    texels it filled instead (beyond the face's outline: a collar or hair in the photo) must not take the
    portrait's glimpse of them back. After a completer that reports no sources: unseen texels whose mirror is
    ``seen``."""
    if complete.source is not None:
        return complete.source == int(Source.MIRRORED)
    return ~seen & (complete.valid > 0.5) & (layout.mirror(seen.float()) > 0.5)


def trusted_glimpses(texture: torch.Tensor, completed: torch.Tensor, valid: torch.Tensor, partial: PartialUV,
                     mirrored: torch.Tensor) -> torch.Tensor:
    """``[1, R, R]`` bool: the ``mirrored`` completed texels whose glimpse in the portrait (``partial``) may set the
    membrane: seen at least ``GLIMPSE_VISIBILITY``, and unless they lie within ``GLIMPSE_MARGIN_TEXELS`` of a
    texel of the chart the portrait does not see, at most ``GLARE_RATIO`` times as bright as their mirrored colour
    ``texture [3, R, R]``. At the silhouette of a turned face a pixel mixes in the background: a white one through
    the far cheek's outline drew glare streaks down the completed cheek; inside it, a far side the light
    brightens is what the glimpse shows."""
    visible = (partial.visibility > GLIMPSE_VISIBILITY) & valid
    margin = round(GLIMPSE_MARGIN_TEXELS * partial.resolution / 256)
    inside = erode((visible | ~valid).float(), margin) > 0.5
    not_glare = partial.rgb.mean(0, keepdim=True) <= GLARE_RATIO * texture.mean(0, keepdim=True)
    return mirrored & completed & visible & (inside | not_glare)


def blend_seam(texture: torch.Tensor, seen: torch.Tensor, valid: torch.Tensor, groups: list[torch.Tensor],
               partial: PartialUV, mirrored: torch.Tensor) -> torch.Tensor:
    """Membrane blend (step 1) of the completed texels of ``texture [3, R, R]`` onto the ``seen [1, R, R]`` ones
    and toward the ``partial`` colours of the ``mirrored [1, R, R]`` texels (those completed from their mirror)
    that the portrait glimpses (``trusted_glimpses``); groups: ``[1, R, R]`` bool region groups solved
    separately. The step at a seen texel of the boundary band is its colour minus the completion beside it (the
    group's completed texels' mean within about ``BAND_TEXELS``): the completion continued further, from colours
    farther away (a push-pull), gave steps the texels at the boundary did not have, and the membrane carried
    those past the seen colour (a light line down a turned face's nose). Seen texels keep their colour.
    ``[3, R, R]``."""
    valid = valid > 0.5
    completed = valid & ~seen
    glimpsed = trusted_glimpses(texture, completed, valid, partial, mirrored)
    out = texture
    for group in groups:
        domain, glimpsed_here = completed & group, glimpsed & group
        band_here = seen & group & (dilate(domain.float(), BAND_TEXELS) > 0.5)
        known = band_here | glimpsed_here
        if not (bool(known.any()) and bool(domain.any())):
            continue
        beside = weighted_blur(texture, domain.float(), BAND_TEXELS)  # the completion next to the band
        weight = band_here.float() + partial.visibility * glimpsed_here
        step = weighted_blur(torch.where(band_here, texture - beside, partial.rgb - texture), weight,
                             STEP_BLUR_TEXELS)
        membrane = harmonic_fill(step, known.float(), domain.float(), MEMBRANE_SWEEPS)
        seen_colours = texture[:, (seen & group)[0]]
        if seen_colours.shape[1] >= 20:  # the offset never takes a colour outside what the portrait shows
            lo = torch.quantile(seen_colours, SEEN_RANGE[0], dim=1)[:, None, None]
            hi = torch.quantile(seen_colours, SEEN_RANGE[1], dim=1)[:, None, None]
            membrane = torch.minimum(torch.maximum(texture + membrane, torch.minimum(texture, lo)),
                                     torch.maximum(texture, hi)) - texture
        out = torch.where(domain, texture + membrane, out)
    return out * valid


def smooth_unseen_geometry(geometry: torch.Tensor, visibility: torch.Tensor, movable: torch.Tensor) -> torch.Tensor:
    """A few damped Laplacian sweeps on the ``movable [1, R, R]`` (bool) texels, weighted by 1 - visibility;
    chart-border texels stay put so seams do not open. ``[3, R, R]``."""
    weight = GEOMETRY_STEP * (1 - visibility.clamp(0, 1)) * movable
    domain = movable.float()
    weight = weight * erode(domain, 1)
    for _ in range(GEOMETRY_SWEEPS):
        geometry = geometry + weight * (neighbour_mean(geometry, domain) - geometry)
    return geometry


class EmbeddedRefiner(Refiner):
    implementation = "embedded: seam blend + unseen geometry smoothing"

    def __init__(self, head: HeadModel | None = None):
        self.head = head

    def __call__(self, complete: CompleteUV, unwrapped: Unwrapped, image: torch.Tensor) -> CompleteUV:
        with one_thread():  # many small map ops: a second torch thread only waits on a busy CPU
            return self._refine(complete, unwrapped)

    def _refine(self, complete: CompleteUV, unwrapped: Unwrapped) -> CompleteUV:
        head = self.head or default_head()
        layout = head.uv_layout(complete.resolution)
        visibility = unwrapped.partial.visibility.to(complete.texture) * complete.valid
        seen = seen_texels(complete, visibility)
        valid = complete.valid > 0.5
        scalp = layout.region_mask("scalp").to(complete.texture.device) > 0.5
        scalp = scalp & ~bare_scalp(complete.geometry, layout, complete.hair)  # the completer made the bare scalp skin
        texture = blend_seam(complete.texture, seen, complete.valid, [valid & ~scalp, scalp],
                             unwrapped.partial.to(complete.texture.device),
                             mirrored_texels(complete, seen, layout)).clamp(0, 1)
        skin = layout.region_mask("face", "ears", "neck").to(complete.texture.device) > 0.5
        cuts = chart_seams(head, complete.resolution)
        texture = close_seams(texture, cuts.partner.to(texture.device), cuts.spacing.to(texture), seen & skin,
                              skin & ~seen, MEMBRANE_SWEEPS).clamp(0, 1)
        texture = cap_luminance(texture, seen & skin, skin & ~seen, BRIGHTEST_SEEN)  # the membrane adds no glow
        movable = layout.region_mask("face", "scalp", "neck").to(complete.texture.device) > 0.5
        geometry = smooth_unseen_geometry(complete.geometry, visibility, movable)
        return CompleteUV(texture, geometry * complete.valid, complete.valid.clone(), complete.hair,
                          complete.source)
