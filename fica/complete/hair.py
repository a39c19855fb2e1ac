"""Hair with volume from one portrait (DESIGN.md §5 "Complete"): a shell over the head on a head-centred
capsule chart, solved so that it fills the portrait's hair silhouette and continued around and behind the head.

The capsule chart (``HairShell``): columns are the azimuth around the vertical axis through ``centre``
(column 0 faces +z, the front; columns run toward +x), the first ``CAP_ROWS`` rows are polar angles from the top
(0) to the horizontal (90°), the next ``HANG_ROWS`` rows hang straight down from ``centre`` to ``HANG_DEPTH_M``
below it (long hair down the back and over the shoulders). A cell's point at radius r is
``base + r · direction``; the head's own surface there (scalp, face, neck) is at radius ``r_head``.

1. Seen extent: march each cell's ray outward and keep the largest radius that still projects inside the
   portrait's head outline (hair mask ∪ the fitted head's silhouette); on the hanging rows the ray may first cross
   the person (hair hanging beside the neck and over the shoulders has neck or clothes between it and the axis).
   Where the ray runs across the portrait camera's line of sight (the silhouette), that radius is the hair's true
   extent; facing the camera or away from it, it is only an upper bound.
2. Hair thickness above the head = seen extent − r_head on the silhouette cells, zero on the cells facing the
   camera that the portrait shows as face or neck; a hidden cell whose left / right mirror is one of those takes
   its value; every other cell (the back, the hair seen from
   the front) is filled smoothly from those, around the azimuth (so the back of the head continues the sides at
   the same height: a wide bob stays wide); on the hanging rows it is interpolated within its row between the sides, so
   long hair hangs down the back as a curtain. Then it is clamped to the upper bound, and a hidden cell whose
   mirror the portrait shows takes that cell's thickness and colour: a turned portrait's far side is the mirror
   image of its near side. On the cap, toward the crown, the thickness is smoothed around the azimuth in metres
   (``azimuth_blur``): its columns narrow to nothing there, and values filled a column at a time met at the pole
   as a star of folds.
3. Colour: cells the portrait shows, inside the hair mask, take the portrait's colour (also at ``DETAIL`` ×
   ``DETAIL`` sub-cells, so the seen hair keeps the photo's detail), handed over to the synthesised hair, colour
   and detail alike, across a band of azimuth toward the portrait's silhouette (``SEEN_COS``), so no line shows
   where they meet; the rest get the seen
   hair's smooth colour, lit softly from above, times a texture with the seen hair's luminance spread in each of
   a few bands of scale (measured in the portrait in metres, synthesised on the chart, around the azimuth in metres):
   fine strands much longer along the flow than across, over round soft broad variations: no spots, no stripes.
   The hair the portrait does not show is smoothed around the azimuth in metres like the thickness: seen from
   above, strands and colours made a column at a time converged on the crown as a star of light and dark spokes.
   A hat (the headwear mask, ``fica.unwrap.headwear``) is not hair: the cells that project onto it, hidden ones
   included (a band around the head at the heights the portrait shows it), get the hat's dominant colour with no
   strands, and only the hair beside and below it sets the strands' colour and spread. Its cells take the
   portrait's colour only where the portrait sees them nearly square on (``HAT_SEEN_COS``): hair is a dome like
   the shell, and its synthesised strands continue the seen hair's colour, but a hat's features (a badge, a white
   crown, piping) seen at a slant lie on cells they do not belong to, and turned toward the viewer they spread
   over its side where the hat's own colour belongs.
4. Outline: a part of the hair apart from the rest on few cells (a blob over an ear) is dropped, a hole in it on
   few cells (a cap's top the portrait sees edge-on, too thin there to cover the scalp) is filled, and the hair's
   outline is cut between ``DETAIL`` × ``DETAIL`` sub-cells along a smoothed line (``fine_coverage``), not along
   the cells' edges: turned, the hair ends in a clean line, not a staircase of ~5 mm cells. The scalp the shell
   leaves bare is skin (``bare_scalp``; the completer paints it so).

A head whose portrait shows no hair gets an empty shell (coverage 0): short hair stays short, bald stays bald.
"""
from __future__ import annotations

import math

import cv2
import torch
import torch.nn.functional as F

from fica.head.model import UVLayout
from fica.maps import HairShell, shell_subcells
from fica.noise import seeded_noise
from fica.render.camera import Camera, sample_pixels
from fica.uv_ops import push_pull_fill, smoothstep

