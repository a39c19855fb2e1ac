"""Splat rasterisation: 3D Gaussians + camera -> image (DESIGN.md §5 Render).

Two backends with one functional signature, gsplat-style (plain tensors in, plain tensors out):

- ``rasterize_gsplat``: ``gsplat.rasterization`` (CUDA only).
- ``rasterize_torch``: our CPU compositor, the same maths as gsplat's "classic" mode — EWA projection with a
  0.3 px² low-pass dilation, alpha = min(0.999, opacity · exp(−½ dᵀ Σ⁻¹ d)), contributions below 1/255 skipped,
  front-to-back compositing by Gaussian depth within 8×8-pixel tiles, a pixel stops (exclusively) once its
  transmittance would fall to 1e-4. Gaussians are culled when behind the near plane, off-screen or too faint,
  their tile footprints are sized by the projected covariance (opacity-aware 3-sigma box), and tiles stop
  being processed once every pixel in them is opaque, so the back of a head costs almost nothing.

``render(gaussians, camera)`` picks the backend from the tensors' device.
"""
from __future__ import annotations

import math
import os

import torch

from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera

EPS2D = 0.3  # px², the low-pass dilation gsplat adds to every projected covariance
NEAR_PLANE_M = 0.01
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
LOG_ALPHA_MIN = math.log(ALPHA_MIN)
T_MIN = 1e-4  # a pixel is done once its transmittance would fall to this
MAX_EXTEND_SIGMA = 3.33
TILE = 8  # px, side of the square tiles the CPU compositor works on
CHUNK = 16  # Gaussians composited per tile per step

_threads_set = False


def _use_all_cores() -> None:
    global _threads_set
    if not _threads_set:
        torch.set_num_threads(max(torch.get_num_threads(), os.cpu_count() or 1))
        _threads_set = True


