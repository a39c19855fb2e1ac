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
OUTLINE_SPREAD = 0.25  # a cell whose sub-cells' coverage differs more than this holds the hair's outline


def _clamp_norm(v: torch.Tensor, most: float = 1.25) -> torch.Tensor:
    """Vectors ``[N, 3]`` shortened to at most ``most`` times their median length."""
    n = v.norm(dim=1, keepdim=True)
    return v * (most * n.median() / n.clamp(min=1e-12)).clamp(max=1.0)


def shell_gaussians(shell: HairShell | None) -> GaussianSet:
    """Gaussians ``[N]`` filling a hair shell: one per covered cell and layer, flat along the shell, longer
    down the strands (the chart's rows) than across them, as opaque as the cell's sub-cells' coverage on average.
    Two kinds of cells are split into D × D Gaussians a D-th the size, one per sub-cell, as opaque as its
    ``fine_coverage`` (none where it has none): the cells the hair's outline crosses (their sub-cells' coverage
    differs by more than ``OUTLINE_SPREAD``), in both layers, so that the hair ends along a line between the
    sub-cells, not in steps of whole cells; and on the outer layer the cells the portrait shows (``seen`` above
    ``DETAIL_SEEN``), coloured from ``shell.detail``, so the seen hair keeps the photo's detail; these have no
    inner layer (the finer, denser outer layer hides it). Empty without a shell."""
    if shell is None or not bool((shell.fine_coverage > SHELL_MIN_COVERAGE).any()):
        return GaussianSet(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3))
    A, B = shell.coverage.shape[-2:]
    D = shell.fine_coverage.shape[-1] // B
    blocks = shell.fine_coverage[0].view(A, D, B, D)
    most, least = blocks.amax((1, 3)), blocks.amin((1, 3))  # [A, B]
    covered = most > SHELL_MIN_COVERAGE
    outline = covered & (most - least > OUTLINE_SPREAD * most)
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
                            scales.clamp(*SHELL_SCALE_RANGE_M),
                            blocks.mean((1, 3))[layer_cells].clamp(max=SHELL_OPACITY), pick(shell.texture) * darken)
        split = (outline | detailed) & layer_cells if outermost else outline & layer_cells
        sets.append(_split(layer, scales, surface, shell, layer_cells, split, outermost))
    return GaussianSet.concat(sets)


def _split(layer: GaussianSet, scales: torch.Tensor, surface: torch.Tensor, shell: HairShell,
           cells: torch.Tensor, split: torch.Tensor, outermost: bool) -> GaussianSet:
    """``layer`` (one Gaussian ``[N]`` per ``cells [A, B]`` cell, unclamped ``scales [N, 3]``, on ``surface
    [3, A, B]``) with each ``split [A, B]`` cell replaced by D × D Gaussians at its sub-cells, as opaque as the
    shell's ``fine_coverage`` there (the sub-cells with none dropped), coloured as their cell, or on the
    ``outermost`` layer from the shell's ``detail`` (the portrait's colour where it shows the sub-cell's hair, the
    cell's colour elsewhere): the outline's pieces next to the seen hair are the photo's hair too."""
    D = shell.detail.shape[-1] // cells.shape[-1]
    if D < 2 or not bool(split.any()):
        return layer
    index = torch.full(cells.shape, -1, dtype=torch.long)
    index[cells] = torch.arange(int(cells.sum()))
    up = lambda m: m.repeat_interleave(D, -2).repeat_interleave(D, -1)  # noqa: E731  [.., A, B] -> [.., DA, DB]
    opacity = shell.fine_coverage[0]  # [D·A, D·B]
    fine = up(split) & (opacity > SHELL_MIN_COVERAGE)
    parent = up(index)[fine]  # [M] into the layer
    colours = shell.detail[:, fine].T.clamp(0, 1) if outermost else layer.colors[parent]
    fine_scales = scales[parent] * scales.new_tensor([1.0 / D, 1.0 / D, 1.0])
    pieces = GaussianSet(shell_subcells(surface, D)[:, fine].T, layer.quats[parent],
                         fine_scales.clamp(*SHELL_SCALE_RANGE_M), opacity[fine].clamp(max=SHELL_OPACITY), colours)
    keep = ~split[cells]
    whole = GaussianSet(layer.means[keep], layer.quats[keep], layer.scales[keep], layer.opacities[keep],
                        layer.colors[keep])
    return GaussianSet.concat([whole, pieces])
