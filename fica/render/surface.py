"""EWA surface splatting: a fast renderer (on a CPU) for surface-splat avatars (DESIGN.md §5 Render, §7).

The analytic prior puts one flat, nearly opaque Gaussian per texel on the head surface, so a pixel shows the
nearest surface, a blend of the few splats lying on it (Zwicker et al., "Surface Splatting", 2001), not a
long front-to-back list. This renders that with a few vectorised scatters instead of per-tile compositing:

1. Projection and culling as in the compositor (``fica.render.projection``). A splat's depth at a
   pixel is the depth of its tangent plane (the plane across its smallest scale), linear in the pixel's offset
   from the projected centre, its slope bounded so that it changes by at most a few of the splat's sizes over
   the footprint (edge-on splats).
2. Depth pass: each splat writes its plane depth into the pixels within ``DEPTH_SIGMA`` standard deviations of
   its centre; per-pixel minima (``scatter_reduce`` "amin") over the opaque splats and over the translucent ones
   (opacity below ``TRANSLUCENT_OPACITY``) are the depths of the opaque surface and of the translucent layer; the
   nearer of the two is the visible surface. The splats whose plane faces the camera write first; of the others,
   only those that the opaque surface does not hide (the test of step 3, against the surface of each worker's
   share) write too: on a closed head, about half of all splats face away and lie behind it. A splat fainter
   than ``SURFACE_MIN_OPACITY`` (the fading edge of the hair shell or of a hat, hair tips) writes none: the
   surface behind it shows through it, as in the compositor, instead of ending along its footprint's edge (a
   stepped edge).
3. Splats whose plane lies behind the opaque surface by more than ``DEPTH_TOLERANCE_M`` at their centre and
   around it are dropped; a translucent layer hides nothing, so the scalp under translucent hair stays (dropped,
   it let 5-13 % of the background through the crown at yaw 0, ±45, 180 from 30-60° above, where the compositor
   lets 0.1 %; keeping it adds 12-40 % to this step's (splat, pixel) pairs, 15 % frontally), and so do the hair
   shell's layers behind its nearest one: its inner layer, the far side of hair hanging beyond the head. A single
   layer of the shell covers 95-99 % (its splats' opacity is 0.9 and their tails leave gaps); where no head lies
   behind it, tested against the nearest layer, the shell let 1-8 % of the background through (long hair below
   the jaw, a bob's sides: alpha's 1st percentile there 0.92-0.95 on the drawing at yaw 0, ±45, ±90, 180, 0.975
   and 0.985 on the astronaut at 180 and 0, where the compositor's is 0.996-0.999; since, 0.992-0.999; the
   drawing 31.6-32.0 dB from the compositor at yaw 0, 45 and its portrait view, 30.5-31.1 before, the astronaut
   and Grace Hopper unchanged; about 6 % more CPU time a frame at the bench's view). A translucent splat behind
   the nearest layer only fills its gaps, over ``COVER_SIGMA`` standard deviations.
   The others add, over their footprint (``WEIGHT_SIGMA`` standard deviations, a translucent splat's
   ``TRANSLUCENT_WEIGHT_SIGMA``; at a silhouette also ``RIM_SIGMA`` across the ellipse's short axis),
   log(1 − wᵢ) to the log transmittance and, where their plane lies within the tolerance of the surface,
   Σ wᵢ' and Σ wᵢ' cᵢ, with wᵢ = opacity · exp(−½ dᵀ Σ⁻¹ d) and the colour weight
   wᵢ' = wᵢ · exp((z_surface − zᵢ) / ``DEPTH_FALLOFF_M``), zᵢ the splat's centre depth (at most
   e^``FRONT_BONUS`` above wᵢ): nearer splats weigh more, as they would come first in front-to-back compositing
   (weighted blended order-independent transparency, McGuire and Bavoil 2013). The surface here is the opaque
   one; where a splat's plane lies more than the tolerance in front of it (a cap's or hair's translucent layer,
   including its soft fringe beyond its depth footprint) the splat adds to a second set of sums and
   transmittance instead, the front layer's, whose depth reference is the translucent layer's.
4. colour = Σ w' c / Σ w' over each layer, alpha = 1 − Π (1 − wᵢ) (the compositor's alpha) for the front
   layer and 1 − Π (1 − wᵢ)² for the opaque surface; the front layer over the opaque surface over the background.
   The opaque surface is a closed head's near side: between its splats (1-6 % of light through at 0.6 texel
   spacings) the compositor draws the far side, whose cover is the near side's again, where this renderer, having
   dropped it, drew the background in a texel grid (alpha 0.85-0.99 over Grace Hopper's face at yaw 0, 384²).
   Without the front layer a translucent splat's fringe beyond its depth footprint could only blend with the
   surface behind it, by the colour weight, so its edge ended in steps where the surface depth jumped back to that
   surface (a cap over the forehead, a fringe of hair).

Footprints are rectangular windows around the pixel holding the centre, the bounding box of the footprint's ellipse
(capped at ``MAX_RADIUS_PX``); splats are bucketed by window size (a size few splats have is widened to a square)
so that a bucket is one batch of ``[window, B]`` tensors. Within a window the exponent and the plane depth are
quadratic and linear in the pixel offset, so a matrix product per bucket evaluates each at every window pixel (the
depth's over the linear monomials alone). When the splats are wide (median projected standard deviation >=
``STRIDE_2_MIN_SIGMA_PX``, the default avatar at 512²) the image is smooth enough to be evaluated at every other
pixel (exact point samples of the full-resolution splats), composited over the background there and interpolated
bilinearly. The Gaussians are split over one single-threaded worker per core (``fica.render._workers``) where there
are at least ``SPLIT_MIN_CORES``; only the depth buffers and the sums meet, and the workers finish the image in
bands of rows. On two cores the shares ran no faster than the whole did on one: run at once, each half took as long
as the whole alone (astronaut 512², idle 2-core box: 39 ms a frame on two shares, 35.5 ms on one).

Unlike the compositor it does not order splats within a surface (the blend is normalised and smoother), and a
translucent layer within the tolerance of a surface (the analytic prior's hair, 2.5 mm above the scalp) blends
with it by the colour weight instead of lying strictly in front of it. Measured on the astronaut avatar at
512² against ``rasterize_torch``: 33.7-35.0 dB PSNR over the head (yaw 0, ±45, portrait view) before the hair
shell, 32.9-33.5 dB with it and the front layer (yaw 0, 45, portrait view; 32.4-33.8 dB at yaw -45, 90, 180),
several times faster.
"""
from __future__ import annotations

