"""The finished neck: the head model ends in an open cut (one ragged loop of chart-border texels at the bottom of
the neck), through which a camera below the chin sees into the head. Here the neck is cut again, cleanly, by a
plane just above that loop, and the cut is closed by a flat cap of Gaussians coloured like the shaded underside
of the neck, as a sculpted bust is.

``neck_cut``: the plane (fitted to the loop, lifted above its highest texel); ``height_above``: signed heights of
points over it; ``neck_fade``: texel opacity factors that end the neck at the plane within ``EDGE_M``;
``neck_cap``: the cap's Gaussians, a polar grid filling the neck's cross-section at the plane.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fica.prior.gaussians import GaussianSet

LIFT_M = 0.003  # the cut plane passes this far above the highest texel of the open loop
EDGE_M = 0.002  # the neck fades out over this height below the plane (an anti-aliased edge, no staircase)
CAP_SHADE = 0.75  # the cap's colour: the lower neck's, darkened as an underside in shadow
CAP_SPREAD = 0.8  # the cap's tangential scale in grid spacings (the polar grid is less regular than the chart's)
CAP_THICKNESS = 0.12  # normal scale as a fraction of the tangential one
ANGLE_BINS = 96  # directions in which the cross-section's radius is measured
SECTION_BAND = 1.5  # texels within this many spacings of the plane outline the cross-section
COLOUR_BAND_M = 0.03  # the cap takes the median colour of the neck up to this height above the plane


@dataclass
class NeckCut:
    """A plane: ``origin [3]`` on it, ``normal [3]`` unit, pointing out of the head (down the neck)."""

    origin: torch.Tensor
    normal: torch.Tensor


def neck_cut(loop: torch.Tensor) -> NeckCut:
    """The cut plane for the open loop's texel positions ``loop [M, 3]`` (head frame, metres): their best-fit
    plane, moved up until every loop texel lies at least ``LIFT_M`` below it."""
    centre = loop.mean(0)
    _, _, v = torch.linalg.svd(loop - centre, full_matrices=False)
    normal = v[-1] * torch.where(v[-1, 1] > 0, -1.0, 1.0)  # the least-spread direction, pointing down
    lift = float(((loop - centre) @ -normal).max()) + LIFT_M
    return NeckCut(centre - lift * normal, normal)


def height_above(points: torch.Tensor, cut: NeckCut) -> torch.Tensor:
    """Signed height ``[N]`` (metres) of ``points [N, 3]`` above the cut plane (negative below it)."""
    return (points - cut.origin) @ -cut.normal


def neck_fade(heights: torch.Tensor) -> torch.Tensor:
    """Opacity factor ``[N]`` of texels at ``heights [N]`` above the cut: 1 above it, smoothly 0 at ``EDGE_M``
    below it."""
    t = (1 + heights / EDGE_M).clamp(0, 1)
    return t * t * (3 - 2 * t)


def neck_cap(positions: torch.Tensor, colors: torch.Tensor, heights: torch.Tensor, spacing_m: float,
             cut: NeckCut) -> GaussianSet:
    """Gaussians closing the neck at the cut plane.

    positions ``[N, 3]``, colors ``[N, 3]`` and heights ``[N]`` (``height_above``) of the neck's texels;
    spacing_m: their typical spacing. The cross-section is outlined by the texels near the plane: its radius
    about their centroid is measured in ``ANGLE_BINS`` directions (empty directions interpolated), and rings of
    Gaussians fill it from the centre out to the outline, about ``spacing_m`` apart.
    """
    e1 = torch.nn.functional.normalize(torch.cross(cut.normal, positions.new_tensor([0.0, 0.0, 1.0]), dim=0), dim=0)
    e2 = torch.cross(cut.normal, e1, dim=0)
    near = heights.abs() < SECTION_BAND * spacing_m
    flat = torch.stack([(positions[near] - cut.origin) @ e1, (positions[near] - cut.origin) @ e2], 1)  # [K, 2]
    centre = flat.mean(0)
    offset = flat - centre
    angle = torch.atan2(offset[:, 1], offset[:, 0])
    bins = ((angle + math.pi) / (2 * math.pi) * ANGLE_BINS).long().clamp(0, ANGLE_BINS - 1)
    radius = torch.zeros(ANGLE_BINS).scatter_reduce(0, bins, offset.norm(dim=1), "amax", include_self=False)
    radius = _fill_circular(radius)

    rings = max(1, math.ceil(float(radius.mean()) / spacing_m))
    points = []
    for k in range(rings + 1):
        count = max(1, round(2 * math.pi * k * float(radius.mean()) / rings / spacing_m))
        theta = (torch.arange(count) + 0.5 * (k % 2)) * (2 * math.pi / count) - math.pi
        at = ((theta + math.pi) / (2 * math.pi) * ANGLE_BINS).long() % ANGLE_BINS
        r = (radius[at] - spacing_m) * k / rings  # the outer ring stays inside the neck's wall
        points.append(torch.stack([r * theta.cos(), r * theta.sin()], 1))
    flat_cap = centre + torch.cat(points)  # [C, 2]
    means = cut.origin + flat_cap[:, :1] * e1 + flat_cap[:, 1:] * e2
    n = len(means)
    # Round in the plane, so only the thin axis needs turning: the shortest arc from +z to the normal.
    z_to_normal = torch.stack([1 + cut.normal[2], -cut.normal[1], cut.normal[0], cut.normal.new_zeros(())])
    quats = torch.nn.functional.normalize(z_to_normal, dim=0).expand(n, 4)
    s = CAP_SPREAD * spacing_m
    scales = positions.new_tensor([s, s, CAP_THICKNESS * s]).expand(n, 3)
    band = (heights >= 0) & (heights < COLOUR_BAND_M)
    colour = colors[band].median(0).values * CAP_SHADE
    return GaussianSet(means.contiguous(), quats.contiguous(), scales.contiguous(), positions.new_ones(n),
                       colour.expand(n, 3).contiguous())


def _fill_circular(values: torch.Tensor) -> torch.Tensor:
    """``values [B]`` around a circle with zeros (empty bins) replaced by linear interpolation between the nearest
    non-empty bins on either side."""
    filled = values.nonzero()[:, 0]
    if len(filled) == 0:
        return values
    b = len(values)
    idx = torch.arange(b)
    after = torch.searchsorted(filled, idx) % len(filled)
    before = (after - 1) % len(filled)
    lo, hi = filled[before], filled[after]
    span = (hi - lo) % b
    t = torch.where(span > 0, ((idx - lo) % b).float() / span.clamp(min=1), torch.zeros(b))
    out = values[lo] * (1 - t) + values[hi] * t
    return torch.where(values > 0, values, out)
