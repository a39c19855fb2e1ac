"""Rasterise a UV chart: which triangle covers each texel centre, with barycentrics."""
from __future__ import annotations

import torch


def rasterize_uv(face_uvs: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cover the texel centres ``((j + 0.5) / R, (i + 0.5) / R)`` with triangles.

    face_uvs: ``[F, 3, 2]`` (u right, v down, 0..1). Returns face_index ``[R, R]`` long (-1 where no triangle
    covers the centre) and bary ``[R, R, 3]`` float32. Triangles are processed in chunks of similar size, so the
    work is about the covered area, not F x R².
    """
    R = resolution
    px = face_uvs.double() * R - 0.5  # texel (j, i) centre sits at integer px
    lo = px.amin(1).ceil().long().clamp(0, R - 1)  # [F, 2]
    hi = px.amax(1).floor().long().clamp(0, R - 1)
    extent = (hi - lo + 1).clamp(min=0).amax(1)  # [F] bbox side in texels
    face_index = torch.full((R * R,), -1, dtype=torch.long)
    bary = torch.zeros(R * R, 3, dtype=torch.float32)
    order = torch.argsort(extent)
    for chunk in torch.split(order, 2048):
        side = int(extent[chunk].max())
        if side <= 0:
            continue
        offs = torch.arange(side)
        gx = lo[chunk, 0, None, None] + offs[None, None, :]  # [C, 1, S]
        gy = lo[chunk, 1, None, None] + offs[None, :, None]  # [C, S, 1]
        gx, gy = torch.broadcast_tensors(gx, gy)
        a, b, c = (px[chunk, k, None, None, :] for k in range(3))
        p = torch.stack([gx, gy], -1).double()
        v0, v1, v2 = b - a, c - a, p - a
        den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
        w1 = (v2[..., 0] * v1[..., 1] - v1[..., 0] * v2[..., 1]) / den
        w2 = (v0[..., 0] * v2[..., 1] - v2[..., 0] * v0[..., 1]) / den
        w0 = 1 - w1 - w2
        eps = -1e-9
        inside = (w0 >= eps) & (w1 >= eps) & (w2 >= eps) & (gx <= hi[chunk, 0, None, None]) \
            & (gy <= hi[chunk, 1, None, None]) & (den.abs() > 1e-12)
        flat = (gy * R + gx)[inside]
        face_index[flat] = chunk[:, None, None].expand_as(gx)[inside]
        bary[flat] = torch.stack([w0, w1, w2], -1)[inside].float()
    return face_index.view(R, R), bary.view(R, R, 3)