import math
from functools import lru_cache, reduce
from typing import Iterator

import torch
from torch.nn.functional import interpolate

from fica.render._workers import cores, parallel_map
from fica.render.projection import ALPHA_MAX, ALPHA_MIN, NEAR_PLANE_M, project_gaussian_rows
from fica.rotations import quat_to_matrix_rows
from fica.threads import one_thread

DEPTH_SIGMA = 1.0  # depth-pass footprint, standard deviations: neighbouring surface splats overlap without holes
WEIGHT_SIGMA = 1.75  # footprint of a splat inside a surface, standard deviations
TRANSLUCENT_OPACITY = 0.95  # a splat below this opacity is translucent (the hair layers, the neck's fade): ...
TRANSLUCENT_WEIGHT_SIGMA = 2.25  # ... its tail shows through its neighbours', so its footprint reaches further
COVER_SIGMA = 1.0  # footprint of a translucent splat behind the nearest layer: it only fills that layer's gaps
SURFACE_MIN_OPACITY = 0.4  # a fainter splat (a layer's fading edge) writes no depth: what lies behind shows through
RIM_SIGMA = 2.5  # footprint of a splat at a silhouette: the compositor's reach for opaque splats
MAX_RADIUS_PX = 12  # cap on a footprint's radius
DEPTH_TOLERANCE_M = 3e-3  # a splat belongs to a pixel's surface when its plane lies this close to the nearest
DEPTH_FALLOFF_M = 7e-4  # colour weights fall by e for each such distance a splat's centre lies further back
FRONT_BONUS = 1.0  # the colour weight of a splat in front of the surface grows by at most e^FRONT_BONUS
SLOPE_EXTENT = 3.0  # the plane depth changes by at most this many largest scales across the footprint
STRIDE_2_MIN_SIGMA_PX = 1.75  # sample every other pixel when the median splat is at least this wide
SPLIT_MIN_CORES = 3  # fewer cores than this draw the splats in one share
MIN_BUCKET_SPLATS = 128  # a window size with fewer splats than this is widened to a square one
CHUNK_PAIRS = 1 << 19  # (splat, pixel) pairs evaluated at once: bounds the working memory
MIN_LOG_WEIGHT = -30.0  # exp is many times slower where its result would be subnormal or zero
_BIG = 100.0  # penalty slope (per falloff depth, per squared sigma) standing in for masks
_FAR_BEHIND = 20.0  # colour exponents stay above MIN_LOG_WEIGHT - _FAR_BEHIND (normal floats)


