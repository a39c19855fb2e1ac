"""Learned prior stage: the universal prior model (``fica.models.codec_prior.CodecPrior``) -> GaussianSet.

One Gaussian per valid texel of the prior's chart. The decoder's per-texel parameters act on a template: the
refined geometry moved by the head model's ARKit blendshapes (so expressions have a sensible starting point),
with the surface's tangent frame and texel footprint; the network adds the position offset δx, colour offset δc,
a rotation residual, a log-scale and the opacity. Head rotation (``Expression.rotation_deg``) turns the result
about the neck pivot, as the analytic prior does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fica.drive.expression import Expression
from fica.maps import CompleteUV, geometry_normals, geometry_tangents
from fica.models import QUIET_LOAD
from fica.models.codec_prior import PARAM_SPLITS
from fica.prior.analytic import NECK_BLEND_M, rotate_head
from fica.prior.base import Prior
from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera
from fica.rotations import matrix_to_quat, quat_multiply, rotation_ypr

COMPONENT = "universal_prior"
OFFSET_M = 0.01  # the network's position offset is in centimetres
THICKNESS = 0.3  # normal-axis scale as a fraction of the smaller in-surface footprint
OPACITY_BIAS = 4.0  # an untrained decoder gives nearly opaque Gaussians


def tangent_frames(geometry: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-texel surface frames of a geometry map ``[3, R, R]``.

    Returns quats ``[R, R, 4]`` (columns: u tangent, bitangent, outward normal) and footprints ``[R, R, 3]``
    (metres: |∂/∂u|, |∂/∂v| per texel and the thickness along the normal).
    """
    du, dv = geometry_tangents(geometry, valid)
    n = geometry_normals(geometry, valid).permute(1, 2, 0)
    t = F.normalize(du.permute(1, 2, 0), dim=-1, eps=1e-12)
    t = F.normalize(t - (t * n).sum(-1, keepdim=True) * n, dim=-1, eps=1e-12)
    b = torch.cross(n, t, dim=-1)
    R = t.shape[0]
    quats = matrix_to_quat(torch.stack([t, b, n], -1).reshape(-1, 3, 3)).reshape(R, R, 4)
    su, sv = du.norm(dim=0).clamp(min=1e-4), dv.norm(dim=0).clamp(min=1e-4)
    return quats, torch.stack([su, sv, THICKNESS * torch.minimum(su, sv)], -1)


def prior_inputs(texture: torch.Tensor, geometry: torch.Tensor, valid: torch.Tensor,
                 geometry_scale_m: float) -> torch.Tensor:
    """Network input ``[B, 7, R, R]`` from texture ``[B, 3, R, R]``, geometry ``[B, 3, R, R]``,
    valid ``[B, 1, R, R]``."""
    return torch.cat([(2 * texture - 1) * valid, geometry / geometry_scale_m * valid, valid], 1)


def expression_code(expression: Expression, camera: Camera | None = None) -> torch.Tensor:
    """Decoder code ``[60]``: ARKit weights, rotation / 90°, view direction in the head's own frame, gaze / 90°."""
    R_head = rotation_ypr(*expression.rotation_deg.tolist())
    view = torch.tensor([0.0, 0.0, 1.0]) if camera is None else F.normalize(camera.center.cpu().float(), dim=0)
    gaze = torch.zeros(2) if expression.gaze is None else expression.gaze.float().cpu() / 90.0
    return torch.cat([expression.weights.cpu(), expression.rotation_deg.cpu() / 90.0, R_head.T @ view, gaze])


@dataclass
class PriorIdentity:
    """What ``LearnedPrior.encode`` computes once per person (maps at the prior's resolution R)."""

    biases: list[torch.Tensor]  # identity bias maps, coarse to fine, [1, C_k, r_k, r_k]
    texture: torch.Tensor  # [3, R, R]
    geometry: torch.Tensor  # [3, R, R]
    valid: torch.Tensor  # [1, R, R]


