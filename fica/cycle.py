"""The far-side cycle measure (issue 7, DESIGN.md §7 appearance targets).

A frontal portrait -> avatar A -> A rendered at yaw ``yaw_deg`` -> that render used as the portrait -> avatar B.
B's frontal render is compared with A's inside the face (MediaPipe's face oval on A's frontal render, eroded):
the half of the face the turned render showed ("seen") against the half B had to complete ("completed").
The gap ``seen_psnr_db - completed_psnr_db`` says how much worse the completion is than plain re-unwrapping.

No face is symmetric, so no completion from the seen half reproduces the other half exactly. ``mirror_ceiling_db``
says how close a perfect mirror comes: A's own texture with its completed half replaced by the mirror of its seen
half (perfectly registered, lit as A), encoded and rendered frontally like A, compared with A on the completed half
(both without the portrait back-projection, so only the mirroring differs). ``completed_psnr_db`` near or above it
means the completion already does what mirroring can; far below it, B's fit or fill loses what the seen half holds.

``turned_registration`` measures the step before: how far from its true place the turned render's head fit puts
each face texel, so how far B's unwrap samples its texture off.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fica.avatar import Avatar
from fica.head.model import default_head
from fica.maps import CompleteUV, geometry_normals
from fica.render.camera import orbit_camera
from fica.unwrap.fit import fit_head
from fica.unwrap.landmarks import FACE_OVAL, detect_landmarks
from fica.unwrap.uv_unwrap import FACING_COS

NOSE_BRIDGE, CHIN = 168, 152  # the face's midline runs through these landmarks
FACE_MARGIN = 0.04  # the face oval is eroded by this fraction of the face width (its rim mixes in background)
MIDLINE_BAND = 0.03  # texels this close to the midline (fraction of the face width) belong to neither half


@dataclass
class CycleResult:
    seen_psnr_db: float
    completed_psnr_db: float
    first_front: torch.Tensor  # [S, S, 3] avatar A, frontal
    turned: torch.Tensor  # [S, S, 3] avatar A at yaw_deg: avatar B's portrait
    second_front: torch.Tensor  # [S, S, 3] avatar B, frontal
    seen_half: torch.Tensor  # [S, S] bool
    completed_half: torch.Tensor  # [S, S] bool
    mirror_ceiling_db: float  # the completed half's PSNR when A's true texture is mirrored (module docstring)

    @property
    def gap_db(self) -> float:
        return self.seen_psnr_db - self.completed_psnr_db

    @property
    def below_mirror_db(self) -> float:
        """How far the completed half falls short of a perfect mirror of the true face (negative: it does better)."""
        return self.mirror_ceiling_db - self.completed_psnr_db


def face_halves(landmarks: torch.Tensor, height: int, width: int, seen_side: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(seen, completed) ``[H, W]`` bool halves of the eroded face oval of ``landmarks [478, 3]`` (pixels).

    seen_side: +1 when the turned camera saw the image-right half (positive yaw: the subject's left), else -1.
    """
    import cv2

    oval = np.asarray(landmarks[list(FACE_OVAL), :2], dtype=np.float32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(oval).astype(np.int32)], 1)
    face_width = float(landmarks[:, 0].max() - landmarks[:, 0].min())
    k = 2 * round(FACE_MARGIN * face_width) + 1
    face = torch.from_numpy(cv2.erode(mask, np.ones((k, k), np.uint8)).astype(bool))
    top, bottom = landmarks[NOSE_BRIDGE, :2].float(), landmarks[CHIN, :2].float()
    rows = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
    cols = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
    t = (rows - top[1]) / (bottom[1] - top[1]).clamp(min=1e-6)
    midline_x = top[0] + t * (bottom[0] - top[0])
    side = (cols - midline_x) * seen_side
    band = MIDLINE_BAND * face_width
    return face & (side > band), face & (side < -band)


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * float(np.log10(1.0 / max(mse, 1e-12)))