def rasterize_surface(means: torch.Tensor,  # [N, 3] head frame, metres
                      quats: torch.Tensor,  # [N, 4] (w, x, y, z)
                      scales: torch.Tensor,  # [N, 3] linear, metres
                      opacities: torch.Tensor,  # [N] 0..1
                      colors: torch.Tensor,  # [N, 3]
                      viewmat: torch.Tensor,  # [4, 4] world -> camera
                      K: torch.Tensor,  # [3, 3]
                      width: int, height: int,
                      background: torch.Tensor,  # [3]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Surface splatting (CPU or any device). Returns rgb ``[H, W, 3]``, alpha ``[H, W]``."""
    f32 = dict(dtype=torch.float32, device=means.device)
    gaussians = [x.to(**f32) for x in (means, quats, scales, opacities, colors)]
    viewmat, K = viewmat.to(**f32), K.to(**f32)
    background = torch.as_tensor(background, **f32)
    pad = 2 * MAX_RADIUS_PX + 1  # splats centred up to MAX_RADIUS_PX off the image, windows as wide
    n_parts = max(1, min(cores(), len(means) // 1024)) if cores() >= SPLIT_MIN_CORES else 1  # shares, one a worker
    with torch.no_grad(), one_thread():
        means, quats, scales, opacities, colors = gaussians
        rotation, scale_rows = quat_to_matrix_rows(quats), scales.T.contiguous()  # row-major R [9, N], [3, N]
        projected = project_gaussian_rows(means, rotation, scale_rows, viewmat, K, width, height)
        stride = _sampling_stride(*projected, width, height)
        per_splat = (means.T, rotation, scale_rows, *projected, opacities, colors.T)  # columns: splats
        low_w, low_h = -(-width // stride), -(-height // stride)
        canvas = (low_h + 2 * pad, low_w + 2 * pad)
        tolerance = DEPTH_TOLERANCE_M / DEPTH_FALLOFF_M

        def depth_pass(i: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
            """A share of the splats tabulated, those that may show and the nearest depths ``[2, H · W]`` they give
            (opaque splats', translucent splats'): the splats facing the camera first, then the others that the
            opaque surface does not hide (faint ones give none)."""
            splats = _splats(*(x[..., i::n_parts] for x in per_splat), viewmat, K, width, height, pad, stride)
            kept, faint = splats["kept"], splats["faint"]
            first = splats["facing"] & ~faint.index_select(0, kept)
            facing = kept[first]
            front = _depth_pass(splats, facing, canvas)
            opaque_front = front[0] + tolerance
            near, _ = _visible(splats, kept[~first], opaque_front, opaque_front)
            behind = _depth_pass(splats, near[~faint.index_select(0, near)], canvas)
            return splats, torch.cat([facing, near]), torch.minimum(front, behind)

        def accumulate(splats: dict, candidates: torch.Tensor) -> torch.Tensor:
            """A share's sums: its splats tested against the opaque surface (a translucent layer, the hair over
            the scalp or its own inner layers, hides none of them), the translucent ones' silhouettes and
            footprints taken against the nearest surface."""
            translucent = splats["translucent"].index_select(0, candidates)
            shown = [_visible(splats, candidates[which], surface[0], outline)
                     for which, outline in ((~translucent, surface[0]), (translucent, nearest))]
            return _accumulate(splats, torch.cat([ids for ids, _ in shown]),
                               torch.cat([radii for _, radii in shown], 1), surface, canvas)

        parts = parallel_map(depth_pass, range(n_parts))
        surface = reduce(torch.minimum, [zbuf for _, _, zbuf in parts]) + tolerance  # [2, H · W]
        nearest = surface.amin(0)
        sums = parallel_map(lambda part: accumulate(*part[:2]), parts)
        rgb, alpha = torch.empty(height, width, 3, **f32), torch.empty(height, width, **f32)

        def finish(rows: tuple[int, int]) -> None:
            """Image rows ``[first, last)``: the shares' sums met on the sample rows they need, composited over
            the background there and upsampled (both linear, so this equals upsampling the premultiplied colour
            and alpha first)."""
            first, last = rows
            top, bottom = max(first // stride - 1, 0), min((last - 1) // stride + 2, low_h)  # sample rows
            window = (slice(pad + top, pad + bottom), slice(pad, pad + low_w))
            layers = (slice(None), slice(None), *window)
            (opaque, front) = reduce(torch.add, [x.view(5, 2, *canvas)[layers] for x in sums]).unbind(1)
            t_opaque = opaque[4].mul(2).exp_()  # the closed head's far side behind the gaps (step 4)
            t_front = front[4].exp()
            rgb_opaque = (opaque[1:4] * ((1 - t_opaque) / opaque[0].clamp(min=1e-30))
                          + t_opaque * background[:, None, None])
            rgb_front = front[1:4] * ((1 - t_front) / front[0].clamp(min=1e-30))
            image = torch.cat([rgb_front + t_front * rgb_opaque, 1 - (t_front * t_opaque)[None]])
            if stride > 1:
                image = interpolate(image[None], scale_factor=2, mode="bilinear", align_corners=False)[0]
            image = image[:, first - stride * top:last - stride * top, :width]  # [4, last - first, W]
            rgb[first:last] = image[:3].permute(1, 2, 0)
            alpha[first:last] = image[3]

        parallel_map(finish, [(height * k // n_parts, height * (k + 1) // n_parts) for k in range(n_parts)])
        return rgb, alpha


def _sampling_stride(means2d: torch.Tensor, cov2d: torch.Tensor, conics: torch.Tensor, depths: torch.Tensor,
                     width: int, height: int) -> int:
    """2 when the splats are wide enough that sampling every other pixel and interpolating loses nothing
    (median projected standard deviation >= ``STRIDE_2_MIN_SIGMA_PX``, over ~4k of them), else 1. Takes the
    projection's rows (``project_gaussian_rows``)."""
    step = max(1, len(depths) // 4096)
    (x, y), cov2d, depths = means2d[:, ::step], cov2d[:, ::step], depths[::step]
    on_screen = (depths > NEAR_PLANE_M) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    sigma = torch.maximum(cov2d[0, on_screen], cov2d[2, on_screen]).sqrt()
    return 2 if len(sigma) and float(sigma.median()) >= STRIDE_2_MIN_SIGMA_PX else 1


def _smallest_axes(rotation: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Unit axes ``[3, N]`` of the smallest scale of each Gaussian (the normal of a flat one): the column of its
    rotation for the argmin scale. rotation ``[9, N]`` (row-major), scales ``[3, N]`` (rows: reductions across
    the short axis of ``[N, 3]`` are slow on a CPU)."""
    s0, s1, s2 = scales
    column = ((s1 < s0) & (s1 <= s2)).long() + ((s2 < s0) & (s2 < s1)).long() * 2  # exclusive (where is slower)
    return rotation.gather(0, torch.stack([column, column + 3, column + 6]))


def _splats(means, rotation, scale_rows, means2d, cov2d, conics, depth, opacities, colors, viewmat, K, width: int,
            height: int, pad: int, stride: int) -> dict:
    """Cull and tabulate the projected splats on the grid of every ``stride``-th pixel (canvas coordinates: that
    grid plus ``pad`` samples on every side; "px" below are samples). The splats come as columns: means ``[3, N]``,
    rotations ``[9, N]`` (row-major), scales ``[3, N]``, the projection's rows (``project_gaussian_rows``),
    opacities ``[N]``, colours ``[3, N]``.

    Returns ``kept`` ``[M]`` the indices of the splats that may reach the image, ``facing`` ``[M]`` whether their
    tangent plane's normal (the axis of the smallest scale) points to the camera, and per-splat tensors over all
    N: ``base`` ``[N]`` (int32) flat canvas index of the pixel holding the centre; ``table`` ``[22, N]``: over the
    monomials (ox², ox·oy, oy², ox, oy, 1) of a pixel's offset from ``base``, the plane depth pushed far back
    outside the depth footprint (rows 0-5), the plane depth (6-11) and log w (log opacity − ½ dᵀ Σ⁻¹ d, 12-17),
    then the centre depth plus the tolerance (18; depths in units of ``DEPTH_FALLOFF_M``) and the colour (19-21):
    the depth pass reads rows 0-11, the colour pass rows 6-21; ``sigma_xy`` ``[2, N]`` the projected standard
    deviations along x and y (px), ``sigma`` ``[N]`` the larger of them; ``sigma_min`` ``[N]`` the one along the
    ellipse's short axis (px); ``translucent`` ``[N]`` bool (opacity below ``TRANSLUCENT_OPACITY``); ``faint``
    ``[N]`` bool (opacity below ``SURFACE_MIN_OPACITY``); ``canvas_width``.
    """
    mx, my = means2d / stride  # sample grid coordinates
    var_x, cov_xy, var_y = cov2d / stride ** 2
    a, b, c = conics * stride ** 2
    width, height = -(-width // stride), -(-height // stride)
    # culled as by the compositor (behind the near plane, too faint); footprints are capped, so a splat
    # centred further out than the cap cannot reach the image
    kept = ((depth > NEAR_PLANE_M) & (opacities >= ALPHA_MIN) & (mx > -MAX_RADIUS_PX) & (my > -MAX_RADIUS_PX)
            & (mx < width + MAX_RADIUS_PX) & (my < height + MAX_RADIUS_PX)).nonzero()[:, 0]
    px, py = mx.floor(), my.floor()
    dx, dy = px + 0.5 - mx, py + 0.5 - my  # offset of the base pixel's centre from the splat centre, px
    sigma_xy = torch.stack([var_x, var_y]).sqrt()  # [2, N]
    sigma = sigma_xy.amax(0)
    spread = (0.25 * (var_x - var_y) ** 2 + cov_xy * cov_xy).sqrt()
    sigma_min = (0.5 * (var_x + var_y) - spread).clamp(min=0).sqrt()  # along the ellipse's short axis

    # Plane depth: the tangent plane n·X = n·t in the camera frame, linearised about the projected centre.
    W = viewmat[:3, :3]
    normal = W @ _smallest_axes(rotation, scale_rows)  # [3, N]
    n_dot_t = (normal * (W @ means + viewmat[:3, 3:])).sum(0)
    facing = n_dot_t.index_select(0, kept) < 0  # the plane's normal points to the camera
    n_dot_t = n_dot_t.masked_fill(n_dot_t.abs() < 1e-12, 1e-12)
    gx = -stride * depth * depth * normal[0] / (K[0, 0] * n_dot_t)  # ∂z/∂x, m per sample
    gy = -stride * depth * depth * normal[1] / (K[1, 1] * n_dot_t)
    s0, s1, s2 = scale_rows
    reach = (RIM_SIGMA * sigma).clamp(min=1.0, max=MAX_RADIUS_PX)
    extent = SLOPE_EXTENT * torch.maximum(torch.maximum(s0, s1), s2)
    shrink = (extent / reach / torch.sqrt(gx * gx + gy * gy).clamp(min=1e-12)).clamp(max=1)
    gx, gy = gx * shrink / DEPTH_FALLOFF_M, gy * shrink / DEPTH_FALLOFF_M

    log_opacity = torch.log(opacities.clamp(max=ALPHA_MAX))
    table = torch.empty(22, len(a), device=a.device)
    pushed, plane, log_w = table[:18].view(3, 6, -1)
    torch.stack([-0.5 * a, -b, -0.5 * c, -(a * dx + b * dy), -(b * dx + c * dy),
                 log_opacity - 0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy)], out=log_w)
    plane[:3] = 0
    torch.stack([gx, gy, depth / DEPTH_FALLOFF_M + gx * dx + gy * dy], out=plane[3:])
    # z + BIG (q − DEPTH_SIGMA²): above z outside the depth footprint's ellipse, so max(z, pushed) drops there
    torch.add(plane, log_w, alpha=-2 * _BIG, out=pushed)
    pushed[5] += _BIG * (2 * log_opacity - DEPTH_SIGMA ** 2)
    torch.div(depth + DEPTH_TOLERANCE_M, DEPTH_FALLOFF_M, out=table[18])
    table[19:] = colors
    canvas_width = width + 2 * pad
    base = ((py.clamp(-pad, height + pad) + pad) * canvas_width + px.clamp(-pad, width + pad) + pad).int()
    return {"kept": kept, "facing": facing, "base": base, "table": table, "sigma": sigma, "sigma_xy": sigma_xy,
            "sigma_min": sigma_min, "translucent": opacities < TRANSLUCENT_OPACITY,
            "faint": opacities < SURFACE_MIN_OPACITY, "canvas_width": canvas_width}


def _windows(splats: dict, part: torch.Tensor, radius_px: torch.Tensor, table: torch.Tensor, base: torch.Tensor
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Bucket the splats ``part`` ``[G]`` by footprint half-widths along x and y, ``ceil(radius_px)``
    (``[2, G]``, capped); a window size held by fewer than ``MIN_BUCKET_SPLATS`` splats is widened to the
    square of its larger half-width (fewer, larger batches).

    Yields chunks of one window size: the columns of the per-splat ``table`` ``[K, N]`` for the chunk's splats
    ``[K, B]`` (gathered once, in bucket order, so a chunk is a slice), canvas indices ``[P, B]`` of the window
    pixels (around the splats' ``base`` ``[N]``) and the monomials ``[P, 6]`` of their offsets.
    """
    side = MAX_RADIUS_PX + 1
    rx, ry = torch.ceil(radius_px).clamp(1, MAX_RADIUS_PX).long()
    key = ry * side + rx
    sparse = torch.bincount(key, minlength=side * side) < MIN_BUCKET_SPLATS
    square = torch.maximum(rx, ry) * (side + 1)
    key = key + (square - key) * sparse.index_select(0, key)  # where() is slower
    counts = torch.bincount(key, minlength=side * side).tolist()
    ids = part[torch.sort(key.short(), stable=True).indices]  # narrow keys sort faster
    rows, base = table.index_select(1, ids), base.index_select(0, ids)  # faster than [:, ids]
    start = 0
    for k, count in enumerate(counts):
        if count == 0:
            continue
        offsets, monomials = _window(k % side, k // side, splats["canvas_width"], str(part.device))
        step = max(1, CHUNK_PAIRS // len(offsets))
        for first in range(start, start + count, step):
            last = min(first + step, start + count)
            yield rows[:, first:last], offsets[:, None] + base[first:last], monomials
        start += count


@lru_cache(maxsize=256)
def _window(radius_x: int, radius_y: int, canvas_width: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(2 radius_x + 1) · (2 radius_y + 1)`` pixels of a window: flat canvas offsets ``[P]`` (int32) from its
    centre and the monomials ``[P, 6]`` (ox², ox·oy, oy², ox, oy, 1) of their offsets."""
    oy, ox = torch.meshgrid(torch.arange(-radius_y, radius_y + 1, device=device),
                            torch.arange(-radius_x, radius_x + 1, device=device), indexing="ij")
    ox, oy = ox.reshape(-1), oy.reshape(-1)
    monomials = torch.stack([ox * ox, ox * oy, oy * oy, ox, oy, torch.ones_like(ox)], 1).float()
    return (oy * canvas_width + ox).int(), monomials


def _depth_pass(splats: dict, kept: torch.Tensor, canvas: tuple[int, int]) -> torch.Tensor:
    """Nearest plane depths ``[2, H · W]`` per canvas pixel (over ``DEPTH_FALLOFF_M``; inf where none is) of the
    opaque and of the translucent splats among ``kept`` ``[M]``."""
    size = canvas[0] * canvas[1]
    zbuf = torch.full((2 * size,), math.inf, device=splats["base"].device)
    planes = splats["table"][:12]
    # the pixel centres within DEPTH_SIGMA standard deviations along x and y of a centre anywhere in the base
    # pixel: a window half-width of round(reach), which is ceil(reach - 1/2)
    reach = DEPTH_SIGMA * splats["sigma_xy"].index_select(1, kept) - 0.5
    layer_base = splats["base"] + size * splats["translucent"].int()
    for rows, pixels, monomials in _windows(splats, kept, reach, planes, layer_base):
        pushed, z = monomials @ rows[:6], monomials[:, 3:] @ rows[9:12]  # each [P, B]; the plane is linear
        zbuf.scatter_reduce_(0, pixels.view(-1).long(), torch.maximum(z, pushed).view(-1), "amin")
    return zbuf.view(2, size)


def _visible(splats: dict, kept: torch.Tensor, surface: torch.Tensor, outline: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of the splats ``kept`` ``[M]`` show, and how far (px) their footprints reach along x and y.

    A splat shows when its plane, at its centre or at 1.5 standard deviations from it along x or y, is not
    behind ``surface`` ``[H · W]`` (the nearest opaque plane depth plus the tolerance, in the coefficients'
    units): a splat hidden but near its rim still shows at a silhouette. ``outline`` ``[H · W]`` is the nearest
    depth of any layer (``surface`` itself for opaque splats); a splat behind it at all those points lies under a
    translucent layer and only fills that layer's gaps (the compositor shows what lies behind them): its footprint
    reaches ``COVER_SIGMA`` standard deviations. Otherwise it reaches ``WEIGHT_SIGMA`` standard deviations along
    the ellipse's long axis (a translucent splat ``TRANSLUCENT_WEIGHT_SIGMA``: where the compositor lets a layer
    of them show through each other, their tails add up); at a silhouette (the splat is in front of ``outline``,
    or of nothing, at one of those points) also ``RIM_SIGMA`` along its short axis.
    Returns indices ``[S]`` and radii ``[2, S]``.
    """
    sigma = splats["sigma"].index_select(0, kept)
    step = (1.5 * sigma).round().clamp(max=MAX_RADIUS_PX)
    gx, gy, z = splats["table"][9:12].index_select(1, kept)
    along_x, along_y = gx * step, gy * step
    plane = torch.stack([z, z + along_x, z - along_x, z + along_y, z - along_y])  # [5, M] at the probes
    centre, step_x = splats["base"].index_select(0, kept), step.int()
    step_y = step_x * splats["canvas_width"]
    probes = torch.stack([centre, centre + step_x, centre - step_x, centre + step_y, centre - step_y]).view(-1)
    at_outline = outline.index_select(0, probes).view(plane.shape)
    rim = _any_probe(plane + 2 * DEPTH_TOLERANCE_M / DEPTH_FALLOFF_M < at_outline)
    over = _any_probe(plane <= at_outline)
    shown = over if outline is surface else _any_probe(plane <= surface.index_select(0, probes).view(plane.shape))
    # footprints in standard deviations by kind (where() is several times slower than this gather here)
    reach = torch.tensor([COVER_SIGMA, COVER_SIGMA, WEIGHT_SIGMA, TRANSLUCENT_WEIGHT_SIGMA], device=kept.device)
    kind = over.int() * 2 + splats["translucent"].index_select(0, kept)  # 0, 1: filling gaps; 2: opaque, 3: translucent
    radius = reach.index_select(0, kind) * splats["sigma_xy"].index_select(1, kept)  # [2, M]
    rim_radius = (RIM_SIGMA * splats["sigma_min"].index_select(0, kept)).masked_fill_(~rim, 0)
    shown = shown.nonzero()[:, 0]  # once for both selections (nonzero is slow here)
    return kept.index_select(0, shown), torch.maximum(radius, rim_radius).index_select(1, shown)


def _any_probe(mask: torch.Tensor) -> torch.Tensor:
    """``mask.any(0)`` of ``[5, M]`` -> ``[M]`` as an or of its rows: ``any(0)`` is ~30x slower on a CPU here."""
    return reduce(torch.logical_or, mask)


def _accumulate(splats: dict, part: torch.Tensor, radius_px: torch.Tensor, surface: torch.Tensor,
                canvas: tuple[int, int]) -> torch.Tensor:
    """Σ w', Σ w'·rgb and the log transmittance Σ log(1 − w) (one scatter, ``[5, 2 · H · W]``) per canvas
    pixel over the splats ``part`` ``[S]`` with footprint radii ``radius_px`` ``[2, S]``: first the opaque
    surface's, then those of the translucent layer in front of it. ``surface`` ``[2, H · W]``: the opaque and the
    translucent splats' nearest depths plus the tolerance.

    A splat whose plane lies in front of the opaque surface by more than the tolerance at a pixel (a translucent
    layer such as a cap or hair, or an opaque splat's tail beyond its depth footprint) belongs to the front layer
    there, whose reference is the translucent splats' nearest depth.
    Exponents are clamped to ``MIN_LOG_WEIGHT`` before ``exp``: it is many times slower where the result would
    be subnormal or zero. The pixel indices are int32 (half the memory traffic) except for ``index_add_``, which is
    many times slower with them.
    """
    size = canvas[0] * canvas[1]
    sums = torch.zeros(5, 2 * size, device=surface.device)
    front_limit = surface[0] - 2 * DEPTH_TOLERANCE_M / DEPTH_FALLOFF_M
    references = surface.view(-1)
    for rows, pixels, monomials in _windows(splats, part, radius_px, splats["table"][6:], splats["base"]):
        z, log_w = monomials[:, 3:] @ rows[3:6], monomials @ rows[6:12]  # each [P, B]; the plane is linear
        pixels = pixels.view(-1)
        in_front = torch.lt(z.view(-1), front_limit.index_select(0, pixels))
        pixels.add_(in_front, alpha=size)  # the pixel in the layer the splat lies in there
        nearest = references.index_select(0, pixels).view(log_w.shape)
        log_w.clamp_(min=MIN_LOG_WEIGHT)
        # colour: nearer splats weigh more, by e^(z_surface − z_centre) / falloff, at most e^FRONT_BONUS, and
        # splats off the surface (plane behind the nearest one by more than the tolerance) by e^(−BIG·excess)
        off_surface = z.sub_(nearest).clamp_(min=0)
        log_wc = nearest.sub_(rows[12]).clamp_(-_FAR_BEHIND, FRONT_BONUS).add_(log_w)
        log_wc.add_(off_surface, alpha=-_BIG).clamp_(min=MIN_LOG_WEIGHT - _FAR_BEHIND)
        weighted = torch.empty(5, *log_w.shape, device=log_w.device)
        torch.exp(log_wc, out=weighted[0])
        torch.mul(weighted[0], rows[13:, None], out=weighted[1:4])
        torch.exp(log_w, out=weighted[4]).neg_().add_(1).log_()  # log(1 − w) (log1p is 5x slower here)
        sums.index_add_(1, pixels.long(), weighted.view(5, -1))
    return sums
