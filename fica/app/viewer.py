"""Framing the avatar for Gradio's Model3D splat viewer (the downloads stay in the head frame, in metres)."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from fica.prior.gaussians import GaussianSet
from fica.render.camera import Camera, orbit_camera
from fica.rotations import matrix_to_quat, quat_multiply, rotation_ypr

# Gradio 6's Model3D draws .ply/.splat files with gsplat.js and ignores ``camera_position``: its orbit camera
# always starts at alpha = beta = 0.5 rad and radius 5 around the origin, with fx = fy = 1132 px, the principal
# point at the canvas centre and world +y pointing down the screen (the OpenCV convention). The browser test
# checks ``gradio_viewer_camera`` against what the canvas shows.
GRADIO_ORBIT_ALPHA_RAD = 0.5
GRADIO_ORBIT_BETA_RAD = 0.5
GRADIO_ORBIT_RADIUS = 5.0
GRADIO_FOCAL_PX = 1132.0
# A <script> for the page's <head>: Model3D then draws splats at full size from its first frame and does not redraw
# an unchanged frame (see the file).
MODEL3D_SCRIPT = Path(__file__).resolve().parents[1] / "web" / "gradio_model3d.js"


def gradio_viewer_camera(width: int, height: int) -> Camera:
    """Gradio Model3D's start camera for a ``width`` × ``height`` px canvas, as a ``Camera`` in the viewer's world.

    gsplat.js's orbit controls put the eye at target + r (sin a cos b, −sin b, −cos a cos b) and turn it toward
    the target with the Euler angles (pitch asin(−d_y), yaw atan2(d_x, d_z), roll 0) of the view direction d;
    its view matrix is [Rᵀ | −Rᵀ eye] with R the rotation of that quaternion (``Quaternion.FromEuler``: yaw about
    +y after pitch about +x, R = Ry(yaw) Rx(pitch), as ``rotation_ypr``).
    """
    a, b, r = GRADIO_ORBIT_ALPHA_RAD, GRADIO_ORBIT_BETA_RAD, GRADIO_ORBIT_RADIUS
    eye = torch.tensor([r * math.sin(a) * math.cos(b), -r * math.sin(b), -r * math.cos(a) * math.cos(b)])
    d = -eye / eye.norm()
    pitch, yaw = math.asin(-float(d[1])), math.atan2(float(d[0]), float(d[2]))
    R = rotation_ypr(math.degrees(yaw), math.degrees(pitch), 0.0)
    viewmat = torch.eye(4)
    viewmat[:3, :3] = R.T
    viewmat[:3, 3] = -R.T @ eye
    K = torch.tensor([[GRADIO_FOCAL_PX, 0.0, width / 2], [0.0, GRADIO_FOCAL_PX, height / 2], [0.0, 0.0, 1.0]])
    return Camera(viewmat, K, int(width), int(height))


def gradio_viewer_rotation() -> torch.Tensor:
    """Rotation ``[3, 3]`` from the head frame into Gradio's splat-viewer world such that the viewer's start camera
    sees the head as the frontal ``orbit_camera()`` does (face toward it, upright, subject's left on the right):
    both cameras' world-to-camera rotations then agree, R_viewer · M = R_frontal."""
    viewer = gradio_viewer_camera(1, 1).viewmat[:3, :3]
    return viewer.T @ orbit_camera().viewmat[:3, :3]


def model3d_head() -> str:
    """The page ``head`` (``demo.launch(head=...)``) that makes Gradio's Model3D draw splats at full size from its
    first frame instead of growing them over ~27 frames (a screen-door grid for seconds in a slow browser), and
    skip redrawing a frame that nothing changed (it redraws at every animation frame, which starves the live
    viewer's webcam tracker on a slow GPU)."""
    return f"<script>\n{MODEL3D_SCRIPT.read_text()}</script>"


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