CAP_ROWS = 40
HANG_ROWS = 32
COLUMNS = 128
HANG_DEPTH_M = 0.30
MAX_RADIUS_M = 0.22
RADIUS_STEPS = 48
SILHOUETTE_COS = 0.25  # |cos(ray, line of sight)| below this: the ray's seen extent is the hair's extent
FACING_COS = 0.35  # cos above this: the cell faces the portrait camera (the portrait shows it)
SEEN_COS = (0.0, 0.4)  # cos of the cell to the portrait camera: from none to all of the cell's colour is the
# portrait's (the top of the head seen from the front is seen), a band ~24° of azimuth wide (~4 cm on the astronaut):
# over 0.05-0.25 the photo's hair met the synthesised strands in a vertical line at yaw ±90; over 0.05-0.5 the
# far-side cycle's turned render grew the astronaut's short hair a hanging row lower
HAT_SEEN_COS = (0.3, 0.45)  # the same for the cells of a hat: the shell's dome is not a hat's shape (a crown's top,
# a front panel standing up), so what the portrait shows on it at a slant lands on cells it does not belong to, and
# turned toward the viewer it spreads over the hat's side: over (0, 0.4) Grace Hopper's white crown and badge, seen
# at cos 0.1-0.4, were a white smear on 18-21% of her cap's side at yaw ±45-60 (0-0.6% over this band)
MIN_THICKNESS_M = 0.004  # thinner than this is the scalp layer's job
MIN_HAIR_PX = 50
MIN_VOLUME_CELLS = 40  # hair thicker than the scalp layer on fewer cells than this is short hair: no shell
SCALP_HAIR_M = 0.006  # hair with volume covers all of the scalp at least this thick
BEYOND_HEAD_M = 0.004  # the outline must reach this much farther than the fitted head's alone to be hair
SPLAT_INSET_M = 0.003  # the outer surface sits this far inside the seen extent (about one Gaussian's radius)
FILL_BLUR_ROWS = 2.5  # cells: the filled thickness is smoothed this much down the rows (hanging hair falls straight)
TIP_ROWS = 2.0  # hanging hair fades out over this many rows above its end ...
TIP_COLUMNS = 3.0  # ... which is smoothed around the azimuth by this many columns (standard deviation)
WRAP = 16  # columns copied from the other side before filling, so fills wrap around the back
BAND_SIGMAS_M = (0.003, 0.006, 0.012)  # the hair's texture is measured and made in bands between these
# Gaussian blurs (metres) and twice them: from the finest a cell holds to the broad soft variations
STRAND_ELONGATION = (8.0, 1.0, 1.0)  # the synthesised bands are this much longer along the strands (down the
# rows) than across: fine strands along the flow, round soft broad variations. At (3, 2, 1.5) the back of the head
# read as leopard print (blotches 1-2 cm wide: the middle band's round-ish spots); elongating the broad bands too,
# (12, 6, 3), gave broad stripes (a zebra) and dark spokes at the crown
MIN_BAND_PIXELS = 100  # a band measured on fewer pixels than this (well inside the hair) is not measured
MEAN_SIGMA = 3.0  # cells: the seen hair's local mean colour, about which its strands vary
MAX_BAND_SPREAD = 0.3  # relative luminance spread of one band at most
TYPICAL_BAND_SPREAD = (0.09, 0.09, 0.09)  # a band the portrait's hair is too thin to measure (a few strands under a
# hat's brim) gets this: the astronaut's photographed hair measures 0.089 / 0.089 / 0.092
SPLAT_BLUR_GAIN = (1.1, 0.9, 1.0)  # the strand Gaussians overlap and average part of each band away: make up for
# it at the finest band; the middle band gets less than measured (the fine strands, blurred by the Gaussians, fill
# it too, and at 1.2 it was the blotches of a leopard print)
CALIBRATION_ROUNDS = 3  # the bands' weights are corrected this often toward the measured spreads
TOP_LIGHT = 0.3  # unseen hair is lit from above: relative brightness gained from the nape to the crown
DETAIL = 2  # the portrait's colour is kept at DETAIL x DETAIL sub-cells of the cells it shows
COLOUR_BINS = 8  # levels a channel when the hat's dominant colour is counted
MIN_COLOUR_CELLS = 20  # fewer seen cells of the hair's own colour than this: the unseen hair gets its one colour
OUTLINE_COVERAGE = 0.05  # a cell with more coverage than this lies inside the hair's outline on the chart
ISLAND_SHARE = 0.05  # a part of the hair apart from the rest on fewer than this share of its cells is none: on
# Grace Hopper a blob of 50 cells (of 4470) stood over her ear, and each part of the hair of the examples is whole;
# a hole in it on fewer than this share of the cells without hair is hair: 65 and 148 cells on top of the caps of
# Grace Hopper and her smoothed variant showed the scalp as orange spots from above
OUTLINE_SIGMA = 1.0  # cells: the outline is smoothed this much before it is cut between the sub-cells ...
OUTLINE_SOFTNESS = 0.05  # ... with a soft edge this wide (in the smoothed inside share about its 0.5 line)
COVERING = 0.4  # the shell covers the head where its coverage reaches this (thin hair reaches 0.5)
SEED = 0


