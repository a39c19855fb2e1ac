"""Unwrap a portrait into the head's UV chart: partial rgb, visibility, normal and xyz maps (DESIGN.md §5).

Two directions:
- ``unwrap_to_uv`` (texel -> pixel, the embedded path): every chart texel is placed on the fitted head, projected
  into the portrait and sampled there; visibility is a depth test against the rendered head times a soft
  view-angle term. The map is hole-free wherever the head is seen.
- ``unwrap_from_dense`` (pixel -> texel, for a learned dense predictor): every head pixel is splatted into the
  texels around its predicted uv.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.head.model import UVLayout, default_head
from fica.maps import PartialUV, geometry_normals
from fica.render.camera import Camera, sample_pixels
from fica.unwrap.base import DenseMaps
from fica.uv_ops import smoothstep

# Visibility fades in as the surface turns toward the camera: cos(view angle) from FACING_COS[0] to FACING_COS[1].
FACING_COS = (0.1, 0.4)
DEPTH_TOLERANCE_M = 0.005  # a texel behind the rendered surface by more than this is occluded
PERSON_MASK = (0.1, 0.4)  # visibility fades in as the person mask at the texel's pixel rises over this range


def unwrap_to_uv(image: torch.Tensor, dense: DenseMaps, camera: Camera, layout: UVLayout, vertices: torch.Tensor,
                 depth: torch.Tensor, neutral_vertices: torch.Tensor | None = None,
                 person: torch.Tensor | None = None) -> PartialUV:
    """Texel -> pixel unwrap of a portrait onto the fitted head.

    image: ``[H, W, 3]`` 0..1; dense: the portrait's dense maps (its mask gates visibility); camera: the fitted
    camera; vertices: ``[V, 3]`` the fitted head as seen (identity, expression, correction), head frame;
    depth: ``[H, W]`` camera depth of that head rendered by ``camera`` (0 off the head);
    neutral_vertices: ``[V, 3]`` the same head at neutral expression, for the xyz and normal maps (default:
    ``vertices``); person: ``[H, W]`` 0..1 the person mask (``fica.unwrap.landmarks.person_mask``), when given a
    texel whose pixel shows background (a fitted silhouette wider than the real one, a turned nose tip over a
    white wall) is not visible. Returns PartialUV at ``layout``'s resolution; rgb, normal and xyz are zero where unseen.
    """
    R = layout.resolution
    valid = layout.valid
    seen_geometry = layout.vertices_to_map(vertices.float())  # [3, R, R]
    geometry = seen_geometry if neutral_vertices is None else layout.vertices_to_map(neutral_vertices.float())
    points = seen_geometry.reshape(3, -1).T  # [R*R, 3]
    pixels, z = camera.project(points)

    # View angle of the surface as seen (normals of the posed geometry map, head frame).
    seen_normal = geometry_normals(seen_geometry, valid).reshape(3, -1).T
    to_camera = F.normalize(camera.center[None] - points, dim=1)
    facing = smoothstep((seen_normal * to_camera).sum(1), *FACING_COS)

    # Depth test against the rendered head at the nearest pixel, which must be on the head.
    H, W = depth.shape
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < W) & (pixels[:, 1] >= 0) & (pixels[:, 1] < H)
    col = pixels[:, 0].floor().long().clamp(0, W - 1)
    row = pixels[:, 1].floor().long().clamp(0, H - 1)
    surface = depth[row, col]
    unoccluded = (surface > 0) & (z <= surface + DEPTH_TOLERANCE_M) & (dense.mask[row, col] > 0.5)

    visibility = facing * (inside & unoccluded).float()
    if person is not None:
        visibility = visibility * smoothstep(sample_pixels(person[..., None], pixels, "bilinear")[:, 0], *PERSON_MASK)
    visibility = visibility.reshape(1, R, R) * valid
    seen = (visibility > 0).float()
    rgb = sample_pixels(image, pixels, "bilinear").T.reshape(3, R, R) * seen
    return PartialUV(rgb=rgb, visibility=visibility, normal=geometry_normals(geometry, valid) * seen,
                     xyz=geometry * seen, valid=valid.clone())


def unwrap_from_dense(image: torch.Tensor, dense: DenseMaps, resolution: int, *, layout: UVLayout | None = None,
                      camera: Camera | None = None) -> PartialUV:
    """Pixel -> texel unwrap: splat each head pixel bilinearly into the texels around its predicted uv.

    image: ``[H, W, 3]``; dense: per-pixel uv, xyz, normal, mask (e.g. from a learned predictor);
    layout: the chart (default: the shipped head's at ``resolution``), used for ``valid``;
    camera: when given, visibility also fades with the view angle of ``dense.normal``.
    Texels that no pixel reaches but whose 3×3 neighbours are reached are filled from them (one normalised
    blur), which closes the pinholes of a face seen at lower resolution than the chart.
    """
    R = int(resolution)
    layout = layout if layout is not None else default_head().uv_layout(R)
    weight = dense.mask.float().reshape(-1)
    on = weight > 0.5
    uv = dense.uv.reshape(-1, 2)[on]
    w = weight[on]
    if camera is not None:
        xyz = dense.xyz.reshape(-1, 3)[on]
        to_camera = F.normalize(camera.center[None] - xyz, dim=1)
        facing = smoothstep((dense.normal.reshape(-1, 3)[on] * to_camera).sum(1), *FACING_COS)
    else:
        facing = torch.ones_like(w)
    values = torch.cat([image.reshape(-1, 3)[on].float(), dense.xyz.reshape(-1, 3)[on].float(),
                        dense.normal.reshape(-1, 3)[on].float(), facing[:, None]], 1)  # [N, 10]

    # Bilinear splat: texel centres at (i + 0.5) / R.
    x = uv[:, 0] * R - 0.5
    y = uv[:, 1] * R - 0.5
    x0, y0 = x.floor(), y.floor()
    acc_w = torch.zeros(R * R)
    acc_v = torch.zeros(R * R, values.shape[1])
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            bw = w * (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            ok = (xi >= 0) & (xi < R) & (yi >= 0) & (yi < R) & (bw > 0)
            idx = (yi[ok] * R + xi[ok]).long()
            acc_w.index_add_(0, idx, bw[ok])
            acc_v.index_add_(0, idx, values[ok] * bw[ok, None])
    acc_w = acc_w.reshape(1, R, R)
    acc_v = acc_v.T.reshape(-1, R, R)
    # Fill pinholes from the 3x3 neighbourhood.
    blur_w = F.avg_pool2d(acc_w[None], 3, 1, 1, count_include_pad=False)[0]
    blur_v = F.avg_pool2d(acc_v[None], 3, 1, 1, count_include_pad=False)[0]
    hole = acc_w <= 0
    acc_w = torch.where(hole, blur_w, acc_w)
    acc_v = torch.where(hole, blur_v, acc_v)
    reached = (acc_w > 1e-6).float() * layout.valid
    mean = acc_v / acc_w.clamp(min=1e-6) * reached
    visibility = mean[9:10].clamp(0, 1) * reached
    seen = (visibility > 0).float()
    normal = F.normalize(mean[6:9], dim=0, eps=1e-12)
    return PartialUV(rgb=mean[0:3].clamp(0, 1) * seen, visibility=visibility, normal=normal * seen,
                     xyz=mean[3:6] * seen, valid=layout.valid.clone())
