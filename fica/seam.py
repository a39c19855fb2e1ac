"""The side seam measure (issue 7, "a seamless far side"): seen from the side, does the skin the portrait shows end in
an edge where the completed head begins, and does the under-jaw end in an edge where the neck's chart island
begins?

The avatar is rendered at a side view, and beside it the same avatar with its texture replaced by indicators
(``indicator_avatar``). Two kinds of line are followed, each an iso-line of an indicator:
- "outline": how squarely the portrait saw each texel (``portrait_view_cosine``), at ``LEVELS`` across the
  hand-over: the projected outline of what the portrait shows;
- "cut": 0 on the chart's skin islands other than the main one (``main_island``), at 0.5: where the chart's
  skin is cut on the head (the under-jaw meets the neck).
On face or neck skin the side view sees squarely, two colour differences are taken per cell of the line
(``line_edge``): the step across it (mean over ``STEP_PX`` on one side minus the same on the other) beyond the
mean step on lines moved ``CONTROL_SHIFTS`` step widths aside (a change of tone at the line, not the skin's own
gradient), and the band on the line against the bands beside it (a dark or light rim along it). Each is reduced
per channel by its median over the cells: skin texture, wrinkles and noise change sign from cell to cell and fall
out, an edge keeps its sign all along the line. The larger length, in grey levels (RGB, 0..255), at the worst
level, is the line's edge. It is absolute, not a ratio to the texture beside it: the earlier ratio's reference
was the texture of the completed skin, so a noisier completion hid its own edge, and it rated the version before
the hand-over (commit 187e842, a visible mask's edge and a light band on the neck) better than its successor.
This one ranks that pair the right way round on both photos (astronaut outline/cut 7.7/27.3 before, 11.8/15.8
after; Grace Hopper 27.4/12.2 before, 6.6/3.7 after; medians over yaw ±60/±90, exact compositor) and reads the
completed skin painted 25 % darker as 36 and 27.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from fica.avatar import Avatar
from fica.head.model import default_head
from fica.render.camera import Camera, orbit_camera, sample_pixels

OUTLINE_TEXELS = 20  # at R = 256: the outline's band (portrait_view_cosine)
LEVELS = {"outline": (0.15, 0.3, 0.45), "cut": (0.5,)}  # iso-levels of each line's indicator
STEP_PX = 0.02  # the step compares means over this fraction of the render's size on either side of the line
CONTROL_SHIFTS = (-3, 3)  # the gradient beside the line is read on lines these many step widths to either side
TEXTURE_PX = 5  # fine texture: luminance against its mean over this many pixels square (at 384-512²: ~2-3 mm)
CELL = 0.05  # line pixels are grouped in square cells of this fraction of the render's size
MIN_CELL_PIXELS = 8
MIN_CELLS = 3  # fewer cells than this on skin: the line is not measured at this view
OPAQUE = 0.95  # pixels the avatar covers at least this much (the surface renderer leaves interior pixels at ~0.98)
SKIN_FLAG = 0.95  # indicator pixels whose skin channel is at least this are skin, uncovered by hair ...
# ... and seen at least this squarely from the side view: the outline not where the face's profile is seen
# edge-on, the cut down to the under-jaw, which a side view sees obliquely
SQUARE_COS = {"outline": 0.5, "cut": 0.2}
YAWS = (60.0, 90.0, -60.0, -90.0)


@dataclass
class SeamResult:
    edge: float  # grey levels (RGB length, 0..255): the line's edge (line_edge), at the worst level
    texture: float  # octaves: how much more fine texture one side of the line has than the other (worst level)
    cells: int  # cells of that line measured on skin
    render: torch.Tensor  # [S, S, 3] the avatar at the side view
    line: torch.Tensor  # [S, S] bool, the line's pixels (worst level)


def portrait_view_cosine(unwrapped) -> torch.Tensor:
    """``[1, R, R]`` how squarely the portrait saw each texel: its visibility times the cosine between its normal
    and the direction to the portrait's camera (0 where unseen or facing away); 1 farther than
    ``OUTLINE_TEXELS`` from the outline of what it sees (its holes closed), so that the iso-lines follow the
    outline and not features seen obliquely inside the face (the sides of the nose)."""
    partial = unwrapped.partial
    centre = unwrapped.camera.center.to(partial.xyz)[:, None, None]
    to_camera = F.normalize(centre - partial.xyz, dim=0)
    cosine = (partial.visibility * (partial.normal * to_camera).sum(0, keepdim=True)).clamp(min=0)
    seen = ndi.binary_fill_holes((cosine[0] > 0).cpu().numpy())
    inside = ndi.distance_transform_edt(seen) > OUTLINE_TEXELS * partial.resolution / 256
    return torch.where(torch.from_numpy(inside)[None].to(cosine.device), torch.ones_like(cosine), cosine)


def main_island(layout) -> torch.Tensor:
    """``[1, R, R]`` float for the chart ``layout``: 0 on the islands that hold skin (face, ears, neck) other than
    the largest (the neck's own island), 1 elsewhere: its iso-line at 0.5 is where the chart's skin is cut (the
    under-jaw meets the neck), not the eyes' or the mouth's rims."""
    labels, count = ndi.label((layout.valid[0] > 0.5).cpu().numpy())
    skin = (layout.region_mask("face", "ears", "neck")[0] > 0.5).cpu().numpy()
    sizes = ndi.sum(labels > 0, labels, range(1, count + 1))
    has_skin = ndi.maximum(skin, labels, range(1, count + 1)) > 0
    cut_off = [i + 1 for i in range(count) if has_skin[i] and i != int(np.argmax(sizes))]
    return torch.from_numpy(~np.isin(labels, cut_off)).float()[None]


def indicator_avatar(output, texture: torch.Tensor) -> Avatar:
    """``output``'s avatar (a FiCAOutput) with its chart's colours replaced by ``texture [3, R, R]`` and its hair
    black."""
    refined = output.refined
    hair = refined.hair
    if hair is not None:
        hair = replace(hair, texture=torch.zeros_like(hair.texture), detail=torch.zeros_like(hair.detail))
    avatar = output.avatar
    identity = avatar.prior.encode(replace(refined, texture=texture * refined.valid, hair=hair))
    return Avatar(avatar.prior, identity, avatar.fitted_camera, avatar.fitted_expression, avatar.device)


def indicators(output, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """``[3, R, R]`` indicator textures for ``camera``: the skin (face and neck) flag, the cosine of the view angle
    from ``camera`` on it (0 elsewhere); and ``[2, R, R]`` the lines' fields (``portrait_view_cosine``,
    ``main_island``)."""
    refined = output.refined
    layout = default_head().uv_layout(refined.resolution)
    skin = layout.region_mask("face", "neck").to(refined.texture)
    to_camera = F.normalize(camera.center.to(refined.geometry)[:, None, None] - refined.geometry, dim=0)
    facing = (refined.normals() * to_camera).sum(0, keepdim=True).clamp(min=0)
    fields = torch.cat([portrait_view_cosine(output.unwrapped).to(skin), main_island(layout).to(skin)])
    return torch.cat([skin, facing * skin, torch.zeros_like(skin)]), fields


def _cell_means(rgb: torch.Tensor, skin: torch.Tensor, points: torch.Tensor, normals: torch.Tensor,
                bands: list[tuple[float, float]], size: int) -> dict[int, torch.Tensor]:
    """Per cell of the line (points ``[P, 2]``, unit ``normals [P, 2]``), the mean ``[B, C]`` of the image
    ``rgb [H, W, C]`` over each band ``(near, far)`` of ``bands`` (pixels along the normal, one sample a pixel);
    only points whose samples all fall on ``skin [H, W]`` count. Keys: cell ids."""
    samples = [torch.arange(near, far, dtype=torch.float32) + 0.5 for near, far in bands]
    offsets = torch.cat(samples)  # [K]
    pts = (points[:, None] + offsets[None, :, None] * normals[:, None]).reshape(-1, 2)
    on_skin = (sample_pixels(skin[..., None], pts, padding_mode="border")[:, 0] > 0.99
               ).reshape(len(points), -1).all(1)
    colours = sample_pixels(rgb, pts, padding_mode="border").reshape(len(points), -1, rgb.shape[-1])[on_skin]
    means = torch.stack([part.mean(1) for part in colours.split([len(x) for x in samples], 1)], 1)  # [P', B, C]
    cells = (points[on_skin] / (CELL * size)).long()
    keys = cells[:, 0] * 10_000 + cells[:, 1]
    out = {}
    for key in keys.unique():
        sel = keys == key
        if int(sel.sum()) >= MIN_CELL_PIXELS:
            out[int(key)] = means[sel].mean(0)
    return out


def line_edge(rgb: torch.Tensor, skin: torch.Tensor, field: torch.Tensor, level: float
              ) -> tuple[float, float, int, torch.Tensor]:
    """The edge along the iso-line at ``level`` of ``field [H, W]`` in ``rgb [H, W, 4]`` (colour, then the local
    amplitude of its fine texture, ``fine_texture``), on ``skin [H, W]`` (bool), with the number of cells and the
    line's pixels ``[H, W]``. Per cell, two colour differences: the step across the line beyond the gradient the
    skin carries beside it (on the lines moved ``CONTROL_SHIFTS`` widths aside), a change of tone at the line; and
    the line's own band against the bands beside it, a dark or light rim along it. Each is reduced per channel by
    its median over the cells, and the larger length, in grey levels, is the edge. The texture change is the
    median over the cells of log2 of the texture amplitude ahead of the line over that behind it, in octaves (its
    size). NaN and 0 cells when fewer than ``MIN_CELLS`` cells lie on skin."""
    size = rgb.shape[1]
    below = field < level
    line = below ^ F.max_pool2d(below[None, None].float(), 3, 1, 1)[0, 0].bool()  # pixels just above level
    line = line & skin
    ys, xs = line.nonzero(as_tuple=True)
    gy, gx = torch.gradient(F.avg_pool2d(field[None, None], 3, 1, 1)[0, 0])
    normals = torch.stack([gx[ys, xs], gy[ys, xs]], -1)
    good = normals.norm(dim=1) > 1e-4
    points = torch.stack([xs, ys], -1).float()[good] + 0.5
    normals = F.normalize(normals[good], dim=1)
    w = round(max(2.0, STEP_PX * size))
    half = w // 2
    bands = [(0, w), (-w, 0)] + [(s * w, s * w + w) for s in CONTROL_SHIFTS] + \
        [(s * w - w, s * w) for s in CONTROL_SHIFTS] + [(-half, half), (half, half + w), (-half - w, -half)]
    cells = _cell_means(rgb, skin, points, normals, bands, size)
    if len(cells) < MIN_CELLS:
        return float("nan"), float("nan"), 0, line
    m = torch.stack(list(cells.values()))  # [cells, bands, 4]
    colour, texture = m[..., :3], m[:, :2, 3].clamp(min=1e-4)
    n = len(CONTROL_SHIFTS)  # the bands: [0] ahead, [1] behind, then the shifted ones, then the rim's three
    step = colour[:, 0] - colour[:, 1]
    before, after = (colour[:, 2:2 + n] - colour[:, 2 + n:2 + 2 * n]).unbind(1)  # the steps beside the line
    # the gradient the skin carries through: the smaller of the two where they agree in sign, else none (a
    # structure on one side only, such as the chin's shadow, is no gradient to subtract)
    beside = torch.where(before * after > 0, torch.sign(before) * torch.minimum(before.abs(), after.abs()), 0.0)
    rim = colour[:, -3] - 0.5 * (colour[:, -2] + colour[:, -1])
    edge = max(float((step - beside).median(0).values.norm()), float(rim.median(0).values.norm()))
    octaves = abs(float(torch.log2(texture[:, 0] / texture[:, 1]).median()))
    return edge * 255, octaves, len(cells), line


def fine_texture(rgb: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` the local amplitude of ``rgb [H, W, 3]``'s fine texture: the absolute difference of its
    luminance from the mean over ``TEXTURE_PX``² pixels (pores, wrinkles, grain; not shading)."""
    luminance = rgb.mean(-1)[None, None]
    return (luminance - F.avg_pool2d(luminance, TEXTURE_PX, 1, TEXTURE_PX // 2, count_include_pad=False)
            ).abs()[0, 0]


@torch.no_grad()
def side_seam(output, camera: Camera, backend: str | None = None) -> dict[str, SeamResult]:
    """The seams of ``output`` (a FiCAOutput) at ``camera``, rendered with ``backend`` (default: the avatar's
    still renderer): one ``SeamResult`` per kind of line ("outline", "cut"); a kind with no line on skin at this
    view is left out."""
    skin_texture, fields = indicators(output, camera)
    rgb, alpha = output.avatar.render(camera, background=(0.0, 0.0, 0.0), backend=backend)
    flags, flag_alpha = indicator_avatar(output, skin_texture).render(camera, background=(0.0, 0.0, 0.0),
                                                                      backend=backend)
    lines, _ = indicator_avatar(output, torch.cat([fields, torch.zeros_like(fields[:1])])).render(
        camera, background=(0.0, 0.0, 0.0), backend=backend)
    skin = (flags[..., 0] >= SKIN_FLAG) & (alpha > OPAQUE) & (flag_alpha > OPAQUE)
    with_texture = torch.cat([rgb, fine_texture(rgb)[..., None]], -1)
    out = {}
    for channel, (kind, levels) in enumerate(LEVELS.items()):
        square = skin & (flags[..., 1] >= SQUARE_COS[kind])
        found = [line_edge(with_texture, square, lines[..., channel], level) for level in levels]
        found = [f for f in found if f[2] > 0]
        if found:
            edge, _, cells, line = max(found, key=lambda f: f[0])
            out[kind] = SeamResult(edge, max(f[1] for f in found), cells, rgb, line)
    return out


def side_seams(output, yaws=YAWS, size: int = 512, backend: str | None = None) -> dict[float, dict[str, SeamResult]]:
    """``side_seam`` at each yaw of ``yaws`` (orbit cameras, ``size``²)."""
    return {yaw: side_seam(output, orbit_camera(yaw, width=size, height=size), backend) for yaw in yaws}


def worst_edge(output, size: int = 512) -> float:
    """The largest edge (grey levels) of ``output`` over the side views of ``side_seams`` and both kinds of line."""
    return max(result.edge for views in side_seams(output, size=size).values() for result in views.values())
