"""Embedded refinement (DESIGN.md §5 "Refine"): shading re-bake and seam blending of the filled texels. CPU.

The portrait's shading is baked into what it shows, and the completer copies it into the unseen half (mirror
fill: the other side's shading; smooth fill: the nearest seen texels' shading). Dividing the shading out of the
seen texels too would flatten the photo and the frontal render would stop matching it, so this refiner keeps
every confidently seen texel (visibility >= 0.9) exactly and instead makes the filled texels view-consistent:

1. Fit second-order spherical-harmonic lighting (9 coefficients) to the luminance of the seen skin against its
   normals: ``shading(n)``, normalised to mean 1 over the seen skin.
2. For each filled texel, divide out the shading it was copied with (the mirror texel's, or the smoothly filled
   shading of the seen texels, as the embedded completer chose its sources) and multiply in the shading of its
   own normal, both clamped to the range the seen skin shows and the ratio kept within ``RATIO_RANGE`` (so the
   correction stays bounded after any other completer too). A 3/4 portrait lit from one side thus gets a
   darker (or brighter) mirrored cheek, as one light would have lit it.
3. Blend the seam with a Laplacian pyramid: the photo over the fill's extension beneath it, weighted by
   visibility, so colour shifts fade out over a band instead of showing an edge at the visibility boundary.

Geometry: a few light Laplacian smoothing sweeps over the unseen, interior texels of the skin and scalp.
"""
from __future__ import annotations

import torch

from fica.complete.embedded import SEEN_THRESHOLD, SOURCE_VISIBILITY
from fica.head.model import HeadModel, UVLayout, default_head
from fica.maps import CompleteUV
from fica.refine.base import Refiner
from fica.unwrap.base import Unwrapped
from fica.threads import one_thread
from fica.uv_ops import erode, laplacian_blend, neighbour_mean, push_pull_fill, smoothstep

KEEP_VISIBILITY = 0.9  # texels at least this visible keep the completed (photo) colour exactly
RATIO_RANGE = (0.75, 1.33)
BLEND_LEVELS = 4
SH_RIDGE = 1e-3
GEOMETRY_SWEEPS = 2
GEOMETRY_STEP = 0.25


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """Real second-order spherical-harmonic basis (unnormalised constants) of unit ``normals [..., 3]`` ->
    ``[..., 9]``: 1, y, z, x, xy, yz, 3z² - 1, xz, x² - y²."""
    x, y, z = normals.unbind(-1)
    return torch.stack([torch.ones_like(x), y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], dim=-1)


def fit_sh_shading(luminance: torch.Tensor, normals: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Robust weighted ridge fit of ``luminance [N] ≈ sh_basis(normals [N, 3]) @ coeffs``; returns ``[9]``.

    One refit after dropping texels whose residual exceeds 2.5 robust sigmas (brows, lips, stray hair).
    """
    A = sh_basis(normals).double()
    b = luminance.double()
    w = weights.double()
    ridge = torch.full((9,), SH_RIDGE, dtype=torch.float64, device=A.device)
    ridge[0] = 0.0
    coeffs = None
    for _ in range(2):
        Aw = A * w[:, None]
        coeffs = torch.linalg.solve(Aw.T @ A + torch.diag(ridge) * w.sum(), Aw.T @ b)
        residual = b - A @ coeffs
        sigma = 1.4826 * residual.abs().median()
        w = w * (residual.abs() <= 2.5 * sigma.clamp(min=1e-6))
    return coeffs.float()


def shading_map(complete: CompleteUV, normals: torch.Tensor, seen: torch.Tensor,
                skin: torch.Tensor) -> torch.Tensor | None:
    """Fitted shading ``[1, R, R]`` (mean 1 over the seen skin, clamped to the seen range), or None when too
    little skin is seen to fit it."""
    fit = seen & skin
    if int(fit.sum()) < 100:
        return None
    luminance = complete.texture.mean(0)
    n = normals.permute(1, 2, 0)  # [R, R, 3]
    coeffs = fit_sh_shading(luminance[fit[0]], n[fit[0]], luminance.new_ones(int(fit.sum())))
    shading = (sh_basis(n) @ coeffs)[None]  # [1, R, R]
    seen_values = shading[fit]
    mean = seen_values.mean()
    if mean <= 1e-3:
        return None
    lo, hi = torch.quantile(seen_values, 0.02) / mean, torch.quantile(seen_values, 0.98) / mean
    return (shading / mean).clamp(lo.clamp(min=0.3), hi.clamp(max=2.0))


def rebake_filled(complete: CompleteUV, layout: UVLayout, normals: torch.Tensor, visibility: torch.Tensor,
                  skin: torch.Tensor) -> torch.Tensor:
    """The texture ``[3, R, R]`` with the filled skin texels' baked shading replaced by their own normal's."""
    valid = complete.valid > 0.5
    seen = (visibility > SEEN_THRESHOLD) & valid
    shading = shading_map(complete, normals, seen, skin)
    if shading is None:
        return complete.texture
    sources = (visibility > SOURCE_VISIBILITY) & valid  # what the embedded completer copied and filled from
    from_mirror = (layout.mirror(sources.float()) > 0.5) & ~seen
    carried = torch.where(from_mirror, layout.mirror(shading), push_pull_fill(shading, sources.float()))
    ratio = (shading / carried.clamp(min=1e-3)).clamp(*RATIO_RANGE)
    filled_skin = skin & valid & ~seen
    return torch.where(filled_skin, (complete.texture * ratio).clamp(0, 1), complete.texture)


def blend_seam(texture: torch.Tensor, visibility: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Laplacian-pyramid blend of the seen colours over the fill continued beneath them. ``[3, R, R]``."""
    seen = (visibility > SEEN_THRESHOLD) & (valid > 0.5)
    filled = (valid > 0.5) & ~seen
    under = push_pull_fill(texture, filled.float())  # the fill, continued under the seen texels
    fill = torch.where(seen, under, texture) * valid
    alpha = smoothstep(visibility, SEEN_THRESHOLD, KEEP_VISIBILITY) * valid
    return laplacian_blend(texture * valid, fill, alpha, BLEND_LEVELS)


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
    implementation = "embedded: shading re-bake + seam blend"

    def __init__(self, head: HeadModel | None = None):
        self.head = head

    def __call__(self, complete: CompleteUV, unwrapped: Unwrapped, image: torch.Tensor) -> CompleteUV:
        with one_thread():  # many small map ops: a second torch thread only waits on a busy CPU
            return self._refine(complete, unwrapped)

    def _refine(self, complete: CompleteUV, unwrapped: Unwrapped) -> CompleteUV:
        head = self.head or default_head()
        layout = head.uv_layout(complete.resolution)
        visibility = unwrapped.partial.visibility.to(complete.texture) * complete.valid
        skin = layout.region_mask("face", "ears", "neck").to(complete.texture.device) > 0.5
        normals = complete.normals()
        texture = rebake_filled(complete, layout, normals, visibility, skin)
        blended = blend_seam(texture, visibility, complete.valid)
        keep = visibility >= KEEP_VISIBILITY
        texture = torch.where(keep, complete.texture, blended).clamp(0, 1) * complete.valid
        movable = layout.region_mask("face", "scalp", "neck").to(complete.texture.device) > 0.5
        geometry = smooth_unseen_geometry(complete.geometry, visibility, movable)
        return CompleteUV(texture, geometry * complete.valid, complete.valid.clone(), complete.hair)
