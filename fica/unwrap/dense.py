"""Per-pixel dense maps of the fitted head (DESIGN.md §5 "Unwrap"): the contract a learned dense predictor
(the paper's fine-tuned Sapiens) fills, here produced by rasterising the fitted mesh with the fitted camera."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.head.model import HeadModel
from fica.render.camera import Camera
from fica.render.mesh import interpolate, rasterize_mesh
from fica.unwrap.base import DenseMaps
from fica.unwrap.fit import Fit

Raster = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # face_index [H, W], bary [H, W, 3], depth [H, W]


def rasterize_fit(fit: Fit, head: HeadModel, image_size: tuple[int, int]) -> Raster:
    """Rasterise the fitted head (identity, expression and correction) as the portrait's camera sees it.

    image_size: (height, width). Returns ``rasterize_mesh``'s face_index, bary and depth.
    """
    camera = Camera(fit.camera.viewmat, fit.camera.K, int(image_size[1]), int(image_size[0]))
    return rasterize_mesh(fit.vertices(head), head.faces, camera)


def dense_from_fit(fit: Fit, head: HeadModel, image_size: tuple[int, int], raster: Raster | None = None
                   ) -> DenseMaps:
    """Dense maps of the portrait from the fitted head.

    image_size: (height, width); raster: ``rasterize_fit``'s result when the caller already has it.
    uv: chart coordinates of the surface point seen at each pixel; xyz and normal: that point and its unit normal
    on the fitted head at neutral expression (head frame), so they index the same surface as the geometry map;
    mask: 1 where the head covers the pixel. Everything is zero off the head.
    """
    face_index, bary, _ = raster if raster is not None else rasterize_fit(fit, head, image_size)
    neutral = fit.neutral_vertices(head)
    uv = interpolate(head.face_uvs, face_index, bary)
    xyz = interpolate(neutral, face_index, bary, head.faces)
    normal = F.normalize(interpolate(head.vertex_normals(neutral), face_index, bary, head.faces), dim=-1,
                         eps=1e-12)
    return DenseMaps(uv=uv, xyz=xyz, normal=normal, mask=(face_index >= 0).float())
