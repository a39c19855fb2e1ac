"""Synthetic Gaussian scenes shared by the renderer tests."""
from __future__ import annotations

import math

import torch

from fica.prior.gaussians import GaussianSet


def flat_sphere(n: int, radius_m: float = 0.1, *, tangent_scale: float = 0.8, normal_scale: float = 0.05,
                opacity: float = 0.95, striped: bool = False) -> GaussianSet:
    """Flat Gaussians tiling a sphere (Fibonacci lattice), like the analytic prior's surface splats.

    Scales are ``tangent_scale`` / ``normal_scale`` times the lattice spacing along / across the surface; colours
    follow the normal, with latitude stripes when ``striped``.
    """
    i = torch.arange(n) + 0.5
    polar = torch.acos(1 - 2 * i / n)
    azimuth = math.pi * (1 + 5 ** 0.5) * i
    normal = torch.stack([torch.cos(azimuth) * torch.sin(polar), torch.cos(polar),
                          torch.sin(azimuth) * torch.sin(polar)], 1)
    z = torch.tensor([0.0, 0.0, 1.0]).expand(n, 3)
    quats = torch.nn.functional.normalize(torch.cat([1 + normal[:, 2:], torch.cross(z, normal, dim=1)], 1), dim=1)
    spacing = math.sqrt(4 * math.pi * radius_m ** 2 / n)
    scales = torch.tensor([tangent_scale * spacing, tangent_scale * spacing, normal_scale * spacing]).expand(n, 3)
    colors = (normal + 1) / 2
    if striped:
        colors = colors.clone()
        colors[:, 1] = 0.5 + 0.4 * torch.sin(12 * polar)
    return GaussianSet(radius_m * normal, quats, scales.clone(), torch.full((n,), opacity), colors)
