"""Embedded completion (DESIGN.md §5 "Complete"): lighting-aware mirror fill, then region-aware smooth fill.
CPU, no weights.

1. Trust. A texel the portrait shows is trusted in proportion to its visibility (depth test, view angle and the
   person mask, see ``fica.unwrap.uv_unwrap``) and to how squarely it faces the camera (``GRAZING_COS``): grazing
   texels are smeared and mix in the background. Face texels beyond the face's outline (where the fitted head
   is wider than the real face: islands that turn toward the camera again, and texels far darker than the face)
   are not taken from the portrait (``unseen_face_texels``).
2. Sources (``fica.maps.Source``, returned as ``CompleteUV.source``): a visible texel keeps the portrait's colour
   (SEEN) unless it sits at an occlusion edge its mirror does not share, or on the far side of a turned face,
   seen obliquely while its mirror faces the camera; the others whose mirror is seen and trusted take the
   mirror's (MIRRORED); the rest are FILLED. Skin seen edge-on near the face's outline hands the portrait's
   colour over to the completion (BLENDED, ``fica.complete.skin``), so no outline shows from the side.
3. Lighting. Mirroring copies one side's shading onto the other, so the copy is made in albedo: a luminance
   spherical-harmonic shading is fitted on the trusted skin (``fica.shading``), divided out, and the mirrored and
   filled texels are lit again with their own normal.
4. Fill. Skin (face, ears, neck) the portrait does not show takes the seen skin's robust median albedo, continued
   from the seen skin near it, with the seen skin's own detail carried across the outline and grain farther away
   (``fica.complete.skin``), lit no darker than the outline's hand-over band, the light near the outline evened
   out across it. The rest of each region is filled smoothly (push-pull + Laplace sweeps) from its trusted and
   mirrored texels: lips from lips, the scalp from the hair seen in the portrait (texels near the median hair
   colour; a dark hair colour when none is seen; the scalp a hair shell leaves bare,
   ``fica.complete.hair.bare_scalp``, is completed as skin), eyeballs as a white sclera around an iris coloured
   from the seen eyes, the mouth cavity dark red with teeth just behind the lips.

The colour step that remains where completed texels meet seen ones (what the lighting fit missed, an asymmetric
face) is blended away in the gradient domain by the refiner, which reads ``source`` and also pulls the mirrored
far side toward the brightness of its oblique glimpses. The geometry is the fitted head's
(``Unwrapped.fitted_geometry``); hair with volume is built by ``fica.complete.hair`` from the hair mask.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from fica.complete.base import Completer
from fica.complete.hair import bare_scalp, complete_hair
from fica.complete.skin import (CONFIDENT, anchor_decay, carried_detail, even_light, handover_weight,
                               match_brightness, skin_grain, skin_median, skin_offset)
from fica.head.chart_seams import ChartSeams, chart_seams
from fica.head.model import HeadModel, UVLayout, default_head
from fica.maps import CompleteUV, PartialUV, Source, geometry_normals
from fica.render.camera import Camera, sample_pixels
from fica.shading import shading_map
from fica.unwrap.base import Unwrapped
from fica.threads import one_thread
from fica.uv_ops import (cap_luminance, close_seams, erode, harmonic_fill, push_pull_fill, smoothstep,
                         sphere_centre)

TRUSTED = 0.5  # trust above which a texel's own colour may be kept
GRAZING_COS = (0.2, 0.45)  # trust fades in as the cosine of the view angle rises over this range
FAR_KEEP_COS = 0.65  # an oblique texel on the far side of a turned face (choose_sources) ...
FAR_MARGIN_COS = 0.25  # ... whose mirror's view cosine is higher by this much takes the mirror's colour
EDGE_MARGIN_TEXELS = 1  # at R = 256; scaled with the resolution
# The face's outline (unseen_face_texels): a ring of face texels seen at view cosines under OUTLINE_COS separates the
# squarely seen face from what lies beyond it. There, texels that face the camera again are not taken as seen, nor
# those darker than DARK_RATIO times the median of the squarely seen face (cosine over SQUARE_COS).
OUTLINE_COS = 0.35
DARK_RATIO, SQUARE_COS = 0.45, 0.7
BRIGHTEST_SEEN = 0.99  # quantile of the seen skin's luminance that completed skin may not exceed
HAIR_TOLERANCE = 0.3  # RGB distance from the median seen hair colour of scalp texels that may seed the fill
SKIN_FALLBACK = (0.80, 0.62, 0.52)
HAIR_FALLBACK = (0.10, 0.07, 0.05)
LIP_TINT = (1.0, 0.75, 0.75)  # unseen lips: the skin colour, redder
SCLERA_FALLBACK = (0.88, 0.86, 0.82)
IRIS_FALLBACK = (0.30, 0.20, 0.12)
PUPIL = (0.03, 0.03, 0.03)
MOUTH_DEEP = (0.12, 0.03, 0.04)
MOUTH_NEAR = (0.55, 0.22, 0.22)
TEETH = (0.86, 0.83, 0.76)
IRIS_ANGLE_RAD = 0.52  # ~30°: a 6 mm iris radius on a 12 mm eyeball
PUPIL_ANGLE_RAD = 0.17
TEETH_DEPTH_M = 0.008  # teeth occupy the front of the mouth cavity ...
TEETH_HALF_WIDTH_M = 0.02  # ... between the canines
FILL_ITERATIONS = 10


def _colour(rgb, like: torch.Tensor) -> torch.Tensor:
    """An RGB triple (tuple or tensor) as ``[3, 1, 1]`` matching ``like``."""
    return torch.as_tensor(rgb, dtype=like.dtype, device=like.device).reshape(3, 1, 1)


def _median_colour(rgb: torch.Tensor, mask: torch.Tensor, fallback, min_texels: int = 20) -> torch.Tensor:
    """Per-channel median ``[3, 1, 1]`` of ``rgb [3, R, R]`` over ``mask [1, R, R]`` (bool), or ``fallback``."""
    m = mask[0]
    if int(m.sum()) < min_texels:
        return _colour(fallback, rgb)
    return rgb[:, m].median(dim=1).values[:, None, None]


def view_cosine(partial: PartialUV, camera: Camera) -> torch.Tensor:
    """Cosine of the angle between each seen texel's normal and its direction to ``camera``. ``[1, R, R]``,
    zero where unseen."""
    to_camera = F.normalize(camera.center.to(partial.xyz)[:, None, None] - partial.xyz, dim=0)
    return (partial.normal * to_camera).sum(0, keepdim=True) * (partial.visibility > 0)


def hair_cover(partial: PartialUV, camera: Camera, hair_mask: torch.Tensor | None) -> torch.Tensor:
    """``[1, R, R]`` 0..1: the portrait's ``hair_mask [H, W]`` at the pixel of each seen texel (zero without a
    mask and where unseen)."""
    if hair_mask is None:
        return torch.zeros_like(partial.visibility)
    pixels, _ = camera.project(partial.xyz.reshape(3, -1).T)
    cover = sample_pixels(hair_mask.to(pixels)[..., None], pixels)[:, 0].reshape(partial.visibility.shape)
    return cover * (partial.visibility > 0)


def unseen_face_texels(partial: PartialUV, cos: torch.Tensor, layout: UVLayout) -> torch.Tensor:
    """``[1, R, R]`` bool: face texels the portrait shows that do not hold the face's colour, to be completed
    instead. The fitted head is rarely as narrow as the face: beyond the face's outline (a ring of texels seen
    edge-on, view cosines ``cos [1, R, R]`` under ``OUTLINE_COS``) its texels catch the photo's cheek edge, ear,
    hair or collar, and seen from the side they draw a second profile and dark blots on the cheek. The squarely
    seen face is the largest connected part of the face texels above that cosine, its holes (eyes, mouth) closed;
    outside it, texels that turn toward the camera again (islands) and texels far darker than the squarely seen
    face are dropped."""
    face = (layout.region_mask("face").to(cos.device) > 0.5) & (partial.visibility > TRUSTED)
    facing = face & (cos > OUTLINE_COS)
    labels, count = ndi.label(facing[0].cpu().numpy())
    if count == 0:
        return torch.zeros_like(face)
    largest = labels == 1 + int(np.argmax(ndi.sum(labels > 0, labels, range(1, count + 1))))
    outside = face & ~torch.from_numpy(ndi.binary_fill_holes(largest))[None].to(cos.device)
    islands = facing & outside
    luminance = partial.rgb.mean(0, keepdim=True)
    square = face & (cos > SQUARE_COS)
    if int(square.sum()) < 20:
        return islands
    dark = outside & (luminance < DARK_RATIO * luminance[square].median())
    return islands | dark


def trusted_texels(partial: PartialUV, cos: torch.Tensor) -> torch.Tensor:
    """``[1, R, R]`` bool: texels seen well enough to copy to their mirror and to fit the lighting on (step 1),
    from the visibility and the view cosine ``cos [1, R, R]`` (``view_cosine``)."""
    return (partial.visibility * smoothstep(cos, *GRAZING_COS) > TRUSTED) & (partial.valid > 0.5)


def choose_sources(partial: PartialUV, trusted: torch.Tensor, cos: torch.Tensor, layout: UVLayout
                   ) -> torch.Tensor:
    """Which source completes each texel (step 2 of the module docstring): ``[1, R, R]`` uint8 ``Source`` codes,
    from the ``trusted [1, R, R]`` texels (``trusted_texels``) and the view cosines ``cos [1, R, R]``.

    A visible texel keeps its colour, except where its mirror is clean, trusted and faces the camera more squarely
    and the texel itself is
    - next to an unseen one inside the chart (and the mirror is not): at an occlusion edge (the far cheek behind a
      turned nose) its pixel mixes in the occluder. (Edges that both sides share, the eyelids and lips of a
      frontal face, keep the photo.)
    - or oblique (view cosine under ``FAR_KEEP_COS``) while its mirror's cosine is higher by ``FAR_MARGIN_COS``:
      the far side of a turned face. Kept, its blurred glimpses would sit between mirrored texels as patches with
      their own edges; mirrored, the far side's features come from one source (the refiner still takes the
      glimpses' brightness). A frontal face's two sides differ by less than the margin, so both keep the photo.
    A MIRRORED texel's mirror is always SEEN.
    """
    valid = partial.valid > 0.5
    visible = (partial.visibility > TRUSTED) & valid
    margin = max(1, round(EDGE_MARGIN_TEXELS * partial.resolution / 256))
    clean = visible & (erode((visible | ~valid).float(), margin) > 0.5)
    mirror = lambda m: layout.mirror(m.float()) > 0.5  # noqa: E731
    far = (cos < FAR_KEEP_COS) & (layout.mirror(cos) > cos + FAR_MARGIN_COS)
    seen = visible & ~((~clean | far) & mirror(clean & trusted) & (layout.mirror(cos) > cos))
    mirrored = valid & ~seen & (layout.mirror((seen & trusted).float()) > 0.5)
    source = torch.full(trusted.shape, int(Source.FILLED), dtype=torch.uint8, device=trusted.device)
    source[mirrored] = int(Source.MIRRORED)
    source[seen] = int(Source.SEEN)
    return source


def _fill_region(texture: torch.Tensor, known: torch.Tensor, domain: torch.Tensor, fallback) -> torch.Tensor:
    """Fill the texels of ``domain`` that are not ``known`` from those that are (``fallback`` if none are)."""
    sources = known & domain
    if int(sources.sum()) == 0:
        return torch.where(domain, _colour(fallback, texture), texture)
    return harmonic_fill(texture, sources.float(), domain.float(), FILL_ITERATIONS)


def _eyeball_texture(partial: PartialUV, seen: torch.Tensor, geometry: torch.Tensor,
                     eyes: torch.Tensor) -> torch.Tensor:
    """Sclera, iris and pupil painted on the eyeball texels ``eyes [1, R, R]`` (bool). Returns ``[3, R, R]``.

    Each eyeball looks along +z; a texel's angle from that axis (about the eyeball's centre) picks the colour.
    The sclera and iris colours are the bright and dark quartiles of the seen eye texels.
    """
    seen_eyes = seen & eyes
    lum = partial.rgb.mean(0, keepdim=True)
    sclera, iris = _colour(SCLERA_FALLBACK, lum), _colour(IRIS_FALLBACK, lum)
    if int(seen_eyes.sum()) >= 20:
        values = lum[seen_eyes]
        lo, hi = torch.quantile(values, 0.25), torch.quantile(values, 0.75)
        sclera = 0.5 * sclera + 0.5 * _median_colour(partial.rgb, seen_eyes & (lum >= hi), SCLERA_FALLBACK, 1)
        iris = _median_colour(partial.rgb, seen_eyes & (lum <= lo), IRIS_FALLBACK, 1)
    out = torch.zeros_like(partial.rgb)
    for side in (geometry[0:1] < 0, geometry[0:1] >= 0):
        mask = eyes & side
        if int(mask.sum()) < 4:
            continue
        centre = sphere_centre(geometry[:, mask[0]].T)
        offset = geometry - centre[:, None, None]
        cos = offset[2:3] / offset.norm(dim=0, keepdim=True).clamp(min=1e-9)
        angle = torch.acos(cos.clamp(-1, 1))
        in_iris = 1 - smoothstep(angle, IRIS_ANGLE_RAD - 0.05, IRIS_ANGLE_RAD + 0.03)
        in_pupil = 1 - smoothstep(angle, PUPIL_ANGLE_RAD - 0.03, PUPIL_ANGLE_RAD + 0.03)
        colour = sclera + in_iris * (iris - sclera)
        colour = colour + in_pupil * (_colour(PUPIL, colour) - colour)
        out = torch.where(mask, colour, out)
    return out


def _mouth_texture(geometry: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    """The mouth cavity ``[3, R, R]``: teeth in its front ``TEETH_DEPTH_M`` between the canines, then dark red
    getting darker toward the throat."""
    z = geometry[2:3]
    z_front = z[mouth].max() if bool(mouth.any()) else z.new_tensor(0.0)
    depth = (z_front - z).clamp(min=0)
    red = _colour(MOUTH_NEAR, z) + smoothstep(depth, 0.0, 0.05) * (_colour(MOUTH_DEEP, z) - _colour(MOUTH_NEAR, z))
    teeth = (1 - smoothstep(depth, TEETH_DEPTH_M - 0.002, TEETH_DEPTH_M + 0.002)) * \
        (1 - smoothstep(geometry[0:1].abs(), TEETH_HALF_WIDTH_M - 0.003, TEETH_HALF_WIDTH_M + 0.003))
    return red + teeth * (_colour(TEETH, z) - red)


def complete_texture(partial: PartialUV, layout: UVLayout, geometry: torch.Tensor, trusted: torch.Tensor,
                     source: torch.Tensor, cos: torch.Tensor, hair_cover: torch.Tensor, cuts: ChartSeams,
                     bare: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The complete texture ``[3, R, R]`` from ``partial`` on ``layout``, its ``trusted`` texels (which the
    lighting is fitted on), the texel sources ``source`` (``choose_sources``), the view cosines ``cos`` and the
    hair mask's cover of the seen texels ``hair_cover`` (``hair_cover``; all ``[1, R, R]``), lit and with eyes
    and mouth placed by the neutral ``geometry [3, R, R]``; the scalp texels no hair shell covers, ``bare``
    (``bare_scalp``; None: none), are completed as skin where the portrait does not show them. And the sources
    with the skin the portrait sees edge-on near the face's outline marked BLENDED (``handover_weight``). SEEN
    texels keep their colour; every valid texel gets one."""
    valid = partial.valid > 0.5
    region = lambda *names: layout.region_mask(*names).to(geometry.device) > 0.5  # noqa: E731
    skin, lips, scalp = region("face", "ears", "neck"), region("lips"), region("scalp")
    eyes, mouth = region("eyes"), region("mouth")
    photo = source == int(Source.SEEN)
    bare = torch.zeros_like(scalp) if bare is None else bare & scalp
    mirrored = source == int(Source.MIRRORED)
    known = photo | mirrored

    normals = geometry_normals(geometry, partial.valid)
    shading = shading_map(partial.rgb, normals, trusted & skin)
    shading = torch.ones_like(partial.visibility) if shading is None else shading
    albedo = torch.where(photo, partial.rgb / shading, torch.zeros_like(partial.rgb))
    albedo = torch.where(mirrored, layout.mirror(albedo), albedo)
    square = photo & skin & (cos > SQUARE_COS)
    skin_colour, spread = skin_median(albedo, square, _colour(SKIN_FALLBACK, albedo))

    brightness = albedo.mean(0, keepdim=True) / skin_colour.mean()
    handover = handover_weight(cos, photo, brightness, hair_cover, partial.resolution)
    source = torch.where(photo & skin & (handover < 1), int(Source.BLENDED), source).to(source.dtype)
    seen = source == int(Source.SEEN)
    # Skin: the portrait's colour handed over to a completion that continues it (fica.complete.skin).
    weight = torch.where(mirrored, layout.mirror(handover), handover * photo)
    anchors = known & skin & (weight >= CONFIDENT)
    decay = anchor_decay(anchors, partial.resolution)
    completion = skin_colour + skin_offset(albedo, skin_colour, spread, anchors, decay)
    domain = (skin | bare) & (weight < 1)
    detail, carried = carried_detail(albedo, anchors, domain & ~anchors, valid, weight)
    completion = completion * (skin_grain(albedo, square, domain, decay, layout) * (1 - carried).clamp(min=0)).exp()
    unknown = ~known & valid
    far = unknown & (layout.mirror(unknown.float()) > 0.5)
    # Where neither a texel nor its mirror was seen (the back of the head and neck), the fill is made
    # left/right symmetric, so the two sides meet without a seam down the back midline.
    symmetric = lambda maps: torch.where(far, 0.5 * (maps + layout.mirror(maps)), maps)  # noqa: E731
    completion = symmetric(completion) * (detail * carried).exp()
    albedo = torch.where((skin | bare) & ~known, completion, albedo)
    albedo = _fill_region(albedo, known, lips, skin_colour * _colour(LIP_TINT, albedo))
    hair = _median_colour(albedo, known & scalp, HAIR_FALLBACK)
    hair_like = (albedo - hair).norm(dim=0, keepdim=True) < HAIR_TOLERANCE  # not background or forehead
    albedo = symmetric(_fill_region(albedo, known & hair_like, scalp & ~(bare & ~known), hair))

    # The completion is lit no darker than the outline's hand-over band beside it: beyond the normals the portrait
    # shows the light is unknown, and a side darker than the face's edge reads as a mask's rim. The floor is the
    # band's shading carried outward (and across the chart's cuts), not one number for the whole head: the median
    # of both sides lit the side a light from the other side darkens brighter than its own outline, a dark valley
    # along the cheek seen from there. The portrait's share of a texel keeps the portrait's own lighting.
    band = photo & skin & (handover >= 0.5) & (handover < 1)
    floor = torch.zeros_like(shading)
    if int(band.sum()) >= 20:
        floor = close_seams(push_pull_fill(shading, band.float()), cuts.partner.to(floor.device),
                            cuts.spacing.to(floor), band, valid & ~band)
    texture = albedo * shading
    completed = completion * torch.maximum(shading, floor)
    handed_over = weight * match_brightness(texture, completed, photo & skin, weight) + (1 - weight) * completed
    texture = torch.where(skin | (bare & ~known), handed_over, texture)
    # The light evened out across the face's outline: not on the neck (its own chart island, which the refiner joins
    # to the face across the cut) nor on mirrored texels (a turned portrait's far cheek, which the refiner pulls to
    # the light of its glimpses); the SEEN texels take the photo's colour again just below.
    texture = even_light(texture, region("face") & ~mirrored, photo & skin)
    # Re-lighting extrapolates onto normals the portrait never showed: completed skin is kept no brighter than
    # the brightest seen skin.
    texture = torch.where(seen, partial.rgb, texture)
    texture = cap_luminance(texture, seen & skin, (skin | bare) & ~seen, BRIGHTEST_SEEN)
    texture = torch.where(eyes & ~known, _eyeball_texture(partial, seen, geometry, eyes), texture)
    texture = torch.where(mouth & ~known, _mouth_texture(geometry, mouth), texture)
    return (texture * partial.valid).clamp(0, 1), source


