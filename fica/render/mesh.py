"""A CPU triangle rasteriser in torch: z-buffered, perspective-correct barycentrics, plus attribute
interpolation and a Lambert shader (DESIGN.md §2 ``render/``).

Pixels follow ``fica.render.camera``: pixel (row y, column x) has its centre at (x + 0.5, y + 0.5). A pixel is
covered by a triangle when its centre lies inside the projected triangle; the nearest covering triangle wins.
Everything is vectorised over (triangle, pixel-in-bounding-box) pairs, processed in chunks of bounded size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.render.camera import Camera

NEAR_M = 0.01  # triangles with a vertex closer to the camera than this are dropped
_MAX_PAIRS = 1 << 22  # (triangle, pixel) candidates per chunk: bounds peak memory at ~100s of MB


@torch.no_grad()
def rasterize_mesh(vertices: torch.Tensor, faces: torch.Tensor, camera: Camera
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rasterise a triangle mesh seen by ``camera``.

    vertices: ``[V, 3]`` head frame (metres); faces: ``[F, 3]`` long.
    Returns face_index ``[H, W]`` long (-1 where empty), bary ``[H, W, 3]`` float32 perspective-correct
    barycentrics of the visible triangle's corners (zero where empty), depth ``[H, W]`` float32 camera-space z in
    metres (zero where empty).
    """
    H, W = camera.height, camera.width
    vertices = vertices.detach().float().cpu()
    faces = faces.long().cpu()
    cam = camera.to("cpu")
    xy, z = cam.project(vertices)  # [V, 2], [V]
    tri_xy, tri_z = xy[faces], z[faces]  # [F, 3, 2], [F, 3]

    # Pixel index ranges whose centres can fall inside each triangle's bounding box.
    lo = torch.ceil(tri_xy.min(1).values - 0.5).long()  # [F, 2]
    hi = torch.floor(tri_xy.max(1).values - 0.5).long()
    lo = torch.maximum(lo, torch.zeros(2, dtype=torch.long))
    hi = torch.minimum(hi, torch.tensor([W - 1, H - 1]))
    a, b, c = tri_xy[:, 0], tri_xy[:, 1], tri_xy[:, 2]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])  # [F]
    keep = (tri_z.min(1).values > NEAR_M) & (hi >= lo).all(1) & (area2.abs() > 1e-10)
    ids = keep.nonzero().squeeze(1)
    size = (hi - lo + 1).clamp(min=0)  # [F, 2]
    counts = size[ids, 0] * size[ids, 1]  # [F']

    face_index = torch.full((H * W,), -1, dtype=torch.long)
    bary = torch.zeros(H * W, 3)
    depth = torch.full((H * W,), float("inf"))
    if len(ids) == 0:
        return face_index.view(H, W), bary.view(H, W, 3), torch.zeros(H, W)

    # Chunk triangles so that each chunk has at most _MAX_PAIRS candidates (a single huge triangle is its own chunk).
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(ids):
        base = ends[start - 1] if start > 0 else torch.tensor(0)
        stop = int(torch.searchsorted(ends, base + _MAX_PAIRS, right=True))
        stop = max(stop, start + 1)
        _rasterize_chunk(ids[start:stop], counts[start:stop], lo, size, tri_xy, tri_z, area2, W,
                         face_index, bary, depth)
        start = stop
    depth = torch.where(face_index >= 0, depth, torch.zeros_like(depth))
    return face_index.view(H, W), bary.view(H, W, 3), depth.view(H, W)


