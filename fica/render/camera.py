"""Pinhole cameras in the OpenCV convention shared with gsplat (DESIGN.md §3).

Camera frame: x right, y down, z forward. ``viewmat`` maps head-frame points to the camera frame,
``K`` maps camera points to pixels whose centres sit at integer + 0.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# A frontal view of the head model's face fills a 512² image at this distance and field of view.
DEFAULT_FOV_DEG = 20.0
DEFAULT_DISTANCE_M = 0.95
# Point the default orbit looks at: roughly the middle of the face, head frame (metres).
DEFAULT_TARGET_M = (0.0, 0.0, 0.0)


@dataclass
class Camera:
    viewmat: torch.Tensor  # [4, 4] world (head frame) -> camera
    K: torch.Tensor  # [3, 3] pixels
    width: int
    height: int

    def to(self, device) -> "Camera":
        return Camera(self.viewmat.to(device), self.K.to(device), self.width, self.height)

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project head-frame points ``[N, 3]`` to pixels ``[N, 2]`` and camera depths ``[N]``."""
        cam = points @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]
        z = cam[:, 2]
        uv = (cam[:, :2] / z.clamp(min=1e-8)[:, None]) @ self.K[:2, :2].T + self.K[:2, 2]
        return uv, z

    @property
    def center(self) -> torch.Tensor:
        """Camera position in the head frame ``[3]``."""
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t

    def as_dict(self) -> dict:
        return {"viewmat": self.viewmat.tolist(), "K": self.K.tolist(), "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        return cls(torch.tensor(d["viewmat"], dtype=torch.float32), torch.tensor(d["K"], dtype=torch.float32),
                   int(d["width"]), int(d["height"]))


def sample_pixels(image: torch.Tensor, pixels: torch.Tensor, mode: str = "bilinear",
                  padding_mode: str = "zeros") -> torch.Tensor:
    """Sample ``image [H, W, C]`` at continuous pixel positions ``pixels [N, 2]`` (x, y; centres at +0.5, as
    ``Camera.project`` gives them). Returns ``[N, C]`` float; outside the image zero, or the nearest edge pixel
    with ``padding_mode="border"``."""
    H, W = image.shape[:2]
    grid = pixels / torch.tensor([W, H], dtype=pixels.dtype, device=pixels.device) * 2 - 1
    out = torch.nn.functional.grid_sample(image.permute(2, 0, 1)[None].float(), grid[None, None].float(), mode=mode,
                                          padding_mode=padding_mode, align_corners=False)
    return out[0, :, 0].T


def intrinsics(fov_deg: float, width: int, height: int) -> torch.Tensor:
    """``[3, 3]`` intrinsics with a vertical field of view ``fov_deg`` and the principal point at the centre."""
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)


def orbit_camera(yaw_deg: float = 0.0, pitch_deg: float = 0.0, *, width: int = 512, height: int = 512,
                 fov_deg: float = DEFAULT_FOV_DEG, distance_m: float = DEFAULT_DISTANCE_M,
                 target_m=DEFAULT_TARGET_M) -> Camera:
    """A camera on a sphere around ``target_m`` looking at it, upright.

    yaw 0 / pitch 0 sits on +z looking toward −z (a frontal view); positive yaw moves the camera toward +x
    (it sees the subject's left cheek), positive pitch moves it up.
    """
    target = torch.tensor(target_m, dtype=torch.float32)
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    eye = target + distance_m * torch.tensor([math.sin(y) * math.cos(p), math.sin(p), math.cos(y) * math.cos(p)])
    forward = torch.nn.functional.normalize(target - eye, dim=0)
    world_up = torch.tensor([0.0, 1.0, 0.0])
    right = torch.nn.functional.normalize(torch.cross(forward, world_up, dim=0), dim=0)
    down = torch.cross(forward, right, dim=0)
    R = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    viewmat = torch.eye(4)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -R @ eye
    return Camera(viewmat, intrinsics(fov_deg, width, height), width, height)
