"""The avatar's Gaussians cover its surface at every zoom, as any standard 3DGS viewer draws them (the exact
compositor follows the reference rasteriser: depth-sorted, front to back, 0.3 px² low-pass). Per texel a Gaussian
of 0.6 texel spacings (``FOOTPRINT``) leaves at most 1 - (1 - 0.99·e^(-0.35))² ≈ 9 % of light through between two
texels and about 6 % at the middle of four, whatever the zoom: too little for a grid (DESIGN.md §7: ≤ 2 % of head
pixels more than 12 grey levels below their 5×5 median)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, binary_fill_holes, median_filter

from fica.render.camera import orbit_camera
from fica.render.dispatch import render

GRID_MAX = 0.02
# Camera distances (m) at the default 20° field of view: texels ~1 px apart (the default view), ~3 px and ~6 px
# (a face filling the screen and closer). Further away, texels fall under a pixel and no grid can form; what the
# grid measure then counts is the face's own detail (eyes, brows, strands), so there only holes are checked.
DISTANCES_M = (0.95, 0.35, 0.2)
THUMBNAIL_DISTANCE_M = 1.9  # texels ~0.5 px apart
HOLES_MAX = 0.001  # of the silhouette's interior less a 3 px rim: pixels under 95 % coverage


@pytest.fixture(scope="module")
def gaussians(example_image):
    from fica.pipeline import FiCAPipeline

    return FiCAPipeline.from_pretrained()(example_image("astronaut.jpg").numpy()).avatar.gaussians()


@pytest.mark.parametrize("distance_m", DISTANCES_M)
def test_no_screen_door_grid_at_any_zoom(gaussians, distance_m):
    rgb, alpha = render(gaussians, orbit_camera(0.0, 0.0, width=384, height=384, distance_m=distance_m),
                        background=(0.0, 0.0, 0.0))
    grey = (rgb.clamp(0, 1).numpy() * 255) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    head = binary_erosion(alpha.numpy() > 0.5, iterations=3)
    grid = float(((median_filter(grey, size=5) - grey) > 12)[head].mean())
    print(f"{distance_m} m: grid {100 * grid:.2f}% of {head.sum()} head pixels")
    assert head.mean() > 0.05 and grid <= GRID_MAX


def test_no_holes_when_zoomed_out(gaussians):
    _, alpha = render(gaussians, orbit_camera(0.0, 0.0, width=384, height=384, distance_m=THUMBNAIL_DISTANCE_M))
    alpha = alpha.numpy()
    interior = binary_erosion(binary_fill_holes(alpha > 0.5), iterations=3)
    holes = interior & (alpha < 0.95)
    assert interior.sum() > 5000 and holes.sum() <= HOLES_MAX * interior.sum(), holes.sum()
