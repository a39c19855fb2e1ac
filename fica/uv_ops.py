"""Operations on UV maps shared by the stages: hole filling, erosion, multi-band blending, a sphere
fit for the points a map holds, and resampling to a network's resolution.

Maps are ``[C, R, R]`` float tensors (any square or rectangular size works), masks and weights ``[1, R, R]``
in 0..1. Nothing here knows about heads; the stages decide which texels are known and where to write.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _down(x: torch.Tensor) -> torch.Tensor:
    """Halve ``[C, H, W]`` by 2×2 averaging (odd sizes round up)."""
    return F.avg_pool2d(x[None], 2, ceil_mode=True)[0]


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``[C, h, w]`` to ``size``."""
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]


def push_pull_fill(values: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Fill a map from its known texels with a push-pull pyramid (weighted means pushed down, pulled back up).

    values: ``[C, H, W]``; weights: ``[1, H, W]`` 0..1 (0 = unknown). Returns ``[C, H, W]`` defined everywhere:
    texels with weight 1 keep their value, holes take a smooth blend of the nearest known texels' colours.
    Without any known texel the result is zero.
    """
    weights = weights.clamp(0, 1)
    levels = [(values * weights, weights)]
    while min(levels[-1][1].shape[-2:]) > 1:
        v, w = levels[-1]
        levels.append((_down(v), _down(w)))
    v, w = levels[-1]
    filled = v / w.clamp(min=eps) * (w > eps)
    for v, w in reversed(levels[:-1]):
        coarse = _up(filled, tuple(v.shape[-2:]))
        known = v / w.clamp(min=eps)
        a = w.clamp(0, 1)
        filled = a * known + (1 - a) * coarse
    return filled


def neighbour_mean(values: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """Mean of each texel's 4-neighbours that lie inside ``domain``.

    values: ``[C, H, W]``; domain: ``[1, H, W]`` (0/1). Returns ``[C, H, W]``; texels without such a
    neighbour keep their own value.
    """
    kernel = values.new_tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    stacked = torch.cat([values * domain, domain])[:, None]  # [C + 1, 1, H, W]
    sums = F.conv2d(stacked, kernel, padding=1)[:, 0]
    total, count = sums[:-1], sums[-1:]
    return torch.where(count > 0, total / count.clamp(min=1), values)


def harmonic_fill(values: torch.Tensor, known: torch.Tensor, domain: torch.Tensor,
                  iterations: int = 30) -> torch.Tensor:
    """Fill the unknown texels of ``domain`` smoothly from the known ones.

    A push-pull fill started from the known texels, then ``iterations`` Jacobi sweeps of the Laplace equation
    restricted to ``domain`` (neighbours outside it are ignored, so separate chart islands do not mix). Only the
    bounding box of ``domain`` and ``known`` is worked on.
    values: ``[C, H, W]``; known, domain: ``[1, H, W]`` 0/1. Returns ``[C, H, W]``: known texels unchanged,
    unknown texels of ``domain`` filled, texels outside ``domain`` and not known unchanged from ``values``.
    """
    region = (domain > 0.5) | (known > 0.5)
    if not bool((known > 0.5).any()):
        return values
    rows, cols = region[0].any(1).nonzero()[:, 0], region[0].any(0).nonzero()[:, 0]
    window = (slice(None), slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    known_w = (known[window] > 0.5).float()
    write = (domain[window] > 0.5).float() * (1 - known_w)
    x = push_pull_fill(values[window], known_w)
    for _ in range(iterations):
        x = torch.where(write > 0, neighbour_mean(x, region[window].float()), x)
    out = values.clone()
    out[window] = torch.where(write > 0, x, values[window])
    return out


def erode(mask: torch.Tensor, radius_px: int) -> torch.Tensor:
    """Binary erosion of ``[1, H, W]`` (texels outside the map count as outside the mask)."""
    if radius_px <= 0:
        return mask
    padded = F.pad(mask, (radius_px,) * 4)
    return -F.max_pool2d(-padded[None], 2 * radius_px + 1, stride=1)[0]


def dilate(mask: torch.Tensor, radius_px: int) -> torch.Tensor:
    """Binary dilation of ``[1, H, W]`` (square structuring element of side ``2 * radius_px + 1``)."""
    if radius_px <= 0:
        return mask
    return F.max_pool2d(mask[None], 2 * radius_px + 1, stride=1, padding=radius_px)[0]


def laplacian_blend(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Multi-band blend of ``a`` over ``b``: each band of a Laplacian pyramid mixed with a blurred ``alpha``.

    Fine detail switches over a narrow seam, low frequencies over a wide one, so colour shifts between
    ``a`` and ``b`` fade out instead of showing an edge. a, b: ``[C, H, W]``; alpha: ``[1, H, W]`` 0..1
    (1 = take ``a``). Where alpha is 1 (or 0) over the reach of every band the result equals ``a`` (``b``).
    """
    def pyramid(x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        for _ in range(levels):
            if min(out[-1].shape[-2:]) < 2:
                break
            out.append(_down(out[-1]))
        return out

    ga, gb, gm = pyramid(a), pyramid(b), pyramid(alpha)
    blended = gm[-1] * ga[-1] + (1 - gm[-1]) * gb[-1]
    for k in range(len(ga) - 2, -1, -1):
        size = tuple(ga[k].shape[-2:])
        la = ga[k] - _up(ga[k + 1], size)
        lb = gb[k] - _up(gb[k + 1], size)
        blended = _up(blended, size) + gm[k] * la + (1 - gm[k]) * lb
    return blended


def smoothstep(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """0 below ``lo``, 1 above ``hi``, a smooth cubic between (elementwise)."""
    t = ((x - lo) / (hi - lo)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def sphere_centre(points: torch.Tensor) -> torch.Tensor:
    """Least-squares sphere centre ``[3]`` through ``points [N, 3]`` (N >= 4, not coplanar), e.g. an eyeball's
    texels: solves |p|² = 2 c·p + (r² - |c|²) for c."""
    A = torch.cat([2 * points, torch.ones_like(points[:, :1])], dim=1).double()
    b = (points.double() ** 2).sum(1, keepdim=True)
    return torch.linalg.lstsq(A, b).solution[:3, 0].to(points.dtype)


def resample(maps: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[C, R, R]`` -> ``[C, S, S]`` (area when shrinking, bilinear when growing)."""
    if maps.shape[-1] == resolution:
        return maps
    mode = "area" if maps.shape[-1] > resolution else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(maps[None], size=(resolution, resolution), mode=mode, **kwargs)[0]


def weighted_blur(values: torch.Tensor, weights: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Normalised Gaussian blur: the ``weights``-weighted mean of ``values`` around each texel.

    values: ``[C, H, W]``; weights: ``[1, H, W]`` 0..1; sigma_px: the Gaussian's standard deviation in texels.
    Returns ``[C, H, W]``, zero where no weight is within reach.
    """
    radius = max(1, int(round(3 * sigma_px)))
    x = torch.arange(-radius, radius + 1, dtype=values.dtype, device=values.device)
    kernel = torch.exp(-0.5 * (x / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    stacked = torch.cat([values * weights, weights])[:, None]  # [C + 1, 1, H, W]
    stacked = F.conv2d(stacked, kernel.reshape(1, 1, 1, -1), padding=(0, radius))
    stacked = F.conv2d(stacked, kernel.reshape(1, 1, -1, 1), padding=(radius, 0))[:, 0]
    total, weight = stacked[:-1], stacked[-1:]
    return torch.where(weight > 1e-6, total / weight.clamp(min=1e-6), torch.zeros_like(total))


def cap_luminance(texture: torch.Tensor, reference: torch.Tensor, target: torch.Tensor, quantile: float
                  ) -> torch.Tensor:
    """Scale down the ``target [1, H, W]`` (bool) texels of ``texture [3, H, W]`` whose luminance (channel mean)
    exceeds the ``quantile`` of the luminance over the ``reference [1, H, W]`` (bool) texels; hue is kept.
    Unchanged when fewer than 20 reference texels. Returns ``[3, H, W]``."""
    luminance = texture.mean(0, keepdim=True)
    values = luminance[reference]
    if values.numel() < 20:
        return texture
    ceiling = torch.quantile(values, quantile)
    scale = (ceiling / luminance.clamp(min=1e-6)).clamp(max=1.0)
    return torch.where(target, texture * scale, texture)


def close_seams(values: torch.Tensor, partner: torch.Tensor, spacing: torch.Tensor, fixed: torch.Tensor,
                domain: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """Make ``values [C, H, W]`` agree across the cuts of a chart: ``partner [H, W]`` (long) holds, for texels on a
    cut, the flat index (row × W + column) of the texel that continues the surface on the other side (-1 for
    none). A ``domain [1, H, W]`` texel on a cut and its partner meet at a value between theirs; the correction
    is spread smoothly (``harmonic_fill``) over the rest of ``domain``, zero at the ``fixed [1, H, W]`` texels
    (which never move; a texel whose partner is fixed takes the partner's value). The two sides share the step in
    proportion to their texel ``spacing [1, H, W]`` (size on the surface): spread over as many texels on either
    side, the change is then as gradual on the surface on both. Partners outside ``domain`` and ``fixed`` are
    ignored. Returns ``[C, H, W]``."""
    channels = values.shape[0]
    flat, size = values.reshape(channels, -1), spacing.reshape(-1)
    free, held = domain.reshape(-1) > 0.5, fixed.reshape(-1) > 0.5
    target = partner.reshape(-1).clamp(min=0)
    cut = free & (partner.reshape(-1) >= 0) & (free[target] | held[target])
    if not bool(cut.any()):
        return values
    share = torch.where(free[target], size / (size + size[target]).clamp(min=1e-12), torch.ones_like(size))
    correction = torch.zeros_like(flat)
    correction[:, cut] = share[cut] * (flat[:, target[cut]] - flat[:, cut])
    correction = correction.reshape(values.shape)
    cut_map, held_map = cut.reshape(domain.shape), held.reshape(domain.shape)
    correction = harmonic_fill(correction, (cut_map | held_map).float(), (domain > 0.5).float(), iterations)
    return values + correction * (domain > 0.5) * ~held_map
