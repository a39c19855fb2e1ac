"""The hair shell's Gaussians (DESIGN.md §5 "Prior": hair given volume): layers of strand-shaped Gaussians
between the head and the hair's outer surface of a ``HairShell`` (built by ``fica.complete.hair``).

They do not depend on the expression: hair follows the head rotation fully and no blendshape moves it.
"""
from __future__ import annotations

import torch

from fica.maps import HairShell
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


def _clamp_norm(v: torch.Tensor, most: float = 1.25) -> torch.Tensor:
    """Vectors ``[N, 3]`` shortened to at most ``most`` times their median length."""
    n = v.norm(dim=1, keepdim=True)
    return v * (most * n.median() / n.clamp(min=1e-12)).clamp(max=1.0)


def shell_gaussians(shell: HairShell | None) -> GaussianSet:
    """Gaussians ``[N]`` filling a hair shell: one per covered cell and layer, flat along the shell, longer
    down the strands (the chart's rows) than across them. Empty without a shell."""
    if shell is None or not bool((shell.coverage > SHELL_MIN_COVERAGE).any()):
        return GaussianSet(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 3))
    covered = shell.coverage[0] > SHELL_MIN_COVERAGE  # [A, B]
    sets = []
    for fraction in SHELL_LAYERS:
        surface = shell.inner + fraction * (shell.outer - shell.inner)  # [3, A, B]
        along = torch.cat([surface[:, 1:2] - surface[:, :1], 0.5 * (surface[:, 2:] - surface[:, :-2]),
                           surface[:, -1:] - surface[:, -2:-1]], 1)  # down the rows
        across = 0.5 * (surface.roll(-1, 2) - surface.roll(1, 2))  # around the azimuth (wraps)
        pick = lambda m: m[:, covered].T  # noqa: E731  [3, A, B] -> [N, 3]
        a, c = _clamp_norm(pick(along)), _clamp_norm(pick(across))  # a step in thickness is no longer strand
        normal = torch.nn.functional.normalize(torch.cross(a, c, dim=1), dim=1, eps=1e-12)
        e1 = torch.nn.functional.normalize(a - (a * normal).sum(1, keepdim=True) * normal, dim=1, eps=1e-12)
        e2 = torch.cross(normal, e1, dim=1)
        scales = torch.stack([SHELL_ALONG * a.norm(dim=1), SHELL_ACROSS * c.norm(dim=1),
                              torch.full((len(a),), SHELL_THICKNESS_M)], 1).clamp(*SHELL_SCALE_RANGE_M)
        darken = SHELL_INNER_DARKEN + (1 - SHELL_INNER_DARKEN) * fraction
        sets.append(GaussianSet(pick(surface), matrix_to_quat(torch.stack([e1, e2, normal], 2)), scales,
                                shell.coverage[0][covered].clamp(max=SHELL_OPACITY), pick(shell.texture) * darken))
    return GaussianSet.concat(sets)
