"""Embedded completion (DESIGN.md §5 "Complete"): mirror fill, then region-aware smooth fill. CPU, no weights.

Texels the portrait shows (visibility > 0.5) keep the portrait's colours exactly. An unseen texel whose mirror
is confidently seen takes the mirror's colour; the rest of each region is filled smoothly (push-pull + Laplace
sweeps, see ``fica.uv_ops.harmonic_fill``) from the confidently seen part of that region only (grazing texels
often carry background): skin (face, ears, neck) from skin, lips from lips, the scalp from the hair seen in the
portrait (texels near the median hair colour; a dark hair colour when none is seen), eyeballs as a white
sclera around an iris coloured from the seen eyes, the mouth cavity dark red with teeth just behind the lips.
The geometry is the fitted head's (``Unwrapped.fitted_geometry``).
"""
from __future__ import annotations

import torch

from fica.complete.base import Completer
from fica.complete.hair import complete_hair
from fica.head.model import HeadModel, UVLayout, default_head
from fica.maps import CompleteUV, PartialUV
from fica.unwrap.base import Unwrapped
from fica.threads import one_thread
from fica.uv_ops import harmonic_fill, smoothstep, sphere_centre

SEEN_THRESHOLD = 0.5
SOURCE_VISIBILITY = 0.75
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


def mirror_known(partial: PartialUV, layout: UVLayout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seen colours plus mirrored ones where only the mirror texel is confidently seen.

    Returns (texture ``[3, R, R]``, seen ``[1, R, R]`` bool (visibility > 0.5), known ``[1, R, R]`` bool: the
    texels trusted as fill sources, confidently seen (visibility > ``SOURCE_VISIBILITY``) or mirrored from such).
    Grazing texels are kept but not trusted: their colours often mix in the background.
    """
    valid = partial.valid > 0.5
    seen = (partial.visibility > SEEN_THRESHOLD) & valid
    confident = (partial.visibility > SOURCE_VISIBILITY) & valid
    from_mirror = (layout.mirror(confident.float()) > 0.5) & ~seen & valid
    texture = torch.where(seen, partial.rgb, torch.zeros_like(partial.rgb))
    texture = torch.where(from_mirror, layout.mirror(partial.rgb), texture)
    return texture, seen, confident | from_mirror


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


def complete_texture(partial: PartialUV, layout: UVLayout, geometry: torch.Tensor) -> torch.Tensor:
    """The complete texture ``[3, R, R]`` from ``partial`` on ``layout``, with eyes and mouth placed by the
    neutral ``geometry [3, R, R]``. Seen texels keep their colour; every valid texel gets one."""
    texture, seen, known = mirror_known(partial, layout)
    region = lambda *names: layout.region_mask(*names).to(texture.device) > 0.5  # noqa: E731
    skin, lips, scalp = region("face", "ears", "neck"), region("lips"), region("scalp")
    eyes, mouth = region("eyes"), region("mouth")

    texture = _fill_region(texture, known, skin, SKIN_FALLBACK)
    skin_colour = _median_colour(texture, skin & known, SKIN_FALLBACK)
    texture = _fill_region(texture, known, lips, skin_colour * _colour(LIP_TINT, texture))
    hair = _median_colour(texture, known & scalp, HAIR_FALLBACK)
    hair_like = (texture - hair).norm(dim=0, keepdim=True) < HAIR_TOLERANCE  # not background or forehead
    texture = _fill_region(texture, known & hair_like, scalp, hair)
    texture = torch.where(eyes & ~known, _eyeball_texture(partial, seen, geometry, eyes), texture)
    texture = torch.where(mouth & ~known, _mouth_texture(geometry, mouth), texture)
    # Where neither a texel nor its mirror was seen (the back of the head and neck), the fill is made
    # left/right symmetric, so the two sides meet without a seam down the back midline.
    unknown = ~known & (partial.valid > 0.5)
    far = unknown & (layout.mirror(unknown.float()) > 0.5)
    texture = torch.where(far, 0.5 * (texture + layout.mirror(texture)), texture)
    texture = torch.where(seen, partial.rgb, texture)
    return (texture * partial.valid).clamp(0, 1)


class EmbeddedCompleter(Completer):
    implementation = "embedded: mirror + harmonic fill"

    def __init__(self, head: HeadModel | None = None):
        self.head = head

    def __call__(self, unwrapped: Unwrapped, image: torch.Tensor,
                 generator: torch.Generator | None = None) -> CompleteUV:
        """Complete ``unwrapped.partial``, and build the hair shell from ``unwrapped.hair_mask`` and ``image``
        (``generator`` seeds the unseen hair's strand noise; the chart fill is deterministic)."""
        partial = unwrapped.partial
        head = self.head or default_head()
        layout = head.uv_layout(partial.resolution)
        geometry = unwrapped.fitted_geometry.to(partial.rgb)
        with one_thread():  # many small map ops: a second torch thread only waits on a busy CPU
            texture = complete_texture(partial, layout, geometry)
            hair = None if unwrapped.hair_mask is None else \
                complete_hair(image.cpu().float(), unwrapped.hair_mask.cpu(), unwrapped.camera.to("cpu"),
                              geometry.cpu(), layout, unwrapped.dense.mask.cpu(), generator).to(partial.rgb.device)
        return CompleteUV(texture, geometry.clone(), partial.valid.clone(), hair)
