"""The outline seam measure (issue 7, "a seamless far side"): seen from the side, does the face the portrait shows
end in an edge where the completed head begins?

The avatar is rendered at a side view, and beside it the same avatar with its texture replaced by indicators
(``indicator_avatar``): how squarely the portrait saw each texel (``portrait_view_cosine``), which texels are face
or neck skin, and how squarely the side view sees them. Along the iso-lines of the first (the projected outline of
what the portrait sees, at ``LEVELS`` across the hand-over), on skin the side view sees squarely, the colour step
across the line (mean over ``STEP_PX`` on the seen side minus the same on the completed side) is averaged over
cells of the outline: a seam is a step that keeps its sign along the line, while skin texture and wrinkles average
out. The median cell's step is the outline's step (0..1, RGB length). The same step on the same pixels with the
line moved ``CONTROL_SHIFTS`` step widths into either side (the skin's own shading and texture there, in that
direction) is the reference; their ratio, at the worst level, is the seam ratio. Skin that reads as one surface
has a ratio near 1.
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
LEVELS = (0.15, 0.3, 0.45)  # iso-levels of the portrait's view cosine: the outline and the hand-over inside it
STEP_PX = 0.02  # the step compares means over this fraction of the render's size on either side of the line
CONTROL_SHIFTS = (-4, -2, 2, 4)  # the reference lines sit these many step widths into either side
CELL = 0.05  # outline pixels are grouped in square cells of this fraction of the render's size
MIN_CELL_PIXELS = 8
SKIN_FLAG = 0.95  # indicator pixels whose skin channel is at least this are skin, uncovered by hair ...
SQUARE_COS = 0.5  # ... and seen at least this squarely from the side view (not the face's profile edge-on)


@dataclass
class SeamResult:
    step: float  # median cell step across the outline, RGB length 0..1 (at the worst level)
    reference: float  # the same across the shifted lines
    render: torch.Tensor  # [S, S, 3] the avatar at the side view
    outline: torch.Tensor  # [S, S] bool, the outline pixels of the worst level

    @property
    def ratio(self) -> float:
        return self.step / max(self.reference, 1e-4)


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


def indicator_avatar(output, camera: Camera) -> Avatar:
    """``output``'s avatar (a FiCAOutput) with its colours replaced: red = ``portrait_view_cosine``, green = 1 on
    the face and neck skin, blue = the cosine of the view angle from ``camera``; hair and the rest black."""
    refined = output.refined
    layout = default_head().uv_layout(refined.resolution)
    skin = layout.region_mask("face", "neck").to(refined.texture)
    cosine = portrait_view_cosine(output.unwrapped).to(refined.texture)
    to_camera = F.normalize(camera.center.to(refined.geometry)[:, None, None] - refined.geometry, dim=0)
    facing = (refined.normals() * to_camera).sum(0, keepdim=True).clamp(min=0)
    texture = torch.cat([cosine, skin, facing * skin]) * refined.valid
    hair = refined.hair
    if hair is not None:
        hair = replace(hair, texture=torch.zeros_like(hair.texture), detail=torch.zeros_like(hair.detail))
    avatar = output.avatar
    identity = avatar.prior.encode(replace(refined, texture=texture, hair=hair))
    return Avatar(avatar.prior, identity, avatar.fitted_camera, avatar.fitted_expression, avatar.device)


def _cell_steps(rgb: torch.Tensor, skin: torch.Tensor, points: torch.Tensor, normals: torch.Tensor,
                shift: float, step_px: float, size: int) -> list[float]:
    """Per outline cell, the length of the mean colour step: ``rgb [H, W, 3]`` on the seen side (along
    ``normals``) minus the completed side, the line moved by ``shift`` pixels along the normal; only points whose
    samples all fall on ``skin`` count."""
    offsets = torch.arange(1, int(round(step_px)) + 1, dtype=torch.float32)
    centre = points + shift * normals
    seen_pts = centre[:, None] + offsets[None, :, None] * normals[:, None]
    done_pts = centre[:, None] - offsets[None, :, None] * normals[:, None]
    all_pts = torch.cat([seen_pts, done_pts], 1).reshape(-1, 2)
    on_skin = (sample_pixels(skin[..., None], all_pts, padding_mode="border")[:, 0] > 0.99
               ).reshape(len(points), -1).all(1)
    side_mean = lambda pts: sample_pixels(rgb, pts.reshape(-1, 2), padding_mode="border"  # noqa: E731
                                          ).reshape(len(points), -1, 3).mean(1)  # [P, 3]
    step = (side_mean(seen_pts) - side_mean(done_pts))[on_skin]
    cells = (points[on_skin] / (CELL * size)).long()
    keys = cells[:, 0] * 10_000 + cells[:, 1]
    out = []
    for key in keys.unique():
        sel = keys == key
        if int(sel.sum()) >= MIN_CELL_PIXELS:
            out.append(float(step[sel].mean(0).norm()))
    return out


@torch.no_grad()
def outline_seam(output, camera: Camera) -> SeamResult:
    """The seam at ``camera`` for ``output`` (a FiCAOutput)."""
    indicator = indicator_avatar(output, camera)
    size = camera.width
    rgb, alpha = output.avatar.render(camera, background=(0.0, 0.0, 0.0))
    flags, flag_alpha = indicator.render(camera, background=(0.0, 0.0, 0.0))
    skin = (flags[..., 1] >= SKIN_FLAG) & (flags[..., 2] >= SQUARE_COS) & (alpha > 0.99) & (flag_alpha > 0.99)
    cosine = flags[..., 0]
    gy, gx = torch.gradient(F.avg_pool2d(cosine[None, None], 3, 1, 1)[0, 0])
    step_px = max(2.0, STEP_PX * size)
    worst = (-1.0, 0.0, torch.zeros_like(skin))
    for level in LEVELS:
        below = cosine < level
        edge = below ^ F.max_pool2d(below[None, None].float(), 3, 1, 1)[0, 0].bool()  # pixels just above level
        edge = edge & skin
        ys, xs = edge.nonzero(as_tuple=True)
        if len(ys) < MIN_CELL_PIXELS:
            continue
        normals = torch.stack([gx[ys, xs], gy[ys, xs]], -1)
        good = normals.norm(dim=1) > 1e-4
        points = torch.stack([xs, ys], -1).float()[good] + 0.5
        normals = F.normalize(normals[good], dim=1)
        at_line = _cell_steps(rgb, skin, points, normals, 0.0, step_px, size)
        controls = [s for shift in CONTROL_SHIFTS
                    for s in _cell_steps(rgb, skin, points, normals, shift * step_px, step_px, size)]
        if not at_line or not controls:
            continue
        step, reference = float(np.median(at_line)), float(np.median(controls))
        if step / max(reference, 1e-4) > worst[0] / max(worst[1], 1e-4) or worst[0] < 0:
            worst = (step, reference, edge)
    return SeamResult(max(worst[0], 0.0), worst[1], rgb, worst[2])


def side_seams(output, yaws=(60.0, 90.0, -60.0, -90.0), size: int = 512) -> dict[float, SeamResult]:
    """``outline_seam`` at each yaw of ``yaws`` (orbit cameras, ``size``²)."""
    return {yaw: outline_seam(output, orbit_camera(yaw, width=size, height=size)) for yaw in yaws}


def seam_ratio(output, size: int = 512) -> float:
    """The median seam ratio of ``output`` over the side views of ``side_seams``."""
    return float(np.median([result.ratio for result in side_seams(output, size=size).values()]))
