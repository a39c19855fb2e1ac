"""The analytic (embedded) prior (DESIGN.md §5 "Prior"): one surface Gaussian per valid texel, driven by the
head model's ARKit blendshapes. No weights; ``encode`` does all per-person work so ``decode`` costs milliseconds.

decode, per texel: centre = geometry + Σ_k w_k · blendshape_k (gathered to texels once in ``encode``), eyeballs
turned by the gaze about their fitted centres, the mouth cavity clamped behind the lips and chin; rotation = the
local tangent frame of the deformed geometry map (u tangent, its in-plane normal, surface normal); scales =
the texel spacing along the two tangents times the texel's footprint (``texel_footprints``: wide where the colour
is smooth, narrower at detail) and thin along the normal; then the head rotation
about the neck pivot, fading out over the lowest ``NECK_BLEND_M`` of the neck so its base stays on the torso.
Scalp texels get a second, thicker layer just above the surface, unless the completer built a hair shell: it
adds layers of strand-shaped Gaussians between the head and the hair's outer surface (``fica.prior.hair_shell``).
Hair follows the head rotation fully and no blendshape moves it. The neck ends at a clean cut closed by a cap
(``fica.prior.neck``), which stays on the torso.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from fica.drive.expression import ARKIT_NAMES, Expression
from fica.head.model import REGIONS, HeadModel, default_head
from fica.maps import CompleteUV, geometry_tangents
from fica.prior.base import Prior
from fica.prior.gaussians import GaussianSet
from fica.prior.hair_shell import shell_gaussians
from fica.prior.neck import height_above, neck_cap, neck_cut, neck_fade
from fica.prior.portrait_match import correctable_texels, matched_colours
from fica.render.camera import Camera
from fica.rotations import (axis_angle_to_quat, gaze_rotation, matrix_to_axis_angle, matrix_to_quat, quat_multiply,
                            rotate_about_axis, rotation_ypr)
from fica.threads import one_thread
from fica.unwrap.base import Unwrapped
from fica.uv_ops import erode, smoothstep, sphere_centre, weighted_blur

NECK_PIVOT_M = (0.0, -0.08, 0.0)
NECK_BLEND_M = 0.02  # the head rotation fades to zero over this height above the bottom of the neck
FOOTPRINT = 0.6  # tangential scale in texel spacings where the colour has detail: edges stay sharp
SMOOTH_FOOTPRINT = 0.8  # ... and where it is smooth: front-to-back compositing shows no texel grid
DETAIL_RANGE = (0.02, 0.06)  # local colour detail (0..1) over which the footprint narrows from smooth to detailed
BORDER_SPREAD = 1.6  # chart-border texels reach across the seam to the other side's border
THICKNESS = 0.12  # normal scale as a fraction of the mean tangential scale
SCALE_RANGE_M = (2e-4, 1.5e-2)
OPACITY = 0.99
HAIR_OFFSET_M = 0.0025  # the hair layer's distance above the scalp
HAIR_THICKNESS_M = 0.0015
HAIR_SPREAD = 1.2  # tangential scale of the hair layer relative to the scalp's
HAIR_DARKEN = 0.9
HAIR_OPACITY = 0.9
MOUTH_PARTNER_CANDIDATES = 4000
EYE_LOOK = tuple(i for i, n in enumerate(ARKIT_NAMES) if n.startswith("eyeLook"))


@dataclass
class AnalyticIdentity:
    """Per-person state of the analytic prior (one row per valid texel, row-major texel order).

    texel: ``[N]`` flat index into the R×R chart; valid: ``[1, R, R]``; positions ``[N, 3]`` neutral (metres);
    colors ``[N, 3]``; footprint ``[N]`` tangential scale in texel spacings (``texel_footprints``; wider on the
    chart border, to close seams);
    moving ``[M]`` the texels some blendshape moves, with their triangle's vertices ``[M, 3]`` and barycentrics
    ``[M, 3]``; basis ``[52, V * 3]`` the head model's blendshapes (offsets are made per vertex, then
    interpolated to the moving texels); head_weight ``[N]`` how much of the head rotation each texel follows;
    eye_side ``[N]`` (-1 right eye, 1 left eye, 0 not an eyeball); eye_centres ``[2, 3]`` (right, left);
    mouth ``[N]`` bool and mouth_partner ``[N]`` the skin texel in front of each mouth texel (lips or chin: the
    nearest in x, y among those with a larger z); hair ``[N]`` bool; opacity ``[N]`` (the neck fades out at its
    cut); cap: the Gaussians closing the neck (not driven); shell: the hair shell's Gaussians
    (expression-independent, head frame, possibly empty);
    neutral: the Gaussians at the neutral expression (decode returns them without recomputing).
    """

    texel: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor
    colors: torch.Tensor
    footprint: torch.Tensor
    moving: torch.Tensor
    moving_vertices: torch.Tensor
    moving_bary: torch.Tensor
    basis: torch.Tensor
    head_weight: torch.Tensor
    eye_side: torch.Tensor
    eye_centres: torch.Tensor
    mouth: torch.Tensor
    mouth_partner: torch.Tensor
    hair: torch.Tensor
    opacity: torch.Tensor
    cap: GaussianSet
    shell: GaussianSet
    neutral: GaussianSet | None = None

    @property
    def resolution(self) -> int:
        return int(self.valid.shape[-1])

    def to(self, device) -> "AnalyticIdentity":
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), (torch.Tensor, GaussianSet))}
        return replace(self, **moved)


class AnalyticPrior(Prior):
    implementation = "embedded: analytic Gaussian prior"

    def __init__(self, head: HeadModel | None = None):
        self.head = head

    def encode(self, refined: CompleteUV) -> AnalyticIdentity:
        """Gather everything per texel once: positions, colours, blendshapes, rig weights, eyes and mouth.
        Built on the CPU (where the head model lives), returned on the maps' device."""
        with one_thread():  # many small ops: a second torch thread only waits on a busy CPU
            return self._encode(refined.to("cpu")).to(refined.texture.device)

    def _encode(self, refined: CompleteUV) -> AnalyticIdentity:
        head = self.head or default_head()
        layout = head.uv_layout(refined.resolution)
        mask = refined.valid[0] > 0.5
        texel = mask.flatten().nonzero()[:, 0]
        positions = refined.geometry[:, mask].T.contiguous().float()
        colors = refined.texture[:, mask].T.contiguous().float().clamp(0, 1)
        moves = head.expression_basis.abs().amax(dim=(0, 2)) > 0  # [V] vertices any blendshape moves
        texel_vertices = layout.texel_vertices[mask]
        moving = moves[texel_vertices].any(1).nonzero()[:, 0]  # [M] texels with a moving vertex
        region = layout.region[mask]
        border = (refined.valid - erode(refined.valid, 1))[0][mask] > 0.5
        neck = region == REGIONS.index("neck")
        loop = border & neck & torch.isin(texel_vertices, head.neck_loop).any(1)  # texels on the open cut
        cut = neck_cut(positions[loop])
        heights = height_above(positions, cut)
        du, _ = geometry_tangents(refined.geometry, refined.valid)
        spacing = float(du[:, mask].norm(dim=0)[neck].median())
        cap = neck_cap(positions[neck], colors[neck], heights[neck], spacing, cut)
        head_weight = (heights / NECK_BLEND_M).clamp(0, 1)
        head_weight = head_weight * head_weight * (3 - 2 * head_weight)

        eyes = region == REGIONS.index("eyes")
        eye_side = torch.where(eyes, torch.where(positions[:, 0] >= 0, 1, -1), 0)
        eye_centres = torch.zeros(2, 3)
        for i, side in enumerate((-1, 1)):
            if int((eye_side == side).sum()) >= 4:
                eye_centres[i] = sphere_centre(positions[eye_side == side])

        mouth = region == REGIONS.index("mouth")
        partner = torch.zeros(len(positions), dtype=torch.long)
        if bool(mouth.any()):
            # candidates: lips and face within 2 cm of the cavity's x, y box; only skin in front of a texel counts
            lo, hi = positions[mouth, :2].amin(0) - 0.02, positions[mouth, :2].amax(0) + 0.02
            skin = (region == REGIONS.index("face")) | (region == REGIONS.index("lips"))
            skin_idx = (skin & ((positions[:, :2] >= lo) & (positions[:, :2] <= hi)).all(1)).nonzero()[:, 0]
            skin_idx = skin_idx[::max(1, len(skin_idx) // MOUTH_PARTNER_CANDIDATES)]  # neighbours move alike
            if len(skin_idx):
                d = torch.cdist(positions[mouth, :2], positions[skin_idx, :2])
                d = d + 1e3 * (positions[skin_idx][None, :, 2] < positions[mouth][:, None, 2])
                partner[mouth] = skin_idx[d.argmin(1)]
        shell = shell_gaussians(refined.hair)
        hair = (region == REGIONS.index("scalp")) & (len(shell) == 0)  # a hair shell replaces the thin layer

        opacity = OPACITY * neck_fade(heights)
        opacity_map = refined.valid.new_zeros(refined.valid.shape)
        opacity_map[0][mask] = opacity
        footprints = texel_footprints(torch.cat([refined.texture, opacity_map]), refined.valid)
        footprint = torch.where(border, FOOTPRINT * BORDER_SPREAD, footprints[0][mask])
        identity = AnalyticIdentity(texel, refined.valid.clone(), positions, colors, footprint, moving,
                                    texel_vertices[moving], layout.bary[mask][moving],
                                    head.expression_basis.reshape(len(ARKIT_NAMES), -1), head_weight, eye_side,
                                    eye_centres, mouth, partner, hair, opacity, cap, shell)
        identity.neutral = self._gaussians(identity, positions)
        return identity

    def match_portrait(self, identity: AnalyticIdentity, portrait: torch.Tensor, unwrapped: Unwrapped,
                       refined: CompleteUV) -> AnalyticIdentity:
        """``identity`` with the colours of the texels that hold the portrait's corrected by back-projection
        (``fica.prior.portrait_match``), so that its render at the portrait camera and expression reproduces
        ``portrait [H, W, 3]`` through the splats' blur."""
        with one_thread():  # many small ops, as in encode (the render runs its own workers)
            gaussians = self.decode(identity, unwrapped.expression)
            pixels, _ = unwrapped.camera.to(portrait.device).project(gaussians.means[:len(identity.texel)])
            correctable = correctable_texels(identity.texel, pixels, refined, unwrapped)
            colors = matched_colours(identity.colors, pixels, correctable, gaussians, portrait, unwrapped.camera)
            matched = replace(identity, colors=colors)
            matched.neutral = self._gaussians(matched, matched.positions)
            return matched

    def deform(self, identity: AnalyticIdentity, expression: Expression) -> torch.Tensor:
        """Texel positions ``[N, 3]`` at ``expression`` before the head rotation (blendshapes, gaze, mouth clamp)."""
        weights = expression.weights.to(identity.positions)
        if expression.gaze is not None:
            weights = weights.clone()
            weights[list(EYE_LOOK)] = 0  # an explicit gaze replaces the eyeLook blendshapes
        active = weights.nonzero()[:, 0]
        positions = identity.positions
        if len(active):
            per_vertex = (weights[active] @ identity.basis[active]).view(-1, 3)  # [V, 3]
            offsets = (per_vertex[identity.moving_vertices] * identity.moving_bary[..., None]).sum(1)  # [M, 3]
            positions = positions.index_add(0, identity.moving, offsets)
        if expression.gaze is not None:
            R = gaze_rotation(float(expression.gaze[0]), float(expression.gaze[1])).to(positions)
            for i, side in enumerate((-1, 1)):
                sel = identity.eye_side == side
                c = identity.eye_centres[i].to(positions)
                positions = torch.where(sel[:, None], (positions - c) @ R.T + c, positions)
        if bool(identity.mouth.any()):  # the cavity never comes further forward than the skin in front of it
            forward = positions[:, 2] - identity.positions[:, 2]
            excess = (forward - forward[identity.mouth_partner]).clamp(min=0) * identity.mouth
            positions = positions - excess[:, None] * positions.new_tensor([0.0, 0.0, 1.0])
        return positions

    def _gaussians(self, identity: AnalyticIdentity, positions: torch.Tensor) -> GaussianSet:
        """Surface Gaussians (plus the hair layer) at texel ``positions [N, 3]``, head frame, unrotated."""
        R = identity.resolution
        geometry = positions.new_zeros(3, R * R)
        geometry[:, identity.texel] = positions.T
        du, dv = geometry_tangents(geometry.view(3, R, R), identity.valid.to(positions))
        du = du.view(3, -1)[:, identity.texel].T.contiguous()  # row-major [N, 3]: norms over rows are 10x faster
        dv = dv.view(3, -1)[:, identity.texel].T.contiguous()
        normal = torch.nn.functional.normalize(torch.cross(dv, du, dim=1), dim=1, eps=1e-12)
        e1 = torch.nn.functional.normalize(du - (du * normal).sum(1, keepdim=True) * normal, dim=1, eps=1e-12)
        e2 = torch.cross(normal, e1, dim=1)
        quats = matrix_to_quat(torch.stack([e1, e2, normal], dim=2))
        s1 = identity.footprint * du.norm(dim=1)
        s2 = identity.footprint * (dv - (dv * e1).sum(1, keepdim=True) * e1).norm(dim=1)
        s3 = THICKNESS * 0.5 * (s1 + s2)
        scales = torch.stack([s1, s2, s3], 1).clamp(*SCALE_RANGE_M)
        surface = GaussianSet(positions, quats, scales, identity.opacity, identity.colors)
        h = identity.hair
        hair_scales = torch.cat([scales[h, :2] * HAIR_SPREAD,
                                 scales.new_full((int(h.sum()), 1), HAIR_THICKNESS_M)], 1)
        hair = GaussianSet(positions[h] + HAIR_OFFSET_M * normal[h], quats[h], hair_scales,
                           positions.new_full((int(h.sum()),), HAIR_OPACITY), identity.colors[h] * HAIR_DARKEN)
        return GaussianSet.concat([surface, hair, identity.shell.to(positions.device)])

    def decode(self, identity: AnalyticIdentity, expression: Expression, camera: Camera | None = None) -> GaussianSet:
        """The Gaussians at ``expression`` (``camera`` is unused: the analytic prior is not view-dependent)."""
        with one_thread():
            neutral_face = not bool(expression.weights.any()) and expression.gaze is None
            gaussians = identity.neutral if neutral_face else \
                self._gaussians(identity, self.deform(identity, expression))
            yaw, pitch, roll = (float(a) for a in expression.rotation_deg)
            if abs(yaw) + abs(pitch) + abs(roll) > 1e-6:
                weight = torch.cat([identity.head_weight, identity.head_weight[identity.hair],
                                    identity.head_weight.new_ones(len(identity.shell))])
                gaussians = rotate_head(gaussians, rotation_ypr(yaw, pitch, roll), weight)
            return GaussianSet.concat([gaussians, identity.cap.to(gaussians.means.device)])


def texel_footprints(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[1, R, R]``: each texel Gaussian's tangential scale in texel spacings, from ``SMOOTH_FOOTPRINT`` where
    ``values [C, R, R]`` (colour and opacity, 0..1) are smooth around it down to ``FOOTPRINT`` where they have
    detail (their largest difference from their blur over a texel, spread over the next two texels so that no wide
    splat reaches over an edge: of the colour, or of the avatar where the neck's cut fades it out); ``valid
    [1, R, R]`` the chart.

    Nearly opaque splats composited front to back hand the colour from one texel to the next over a distance set
    by their width; at 0.6 texel spacings the hand-over is steep enough to draw the texels' lattice on smooth skin
    (a grid of 1.1-2.7 grey levels on the examples' cheeks at 768², ~4 px a texel, at yaw 0 and ±45°; 0.07-0.15 at
    0.8 spacings, ``tests/test_texel_grid.py``). Where the colour has detail a grid of that size is lost in it, and
    the narrower splats keep the detail sharp.
    """
    detail = (values - weighted_blur(values, valid, 1.0)).abs().amax(0, keepdim=True)
    narrowing = smoothstep(weighted_blur(detail, valid, 1.5), *DETAIL_RANGE)
    return SMOOTH_FOOTPRINT + (FOOTPRINT - SMOOTH_FOOTPRINT) * narrowing


def rotate_head(gaussians: GaussianSet, R: torch.Tensor, weight: torch.Tensor) -> GaussianSet:
    """Rotate ``gaussians`` by ``R [3, 3]`` about the neck pivot, each by the fraction ``weight [N]`` (0..1) of
    the rotation angle (same axis)."""
    axis, angle = matrix_to_axis_angle(R)
    axis = axis.to(gaussians.means)
    a = weight.to(gaussians.means) * angle  # [N]
    pivot = gaussians.means.new_tensor(NECK_PIVOT_M)
    rotated = rotate_about_axis(gaussians.means - pivot, axis, a)
    quats = torch.nn.functional.normalize(quat_multiply(axis_angle_to_quat(axis, a), gaussians.quats), dim=1)
    return GaussianSet(rotated + pivot, quats, gaussians.scales, gaussians.opacities, gaussians.colors)