class EmbeddedCompleter(Completer):
    implementation = "embedded: lit mirror + harmonic fill"

    def __init__(self, head: HeadModel | None = None):
        self.head = head

    def __call__(self, unwrapped: Unwrapped, image: torch.Tensor,
                 generator: torch.Generator | None = None) -> CompleteUV:
        """Complete ``unwrapped.partial``, and build the hair shell from ``unwrapped.hair_mask`` (and its
        ``headwear_mask``) and ``image``
        (``generator`` seeds the unseen hair's strand texture; the chart fill is deterministic)."""
        partial = unwrapped.partial
        head = self.head or default_head()
        layout = head.uv_layout(partial.resolution)
        geometry = unwrapped.fitted_geometry.to(partial.rgb)
        with one_thread():  # many small map ops: a second torch thread only waits on a busy CPU
            cos = view_cosine(partial, unwrapped.camera.to(partial.rgb.device))
            trusted = trusted_texels(partial, cos)
            unseen = unseen_face_texels(partial, cos, layout)  # completed, though the lighting fit may use them
            source = choose_sources(replace(partial, visibility=partial.visibility * ~unseen), trusted, cos, layout)
            cover = hair_cover(partial, unwrapped.camera.to(partial.rgb.device), unwrapped.hair_mask)
            hair = None if unwrapped.hair_mask is None else \
                complete_hair(image.cpu().float(), unwrapped.hair_mask.cpu(), unwrapped.camera.to("cpu"),
                              geometry.cpu(), layout, unwrapped.dense.mask.cpu(), generator,
                              *(None if m is None else m.cpu() for m in (unwrapped.headwear_mask,
                                                                         unwrapped.person_mask,
                                                                         unwrapped.hair_colour_mask))
                              ).to(partial.rgb.device)
            cuts = chart_seams(head, partial.resolution)
            texture, source = complete_texture(partial, layout, geometry, trusted, source, cos, cover, cuts,
                                               bare_scalp(geometry, layout, hair))
        return CompleteUV(texture, geometry.clone(), partial.valid.clone(), hair, source)