def quat_scale_to_covariance(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Σ = R S² Rᵀ. quats ``[N, 4]`` (w, x, y, z; normalised here), scales ``[N, 3]`` -> ``[N, 3, 3]``."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    R = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(-1, 3, 3)
    M = R * scales[:, None, :]
    return M @ M.transpose(1, 2)


def project_gaussians(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, viewmat: torch.Tensor,
                      K: torch.Tensor, width: int, height: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA splatting of 3D Gaussians into a pinhole camera, as gsplat does it.

    means ``[N, 3]``, quats ``[N, 4]``, scales ``[N, 3]``, viewmat ``[4, 4]``, K ``[3, 3]``.
    Returns means2d ``[N, 2]`` (px, centres at integer + 0.5), cov2d ``[N, 2, 2]`` (px², dilated by EPS2D),
    conics ``[N, 3]`` (upper triangle of cov2d⁻¹: a, b, c), depths ``[N]`` (camera z, metres).
    """
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    mean_c = means @ R.T + t  # [N, 3]
    cov_c = R @ quat_scale_to_covariance(quats, scales) @ R.T  # [N, 3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tx, ty, tz = mean_c.unbind(-1)
    # Evaluate the Jacobian at most 30 % of the half field of view outside the image, like gsplat, so that
    # Gaussians far off to the side do not blow up.
    margin_x, margin_y = 0.3 * 0.5 * width / fx, 0.3 * 0.5 * height / fy
    txc = tz * (tx / tz).clamp(-(cx / fx + margin_x), (width - cx) / fx + margin_x)
    tyc = tz * (ty / tz).clamp(-(cy / fy + margin_y), (height - cy) / fy + margin_y)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * txc / tz ** 2, zero, fy / tz, -fy * tyc / tz ** 2], -1).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(1, 2) + EPS2D * torch.eye(2, dtype=means.dtype, device=means.device)
    det = (cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]).clamp(min=1e-10)
    conics = torch.stack([cov2d[:, 1, 1] / det, -0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]) / det,
                          cov2d[:, 0, 0] / det], -1)
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)
    return means2d, cov2d, conics, tz


def _visible_footprints(means2d: torch.Tensor, cov2d: torch.Tensor, depths: torch.Tensor, opacities: torch.Tensor,
                        width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cull and size footprints. Returns kept indices ``[M]`` and their pixel radii ``[M, 2]`` (x, y)."""
    extend = torch.sqrt(2 * torch.log((opacities / ALPHA_MIN).clamp(min=1.0))).clamp(max=MAX_EXTEND_SIGMA)
    radii = torch.ceil(extend[:, None] * torch.sqrt(torch.stack([cov2d[:, 0, 0], cov2d[:, 1, 1]], -1)))
    det = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    keep = ((depths > NEAR_PLANE_M) & (opacities >= ALPHA_MIN) & (det > 0) & (radii.amax(-1) > 0)
            & (means2d[:, 0] + radii[:, 0] > 0) & (means2d[:, 0] - radii[:, 0] < width)
            & (means2d[:, 1] + radii[:, 1] > 0) & (means2d[:, 1] - radii[:, 1] < height))
    idx = keep.nonzero().squeeze(1)
    return idx, radii[idx]


def _tile_lists(means2d: torch.Tensor, radii: torch.Tensor, tiles_x: int, tiles_y: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which Gaussians touch which tile. Gaussians must come in depth order (nearest first).

    means2d ``[M, 2]``, radii ``[M, 2]``. Returns, for the P (tile, Gaussian) intersections grouped by tile and
    in depth order within a tile: Gaussian ids ``[P]``, and per tile ``[tiles_y * tiles_x]`` the start and count.
    """
    lo = ((means2d - radii) / TILE).floor().long()
    hi = ((means2d + radii) / TILE).floor().long()
    x0, y0 = lo[:, 0].clamp(0, tiles_x - 1), lo[:, 1].clamp(0, tiles_y - 1)
    x1, y1 = hi[:, 0].clamp(0, tiles_x - 1), hi[:, 1].clamp(0, tiles_y - 1)
    nx = x1 - x0 + 1
    counts = nx * (y1 - y0 + 1)
    gid = torch.repeat_interleave(torch.arange(len(counts)), counts)
    local = torch.arange(len(gid)) - (torch.cumsum(counts, 0) - counts)[gid]
    tile = (y0[gid] + local // nx[gid]) * tiles_x + x0[gid] + local % nx[gid]
    order = torch.sort(tile.int(), stable=True).indices  # tile-major; stable keeps the depth order
    n_tiles = tiles_x * tiles_y
    tile_count = torch.bincount(tile, minlength=n_tiles)
    tile_start = torch.cumsum(tile_count, 0) - tile_count
    return gid[order], tile_start, tile_count


def rasterize_torch(means: torch.Tensor,  # [N, 3] head frame, metres
                    quats: torch.Tensor,  # [N, 4] (w, x, y, z)
                    scales: torch.Tensor,  # [N, 3] linear, metres
                    opacities: torch.Tensor,  # [N] 0..1
                    colors: torch.Tensor,  # [N, 3]
                    viewmat: torch.Tensor,  # [4, 4] world -> camera
                    K: torch.Tensor,  # [3, 3]
                    width: int, height: int,
                    background: torch.Tensor,  # [3]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU splat rasteriser with gsplat's classic semantics. Returns rgb ``[H, W, 3]``, alpha ``[H, W]``."""
    _use_all_cores()
    device = means.device
    f32 = dict(dtype=torch.float32, device=device)
    means, quats, scales, opacities, colors, viewmat, K = (
        x.to(**f32) for x in (means, quats, scales, opacities, colors, viewmat, K))
    background = torch.as_tensor(background, **f32)
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    n_tiles = tiles_x * tiles_y
    color_acc = torch.zeros(n_tiles, TILE * TILE, 3, **f32)
    T = torch.ones(n_tiles, TILE * TILE, **f32)

    with torch.no_grad():
        means2d, cov2d, conics, depths = project_gaussians(means, quats, scales, viewmat, K, width, height)
        idx, radii = _visible_footprints(means2d, cov2d, depths, opacities, width, height)
        order = torch.argsort(depths[idx])
        idx, radii = idx[order], radii[order]
        _composite(idx, radii, means2d, conics, opacities, colors, tiles_x, tiles_y, color_acc, T)

    def untile(x: torch.Tensor) -> torch.Tensor:  # [n_tiles, TILE², C] -> [H, W, C]
        x = x.reshape(tiles_y, tiles_x, TILE, TILE, -1).permute(0, 2, 1, 3, 4)
        return x.reshape(tiles_y * TILE, tiles_x * TILE, -1)[:height, :width]

    T_img = untile(T[..., None])
    rgb = untile(color_acc) + T_img * background
    return rgb, 1.0 - T_img[..., 0]


def _composite(idx: torch.Tensor, radii: torch.Tensor, means2d: torch.Tensor, conics: torch.Tensor,
               opacities: torch.Tensor, colors: torch.Tensor, tiles_x: int, tiles_y: int,
               color_acc: torch.Tensor, T: torch.Tensor) -> None:
    """Front-to-back compositing of the kept Gaussians ``idx [M]`` (depth order) into the tiles, in place.

    color_acc ``[tiles, TILE², 3]`` accumulates Σ cᵢ αᵢ Tᵢ, T ``[tiles, TILE²]`` the transmittance.
    Each step takes the next CHUNK Gaussians of every tile that still has a transparent pixel and evaluates them
    at all the tile's pixels: log αᵢ is a quadratic in the pixel's offset (u, v) from the tile corner, so one
    matrix product [A·B, 6] × [6, TILE²] gives every exponent; a cumulative product along the chunk composites.
    """
    if len(idx) == 0:
        return
    gid, tile_start, tile_count = _tile_lists(means2d[idx], radii, tiles_x, tiles_y)
    n_pairs = len(gid)
    dtype, device = T.dtype, T.device
    # One row per kept Gaussian: centre, conic, log opacity, colour; one more (opacity 0) pads short tile lists
    # and starts every chunk.
    pad = len(idx)
    table = torch.cat([means2d[idx], conics[idx], torch.log(opacities[idx, None]), colors[idx]], 1)  # [M, 9]
    table = torch.cat([table, table.new_tensor([[0, 0, 1, 0, 1, -1e4, 0, 0, 0]])])
    offset = torch.arange(TILE, dtype=dtype, device=device) + 0.5
    v, u = torch.meshgrid(offset, offset, indexing="ij")  # pixel centres within a tile, row-major
    u, v = u.reshape(-1), v.reshape(-1)
    monomials = torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)])  # [6, TILE²]

    live = torch.ones_like(T)  # 1 until gsplat would stop the pixel
    tile_ids = torch.arange(tiles_x * tiles_y, device=device)
    active = tile_ids[tile_count > 0]
    rank = torch.arange(-1, CHUNK, device=device)  # column 0: the padding row
    for first in range(0, int(tile_count.max()), CHUNK):
        active = active[(tile_count[active] > first) & (live[active].amax(1) > 0)]
        if len(active) == 0:
            break
        n = len(active)
        r = first + rank
        g = torch.where((r >= first) & (r < tile_count[active, None]),
                        gid[(tile_start[active, None] + r).clamp(0, n_pairs - 1)], pad)  # [A, B + 1]
        corner = torch.stack([(active % tiles_x) * TILE, (active // tiles_x) * TILE], -1).to(dtype)  # [A, 2]
        p = table.index_select(0, g.view(-1)).view(n, CHUNK + 1, 9)
        dx = corner[:, None, 0] - p[..., 0]  # [A, B + 1] tile corner minus Gaussian centre
        dy = corner[:, None, 1] - p[..., 1]
        ha, b, hc = -0.5 * p[..., 2], -p[..., 3], -0.5 * p[..., 4]
        coeffs = torch.stack([ha, b, hc, 2 * ha * dx + b * dy, b * dx + 2 * hc * dy,
                              ha * dx * dx + b * dx * dy + hc * dy * dy + p[..., 5]], -1)  # [A, B + 1, 6]
        log_alpha = (coeffs.view(-1, 6) @ monomials).view(n, CHUNK + 1, -1)  # [A, B + 1, TILE²]
        # Below 1/255 a Gaussian is skipped: its α becomes 1e-13, an exact 1 in 1 − α (−inf would slow exp down).
        log_alpha = torch.nn.functional.threshold_(log_alpha, LOG_ALPHA_MIN, -30.0)
        alpha = log_alpha.exp_().clamp_(max=ALPHA_MAX)
        trans = alpha.neg_().add_(1)
        trans[:, 0] = T[active] * live[active]
        trans = trans.cumprod_(1)  # [T0, T0(1−α1), T0(1−α1)(1−α2), ...]
        delta = trans[:, 1:] - trans[:, :-1]  # −αᵢ Tᵢ, [A, B, TILE²]
        ended = (trans[:, -1] <= T_MIN) & (live[active] > 0)
        if bool(ended.any()):  # gsplat stops a pixel just before the Gaussian that would end it
            delta.masked_fill_(trans[:, 1:] <= T_MIN, 0.0)
            live[active] *= (~ended).to(dtype)
        color_acc[active] -= torch.bmm(delta.transpose(1, 2), p[:, 1:, 6:])
        T[active] += delta.sum(1)


def rasterize_gsplat(means: torch.Tensor,  # [N, 3] head frame, metres
                     quats: torch.Tensor,  # [N, 4] (w, x, y, z)
                     scales: torch.Tensor,  # [N, 3] linear, metres
                     opacities: torch.Tensor,  # [N] 0..1
                     colors: torch.Tensor,  # [N, 3]
                     viewmat: torch.Tensor,  # [4, 4] world -> camera
                     K: torch.Tensor,  # [3, 3]
                     width: int, height: int,
                     background: torch.Tensor,  # [3]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``gsplat.rasterization`` (CUDA tensors only), classic mode. Returns rgb ``[H, W, 3]``, alpha ``[H, W]``."""
    import gsplat

    device = means.device
    background = torch.as_tensor(background, dtype=torch.float32, device=device)
    rgb, alpha, _ = gsplat.rasterization(
        means.float(), quats.float(), scales.float(), opacities.float(), colors.float(),
        viewmat.float().to(device)[None], K.float().to(device)[None], width, height,
        near_plane=NEAR_PLANE_M, eps2d=EPS2D, backgrounds=background[None])
    return rgb[0], alpha[0, ..., 0]


def render(gaussians: GaussianSet, camera: Camera, background=(1.0, 1.0, 1.0), backend: str = "auto"
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``gaussians`` seen by ``camera`` over ``background``. Returns rgb ``[H, W, 3]``, alpha ``[H, W]``.

    backend: "gsplat" (CUDA), "torch" (any device), or "auto": gsplat when the Gaussians are on CUDA.
    """
    if backend == "auto":
        backend = "gsplat" if gaussians.means.is_cuda else "torch"
    if backend not in ("gsplat", "torch"):
        raise ValueError(f"Unknown render backend {backend!r}; use 'auto', 'gsplat' or 'torch'.")
    rasterize = rasterize_gsplat if backend == "gsplat" else rasterize_torch
    device = gaussians.means.device
    background = torch.as_tensor(background, dtype=torch.float32, device=device)
    return rasterize(gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.colors,
                     camera.viewmat.to(device), camera.K.to(device), camera.width, camera.height, background)
