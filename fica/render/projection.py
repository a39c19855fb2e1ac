"""Projection of 3D Gaussians into a pinhole camera, as gsplat does it, and the constants its compositing uses.

Shared by every renderer in ``fica.render`` (the exact compositor, surface splatting) and by training's dense
renderer, so each of them projects and culls with the same maths.
"""
from __future__ import annotations

import torch

from fica.rotations import quat_to_matrix_rows

EPS2D = 0.3  # px², the low-pass dilation gsplat adds to every projected covariance
NEAR_PLANE_M = 0.01
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999


def project_gaussians(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, viewmat: torch.Tensor,
                      K: torch.Tensor, width: int, height: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA splatting of 3D Gaussians into a pinhole camera, as gsplat does it: Σ₂ = J W R S² Rᵀ Wᵀ Jᵀ + 0.3 I.

    means ``[N, 3]``, quats ``[N, 4]`` (w, x, y, z; normalised here), scales ``[N, 3]``, viewmat ``[4, 4]``,
    K ``[3, 3]``. Returns means2d ``[N, 2]`` (px, centres at integer + 0.5), cov2d ``[N, 3]`` (xx, xy, yy in
    px², dilated by EPS2D), conics ``[N, 3]`` (a, b, c of Σ₂⁻¹ = [[a, b], [b, c]]), depths ``[N]`` (camera z, m).
    """
    means2d, cov2d, conics, depths = project_gaussian_rows(means, quat_to_matrix_rows(quats), scales.T.contiguous(),
                                                           viewmat, K, width, height)
    return means2d.T.contiguous(), cov2d.T.contiguous(), conics.T.contiguous(), depths


def project_gaussian_rows(means: torch.Tensor, rotation: torch.Tensor, scales: torch.Tensor, viewmat: torch.Tensor,
                          K: torch.Tensor, width: int, height: int
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``project_gaussians`` with rotations and scales given as rows, ``[9, N]`` (``quat_to_matrix_rows``) and
    ``[3, N]``, and results as rows: means2d ``[2, N]``, cov2d ``[3, N]``, conics ``[3, N]``, depths ``[N]``.
    Computed component-wise on ``[3, N]`` rows rather than with batched 3×3 products, which are slow on a CPU.
    """
    W, t = viewmat[:3, :3], viewmat[:3, 3]
    tx, ty, tz = (W @ means.T + t[:, None]).unbind(0)  # camera frame, each [N]
    M = (W @ rotation.reshape(3, 3 * len(means))).view(3, 3, -1) * scales[None]  # W R S, [3, 3, N]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # Evaluate the Jacobian at most 30 % of the half field of view outside the image, like gsplat, so that
    # Gaussians far off to the side do not blow up.
    margin_x, margin_y = 0.3 * 0.5 * width / fx, 0.3 * 0.5 * height / fy
    txc = tz * (tx / tz).clamp(-(cx / fx + margin_x), (width - cx) / fx + margin_x)
    tyc = tz * (ty / tz).clamp(-(cy / fy + margin_y), (height - cy) / fy + margin_y)
    JM_x = (fx / tz) * M[0] - (fx * txc / tz ** 2) * M[2]  # first row of J W R S, [3, N]
    JM_y = (fy / tz) * M[1] - (fy * tyc / tz ** 2) * M[2]
    xx, xy, yy = (JM_x * JM_x).sum(0) + EPS2D, (JM_x * JM_y).sum(0), (JM_y * JM_y).sum(0) + EPS2D
    det = (xx * yy - xy * xy).clamp(min=1e-10)
    conics = torch.stack([yy / det, -xy / det, xx / det])
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy])
    return means2d, torch.stack([xx, xy, yy]), conics, tz
