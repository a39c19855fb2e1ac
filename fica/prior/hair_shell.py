"""The hair shell's Gaussians (DESIGN.md §5 "Prior": hair given volume): layers of strand-shaped Gaussians
between the head and the hair's outer surface of a ``HairShell`` (built by ``fica.complete.hair``).

They do not depend on the expression: hair follows the head rotation fully and no blendshape moves it.
"""
from __future__ import annotations

import torch

from fica.maps import HairShell, shell_subcells
from fica.prior.gaussians import GaussianSet
from fica.rotations import matrix_to_quat

SHELL_LAYERS = (0.6, 1.0)  # fractions of the way from the head to the hair's outer surface
SHELL_INNER_DARKEN = 0.75  # the inner layer shows where the shell ends: hair is darker inside
SHELL_ALONG = 0.9  # the shell Gaussians' scale along the strands (down the rows), in cell spacings ...
SHELL_ACROSS = 0.65  # ... and across them
SHELL_THICKNESS_M = 0.002
SHELL_MIN_COVERAGE = 0.05
SHELL_OPACITY = 0.9
SHELL_SCALE_RANGE_M = (2e-4, 1.5e-2)
DETAIL_SEEN = 0.5  # an outer-layer cell whose colour is at least this much the portrait's gets the detail


def _clamp_norm(v: torch.Tensor, most: float = 1.25) -> torch.Tensor:
    """Vectors ``[N, 3]`` shortened to at most ``most`` times their median length."""
    n = v.norm(dim=1, keepdim=True)
    return v * (most * n.median() / n.clamp(min=1e-12)).clamp(max=1.0)


def shell_gaussians(shell: HairShell | None) -> GaussianSet:
    """Gaussians ``[N]`` filling a hair shell: one per covered cell and layer, flat along the shell, longer
    down the strands (the chart's rows) than across them; on the outer layer, the cells the portrait shows
    (``seen`` above ``DETAIL_SEEN``) are split into D × D Gaussians a D-th the size, coloured from
    ``shell.detail``, so the seen hair keeps the photo's detail, and have no inner layer (the finer, denser
    outer layer hides it). Empty without a shell."""
    if shell is None or not bool((shell.coverage > SHELL_MIN_COVERAGE).any()):
        return GaussianSet(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3))
    covered = shell.coverage[0] > SHELL_MIN_COVERAGE  # [A, B]
    detailed = covered & (shell.seen[0] > DETAIL_SEEN)  # [A, B]
    sets = []
    for fraction in SHELL_LAYERS:
        outermost = fraction == SHELL_LAYERS[-1]
        layer_cells = covered if outermost else covered & ~detailed  # the detail hides what lies under it
        surface = shell.inner + fraction * (shell.outer - shell.inner)  # [3, A, B]
        along = torch.cat([surface[:, 1:2] - surface[:, :1], 0.5 * (surface[:, 2:] - surface[:, :-2]),
                           surface[:, -1:] - surface[:, -2:-1]], 1)  # down the rows
        across = 0.5 * (surface.roll(-1, 2) - surface.roll(1, 2))  # around the azimuth (wraps)
        pick = lambda m: m[:, layer_cells].T  # noqa: E731  [3, A, B] -> [N, 3]
        a, c = _clamp_norm(pick(along)), _clamp_norm(pick(across))  # a step in thickness is no longer strand
        normal = torch.nn.functional.normalize(torch.cross(a, c, dim=1), dim=1, eps=1e-12)
        e1 = torch.nn.functional.normalize(a - (a * normal).sum(1, keepdim=True) * normal, dim=1, eps=1e-12)
        e2 = torch.cross(normal, e1, dim=1)
        scales = torch.stack([SHELL_ALONG * a.norm(dim=1), SHELL_ACROSS * c.norm(dim=1),
                              torch.full((len(a),), SHELL_THICKNESS_M)], 1)
        darken = SHELL_INNER_DARKEN + (1 - SHELL_INNER_DARKEN) * fraction
        layer = GaussianSet(pick(surface), matrix_to_quat(torch.stack([e1, e2, normal], 2)),
                            scales.clamp(*SHELL_SCALE_RANGE_M), shell.coverage[0][layer_cells].clamp(max=SHELL_OPACITY),
                            pick(shell.texture) * darken)
        if outermost:
            layer = _with_detail(layer, scales, surface, shell, covered, detailed)
        sets.append(layer)
    return GaussianSet.concat(sets)


def _with_detail(layer: GaussianSet, scales: torch.Tensor, surface: torch.Tensor, shell: HairShell,
                 covered: torch.Tensor, split: torch.Tensor) -> GaussianSet:
    """``layer`` (one Gaussian ``[N]`` per ``covered [A, B]`` cell, unclamped ``scales [N, 3]``, on ``surface
    [3, A, B]``) with each ``split [A, B]`` cell replaced by D × D Gaussians at its sub-cells, the detail's
    colours."""
    D = shell.detail.shape[-1] // covered.shape[-1]
    if D < 2 or not bool(split.any()):
        return layer
    index = torch.full(covered.shape, -1, dtype=torch.long)
    index[covered] = torch.arange(int(covered.sum()))
    fine = split.repeat_interleave(D, 0).repeat_interleave(D, 1)  # [D·A, D·B]
    parent = index.repeat_interleave(D, 0).repeat_interleave(D, 1)[fine]  # [M] into the layer
    fine_scales = scales[parent] * scales.new_tensor([1.0 / D, 1.0 / D, 1.0])
    detailed = GaussianSet(shell_subcells(surface, D)[:, fine].T, layer.quats[parent],
                           fine_scales.clamp(*SHELL_SCALE_RANGE_M), layer.opacities[parent],
                           shell.detail[:, fine].T.clamp(0, 1))
    keep = ~split[covered]
    coarse = GaussianSet(layer.means[keep], layer.quats[keep], layer.scales[keep], layer.opacities[keep],
                         layer.colors[keep])
    return GaussianSet.concat([coarse, detailed])
