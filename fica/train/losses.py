"""Loss terms shared by the recipes (image space and UV space)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean structural similarity of images ``[B, C, H, W]`` in 0..1 (box window)."""
    mu_a, mu_b = (F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False) for x in (a, b))
    var_a = F.avg_pool2d(a * a, window, 1, window // 2, count_include_pad=False) - mu_a ** 2
    var_b = F.avg_pool2d(b * b, window, 1, window // 2, count_include_pad=False) - mu_b ** 2
    cov = F.avg_pool2d(a * b, window, 1, window // 2, count_include_pad=False) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean()


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − SSIM averaged over two scales, images ``[B, 3, H, W]`` in 0..1 (needs no pretrained network)."""
    return 1 - 0.5 * (ssim(a, b) + ssim(F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)))


def image_loss(a: torch.Tensor, b: torch.Tensor, term: str = "ssim") -> torch.Tensor:
    """The image term next to L1: ``"ssim"`` (``ssim_loss``) or ``"vgg"`` (``fica.train.perceptual``,
    pretrained VGG-16 features from the Hub). Images ``[B, 3, H, W]`` in 0..1."""
    if term == "ssim":
        return ssim_loss(a, b)
    if term == "vgg":
        from fica.train.perceptual import vgg_loss

        return vgg_loss(a, b)
    raise ValueError(f"Unknown image loss '{term}' (ssim or vgg)")


def uv_laplacian(maps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |Δ maps| over the chart, maps ``[B, C, R, R]``, valid ``[B, 1, R, R]`` (5-point stencil)."""
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], device=maps.device, dtype=maps.dtype)
    kernel = kernel.view(1, 1, 3, 3).repeat(maps.shape[1], 1, 1, 1)
    lap = F.conv2d(F.pad(maps * valid, (1, 1, 1, 1), mode="replicate"), kernel, groups=maps.shape[1])
    inner = F.avg_pool2d(valid, 3, 1, 1) > 0.99  # texels whose whole stencil is in the chart
    return (lap.abs() * inner).sum() / (inner.sum() * maps.shape[1]).clamp(min=1)


def soft_silhouette(pixels: torch.Tensor, weights: torch.Tensor, height: int, width: int,
                    blur_px: float = 0.5) -> torch.Tensor:
    """Differentiable coverage ``[H, W]`` of projected surface samples ``pixels [N, 2]`` (x, y; centres +0.5):
    bilinear splats of ``weights [N]``, blurred, then 1 − exp(−density)."""
    p = pixels - 0.5
    x0, y0 = p[:, 0].floor().detach(), p[:, 1].floor().detach()
    density = torch.zeros(height * width, device=pixels.device, dtype=pixels.dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (p[:, 0] - xi).abs()) * (1 - (p[:, 1] - yi).abs()) * weights
            inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            density = density.index_add(0, (yi * width + xi)[inside].long(), w[inside])
    r = max(1, int(2 * blur_px))
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, device=pixels.device, dtype=pixels.dtype) / blur_px) ** 2)
    g = g / g.sum()
    img = density.view(1, 1, height, width)
    img = F.conv2d(F.conv2d(img, g.view(1, 1, 1, -1), padding=(0, r)), g.view(1, 1, -1, 1), padding=(r, 0))
    return 1 - torch.exp(-3.0 * img[0, 0])
