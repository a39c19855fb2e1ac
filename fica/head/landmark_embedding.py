"""Place MediaPipe's 478 face-mesh landmarks on the head model: run MediaPipe on Lambert renders of the neutral
head and read back the triangle and barycentrics under each landmark (DESIGN.md §4)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from fica.render.camera import orbit_camera
from fica.render.mesh import rasterize_mesh, shade

EMBED_SIZE_PX = 768
# Landmarks are read in a frontal view; views turned left and right refine the side of the face they show.
VIEWS_YAW_DEG = (0.0, 25.0, -25.0)


def _detect(image: np.ndarray) -> np.ndarray:
    """MediaPipe landmarks ``[478, 2]`` in pixels of an ``[H, W, 3]`` float image."""
    from fica.unwrap.landmarks import detect_landmarks

    return detect_landmarks(image)[:, :2].numpy()


def embed_landmarks(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Return landmark_face ``[478]`` int32 and landmark_bary ``[478, 3]`` float32 for the head asset arrays."""
    from fica.head.model import REGIONS, HeadModel

    head = HeadModel(arrays)
    vertices, faces = head.vertices, head.faces
    normals = head.vertex_normals(vertices)
    points = []  # per view: [478, 3] surface points and [478] weights
    for yaw in VIEWS_YAW_DEG:
        camera = orbit_camera(yaw, 0.0, width=EMBED_SIZE_PX, height=EMBED_SIZE_PX, distance_m=0.75)
        image = shade(vertices, faces, camera, normals=normals).numpy()
        pixels = _detect(image)
        face_index, bary, _ = rasterize_mesh(vertices, faces, camera)
        px = np.clip(pixels.astype(int), 0, EMBED_SIZE_PX - 1)
        f = face_index[px[:, 1], px[:, 0]]
        b = bary[px[:, 1], px[:, 0]]
        on_head = f >= 0  # MediaPipe can put a jaw-contour landmark just outside the silhouette
        f = f.clamp(min=0)
        surface = (vertices[faces[f]] * b[..., None]).sum(1)  # [478, 3]
        normal = (normals[faces[f]] * b[..., None]).sum(1)
        view_dir = torch.nn.functional.normalize(camera.center[None] - surface, dim=1)
        points.append((surface, (normal * view_dir).sum(1).clamp(min=0.05) ** 2 * on_head))
    # Weight each view by how squarely it sees the landmark, then snap the mean point back onto the surface.
    weight = torch.stack([w for _, w in points])  # [views, 478]
    if (weight.sum(0) == 0).any():
        raise RuntimeError(f"{int((weight.sum(0) == 0).sum())} landmarks fell off the head in every view")
    mean = (torch.stack([p for p, _ in points]) * weight[..., None]).sum(0) / weight.sum(0)[:, None]
    # MediaPipe's topology is left/right symmetric and so is the head: average each landmark with its mirror twin.
    mirrored = mean * torch.tensor([-1.0, 1.0, 1.0])
    _, twin = linear_sum_assignment(torch.cdist(mirrored, mean).numpy())  # a one-to-one pairing
    symmetric = 0.5 * (mean + mirrored[twin])
    # Snap onto the skin: lid and lip landmarks must follow the eyelids and lips, not the eyeballs or mouth cavity.
    skin = ~torch.isin(head.face_region, torch.tensor([REGIONS.index("eyes"), REGIONS.index("mouth")]))
    skin_faces = skin.nonzero().squeeze(1)
    face, bary = _closest_surface_points(vertices, faces[skin_faces], symmetric)
    return skin_faces[face].numpy().astype(np.int32), bary


def _closest_surface_points(vertices: torch.Tensor, faces: torch.Tensor, points: torch.Tensor):
    """For each point ``[P, 3]`` the closest triangle (among the nearest few by centroid) and its barycentrics."""
    tri = vertices[faces]  # [F, 3, 3]
    centroid = tri.mean(1)
    near = torch.cdist(points, centroid).topk(16, largest=False).indices  # [P, 16]
    best_face = torch.zeros(len(points), dtype=torch.long)
    best_bary = torch.zeros(len(points), 3)
    best_dist = torch.full((len(points),), float("inf"))
    for k in range(near.shape[1]):
        f = near[:, k]
        a, b, c = tri[f, 0], tri[f, 1], tri[f, 2]
        bary = _project_to_triangle(points, a, b, c)
        q = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
        d = (q - points).norm(dim=1)
        better = d < best_dist
        best_dist = torch.where(better, d, best_dist)
        best_face = torch.where(better, f, best_face)
        best_bary = torch.where(better[:, None], bary, best_bary)
    return best_face, best_bary.numpy().astype(np.float32)


def _project_to_triangle(p, a, b, c):
    """Barycentrics ``[P, 3]`` of the closest point to ``p`` on triangles (a, b, c), each ``[P, 3]``, clamped inside
    by projecting onto the plane and then pulling negative weights to the nearest edge."""
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = (d00 * d11 - d01 * d01).clamp(min=1e-20)
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    bary = torch.stack([1 - w1 - w2, w1, w2], 1).clamp(min=0)
    return bary / bary.sum(1, keepdim=True)
