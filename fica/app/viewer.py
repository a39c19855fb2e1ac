"""Framing the avatar for Gradio's Model3D splat viewer (the downloads stay in the head frame, in metres)."""
from __future__ import annotations

import math

import torch

from fica.prior.gaussians import GaussianSet
from fica.rotations import matrix_to_quat, quat_multiply, rotation_ypr

# Gradio 6's Model3D draws .ply/.splat files with gsplat.js and ignores ``camera_position``: its orbit camera
# always starts at alpha = beta = 0.5 rad and radius 5 around the origin, with fx = fy = 1132 px and world +y
# pointing down the screen (the OpenCV convention).
GRADIO_ORBIT_ALPHA_RAD = 0.5
GRADIO_ORBIT_BETA_RAD = 0.5
GRADIO_ORBIT_RADIUS = 5.0
GRADIO_FOCAL_PX = 1132.0


def gradio_viewer_rotation() -> torch.Tensor:
    """Rotation ``[3, 3]`` from the head frame into Gradio's splat-viewer world such that the viewer's start camera
    sees the head as the frontal ``orbit_camera()`` does (face toward it, upright, subject's left on the right).

    The start camera's camera-to-world rotation is Ry(-alpha) Rx(-beta); the frontal camera's world-to-camera
    rotation is a half turn about x. Their product, Ry(-alpha) Rx(pi - beta), maps head directions into the viewer.
    """
    return rotation_ypr(-math.degrees(GRADIO_ORBIT_ALPHA_RAD), 180.0 - math.degrees(GRADIO_ORBIT_BETA_RAD), 0.0)


def to_gradio_viewer(gaussians: GaussianSet, screen_height_px: float = 260.0) -> GaussianSet:
    """The Gaussians moved into Gradio's Model3D splat viewer frame: the head's centre at the orbit target,
    facing the start camera, scaled to about ``screen_height_px`` tall on first load. Colours and opacities
    are unchanged; only the exported *view* copy uses this (the downloads stay in metres)."""
    gaussians = gaussians.to("cpu")
    means = gaussians.means.float()
    lo, hi = torch.quantile(means, 0.01, dim=0), torch.quantile(means, 0.99, dim=0)
    centre = (lo + hi) / 2
    scale = screen_height_px * GRADIO_ORBIT_RADIUS / GRADIO_FOCAL_PX / float(hi[1] - lo[1])
    rotation = gradio_viewer_rotation()
    q = matrix_to_quat(rotation[None])
    return GaussianSet(means=scale * (means - centre) @ rotation.T,
                       quats=quat_multiply(q.expand_as(gaussians.quats), gaussians.quats.float()),
                       scales=gaussians.scales.float() * scale,
                       opacities=gaussians.opacities, colors=gaussians.colors)

