"""The exact splat compositor in pure torch (any device): 3D Gaussians + camera -> image (DESIGN.md §5 Render).

``rasterize_torch`` has gsplat's functional signature (plain tensors in, plain tensors out) and the maths of its
"classic" mode — EWA projection with a 0.3 px² low-pass dilation (``fica.render.projection``),
alpha = min(0.999, opacity · exp(−½ dᵀ Σ⁻¹ d)), contributions below 1/255 skipped, front-to-back compositing by
Gaussian depth within 8×8-pixel tiles, a pixel stops (exclusively) once its transmittance would fall to 1e-4.
Gaussians are culled when behind the near plane, off-screen or too faint, their tile footprints are sized by the
projected covariance (opacity-aware 3-sigma box), and tiles stop being processed once every pixel in them is
opaque, so most of the back of a head is never evaluated. The 0.999 clamp, the 1/255 skip and the 1e-4 stop are
those of gsplat 1.5.3's CUDA kernel. On a CPU it runs torch single-threaded and splits the tiles over one
single-threaded worker per core (see ``fica.render._workers``); on CUDA the parts run one after the other.
Which renderer draws is decided in ``fica.render.dispatch``.
"""
from __future__ import annotations

import math

import torch

from fica.render._workers import cores, parallel_map
from fica.render.projection import ALPHA_MAX, ALPHA_MIN, NEAR_PLANE_M, project_gaussians
from fica.threads import one_thread

LOG_ALPHA_MIN = math.log(ALPHA_MIN)
T_MIN = 1e-4  # a pixel is done once its transmittance would fall to this
MAX_EXTEND_SIGMA = 3.33
TILE = 8  # px, side of the square tiles the CPU compositor works on
CHUNK = 16  # Gaussians composited per tile per step
MAX_TILES_PER_PART = 2048  # bounds a part's working set to ~10 MB a tensor