def _rasterize_chunk(ids, counts, lo, size, tri_xy, tri_z, area2, width, face_index, bary, depth) -> None:
    """Rasterise triangles ``ids [T]`` and merge them into the flat buffers (in place) by depth."""
    tri = torch.repeat_interleave(ids, counts)  # [P] triangle of each candidate
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(tri)) - torch.repeat_interleave(first, counts)  # index inside the bounding box
    w = size[tri, 0]
    px = lo[tri, 0] + local % w
    py = lo[tri, 1] + local // w
    p = torch.stack([px, py], 1).float() + 0.5  # [P, 2] pixel centres
    v = tri_xy[tri]  # [P, 3, 2]

    # Screen-space barycentrics from the signed edge functions.
    def edge(p0, p1):
        return (p1[:, 0] - p0[:, 0]) * (p[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p[:, 0] - p0[:, 0])

    inv = 1.0 / area2[tri]
    l0 = edge(v[:, 1], v[:, 2]) * inv
    l1 = edge(v[:, 2], v[:, 0]) * inv
    l2 = 1.0 - l0 - l1
    screen = torch.stack([l0, l1, l2], 1)  # [P, 3]
    inside = (screen >= -1e-6).all(1)
    tri, screen, px, py = tri[inside], screen[inside], px[inside], py[inside]
    if len(tri) == 0:
        return
    # Perspective-correct barycentrics and depth.
    w_over_z = screen / tri_z[tri]  # [P, 3]
    inv_depth = w_over_z.sum(1)
    persp = w_over_z / inv_depth[:, None]
    z = 1.0 / inv_depth
    pix = py * width + px

    # Z-buffer: nearest candidate per pixel, ties broken by the larger triangle id.
    zmin = torch.full_like(depth, float("inf")).scatter_reduce(0, pix, z, "amin")
    best = z <= zmin[pix]
    pix, tri, persp, z = pix[best], tri[best], persp[best], z[best]
    top = torch.full_like(face_index, -1).scatter_reduce(0, pix, tri, "amax")
    win = (tri == top[pix]) & (z < depth[pix])
    pix = pix[win]
    face_index[pix] = tri[win]
    bary[pix] = persp[win]
    depth[pix] = z[win]


def interpolate(attr: torch.Tensor, face_index: torch.Tensor, bary: torch.Tensor,
                faces: torch.Tensor | None = None) -> torch.Tensor:
    """Interpolate attributes over rasterised pixels.

    attr: per-vertex ``[V, C]`` (then ``faces [F, 3]`` is required) or per-corner ``[F, 3, C]``;
    face_index: ``[H, W]`` long (-1 empty); bary: ``[H, W, 3]``. Returns ``[H, W, C]``, zero where empty.
    """
    if attr.dim() == 2:
        if faces is None:
            raise ValueError("interpolate: per-vertex attributes need `faces`")
        attr = attr[faces]  # [F, 3, C]
    covered = face_index >= 0
    corners = attr[face_index.clamp(min=0)]  # [H, W, 3, C]
    out = (corners * bary[..., None].to(corners)).sum(-2)
    return out * covered[..., None].to(out)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Outward unit normals of counter-clockwise triangles (seen from outside). Returns ``[F, 3]``."""
    tri = vertices[faces]
    return F.normalize(torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1), dim=1, eps=1e-12)


def shade(vertices: torch.Tensor, faces: torch.Tensor, camera: Camera, *, normals: torch.Tensor | None = None,
          albedo=(0.78, 0.68, 0.62), ambient: float = 0.3, background: float = 1.0) -> torch.Tensor:
    """Lambert render of a mesh lit from slightly above the camera.

    vertices ``[V, 3]``, faces ``[F, 3]``; normals: per-vertex ``[V, 3]`` (smooth shading) or None (flat, from the
    triangles). Returns rgb ``[H, W, 3]`` float32 0..1 with ``background`` where nothing is drawn.
    """
    face_index, bary, _ = rasterize_mesh(vertices, faces, camera)
    if normals is None:
        n = face_normals(vertices.float(), faces)[face_index.clamp(min=0)]  # [H, W, 3]
    else:
        n = F.normalize(interpolate(normals.float(), face_index, bary, faces), dim=-1, eps=1e-12)
    n_cam = n @ camera.viewmat[:3, :3].T.cpu()
    light = F.normalize(torch.tensor([0.0, -0.4, -1.0]), dim=0)  # camera frame: up (-y) and toward the camera (-z)
    lambert = ambient + (1.0 - ambient) * (n_cam @ light).clamp(min=0)
    rgb = lambert[..., None] * torch.tensor(albedo)
    covered = (face_index >= 0)[..., None]
    return torch.where(covered, rgb, torch.full_like(rgb, background)).clamp(0, 1)
