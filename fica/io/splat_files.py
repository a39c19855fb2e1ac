"""Gaussian splat files (DESIGN.md §3): the 3DGS ``.ply`` layout and the antimatter15 ``.splat`` layout.

``.ply``: binary little-endian float32 ``x y z nx ny nz f_dc_0..2 opacity scale_0..2 rot_0..3`` with
f_dc = (rgb − 0.5) / C0 (the degree-0 spherical-harmonic constant), opacity as a logit and scale as a log.
``.splat``: 32 bytes a splat — position 3×f32, scale 3×f32 (linear), RGBA 4×u8, quaternion 4×u8 (q·128 + 128,
w first) — sorted by size × opacity, largest first, as the antimatter15 web viewer expects.
Writes are atomic: a failure leaves no half-written file.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from fica.errors import UnsupportedInput
from fica.io._atomic import atomic_path
from fica.prior.gaussians import GaussianSet

SH_C0 = 0.28209479177387814
_OPACITY_EPS = 1e-6  # opacities are clamped to [eps, 1 - eps] so their logit stays finite
_MIN_SCALE_M = 1e-12

PLY_FIELDS = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
SPLAT_DTYPE = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])
_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "<i2", "int16": "<i2",
              "ushort": "<u2", "uint16": "<u2", "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
              "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8"}


def _numpy(gaussians: GaussianSet) -> dict[str, np.ndarray]:
    return {name: getattr(gaussians, name).detach().float().cpu().numpy()
            for name in ("means", "quats", "scales", "opacities", "colors")}


def ply_bytes(gaussians: GaussianSet) -> bytes:
    """``gaussians`` as the bytes of a 3DGS binary PLY (degree-0 colour only)."""
    g = _numpy(gaussians)
    n = len(gaussians)
    opacity = np.clip(g["opacities"], _OPACITY_EPS, 1 - _OPACITY_EPS)
    columns = [g["means"], np.zeros((n, 3), np.float32), (g["colors"] - 0.5) / SH_C0,
               np.log(opacity / (1 - opacity))[:, None], np.log(np.maximum(g["scales"], _MIN_SCALE_M)), g["quats"]]
    table = np.concatenate(columns, 1).astype("<f4")  # [N, 17] in PLY_FIELDS order
    header = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {n}",
                        *(f"property float {name}" for name in PLY_FIELDS), "end_header"]) + "\n"
    return header.encode("ascii") + table.tobytes()


def save_ply(gaussians: GaussianSet, path: str | Path) -> Path:
    """Write ``gaussians`` as a 3DGS binary PLY (degree-0 colour only). Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(ply_bytes(gaussians))
    return path


def load_ply(path: str | Path) -> GaussianSet:
    """Read a 3DGS binary little-endian PLY (ours or another tool's; extra properties are ignored)."""
    path = Path(path)
    return parse_ply(path.read_bytes(), path.name)


def parse_ply(raw: bytes, name: str = "PLY") -> GaussianSet:
    """The Gaussians of a 3DGS binary little-endian PLY's bytes ``raw``; ``name`` labels error messages."""
    f = io.BytesIO(raw)
    count, dtype = _read_ply_header(f, name)
    data = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    if len(data) != count:
        raise UnsupportedInput(f"{name} is truncated: its header announces {count} splats.")
    missing = [field for field in PLY_FIELDS if field not in dtype.names and field not in ("nx", "ny", "nz")]
    if missing:
        raise UnsupportedInput(f"{name} is not a Gaussian splat PLY (no {', '.join(missing[:3])}).")

    def stack(*names):
        return torch.from_numpy(np.stack([data[name].astype(np.float32) for name in names], 1))

    return GaussianSet(
        means=stack("x", "y", "z"),
        quats=torch.nn.functional.normalize(stack("rot_0", "rot_1", "rot_2", "rot_3"), dim=1),
        scales=torch.exp(stack("scale_0", "scale_1", "scale_2")),
        opacities=torch.sigmoid(stack("opacity")[:, 0]),
        colors=(stack("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5).clamp(0, 1))


def _read_ply_header(f, name: str) -> tuple[int, np.dtype]:
    """Vertex count and the vertex record's dtype; the file is left at the start of the binary body."""
    if f.readline().strip() != b"ply":
        raise UnsupportedInput(f"{name} is not a PLY file.")
    count, fields, in_vertex = None, [], False
    while True:
        line = f.readline()
        if not line:
            raise UnsupportedInput(f"{name} has no complete PLY header.")
        words = line.decode("ascii", "replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format" and words[1:2] != ["binary_little_endian"]:
            raise UnsupportedInput(f"{name} is a {' '.join(words[1:2])} PLY; FiCA reads binary little-endian ones.")
        if words[0] == "element":
            in_vertex = words[1] == "vertex"
            if in_vertex:
                count = int(words[2])
            elif count is None:
                raise UnsupportedInput(f"{name}: FiCA reads PLY files whose first element is the vertex list.")
        elif words[0] == "property" and in_vertex:
            if words[1] == "list" or words[1] not in _PLY_TYPES:
                raise UnsupportedInput(f"{name} has an unsupported vertex property: {' '.join(words[1:])}.")
            fields.append((words[2], _PLY_TYPES[words[1]]))
    if count is None:
        raise UnsupportedInput(f"{name} has no vertex element.")
    return count, np.dtype(fields)


def save_splat(gaussians: GaussianSet, path: str | Path) -> Path:
    """Write ``gaussians`` in the 32-byte ``.splat`` layout, largest × most opaque first. Returns the path."""
    g = _numpy(gaussians)
    order = np.argsort(-(np.prod(g["scales"], 1) * g["opacities"]), kind="stable")
    quats = g["quats"] / np.maximum(np.linalg.norm(g["quats"], axis=1, keepdims=True), 1e-12)
    records = np.empty(len(order), SPLAT_DTYPE)
    records["position"] = g["means"][order]
    records["scale"] = g["scales"][order]
    rgba = np.concatenate([g["colors"], g["opacities"][:, None]], 1)[order]
    records["rgba"] = np.clip(np.rint(rgba * 255), 0, 255)
    records["rotation"] = np.clip(np.rint(quats[order] * 128 + 128), 0, 255)
    path = Path(path)
    with atomic_path(path) as tmp:
        records.tofile(tmp)
    return path


def load_splat(path: str | Path) -> GaussianSet:
    """Read a ``.splat`` file (32 bytes a splat)."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) % SPLAT_DTYPE.itemsize:
        raise UnsupportedInput(f"{path.name} is not a .splat file: its size is not a multiple of 32 bytes.")
    records = np.frombuffer(raw, SPLAT_DTYPE)
    rgba = torch.from_numpy(records["rgba"].astype(np.float32) / 255)
    quats = torch.from_numpy((records["rotation"].astype(np.float32) - 128) / 128)
    return GaussianSet(means=torch.from_numpy(records["position"].copy()),
                       quats=torch.nn.functional.normalize(quats, dim=1),
                       scales=torch.from_numpy(records["scale"].copy()),
                       opacities=rgba[:, 3].contiguous(), colors=rgba[:, :3].contiguous())