def capsule_frame(centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``base [3, A, B]`` and unit ``direction [3, A, B]`` of every cell (A = CAP_ROWS + HANG_ROWS, B = COLUMNS)
    around ``centre [3]`` (head frame, metres)."""
    phi = (torch.arange(COLUMNS, dtype=torch.float32) + 0.5) / COLUMNS * 2 * math.pi  # [B]
    theta = (torch.arange(CAP_ROWS, dtype=torch.float32) + 0.5) / CAP_ROWS * (math.pi / 2)  # [Ac]
    drop = (torch.arange(HANG_ROWS, dtype=torch.float32) + 0.5) / HANG_ROWS * HANG_DEPTH_M  # [Ah]
    sin_t = torch.cat([theta.sin(), torch.ones(HANG_ROWS)])[:, None]
    cos_t = torch.cat([theta.cos(), torch.zeros(HANG_ROWS)])[:, None]
    direction = torch.stack([sin_t * phi.sin(), cos_t.expand(-1, COLUMNS), sin_t * phi.cos()])
    base = centre[:, None, None].expand(3, CAP_ROWS + HANG_ROWS, COLUMNS).clone()
    base[1, CAP_ROWS:] -= drop[:, None]
    return base, direction


def chart_position(points: torch.Tensor, centre: torch.Tensor, factor: int = 1
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row ``[N]`` and column ``[N]`` (long) of the cell, or with ``factor`` > 1 of the ``factor`` × ``factor``
    sub-cell (``shell_subcells``), that head-frame ``points [N, 3]`` lie in on the chart around ``centre``, and
    their radius ``[N]``."""
    d = points - centre
    horizontal = d[:, [0, 2]].norm(dim=1)
    phi = torch.atan2(d[:, 0], d[:, 2]) % (2 * math.pi)
    col = (phi / (2 * math.pi) * factor * COLUMNS).long().clamp(0, factor * COLUMNS - 1)
    above = d[:, 1] >= 0
    theta = torch.atan2(horizontal, d[:, 1])
    row = torch.where(above, (theta / (math.pi / 2) * factor * CAP_ROWS).long(),
                      factor * CAP_ROWS + (-d[:, 1] / HANG_DEPTH_M * factor * HANG_ROWS).long())
    row = row.clamp(0, factor * (CAP_ROWS + HANG_ROWS) - 1)
    return row, col, torch.where(above, d.norm(dim=1), horizontal)


def cell_of(points: torch.Tensor, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat cell index ``[N]`` and radius ``[N]`` of head-frame ``points [N, 3]`` on the chart around ``centre``."""
    row, col, radius = chart_position(points, centre)
    return row * COLUMNS + col, radius


def shell_cover(shell: HairShell, points: torch.Tensor) -> torch.Tensor:
    """``[N]`` 0..1: whether the hair of ``shell`` covers head-frame ``points [N, 3]`` (on the head's surface):
    its ``fine_coverage`` at their sub-cell, rising from the outline's faint fringe to full where the hair is
    ``COVERING`` (thin hair, its cells half covered, covers too)."""
    factor = shell.fine_coverage.shape[-1] // COLUMNS
    row, col, _ = chart_position(points, shell.centre, factor)
    return smoothstep(shell.fine_coverage[0, row, col], 0.5 * COVERING, COVERING)


def bare_scalp(geometry: torch.Tensor, layout: UVLayout, hair: HairShell | None) -> torch.Tensor:
    """``[1, R, R]`` bool: the scalp texels (at their point of ``geometry [3, R, R]``) that the hair shell ``hair``
    does not cover (``shell_cover``): the nape below a bob, behind and above the ears. They are skin: painted with
    the hair's colour they showed beyond the shell's outline as dark blocks, stepped along the scalp region's
    texels. None without a shell (short hair, bald: the scalp keeps its hair colour)."""
    bare = torch.zeros_like(geometry[:1], dtype=torch.bool)
    if hair is None or not bool((hair.coverage > 0).any()):
        return bare
    scalp = layout.region_mask("scalp").to(geometry.device) > 0.5
    bare[scalp] = shell_cover(hair, geometry[:, scalp[0]].T) < 0.5
    return bare


def mirror_known(values: torch.Tensor, known: torch.Tensor, hidden: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Chart maps ``values [C, A, B]`` and ``known [1, A, B]`` (bool) with the ``hidden [1, A, B]`` cells (the
    portrait does not show them) that are not known taking their left / right mirror's value (azimuth φ ↔ −φ:
    column b ↔ B − 1 − b) where it is known: hair is about as long and full on the side a turned portrait does not
    show as on the side it does (a bob seen from 45° covered the near ear down to the jaw and was cut above the far
    one). Cells the portrait shows keep their own hair (a fringe swept to one side)."""
    borrowed = hidden & ~known & known.flip(-1)
    return torch.where(borrowed, values.flip(-1), values), known | borrowed


def wrapped_fill(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``push_pull_fill`` of chart maps ``[C, A, B]`` from ``weights [1, A, B]``, wrapping around the azimuth."""
    pad = lambda x: torch.cat([x[..., -WRAP:], x, x[..., :WRAP]], -1)  # noqa: E731
    return push_pull_fill(pad(values), pad(weights))[..., WRAP:-WRAP]


def azimuth_fill(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Chart maps ``[C, A, B]`` with the cells not ``known [1, A, B]`` (bool) interpolated linearly around the
    azimuth between the nearest known cells of their row on either side (the back of the head continues its sides
    at the same height); rows with no known cell get ``wrapped_fill``'s values."""
    B = values.shape[-1]
    tripled = known[0].repeat(1, 3)  # [A, 3B]: columns -B .. 2B
    position = torch.arange(3 * B).expand_as(tripled)
    before = torch.where(tripled, position, -1).cummax(1).values[:, B:2 * B]  # [A, B]
    after = torch.where(tripled, position, 3 * B).flip(1).cummin(1).values.flip(1)[:, B:2 * B]
    has_row = known[0].any(1, keepdim=True)  # [A, 1]
    before, after = before.clamp(min=0), after.clamp(max=3 * B - 1)
    at = lambda column: values.gather(2, (column % B).expand(values.shape[0], -1, -1))  # noqa: E731
    middle = torch.arange(B, 2 * B)
    weight = ((middle - before) / (after - before).clamp(min=1)).to(values)  # [A, B]
    interpolated = (1 - weight) * at(before) + weight * at(after)
    return torch.where(has_row, interpolated, wrapped_fill(values * known, known.float()))


def _project(camera: Camera, points: torch.Tensor) -> torch.Tensor:
    """Pixels ``[N, 2]`` of ``points [N, 3]``; points behind the camera land far outside the image."""
    pixels, depth = camera.project(points)
    return torch.where(depth[:, None] > 1e-3, pixels, pixels.new_full((1, 2), -1e6))


def head_radius(geometry: torch.Tensor, head: torch.Tensor, scalp: torch.Tensor, centre: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``r_head [1, A, B]``: the outermost radius of the head surface ``geometry [3, R, R]`` (texels in
    ``head [1, R, R]``) in each cell, 0 for cells the head never reaches (below the neck); and ``on_scalp
    [1, A, B]`` bool: the cells whose head surface is scalp (texels in ``scalp [1, R, R]``)."""
    points = geometry[:, head[0] > 0.5].T
    cell, radius = cell_of(points, centre)
    A = CAP_ROWS + HANG_ROWS
    r = torch.zeros(A * COLUMNS).scatter_reduce(0, cell, radius, "amax", include_self=True).view(1, A, COLUMNS)
    is_scalp = scalp[0][head[0] > 0.5].float()
    hit_scalp = torch.zeros(A * COLUMNS).scatter_reduce(0, cell, is_scalp, "amax", include_self=True)
    hit = (r > 0).float()
    filled = wrapped_fill(r, hit)
    on_scalp = wrapped_fill(hit_scalp.view(1, A, COLUMNS), hit) > 0.5
    lowest_row = int(cell.max()) // COLUMNS  # the bottom of the neck: below it there is no head
    below = torch.arange(A)[None, :, None] > lowest_row
    return torch.where(below, torch.zeros_like(filled), filled), on_scalp & ~below


def seen_extent(camera: Camera, outlines: torch.Tensor, base: torch.Tensor, direction: torch.Tensor,
                r_head: torch.Tensor, passable: torch.Tensor | None = None) -> torch.Tensor:
    """``[C, A, B]``: for each channel of ``outlines [H, W, C]`` (0/1), the largest radius (from ``r_head`` outward, in
    steps) whose point still projects inside it, the ray having left neither it nor, on the hanging rows,
    ``passable [H, W]`` (0/1, the person: long hair hangs beside the neck and over the shoulders, which lie
    between it and the axis) on the way."""
    radii = torch.linspace(0.0, MAX_RADIUS_M, RADIUS_STEPS)  # [K]
    points = base[None] + radii[:, None, None, None] * direction[None]  # [K, 3, A, B]
    pixels = _project(camera, points.permute(0, 2, 3, 1).reshape(-1, 3))
    C = outlines.shape[-1]
    inside = sample_pixels(outlines, pixels).T.view(C, RADIUS_STEPS, *base.shape[1:]) > 0.5  # [C, K, A, B]
    through = inside
    if passable is not None:
        hanging = (torch.arange(base.shape[1]) >= CAP_ROWS)[None, None, :, None]  # [1, 1, A, 1]
        crossed = sample_pixels(passable[..., None], pixels).T.view(1, RADIUS_STEPS, *base.shape[1:]) > 0.5
        through = inside | (hanging & crossed)
    beyond_head = radii[:, None, None] >= r_head[0]  # [K, A, B]
    leaves = (~through & beyond_head).float()
    never = torch.full_like(leaves[:, 0], RADIUS_STEPS).long()
    first_out = torch.where(leaves.any(1), leaves.argmax(1), never)  # [C, A, B]
    k = torch.arange(RADIUS_STEPS)[None, :, None, None]
    held = inside & (k < first_out[:, None]) & beyond_head  # [C, K, A, B]
    # the last point inside before the ray leaves (just short of where it leaves when nothing beyond the head is)
    last_in = torch.where(held.any(1), (k * held).amax(1), first_out - 1).clamp(max=RADIUS_STEPS - 2)
    step = MAX_RADIUS_M / (RADIUS_STEPS - 1)
    return ((last_in.float() + 0.5) * step).clamp(min=0)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return torch.ones(1)
    half = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-half, half + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(maps: torch.Tensor, sigma_rows: float, sigma_columns: float) -> torch.Tensor:
    """Separable Gaussian blur of chart maps ``[C, A, B]`` (wrapping around the azimuth, clamped at the ends)."""
    kr, kc = _gaussian_kernel(sigma_rows), _gaussian_kernel(sigma_columns)
    x = torch.cat([maps[..., -WRAP:], maps, maps[..., :WRAP]], -1)[:, None]  # [C, 1, A, B + 2 WRAP]
    x = F.conv2d(F.pad(x, (0, 0, len(kr) // 2, len(kr) // 2), mode="replicate"), kr.view(1, 1, -1, 1))
    x = F.conv2d(x, kc.view(1, 1, 1, -1), padding=(0, len(kc) // 2))
    return x[:, 0, :, WRAP:-WRAP]


def azimuth_blur(maps: torch.Tensor, column_m: torch.Tensor, sigma_m: float) -> torch.Tensor:
    """Chart maps ``[C, A, B]`` blurred around the azimuth (wrapping) in metres, not in columns: each row by a
    Gaussian that, added to its columns' own width ``column_m [A]`` (metres), makes ``sigma_m``; rows whose
    columns are that wide already keep their values. Toward the crown the columns narrow to nothing, so values
    made or filled a column at a time (thickness, strands, colour) converge on the pole as a star of folds and
    streaks (a lamp shade seen from above); blurred in metres, the crown is as smooth across as the sides are, and
    at the pole every column holds the same value."""
    B = maps.shape[-1]
    sigma = ((sigma_m / column_m.clamp(min=1e-6)) ** 2 - 1).clamp(min=0).sqrt()  # [A] columns
    frequency = torch.arange(B // 2 + 1, dtype=maps.dtype)
    gain = torch.exp(-0.5 * (2 * math.pi * frequency[None] * sigma[:, None] / B) ** 2)  # [A, B // 2 + 1]
    return torch.fft.irfft(torch.fft.rfft(maps, dim=-1) * gain, n=B, dim=-1)


def band_spread(lum: torch.Tensor, weight: torch.Tensor, sigmas: tuple[float, ...], blur) -> torch.Tensor:
    """``[K]``: the luminance spread of ``lum [H, W]`` inside ``weight [H, W]`` (0/1) in bands between each of
    ``sigmas`` and twice it (normalised differences of ``blur(x [H, W], sigma)``), each the standard deviation of
    the band over the pixels well inside the weight, relative to the mean luminance; 0 for a band with fewer than
    ``MIN_BAND_PIXELS`` of them."""
    spreads = []
    for sigma in sigmas:
        fine, coarse = (blur(lum * weight, s) / blur(weight, s).clamp(min=1e-6) for s in (sigma, 2 * sigma))
        inside = (weight > 0.5) & (blur(weight, 2 * sigma) > 0.5)
        band = (fine - coarse)[inside]
        spreads.append(band.std() if len(band) >= MIN_BAND_PIXELS else lum.new_tensor(0.0))
    return torch.stack(spreads) / lum[weight > 0.5].mean().clamp(min=1e-3)


def portrait_band_spread(image: torch.Tensor, weight: torch.Tensor, px_per_m: float) -> torch.Tensor:
    """``[K]`` ``band_spread`` of the luminance of ``image [H, W, 3]`` inside ``weight [H, W]`` (0/1) at
    ``BAND_SIGMAS_M`` (``px_per_m`` pixels a metre)."""
    blur = lambda x, s: torch.from_numpy(cv2.GaussianBlur(x.numpy(), (0, 0), s))  # noqa: E731
    return band_spread(image.mean(-1).float(), weight.float(), tuple(px_per_m * s for s in BAND_SIGMAS_M), blur)


def strand_texture(target: torch.Tensor, cell_m: float, column_m: torch.Tensor, generator: torch.Generator,
                   shape: tuple[int, int]) -> torch.Tensor:
    """``[1, A, B]`` zero-mean relative luminance variation whose ``band_spread`` on the chart (cells
    ``cell_m`` metres) is ``target [K]`` at ``BAND_SIGMAS_M``: a band-pass noise for each band, longer along the
    strands (the rows) by its ``STRAND_ELONGATION``, weighted to the target in a few rounds of correction (the bands
    overlap a little). Across the strands each band is blurred in metres (``azimuth_blur`` with each row's
    ``column_m [A]``, metres): toward the crown, where the columns narrow, a band blurred in columns was a spoke
    from the crown, and the broad bands made a star of dark wedges."""
    sigmas = tuple(s / cell_m for s in BAND_SIGMAS_M)
    noise = seeded_noise((1, *shape), generator).cpu()
    blur_m = lambda rows, m: azimuth_blur(_blur(noise, rows, 0.0), column_m, m * cell_m)  # noqa: E731
    bands = []
    for sigma, elongation in zip(sigmas, STRAND_ELONGATION):
        band = blur_m(elongation * sigma, sigma) - blur_m(2 * elongation * sigma, 2 * sigma)
        bands.append(band / band.std().clamp(min=1e-6))
    bands = torch.cat(bands)  # [K, A, B]
    blur = lambda x, s: _blur(x[None], s, s)[0]  # noqa: E731
    ones = torch.ones(shape)
    weights = target.clone()
    for _ in range(CALIBRATION_ROUNDS):
        texture = (weights[:, None, None] * bands).sum(0)
        measured = band_spread(1 + texture, ones, sigmas, blur)
        weights = weights * (target / measured.clamp(min=1e-6)).clamp(0.25, 4.0)
    return (weights[:, None, None] * bands).sum(0, keepdim=True)


def hair_ends(thickness: torch.Tensor, r_head: torch.Tensor) -> torch.Tensor:
    """``[1, A, B]`` 0..1: where the hanging hair ends. Each column's lowest hanging row with hair, smoothed
    around the azimuth (``TIP_COLUMNS``) and no lower than the neck (the avatar ends there: hair below it would
    hang in the air, and show under the chin), with the coverage fading out over ``TIP_ROWS`` rows about it:
    continuous tips instead of strands breaking off. 1 on the cap rows.

    thickness, r_head: ``[1, A, B]`` metres (``r_head`` 0 below the neck)."""
    A, B = thickness.shape[-2:]
    rows = torch.arange(A, dtype=torch.float32)[:, None]  # [A, 1]
    hanging = rows >= CAP_ROWS
    neck_end = float(rows[(r_head[0] > 0).any(1, keepdim=True)].max())
    has_hair = (thickness[0] > MIN_THICKNESS_M) & hanging  # [A, B]
    lowest = torch.where(has_hair, rows, torch.full_like(has_hair, CAP_ROWS - 1, dtype=torch.float32)).amax(0)
    end = _blur(lowest[None, None], 0.01, TIP_COLUMNS)[0, 0].clamp(max=neck_end) + 1.0  # [B] first row with none
    fade = smoothstep(end[None] - rows, 0.0, TIP_ROWS)  # [A, B]
    return torch.where(hanging, fade, torch.ones_like(fade))[None]


def drop_islands(inside: torch.Tensor) -> torch.Tensor:
    """``inside [1, A, B]`` (bool) less its islands: the cells of connected parts (8 neighbours, wrapping around
    the azimuth) holding less than ``ISLAND_SHARE`` of its cells."""
    B = inside.shape[-1]
    twice = inside[0].repeat(1, 2).numpy().astype("uint8")  # [A, 2B]: a part across the seam is whole once
    _, labels, stats, _ = cv2.connectedComponentsWithStats(twice, connectivity=8)
    size = torch.from_numpy(stats[:, cv2.CC_STAT_AREA][labels])  # [A, 2B] cells in each cell's part
    size = torch.maximum(size[:, :B], size[:, B:])
    return inside & (size >= ISLAND_SHARE * int(inside.sum()))[None]


def fine_coverage(coverage: torch.Tensor, factor: int) -> torch.Tensor:
    """``[1, f·A, f·B]``: ``coverage [1, A, B]`` at ``factor`` × ``factor`` sub-cells (``shell_subcells``), its
    outline cut between the sub-cells instead of along the cells' edges: the cells inside the outline
    (``OUTLINE_COVERAGE``) are smoothed into a share (``OUTLINE_SIGMA``) whose 0.5 line, found at
    each sub-cell, is the outline: a straight or gently curved line where the cells make a staircase. Inside it,
    the coverage interpolated, the covered cells' carried on beyond them up to the outline."""
    inside = (coverage > OUTLINE_COVERAGE).float()
    share = _blur(inside, OUTLINE_SIGMA, OUTLINE_SIGMA)
    carried = _blur(coverage * inside, OUTLINE_SIGMA, OUTLINE_SIGMA) / share.clamp(min=1e-6)
    level = torch.where(inside > 0, coverage, carried)
    edge = smoothstep(shell_subcells(share, factor), 0.5 - OUTLINE_SOFTNESS, 0.5 + OUTLINE_SOFTNESS)
    return shell_subcells(level, factor).clamp(0, 1) * edge


def dominant_colour(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[3]``: the mean of the most frequent colour (``COLOUR_BINS`` levels a channel) of ``image [H, W, 3]``
    inside ``mask [H, W]`` (not empty)."""
    pixels = image[mask > 0.5]  # [N, 3]
    q = (pixels * (COLOUR_BINS - 1e-3)).long().clamp(0, COLOUR_BINS - 1)
    key = (q[:, 0] * COLOUR_BINS + q[:, 1]) * COLOUR_BINS + q[:, 2]
    return pixels[key == torch.bincount(key).argmax()].mean(0)


def hair_texture(image: torch.Tensor, pixels: torch.Tensor, seen: torch.Tensor, hat: torch.Tensor,
                 hat_colour: torch.Tensor, on_colour: torch.Tensor, colour: torch.Tensor, strands: torch.Tensor,
                 up: torch.Tensor) -> torch.Tensor:
    """``[3, A, B]``: the portrait's colour at ``pixels [A*B, 2]`` where ``seen [1, A, B]`` (0..1); elsewhere
    ``hat_colour [3]`` on the ``hat [1, A, B]`` (bool) cells and, on the others, the local mean colour of the seen
    cells that show the hair's own colour (``on_colour [1, A, B]`` bool; filled smoothly), or where fewer than
    ``MIN_COLOUR_CELLS`` do (hair under a hat), the hair's ``colour [3]``, times ``1 + strands [1, A, B]``
    (``strand_texture``) and a soft light from above: brighter with ``up [1, A, B]`` (-1 at the ends of hanging
    hair .. 1 at the crown) than the seen hair on average."""
    A, B = seen.shape[-2:]
    photo = sample_pixels(image, pixels).T.view(3, A, B)
    flat_hat = hat_colour[:, None, None].expand(3, A, B)
    known = ((seen > 0.5) & ~hat & on_colour).float()
    if float(known.sum()) < MIN_COLOUR_CELLS:
        mean, reference = colour[:, None, None].expand(3, A, B), (seen > 0.5) & ~hat
    else:
        weight = _blur(known, MEAN_SIGMA, MEAN_SIGMA)
        local_mean = _blur(photo * known, MEAN_SIGMA, MEAN_SIGMA) / weight.clamp(min=1e-6)
        mean, reference = wrapped_fill(local_mean, (weight > 0.05).float()), known > 0.5
    light = 1 + 0.5 * TOP_LIGHT * (up - (up[reference].mean() if bool(reference.any()) else 0.0))
    synthesised = (mean * light * (1 + strands)).clamp(0, 1)
    return seen * photo + (1 - seen) * torch.where(hat, flat_hat, synthesised)


def complete_hair(image: torch.Tensor, hair_mask: torch.Tensor, camera: Camera, geometry: torch.Tensor,
                  layout: UVLayout, outline: torch.Tensor, generator: torch.Generator | None = None,
                  headwear: torch.Tensor | None = None, person: torch.Tensor | None = None,
                  hair_colour: torch.Tensor | None = None) -> HairShell:
    """The hair shell of a portrait.

    image: ``[H, W, 3]`` 0..1; hair_mask: ``[H, W]`` 0/1; camera: the portrait's; geometry: ``[3, R, R]`` the
    fitted head's neutral geometry map on ``layout``; outline: ``[H, W]`` 0/1, the fitted head's silhouette in the
    portrait; headwear: ``[H, W]`` 0/1, the hat among the hair (None: no hat); person: ``[H, W]`` 0..1, the
    person mask, which a ray may cross on its way to hair farther out (None: it may not); hair_colour: ``[H, W]``
    0/1, the pixels that show the hair's own colour (``fica.unwrap.hair_mask.hair_colour_mask``; None: the hair
    less the headwear), which colour the unseen hair and measure its texture. Returns a
    ``HairShell`` on the capsule chart (coverage all zero when no hair is seen), its ``detail`` the portrait
    sampled at ``DETAIL`` × ``DETAIL`` sub-cells of the outer surface.
    """
    head = (layout.region_mask("face", "scalp", "ears", "neck") * layout.valid).to(geometry)
    scalp = geometry[:, layout.region_mask("scalp")[0] > 0.5]
    ears = geometry[:, layout.region_mask("ears")[0] > 0.5]
    centre = torch.stack([geometry.new_tensor(0.0), ears[1].mean(), 0.5 * (scalp[2].min() + scalp[2].max())])
    base, direction = capsule_frame(centre)
    r_head, on_scalp = head_radius(geometry, head, layout.region_mask("scalp").to(geometry), centre)
    A, B = base.shape[-2:]
    if float(hair_mask.sum()) < MIN_HAIR_PX:
        inner = base + r_head * direction
        return HairShell(centre, inner, inner.clone(), torch.zeros(3, A, B), torch.zeros(1, A, B),
                         torch.zeros(1, A, B), torch.zeros(3, DETAIL * A, DETAIL * B),
                         torch.zeros(1, DETAIL * A, DETAIL * B))

    at = lambda r: (base + r * direction).permute(1, 2, 0).reshape(-1, 3)  # noqa: E731  radius [1, A, B] -> [N, 3]
    to_camera = F.normalize(camera.center[:, None, None] - (base + r_head * direction), dim=0)
    cos = (to_camera * direction).sum(0, keepdim=True)  # [1, A, B]
    extents = seen_extent(camera, torch.stack([(outline + hair_mask).clamp(max=1), outline], -1), base, direction,
                          r_head, person)
    extent = extents[:1]  # [1, A, B] head and hair
    beyond_head = extent > extents[1:] + BEYOND_HEAD_M
    silhouette = cos.abs() < SILHOUETTE_COS
    facing = cos > FACING_COS
    mask = hair_mask[..., None].float()  # [H, W, 1]
    on_hair = sample_pixels(mask, _project(camera, at(r_head + MIN_THICKNESS_M))).T.view(1, A, B) > 0.5
    bare = facing & ~on_hair  # the portrait shows face, neck or background there: no hair
    known = silhouette | bare
    room = (extent - SPLAT_INSET_M - r_head).clamp(min=0)  # the outer Gaussians' footprint stays inside too
    # hair only where the outline reaches beyond the fitted head's own (a bald scalp, or a ray passing an ear or
    # the jaw, adds nothing)
    thickness = torch.where(bare | ~beyond_head, torch.zeros_like(extent), room)
    thickness, known = mirror_known(thickness, known, cos < 0)
    hanging = (torch.arange(A) >= CAP_ROWS)[None, :, None]
    filled = torch.where(hanging, azimuth_fill(thickness, known), wrapped_fill(thickness * known, known.float()))
    # a column's width on the cap's rows, which narrow toward the pole; the hanging rows' columns are not narrower
    # than the hair is (only the neck's radius is, or none below it)
    column_m = torch.where(torch.arange(A) < CAP_ROWS, r_head[0].amax(1) * direction[[0, 2], :, 0].norm(dim=0),
                           torch.tensor(math.inf)) * (2 * math.pi / B)  # [A]
    typical_m = math.pi * float(r_head.max()) / B  # half a column's width at the head's widest
    thickness = azimuth_blur(_blur(filled, FILL_BLUR_ROWS, 1.0), column_m, typical_m)
    if int((thickness > 2 * MIN_THICKNESS_M).sum()) >= MIN_VOLUME_CELLS:  # hair with volume covers the scalp
        thickness = torch.where(on_scalp, thickness.clamp(min=SCALP_HAIR_M), thickness)
    thickness = torch.minimum(thickness, room)
    thickness = torch.where(bare, torch.zeros_like(thickness), thickness)
    coverage = smoothstep(thickness, MIN_THICKNESS_M, 2 * MIN_THICKNESS_M) * hair_ends(thickness, r_head)
    # hidden cells whose mirror the portrait shows (beyond the silhouette band, so a frontal portrait's slight turn
    # changes nothing): its mirror image
    mirrored = (cos < -SILHOUETTE_COS) & (cos.flip(-1) > SILHOUETTE_COS)
    thickness = torch.where(mirrored, thickness.flip(-1), thickness)
    coverage = torch.where(mirrored, coverage.flip(-1), coverage)
    coverage = coverage * drop_islands(coverage > OUTLINE_COVERAGE)
    # a hole in the hair on few cells is hair (a cap's top seen edge-on, whose seen extent hugs the fitted head):
    # left bare, its scalp showed through as spots of skin
    covered = coverage >= COVERING
    holes = ~covered & ~drop_islands(~covered)
    coverage = torch.where(holes, wrapped_fill(coverage * covered, covered.float()), coverage)
    outer = base + (r_head + thickness) * direction

    gen = generator if generator is not None else torch.Generator().manual_seed(SEED)
    pixels = _project(camera, outer.permute(1, 2, 0).reshape(-1, 3))
    wears_hat = headwear is not None and float(headwear.sum()) >= MIN_HAIR_PX
    hat = sample_pixels(headwear[..., None], pixels).T.view(1, A, B) > 0.5 if wears_hat else \
        torch.zeros_like(cos).bool()
    outer_cos = torch.where(hat, smoothstep(cos, *HAT_SEEN_COS), smoothstep(cos, *SEEN_COS))
    seen = outer_cos * (sample_pixels(mask, pixels).T.view(1, A, B) > 0.5)
    hat_colour = dominant_colour(image, headwear) if wears_hat else torch.zeros(3)
    if hair_colour is None:
        hair_colour = mask[..., 0] * (1 - headwear.float()) if wears_hat else mask[..., 0]
    if float(hair_colour.sum()) < MIN_HAIR_PX:  # too little of the hair's own colour: what the hair mask holds
        hair_colour = mask[..., 0]
    colour = image[hair_colour > 0.5].median(0).values  # [3]
    on_colour = sample_pixels(hair_colour[..., None], pixels).T.view(1, A, B) > 0.5
    px_per_m = float(camera.K[0, 0]) / float(camera.project(centre[None])[1][0])
    measured = portrait_band_spread(image, hair_colour, px_per_m)
    measured = torch.where(measured > 0, measured, torch.tensor(TYPICAL_BAND_SPREAD))
    spread = (torch.tensor(SPLAT_BLUR_GAIN) * measured).clamp(max=MAX_BAND_SPREAD)
    cell_m = float((outer - outer.roll(1, 2)).norm(dim=0)[coverage[0] > 0.5].median()) \
        if bool((coverage > 0.5).any()) else 2 * math.pi * float(r_head.max()) / COLUMNS
    strands = strand_texture(spread, cell_m, (outer - outer.roll(1, 2)).norm(dim=0).mean(1), gen, (A, B))
    up = torch.where(hanging, -(torch.arange(A)[None, :, None] - CAP_ROWS) / HANG_ROWS, direction[1:2])
    texture = hair_texture(image, pixels, seen, hat, hat_colour, on_colour, colour, strands,
                           up.expand(1, A, B).float())
    texture = torch.where(mirrored, texture.flip(-1), texture)
    texture = seen * texture + (1 - seen) * azimuth_blur(texture, column_m, cell_m)  # the photo keeps its detail
    inside = (coverage > OUTLINE_COVERAGE).float()  # the cells outside lend the outline's sub-cells their colour:
    texture = torch.where(inside > 0, texture, wrapped_fill(texture * inside, inside))  # the hair's, not the photo's
    fine_pixels = _project(camera, shell_subcells(outer, DETAIL).permute(1, 2, 0).reshape(-1, 3))
    on_hair = sample_pixels(mask, fine_pixels).T.view(1, DETAIL * A, DETAIL * B) > 0.5
    in_hair = on_hair & (shell_subcells(outer_cos, DETAIL) > 0)  # and the portrait shows the sub-cell
    up_cells = lambda m: m.repeat_interleave(DETAIL, 1).repeat_interleave(DETAIL, 2)  # noqa: E731
    cell_colour = up_cells(texture)
    # the photo's detail about its cell's colour, as much as the cell's colour is the photo's: across the seen
    # band the detail fades out with the photo's colour (the cell's colour already blends it with the strands)
    photo_detail = sample_pixels(image, fine_pixels).T.view(3, DETAIL * A, DETAIL * B) \
        - up_cells(sample_pixels(image, pixels).T.view(3, A, B))
    detail = torch.where(in_hair, cell_colour + up_cells(seen) * photo_detail,
                         cell_colour)  # a sub-cell off the hair (face, background) or hidden keeps its cell's colour
    # facing the camera, the portrait's hair mask is the outline: no sub-cell of hair on the face it shows
    bare = (shell_subcells(cos, DETAIL) > FACING_COS) & ~on_hair
    return HairShell(centre, base + r_head * direction, outer, texture, coverage, seen, detail,
                     fine_coverage(coverage, DETAIL) * ~bare)
