"""UV-map containers shared by every stage (DESIGN.md §3).

All maps are float32 tensors ``[C, R, R]`` on one square chart: u to the right, v down,
texel (i, j) = row i, column j has its centre at u = (j + 0.5) / R, v = (i + 0.5) / R.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import IntEnum

import torch
import torch.nn.functional as F


def _map_fields(obj) -> dict[str, torch.Tensor]:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if isinstance(getattr(obj, f.name), torch.Tensor)}


class _Maps:
    @property
    def resolution(self) -> int:
        return int(self.valid.shape[-1])

    def to(self, device) -> "_Maps":
        return replace(self, **{k: v.to(device) for k, v in _map_fields(self).items()})

    def as_dict(self) -> dict[str, torch.Tensor]:
        return _map_fields(self)


@dataclass
class PartialUV(_Maps):
    """What one portrait shows of the head, unwrapped into the chart."""

    rgb: torch.Tensor  # [3, R, R] sRGB 0..1, zero where unseen
    visibility: torch.Tensor  # [1, R, R] 0..1, soft at grazing angles
    normal: torch.Tensor  # [3, R, R] unit, head frame, zero where unseen
    xyz: torch.Tensor  # [3, R, R] metres, head frame, zero where unseen
    valid: torch.Tensor  # [1, R, R] 1 inside the chart


class Source(IntEnum):
    """Where a completed texel's colour came from (the values of ``CompleteUV.source``)."""

    FILLED = 0  # neither the texel nor its mirror was trusted: filled from the region's trusted texels
    MIRRORED = 1  # taken from its left/right mirror texel, which the portrait showed better
    SEEN = 2  # the portrait's own colour, kept exactly
    BLENDED = 3  # seen edge-on near the face's outline: the portrait's colour handed over to the completion


@dataclass
class HairShell:
    """Hair with volume on its own chart: a shell between the head (``inner``) and the hair's outer surface.

    The chart is a capsule around ``centre`` (see ``fica.complete.hair``): A rows from the top of the head down
    past the neck, B columns of azimuth around the vertical axis. ``coverage`` is 0 where there is no hair.
    ``detail`` holds the portrait's colour at D × D sub-cells of each cell (``shell_subcells``) so that the hair
    the portrait shows (``seen``) keeps the photo's detail, finer than the chart; ``fine_coverage`` the coverage
    there, so that the hair's outline (its lower edge, its sides) runs between the sub-cells, not along the
    cells' edges in steps.
    """

    centre: torch.Tensor  # [3] head frame, metres
    inner: torch.Tensor  # [3, A, B] metres, head frame: the head's surface under the hair
    outer: torch.Tensor  # [3, A, B] metres, head frame: the hair's outer surface
    texture: torch.Tensor  # [3, A, B] sRGB 0..1
    coverage: torch.Tensor  # [1, A, B] 0..1
    seen: torch.Tensor  # [1, A, B] 0..1: how much of the cell's colour is the portrait's
    detail: torch.Tensor  # [3, D·A, D·B] sRGB 0..1, the cell's colour plus the portrait's detail, as much as seen
    fine_coverage: torch.Tensor  # [1, D·A, D·B] 0..1, the coverage at the sub-cells: its outline between them

    def to(self, device) -> "HairShell":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def shell_subcells(maps: torch.Tensor, factor: int) -> torch.Tensor:
    """Chart maps ``[C, A, B]`` at the centres of ``factor`` × ``factor`` sub-cells of every cell, ``[C, f·A,
    f·B]``: bilinear, wrapping around the azimuth, the first and last rows held."""
    wrapped = torch.cat([maps[..., -1:], maps, maps[..., :1]], -1)  # one column from the other side each way
    fine = F.interpolate(wrapped[None], scale_factor=factor, mode="bilinear", align_corners=False)[0]
    return fine[..., factor:-factor]


@dataclass
class CompleteUV(_Maps):
    """A complete head: texture and geometry (xyz position map) over every valid texel, and the hair shell
    when the completer built one.

    source: ``[1, R, R]`` uint8 ``Source`` codes when the completer reports them (None otherwise); zero outside
    the chart.
    """

    texture: torch.Tensor  # [3, R, R] sRGB 0..1
    geometry: torch.Tensor  # [3, R, R] metres, head frame, neutral expression
    valid: torch.Tensor  # [1, R, R]
    hair: HairShell | None = None
    source: torch.Tensor | None = None  # [1, R, R] uint8 Source codes

    def to(self, device) -> "CompleteUV":
        return replace(super().to(device), hair=None if self.hair is None else self.hair.to(device))

    def normals(self) -> torch.Tensor:
        """Unit surface normals derived from the geometry map. Returns ``[3, R, R]``."""
        return geometry_normals(self.geometry, self.valid)


def geometry_tangents(geometry: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central-difference tangents of a position map along u and v.

    geometry: ``[3, R, R]``; valid: ``[1, R, R]``. Returns (du, dv), each ``[3, R, R]`` in metres per texel,
    one-sided at chart borders (a neighbour outside the chart is replaced by the texel itself).
    """
    g = geometry * valid
    m = valid
    pad_g = F.pad(g[None], (1, 1, 1, 1), mode="replicate")[0]
    pad_m = F.pad(m[None], (1, 1, 1, 1))[0]
    right, left = pad_g[:, 1:-1, 2:], pad_g[:, 1:-1, :-2]
    down, up = pad_g[:, 2:, 1:-1], pad_g[:, :-2, 1:-1]
    mr, ml = pad_m[:, 1:-1, 2:], pad_m[:, 1:-1, :-2]
    md, mu = pad_m[:, 2:, 1:-1], pad_m[:, :-2, 1:-1]
    right = torch.where(mr > 0, right, g)
    left = torch.where(ml > 0, left, g)
    down = torch.where(md > 0, down, g)
    up = torch.where(mu > 0, up, g)
    du = (right - left) / (mr + ml).clamp(min=1)
    dv = (down - up) / (md + mu).clamp(min=1)
    return du, dv


def geometry_normals(geometry: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Outward unit normals of a position map (u right, v down on a chart seen from outside).

    geometry: ``[3, R, R]``; valid: ``[1, R, R]``. Returns ``[3, R, R]``, zero outside the chart.
    """
    du, dv = geometry_tangents(geometry, valid)
    n = torch.cross(dv, du, dim=0)
    return F.normalize(n, dim=0, eps=1e-12) * valid