@torch.no_grad()
def far_side_cycle(pipe, image, yaw_deg: float = 45.0, size: int = 512) -> CycleResult:
    """Run the cycle with ``pipe`` (a FiCAPipeline on the default head's chart) on ``image`` (anything ``pipe``
    accepts). Renders are ``size``² over white, neutral expression."""
    front = orbit_camera(0.0, width=size, height=size)
    first = pipe(image)
    first_front, _ = first.avatar.render(front)
    turned, _ = first.avatar.render(orbit_camera(yaw_deg, width=size, height=size))
    second_front, _ = pipe(turned.clamp(0, 1).numpy()).avatar.render(front)
    landmarks = detect_landmarks(first_front.clamp(0, 1).numpy())
    seen_side = 1 if yaw_deg > 0 else -1
    seen, completed = face_halves(landmarks, size, size, seen_side)
    truth, mirrored = (_plain_render(pipe, first, texture, front)
                       for texture in (first.refined.texture, _mirrored_half(first.refined, seen_side)))
    return CycleResult(psnr_db(second_front[seen], first_front[seen]),
                       psnr_db(second_front[completed], first_front[completed]),
                       first_front, turned, second_front, seen, completed,
                       psnr_db(mirrored[completed], truth[completed]))


def _mirrored_half(refined: CompleteUV, seen_side: int) -> torch.Tensor:
    """``refined``'s texture ``[3, R, R]`` with the half of the head on the ``-seen_side`` side of x = 0 replaced by
    the mirror of the other half (``seen_side`` +1: the subject's left, +x, is kept)."""
    layout = default_head().uv_layout(refined.resolution)
    texture = refined.texture.cpu()
    keep = refined.geometry.cpu()[0:1] * seen_side > 0
    return torch.where(keep, texture, layout.mirror(texture)).to(refined.texture)


def _plain_render(pipe, first, texture: torch.Tensor, camera) -> torch.Tensor:
    """``[S, S, 3]``: pipeline output ``first``'s avatar with ``texture [3, R, R]``, encoded by the prior without
    the portrait back-projection, rendered at ``camera``."""
    identity = pipe.prior.encode(replace(first.refined, texture=texture))
    avatar = Avatar(pipe.prior, identity, first.avatar.fitted_camera, first.avatar.fitted_expression,
                    first.avatar.device)
    return avatar.render(camera)[0]


@torch.no_grad()
def turned_registration(first, yaw_deg: float, size: int = 512) -> float:
    """Misregistration of a turned portrait's head fit, as a fraction of the face width.

    first: a pipeline output (``FiCAPipeline.__call__``) built on the default head's chart. Its avatar is rendered
    at ``yaw_deg`` (``size``², neutral expression) and the head is fitted to that render (MediaPipe landmarks ->
    ``fit_head``); every face texel the orbit camera sees squarely (cos of the view angle over ``FACING_COS[1]``)
    is projected both through that fit and, as the truth, from the avatar's geometry by the orbit camera. Returns
    the median distance between the two, over the width of the face in the avatar's frontal render (MediaPipe
    landmarks' extent).
    """
    head = default_head()
    geometry = first.refined.geometry.cpu()  # [3, R, R]
    layout = head.uv_layout(geometry.shape[-1])
    camera = orbit_camera(yaw_deg, width=size, height=size)
    points = geometry.reshape(3, -1).T  # [R*R, 3]
    normals = geometry_normals(geometry, layout.valid).reshape(3, -1).T
    facing = (normals * torch.nn.functional.normalize(camera.center[None] - points, dim=1)).sum(1)
    shown = (layout.region_mask("face").reshape(-1) > 0.5) & (facing > FACING_COS[1])
    turned, _ = first.avatar.render(camera)
    fit = fit_head(detect_landmarks(turned.clamp(0, 1).cpu().numpy()), (size, size), head)
    fitted = layout.vertices_to_map(fit.vertices(head)).reshape(3, -1).T
    true_px, _ = camera.project(points[shown])
    fitted_px, _ = fit.camera.project(fitted[shown])
    front, _ = first.avatar.render(orbit_camera(0.0, width=size, height=size))
    face = detect_landmarks(front.clamp(0, 1).cpu().numpy())
    face_width = float(face[:, 0].max() - face[:, 0].min())
    return float((fitted_px - true_px).norm(dim=1).median()) / face_width
