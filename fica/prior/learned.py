"""Learned prior stage: the universal prior model (``fica.models.codec_prior.CodecPrior``) -> GaussianSet.

One Gaussian per valid texel of the prior's chart. Each starts on the identity's neutral surface (the refined
geometry map: its point, tangent frame and texel footprint, and the texture's colour) and everything that moves
comes from the decoder, fed the expression (ARKit weights + head rotation), the view direction and the gaze: the
position offset δx, colour offset δc, rotation, log-scale and opacity. No blendshapes and no head rotation are
applied outside the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fica.drive.expression import Expression
from fica.maps import CompleteUV, geometry_normals, geometry_tangents
from fica.models import QUIET_LOAD
from fica.models.codec_prior import CodecPrior, PARAM_SPLITS
from fica.prior.base import Prior
from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera
from fica.rotations import matrix_to_quat, quat_multiply, rotation_ypr
from fica.uv_ops import resample

COMPONENT = "universal_prior"
THICKNESS = 0.3  # normal-axis scale as a fraction of the smaller in-surface footprint
OPACITY_BIAS = 4.0  # an untrained decoder gives nearly opaque Gaussians
IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)


@dataclass
class SurfaceTemplate:
    """The neutral surface the decoder's parameters act on, at the N valid texels (row-major order)."""

    texel: torch.Tensor  # [N] flat index into the R×R chart
    means: torch.Tensor  # [N, 3] head frame, metres
    frames: torch.Tensor  # [N, 4] tangent frame (u tangent, bitangent, outward normal) as (w, x, y, z)
    footprints: torch.Tensor  # [N, 3] metres: |∂/∂u|, |∂/∂v| per texel and the thickness along the normal
    colors: torch.Tensor  # [N, 3] sRGB 0..1

    def to(self, device) -> "SurfaceTemplate":
        return SurfaceTemplate(*(getattr(self, k).to(device) for k in self.__dataclass_fields__))


def surface_template(texture: torch.Tensor, geometry: torch.Tensor, valid: torch.Tensor) -> SurfaceTemplate:
    """The template of texture ``[3, R, R]``, neutral geometry ``[3, R, R]`` and valid ``[1, R, R]``."""
    du, dv = geometry_tangents(geometry, valid)
    n = geometry_normals(geometry, valid).permute(1, 2, 0)
    t = F.normalize(du.permute(1, 2, 0), dim=-1, eps=1e-12)
    t = F.normalize(t - (t * n).sum(-1, keepdim=True) * n, dim=-1, eps=1e-12)
    b = torch.cross(n, t, dim=-1)
    keep = valid[0].reshape(-1) > 0.5
    frames = matrix_to_quat(torch.stack([t, b, n], -1).reshape(-1, 3, 3)[keep])
    su, sv = du.norm(dim=0).clamp(min=1e-4), dv.norm(dim=0).clamp(min=1e-4)
    footprints = torch.stack([su, sv, THICKNESS * torch.minimum(su, sv)], -1).reshape(-1, 3)[keep]
    flat = lambda m: m.reshape(m.shape[0], -1).T[keep]  # noqa: E731  [C, R, R] -> [N, C]
    return SurfaceTemplate(keep.nonzero()[:, 0], flat(geometry), frames, footprints, flat(texture))


def prior_inputs(texture: torch.Tensor, geometry: torch.Tensor, valid: torch.Tensor,
                 geometry_scale_m: float) -> torch.Tensor:
    """Network input ``[B, 7, R, R]`` from texture ``[B, 3, R, R]``, geometry ``[B, 3, R, R]``,
    valid ``[B, 1, R, R]``."""
    return torch.cat([(2 * texture - 1) * valid, geometry / geometry_scale_m * valid, valid], 1)


def decoder_inputs(expression: Expression, camera: Camera | None = None) -> dict[str, torch.Tensor]:
    """The decoder's inputs for one frame: ``expression [55]`` (ARKit weights, rotation / 90°), ``view [3]`` (unit,
    toward the camera in the turned head's frame; frontal without a camera) and ``gaze [2]`` (/ 90°, zero when
    the blendshapes carry it)."""
    R_head = rotation_ypr(*expression.rotation_deg.tolist())
    view = torch.tensor([0.0, 0.0, 1.0]) if camera is None else F.normalize(camera.center.cpu().float(), dim=0)
    gaze = torch.zeros(2) if expression.gaze is None else expression.gaze.float().cpu() / 90.0
    return {"expression": torch.cat([expression.weights.cpu(), expression.rotation_deg.cpu() / 90.0]),
            "view": R_head.T @ view, "gaze": gaze}


def params_to_gaussians(params: torch.Tensor, template: SurfaceTemplate, offset_scale_m: float) -> GaussianSet:
    """Decoder output ``params [14, R, R]`` on ``template`` -> Gaussians at its texels. Differentiable in
    ``params``."""
    p = params.reshape(params.shape[0], -1).T[template.texel]  # [N, 14]
    offset, drot, log_scale, opacity, dcolor = p.split(list(PARAM_SPLITS.values()), -1)
    residual = F.normalize(drot + p.new_tensor(IDENTITY_QUAT), dim=-1, eps=1e-12)
    return GaussianSet(means=template.means + offset_scale_m * offset,
                       quats=quat_multiply(template.frames, residual), scales=template.footprints * log_scale.exp(),
                       opacities=(opacity[:, 0] + OPACITY_BIAS).sigmoid(),
                       colors=(template.colors + dcolor).clamp(0, 1))


@dataclass
class PriorIdentity:
    """What ``LearnedPrior.encode`` computes once per person."""

    biases: tuple[list[torch.Tensor], list[torch.Tensor]]  # identity bias maps of both decoders, coarse to fine
    template: SurfaceTemplate


class LearnedPrior(Prior):
    def __init__(self, model: CodecPrior, *, implementation: str = "learned", device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.implementation = implementation

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, source: str, uv_resolution: int = 256,
                        device: str | torch.device = "cpu") -> "LearnedPrior":
        model = CodecPrior.from_pretrained(Path(folder) / COMPONENT, **QUIET_LOAD)
        return cls(model, implementation=f"learned: {source}/{COMPONENT}", device=device)

    @property
    def resolution(self) -> int:
        return int(self.model.config.resolution)

    @torch.no_grad()
    def encode(self, refined: CompleteUV) -> PriorIdentity:
        R = self.resolution
        maps = refined.to(self.device)
        texture, geometry = resample(maps.texture, R), resample(maps.geometry, R)
        valid = F.interpolate(maps.valid[None], size=(R, R), mode="nearest")[0]
        x = prior_inputs(texture[None], geometry[None], valid[None], self.model.config.geometry_scale_m)
        return PriorIdentity(self.model.encode(x), surface_template(texture * valid, geometry * valid, valid))

    @torch.no_grad()
    def decode(self, identity: PriorIdentity, expression: Expression, camera: Camera | None = None) -> GaussianSet:
        inputs = {k: v[None].to(self.device) for k, v in decoder_inputs(expression, camera).items()}
        z = self.model.encode_expression(inputs["expression"])
        params = self.model.decode(identity.biases, z, inputs["view"], inputs["gaze"])[0]
        return params_to_gaussians(params, identity.template, self.model.config.offset_scale_m)
