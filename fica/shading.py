"""Low-order lighting of a UV texture: second-order spherical-harmonic shading fitted on seen skin.

The portrait's shading is baked into the colours it shows. A luminance shading ``s(n)`` fitted against the
surface normals turns those colours into an albedo (``rgb / s(n)``) that can be copied to the other side of the
face and lit again there with that side's own normal. Maps are ``[C, R, R]``, masks ``[1, R, R]`` bool.
"""
from __future__ import annotations

import torch

SH_RIDGE = 1e-3
# Terms odd in x (x, xy, xz) make the light differ between the two sides of the face. Seen from one side, a
# light falling off toward the ear is as well explained by them as by the symmetric terms, and they would then
# darken or brighten the whole unseen side; a stronger ridge lets them in only when the data ask for it.
ASYMMETRIC_RIDGE = 0.05
ASYMMETRIC_TERMS = (3, 4, 7)
MIN_FIT_TEXELS = 100
SHADING_FLOOR, SHADING_CEILING = 0.3, 2.0  # the fitted shading, relative to its mean on the fit texels


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
    ridge[list(ASYMMETRIC_TERMS)] = ASYMMETRIC_RIDGE
    coeffs = None
    for _ in range(2):
        Aw = A * w[:, None]
        coeffs = torch.linalg.solve(Aw.T @ A + torch.diag(ridge) * w.sum(), Aw.T @ b)
        residual = b - A @ coeffs
        sigma = 1.4826 * residual.abs().median()
        w = w * (residual.abs() <= 2.5 * sigma.clamp(min=1e-6))
    return coeffs.float()


def shading_map(rgb: torch.Tensor, normals: torch.Tensor, fit: torch.Tensor) -> torch.Tensor | None:
    """Luminance shading ``[1, R, R]`` of ``rgb [3, R, R]`` fitted on the ``fit [1, R, R]`` texels against
    ``normals [3, R, R]`` (unit): mean 1 over the fit texels, clamped to the range it takes there (so it does not
    run away on normals the portrait never showed). None when fewer than ``MIN_FIT_TEXELS`` are given."""
    if int(fit.sum()) < MIN_FIT_TEXELS:
        return None
    luminance = rgb.mean(0)
    n = normals.permute(1, 2, 0)  # [R, R, 3]
    coeffs = fit_sh_shading(luminance[fit[0]], n[fit[0]], luminance.new_ones(int(fit.sum())))
    shading = (sh_basis(n) @ coeffs)[None]  # [1, R, R]
    fitted = shading[fit]
    mean = fitted.mean()
    if mean <= 1e-3:
        return None
    lo, hi = torch.quantile(fitted, 0.02) / mean, torch.quantile(fitted, 0.98) / mean
    return (shading / mean).clamp(lo.clamp(min=SHADING_FLOOR), hi.clamp(max=SHADING_CEILING))
