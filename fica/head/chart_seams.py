"""Where the chart is cut: texels on an island's border and the texel that continues the surface on the other side.

The chart (DESIGN.md §3) lays the head out in islands; the under-jaw ends at the face island's lower border and
goes on at the top of the neck island, the back of the head meets itself along the midline. Map operations work
on the chart's grid, so colour made separately on two islands (a fill, a membrane) steps where they meet on the
head. ``chart_seams`` pairs each border texel with the nearest border texel of another part of the border, on
the neutral head, so that a stage can make both sides agree, and gives each texel's size on the head: the
islands are drawn at different scales (a neck texel spans about four face texels), and a change spread over the
same number of texels on both sides of a cut is that much steeper on the finer side.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.spatial import cKDTree

from fica.head.model import HeadModel
from fica.uv_ops import erode

NEIGHBOURS = 8  # candidates looked at per border texel
MIN_CHART_TEXELS = 3.0  # at R = 256: a partner lies at least this far away on the chart (the other side of a cut)
MAX_GAP_M = 0.006  # ... and at most this far away on the head (most pairs lie 1-4.5 mm apart at R = 256)
MIN_NORMAL_COS = 0.5  # and faces the same way (an eyelid's rim and the eyeball behind it are not one surface)


@dataclass(frozen=True)
class ChartSeams:
    """partner ``[R, R]`` long: for each texel on the border of a chart island, the flat index (row × R + column)
    of the texel that continues the head's surface across the cut; -1 for the others (inside an island, outside
    the chart, or a border that is the head's own edge, such as the neck's open loop). spacing ``[1, R, R]``: the
    distance in metres on the neutral head from each texel to its chart neighbours (mean over both axes)."""

    partner: torch.Tensor
    spacing: torch.Tensor


def texel_spacing(positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[1, R, R]`` metres: the mean distance from each ``valid [1, R, R]`` texel of ``positions [3, R, R]`` to
    its valid 4-neighbours (0 where it has none)."""
    steps, counts = torch.zeros_like(valid), torch.zeros_like(valid)
    for dim in (-1, -2):
        gap = positions.diff(dim=dim).norm(dim=0, keepdim=True)
        both = valid.narrow(dim, 0, valid.shape[dim] - 1) * valid.narrow(dim, 1, valid.shape[dim] - 1)
        for start in (0, 1):  # the gap to the next texel and to the previous one
            steps.narrow(dim, start, valid.shape[dim] - 1).add_(gap * both)
            counts.narrow(dim, start, valid.shape[dim] - 1).add_(both)
    return steps / counts.clamp(min=1)


@lru_cache(maxsize=4)
def chart_seams(head: HeadModel, resolution: int) -> ChartSeams:
    """The ``ChartSeams`` of ``head``'s chart at ``resolution``."""
    layout = head.uv_layout(resolution)
    positions = layout.vertices_to_map(head.vertices)  # [3, R, R]
    normals = torch.nn.functional.normalize(layout.vertices_to_map(head.vertex_normals(head.vertices)), dim=0)
    border = (layout.valid[0] > 0.5) & (erode(layout.valid, 1)[0] < 0.5)
    rows, cols = (index.numpy() for index in border.nonzero(as_tuple=True))
    points = positions[:, rows, cols].T.numpy()
    gap, near = cKDTree(points).query(points, k=min(NEIGHBOURS, len(points)))
    chart_gap = np.hypot(rows[:, None] - rows[near], cols[:, None] - cols[near])
    facing = (normals[:, rows, cols].T.numpy()[:, None] * normals[:, rows[near], cols[near]].numpy().transpose(1, 2, 0)
              ).sum(-1)
    ok = (chart_gap >= MIN_CHART_TEXELS * resolution / 256) & (gap <= MAX_GAP_M) & (facing >= MIN_NORMAL_COS)
    found = ok.any(1)
    nearest = near[np.arange(len(near)), ok.argmax(1)]  # candidates come nearest first
    partner = torch.full((resolution, resolution), -1, dtype=torch.long)
    partner[rows[found], cols[found]] = torch.from_numpy(rows[nearest[found]] * resolution + cols[nearest[found]])
    return ChartSeams(partner, texel_spacing(positions, layout.valid))