def _visible_footprints(means2d: torch.Tensor, cov2d: torch.Tensor, depths: torch.Tensor, opacities: torch.Tensor,
                        width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cull and size footprints (gsplat's opacity-aware box). cov2d ``[N, 3]`` (xx, xy, yy).

    Returns kept indices ``[M]`` and their pixel radii ``[M, 2]`` (x, y).
    """
    extend = torch.sqrt(2 * torch.log((opacities / ALPHA_MIN).clamp(min=1.0))).clamp(max=MAX_EXTEND_SIGMA)
    radii = torch.ceil(extend[:, None] * torch.sqrt(cov2d[:, [0, 2]]))
    det = cov2d[:, 0] * cov2d[:, 2] - cov2d[:, 1] ** 2
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
    last = means2d.new_tensor([tiles_x - 1, tiles_y - 1])
    lo = torch.minimum(((means2d - radii) / TILE).floor().clamp(min=0), last).int()  # clamped before the cast:
    hi = torch.minimum(((means2d + radii) / TILE).floor().clamp(min=0), last).int()  # radii can be huge up close
    x0, y0, x1, y1 = lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]
    nx = x1 - x0 + 1
    counts = nx * (y1 - y0 + 1)
    gid = torch.repeat_interleave(torch.arange(len(counts), device=means2d.device), counts)
    local = torch.arange(len(gid), dtype=torch.int32, device=means2d.device) - (torch.cumsum(counts, 0) - counts)[gid]
    width = nx[gid]
    tile = (y0[gid] + local // width) * tiles_x + x0[gid] + local % width
    n_tiles = tiles_x * tiles_y
    key = tile.short() if n_tiles <= 2 ** 15 else tile  # narrow keys sort faster
    order = torch.sort(key, stable=True).indices  # tile-major; stable keeps the depth order
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
    """Splat rasteriser with gsplat's classic semantics (any device). Returns rgb ``[H, W, 3]``, alpha ``[H, W]``."""
    device = means.device
    f32 = dict(dtype=torch.float32, device=device)
    means, quats, scales, opacities, colors, viewmat, K = (
        x.to(**f32) for x in (means, quats, scales, opacities, colors, viewmat, K))
    background = torch.as_tensor(background, **f32)
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    n_tiles = tiles_x * tiles_y
    color_acc = torch.zeros(n_tiles, 3, TILE * TILE, **f32)
    T = torch.ones(n_tiles, TILE * TILE, **f32)

    with torch.no_grad(), one_thread():
        means2d, cov2d, conics, depths = project_gaussians(means, quats, scales, viewmat, K, width, height)
        idx, radii = _visible_footprints(means2d, cov2d, depths, opacities, width, height)
        order = torch.argsort(depths[idx])
        idx, radii = idx[order], radii[order]
        _composite(idx, radii, means2d, conics, opacities, colors, tiles_x, tiles_y, color_acc, T)

    def untile(x: torch.Tensor) -> torch.Tensor:  # [n_tiles, TILE², C] -> [H, W, C]
        x = x.reshape(tiles_y, tiles_x, TILE, TILE, -1).permute(0, 2, 1, 3, 4)
        return x.reshape(tiles_y * TILE, tiles_x * TILE, -1)[:height, :width]

    T_img = untile(T[..., None])
    rgb = untile(color_acc.transpose(1, 2)) + T_img * background
    return rgb, 1.0 - T_img[..., 0]


def _composite(idx: torch.Tensor, radii: torch.Tensor, means2d: torch.Tensor, conics: torch.Tensor,
               opacities: torch.Tensor, colors: torch.Tensor, tiles_x: int, tiles_y: int,
               color_acc: torch.Tensor, T: torch.Tensor) -> None:
    """Front-to-back compositing of the kept Gaussians ``idx [M]`` (depth order) into the tiles, in place.

    color_acc ``[tiles, 3, TILE²]`` accumulates Σ cᵢ αᵢ Tᵢ, T ``[tiles, TILE²]`` the transmittance.
    Each step takes the next CHUNK Gaussians of every tile that still has a transparent pixel and evaluates them
    at all the tile's pixels: log αᵢ is a quadratic in the pixel's offset (u, v) from the tile corner, so one
    matrix product [A·B, 6] × [6, TILE²] gives every exponent; a cumulative product along the chunk composites.
    """
    if len(idx) == 0:
        return
    gid, tile_start, tile_count = _tile_lists(means2d[idx], radii, tiles_x, tiles_y)
    dtype, device = T.dtype, T.device
    # One column per kept Gaussian: centre, conic, log opacity, colour; one more (opacity 0) pads short tile
    # lists and starts every chunk.
    table = torch.cat([means2d[idx], conics[idx], torch.log(opacities[idx, None]), colors[idx]], 1)  # [M, 9]
    table = torch.cat([table, table.new_tensor([[0, 0, 1, 0, 1, -1e4, 0, 0, 0]])]).T.contiguous()  # [9, M + 1]
    offset = torch.arange(TILE, dtype=dtype, device=device) + 0.5
    v, u = torch.meshgrid(offset, offset, indexing="ij")  # pixel centres within a tile, row-major
    u, v = u.reshape(-1), v.reshape(-1)
    monomials = torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)])  # [6, TILE²]

    tiles = tile_count.nonzero().squeeze(1)
    tiles = tiles[torch.argsort(tile_count[tiles], descending=True, stable=True)]
    shared = (gid, tile_start, tile_count, table, monomials, tiles_x, color_acc, T)
    # Tiles are independent: deal them out like cards (longest lists first), one part per core, and more parts
    # for big images so that a part's working memory stays bounded.
    bounded = math.ceil(len(tiles) / MAX_TILES_PER_PART)
    if T.is_cuda:  # one GPU stream: threads would only take turns
        for part in range(bounded):
            _composite_tiles(tiles[part::bounded], *shared)
        return
    parts = max(1, min(cores(), len(tiles) // 64), bounded)
    parallel_map(lambda part: _composite_tiles(tiles[part::parts], *shared), range(parts))


def _composite_tiles(tiles: torch.Tensor, gid: torch.Tensor, tile_start: torch.Tensor, tile_count: torch.Tensor,
                     table: torch.Tensor, monomials: torch.Tensor, tiles_x: int, color_acc: torch.Tensor,
                     T: torch.Tensor) -> None:
    """Composite the Gaussian lists of ``tiles [A]`` (longest first) into their rows of color_acc and T.

    The tiles being worked on are kept in a compact working set, so the tiles that run out of Gaussians are
    always its tail and fully opaque tiles leave it.
    """
    n_pairs, pad = len(gid), table.shape[1] - 1
    dtype, device = T.dtype, T.device
    work = {"tile": tiles, "count": tile_count[tiles], "start": tile_start[tiles],
            "corner": torch.stack([tiles % tiles_x, tiles // tiles_x], 1).to(dtype) * TILE,
            "T": torch.ones(len(tiles), TILE * TILE, dtype=dtype, device=device),
            "live": torch.ones(len(tiles), TILE * TILE, dtype=dtype, device=device),  # 0 once gsplat stops
            "color": torch.zeros(len(tiles), 3, TILE * TILE, dtype=dtype, device=device)}

    def retire(rows) -> None:
        T[work["tile"][rows]] = work["T"][rows]
        color_acc[work["tile"][rows]] = work["color"][rows]

    def keep(rows) -> None:
        work.update({key: value[rows] for key, value in work.items()})

    rank = torch.arange(-1, CHUNK, device=device)  # column 0: the padding Gaussian
    for first in range(0, int(work["count"][0]), CHUNK):
        n = int((work["count"] > first).sum())
        if n < len(work["tile"]):
            retire(slice(n, None))
            keep(slice(0, n))
        finished = work["live"].amax(1) == 0
        if int(finished.sum()) * 4 > n:  # compact once a quarter of the working set is opaque
            retire(finished)
            keep(~finished)
            n = len(work["tile"])
        if n == 0:
            break
        r = first + rank
        g = torch.where((r >= first) & (r < work["count"][:, None]),
                        gid[(work["start"][:, None] + r).clamp(0, n_pairs - 1)], pad).view(-1)  # [A·(B + 1)]
        cx, cy, a, b, c, log_opacity = table[:6].index_select(1, g)  # each [A·(B + 1)]
        dx = work["corner"][:, 0, None].expand(-1, CHUNK + 1).reshape(-1) - cx  # tile corner minus centre
        dy = work["corner"][:, 1, None].expand(-1, CHUNK + 1).reshape(-1) - cy
        ha, hb, hc = -0.5 * a, -b, -0.5 * c
        coeffs = torch.stack([ha, hb, hc, 2 * ha * dx + hb * dy, hb * dx + 2 * hc * dy,
                              ha * dx * dx + hb * dx * dy + hc * dy * dy + log_opacity])  # [6, A·(B + 1)]
        log_alpha = (coeffs.T @ monomials).view(n, CHUNK + 1, -1)  # [A, B + 1, TILE²]
        # Below 1/255 a Gaussian is skipped: its α becomes 1e-13, an exact 1 in 1 − α (−inf would slow exp down).
        log_alpha = torch.nn.functional.threshold_(log_alpha, LOG_ALPHA_MIN, -30.0)
        trans = log_alpha.exp_().clamp_(max=ALPHA_MAX).neg_().add_(1)
        trans[:, 0] = work["T"] * work["live"]
        trans = trans.cumprod_(1)  # [T0, T0(1−α1), T0(1−α1)(1−α2), ...]
        delta = trans[:, 1:] - trans[:, :-1]  # −αᵢ Tᵢ, [A, B, TILE²]
        ended = (trans[:, -1] <= T_MIN) & (work["live"] > 0)  # [A, TILE²]
        if bool(ended.any()):  # gsplat stops a pixel just before the Gaussian that would end it
            tile, pixel = ended.nonzero(as_tuple=True)
            delta[tile, :, pixel] = torch.where(trans[tile, 1:, pixel] > T_MIN, delta[tile, :, pixel], 0.0)
            work["live"][tile, pixel] = 0.0
        rgb = table[6:].index_select(1, g).view(3, n, CHUNK + 1)[:, :, 1:].permute(1, 0, 2)  # [A, 3, B]
        work["color"] -= torch.bmm(rgb, delta)
        work["T"] += delta.sum(1)
    retire(slice(None))