def params_to_gaussians(params: torch.Tensor, texture: torch.Tensor, geometry: torch.Tensor,
                        valid: torch.Tensor) -> GaussianSet:
    """Turn decoder output ``params [14, R, R]`` on the template ``geometry [3, R, R]`` (already expressed),
    ``texture [3, R, R]``, ``valid [1, R, R]`` into Gaussians at the valid texels. Differentiable in ``params``."""
    frame_q, footprint = tangent_frames(geometry, valid)
    keep = valid[0] > 0.5
    p = params.permute(1, 2, 0)[keep]  # [N, 14]
    offset, dcolor, drot, log_scale, opacity = p.split(list(PARAM_SPLITS.values()), -1)
    residual = F.normalize(drot + torch.tensor([1.0, 0, 0, 0], device=p.device), dim=-1, eps=1e-12)
    return GaussianSet(means=geometry.permute(1, 2, 0)[keep] + OFFSET_M * offset,
                       quats=quat_multiply(frame_q[keep], residual), scales=footprint[keep] * log_scale.exp(),
                       opacities=(opacity[:, 0] + OPACITY_BIAS).sigmoid(),
                       colors=(texture.permute(1, 2, 0)[keep] + dcolor).clamp(0, 1))


def turn_head(gaussians: GaussianSet, geometry: torch.Tensor, valid: torch.Tensor,
              rotation_deg: torch.Tensor) -> GaussianSet:
    """Apply the head rotation (yaw, pitch, roll) ``[3]`` as the analytic prior does: about the neck pivot,
    fading out toward the bottom of the neck (``fica.prior.analytic.rotate_head``)."""
    if float(rotation_deg.abs().sum()) < 1e-6:
        return gaussians
    y = geometry[1][valid[0] > 0.5]
    weight = ((y - y.min()) / NECK_BLEND_M).clamp(0, 1)
    return rotate_head(gaussians, rotation_ypr(*rotation_deg.tolist()), weight)


def expression_displacement_maps(resolution: int) -> torch.Tensor:
    """The head model's 52 blendshapes as displacement maps ``[52, 3, R, R]`` (metres per unit weight)."""
    from fica.head.model import default_head

    head = default_head()
    layout = head.uv_layout(resolution)
    return torch.stack([layout.vertices_to_map(d) for d in head.expression_basis])


class LearnedPrior(Prior):
    def __init__(self, model, *, implementation: str = "learned", device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.implementation = implementation
        self._blendshapes: torch.Tensor | None = None

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, source: str, uv_resolution: int = 256,
                        device: str | torch.device = "cpu") -> "LearnedPrior":
        from fica.models.codec_prior import CodecPrior

        model = CodecPrior.from_pretrained(Path(folder) / COMPONENT, **QUIET_LOAD)
        return cls(model, implementation=f"learned: {source}/{COMPONENT}", device=device)

    @property
    def resolution(self) -> int:
        return int(self.model.config.resolution)

    def blendshapes(self) -> torch.Tensor:
        if self._blendshapes is None:
            self._blendshapes = expression_displacement_maps(self.resolution).to(self.device)
        return self._blendshapes

    @torch.no_grad()
    def encode(self, refined: CompleteUV) -> PriorIdentity:
        R = self.resolution
        maps = refined.to(self.device)
        texture, geometry = (F.interpolate(m[None], size=(R, R), mode="bilinear", align_corners=False)[0]
                             for m in (maps.texture, maps.geometry))
        valid = F.interpolate(maps.valid[None], size=(R, R), mode="nearest")[0]
        x = prior_inputs(texture[None], geometry[None], valid[None], self.model.config.geometry_scale_m)
        return PriorIdentity(self.model.encode(x), texture * valid, geometry * valid, valid)

    @torch.no_grad()
    def decode(self, identity: PriorIdentity, expression: Expression, camera: Camera | None = None) -> GaussianSet:
        code = expression_code(expression, camera).to(self.device)
        params = self.model.decode(identity.biases, code[None])[0]
        w = expression.weights.to(self.device)
        geometry = identity.geometry + torch.einsum("k,kcij->cij", w, self.blendshapes()) * identity.valid
        gaussians = params_to_gaussians(params, identity.texture, geometry, identity.valid)
        return turn_head(gaussians, geometry, identity.valid, expression.rotation_deg)
