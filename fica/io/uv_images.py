"""UV maps ``[C, R, R]`` as viewable RGB images (DESIGN.md §3 UV maps)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fica.io.image import save_png, to_uint8

KINDS = ("rgb", "texture", "visibility", "normal", "xyz")
CHECKER_GREYS = (0.6, 0.7)  # drawn outside the chart
CHECKER_CELLS = 32  # checker squares across the chart


def _numpy(x) -> np.ndarray:
    return (x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32))


def uv_map_to_image(uv_map, kind: str, valid=None) -> np.ndarray:
    """Render one chart map as uint8 ``[R, R, 3]``.

    uv_map: ``[C, R, R]`` tensor or array; kind: "rgb" / "texture" (sRGB as is), "visibility" (grey),
    "normal" ((n + 1) / 2), "xyz" (each axis stretched over the bounding box of the valid, non-zero texels;
    all-zero texels, i.e. unseen ones of a partial map, stay black). valid: ``[1, R, R]``; texels outside it
    are drawn as a grey checker.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown UV map kind {kind!r}; use one of {', '.join(KINDS)}.")
    values = _numpy(uv_map)
    if values.ndim != 3 or values.shape[1] != values.shape[2]:
        raise ValueError(f"A UV map must be [C, R, R]; got shape {values.shape}.")
    resolution = values.shape[-1]
    inside = np.ones((resolution, resolution), bool) if valid is None else _numpy(valid).reshape(
        resolution, resolution) > 0.5
    values = values.transpose(1, 2, 0)  # [R, R, C]
    if kind == "visibility":
        image = np.repeat(values[..., :1], 3, axis=2)
    elif kind == "normal":
        image = (values + 1) / 2
    elif kind == "xyz":
        seen = inside & np.any(values != 0, axis=2)
        if seen.any():
            lo, hi = values[seen].min(0), values[seen].max(0)
            image = np.where(seen[..., None], (values - lo) / np.maximum(hi - lo, 1e-12), 0.0)
        else:
            image = np.zeros_like(values)
    else:
        image = values
    cell = np.arange(resolution) * CHECKER_CELLS // resolution
    checker = np.where((cell[:, None] + cell[None, :]) % 2 == 0, *CHECKER_GREYS)[..., None]
    return to_uint8(np.where(inside[..., None], image, checker))


def save_uv_maps(maps: dict, out_dir: str | Path, valid=None) -> list[Path]:
    """Write ``{name: (map [C, R, R], kind)}`` as ``out_dir/<name>.png``. Returns the paths in ``maps`` order."""
    out_dir = Path(out_dir)
    return [save_png(uv_map_to_image(uv_map, kind, valid), out_dir / f"{name}.png")
            for name, (uv_map, kind) in maps.items()]
