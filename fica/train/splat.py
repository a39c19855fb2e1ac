"""Differentiable splat rendering for training the prior.

On CUDA: ``gsplat.rasterization`` (differentiable). On a CPU: every Gaussian evaluated at every pixel with the
renderers' projection (``fica.render.projection``) and gsplat's classic alpha compositing in one global depth
order — O(N·H·W) memory, meant for the small renders of tests and smoke training.
"""
from __future__ import annotations

import torch

from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera
from fica.render.gsplat_cuda import gsplat_status
from fica.render.projection import ALPHA_MAX, project_gaussians


def scaled_camera(camera: Camera, factor: float) -> Camera:
    """The same view at ``factor`` × the image size."""
    K = camera.K.clone()
    K[:2] *= factor
    return Camera(camera.viewmat, K, round(camera.width * factor), round(camera.height * factor))


def render_dense(g: GaussianSet, camera: Camera, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb ``[H, W, 3]`` and alpha ``[H, W]`` of ``g`` seen by ``camera``, differentiable in every parameter."""
    H, W = camera.height, camera.width
    means2d, _, conics, depths = project_gaussians(g.means, g.quats, g.scales, camera.viewmat.to(g.means),
                                                   camera.K.to(g.means), W, H)
    order = torch.argsort(depths.detach())
    order = order[depths[order].detach() > 0.01]
    ys, xs = torch.meshgrid(torch.arange(H, device=g.means.device) + 0.5,
                            torch.arange(W, device=g.means.device) + 0.5, indexing="ij")
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # [P, 2]
    d = pix[:, None, :] - means2d[order][None]  # [P, N, 2]
    a, b, c = conics[order].unbind(-1)
    sigma = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]
    alpha = (g.opacities[order] * torch.exp(-sigma.clamp(min=0))).clamp(max=ALPHA_MAX)  # [P, N]
    T = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
    weight = alpha * T
    rgb = weight @ g.colors[order] + (1 - weight.sum(1, keepdim=True)) * background.to(alpha)
    return rgb.view(H, W, 3), weight.sum(1).view(H, W)


def render_train(g: GaussianSet, camera: Camera, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable render: gsplat on CUDA when its extension loads (``fica.render.gsplat_cuda``; never a
    compile), ``render_dense`` elsewhere."""
    if g.means.is_cuda and gsplat_status(g.means.device)[0]:
        from gsplat import rasterization

        colors, alphas, _ = rasterization(g.means, g.quats, g.scales, g.opacities, g.colors,
                                          camera.viewmat[None].to(g.means), camera.K[None].to(g.means),
                                          camera.width, camera.height, backgrounds=background[None].to(g.means))
        return colors[0], alphas[0, ..., 0]
    return render_dense(g, camera, background)
