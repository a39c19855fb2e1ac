"""Synthetic training data: the embedded head model with a random identity, expression, texture, light and camera,
rendered with ``fica.render.mesh`` and given with the ground truth of every network.

One sample (``SyntheticSample``):
- ``image [H, W, 3]``: the portrait, Lambert-shaded textured mesh at the expression, on a flat background;
- ``dense``: per-pixel uv, xyz (neutral-expression surface of this identity, head frame), normal, mask;
- ``partial``: ``unwrap_from_dense(image, dense, R)`` — what the unwrap stage hands on;
- ``complete``: the true texture (unshaded) and geometry (neutral identity) maps;
- ``target [H, W, 3]`` + ``target_mask [H, W]``: the unshaded textured mesh at the expression (what the prior's
  Gaussians should render to), on the same background;
- ``keypoints [478, 2]``: the MediaPipe landmarks of the neutral-expression identity, projected (pixels);
- ``camera``, ``expression``, ``identity [K]``, ``background [3]``;
- ``posed_geometry [3, R, R]``: the geometry map at the expression (head frame), what the prior's Gaussian
  centres should follow (captures with tracked meshes have it too; None where a source has none).

``make_dataset(n, seed)`` gives a reproducible list of people; ``make_sequence(n, seed)`` one person making n
expressions (the prior's per-identity data); ``save_dataset`` / ``load_dataset`` store one ``.pt`` file per
sample, the format the training recipes read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fica.drive.expression import NUM_BLENDSHAPES, Expression
from fica.maps import CompleteUV, PartialUV
from fica.render.camera import Camera, orbit_camera
from fica.threads import one_thread
from fica.unwrap.base import DenseMaps

SKIN_TONES = torch.tensor([[0.95, 0.80, 0.70], [0.87, 0.68, 0.55], [0.72, 0.52, 0.38], [0.50, 0.34, 0.24],
                           [0.33, 0.22, 0.16]])
SEQUENCE_BLENDSHAPES = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight",
                        "browInnerUp", "mouthPucker")
HAIR_COLOURS = torch.tensor([[0.08, 0.06, 0.05], [0.30, 0.18, 0.10], [0.60, 0.45, 0.25], [0.55, 0.55, 0.55],
                             [0.45, 0.15, 0.07]])


@dataclass
class SyntheticSample:
    image: torch.Tensor  # [H, W, 3]
    dense: DenseMaps
    partial: PartialUV
    complete: CompleteUV
    target: torch.Tensor  # [H, W, 3]
    target_mask: torch.Tensor  # [H, W]
    keypoints: torch.Tensor  # [478, 2] pixels
    camera: Camera
    expression: Expression
    identity: torch.Tensor  # [K]
    background: torch.Tensor  # [3]
    posed_geometry: torch.Tensor | None = None  # [3, R, R]


@dataclass
class Person:
    """What stays fixed across one person's frames: identity coefficients ``[K]``, texture ``[3, R, R]`` and
    the background colour ``[3]``."""

    identity: torch.Tensor
    texture: torch.Tensor
    background: torch.Tensor


def smooth_noise(channels: int, resolution: int, cells: int, generator: torch.Generator) -> torch.Tensor:
    """Band-limited noise ``[C, R, R]`` (zero mean, unit-ish std): bicubic upsampling of a ``cells²`` grid."""
    coarse = torch.randn(1, channels, cells, cells, generator=generator)
    return F.interpolate(coarse, size=(resolution, resolution), mode="bicubic", align_corners=False)[0]


def random_texture(layout, generator: torch.Generator) -> torch.Tensor:
    """A plausible unshaded head texture ``[3, R, R]`` (sRGB 0..1, zero outside the chart): skin tone with
    blotches, hair on the scalp, darker lips, eyes and mouth."""
    R = layout.resolution
    pick = lambda table: table[int(torch.randint(len(table), (1,), generator=generator))]  # noqa: E731
    skin = pick(SKIN_TONES) * (0.9 + 0.2 * torch.rand(3, generator=generator))
    hair = pick(HAIR_COLOURS)
    tex = skin.view(3, 1, 1) * (1 + 0.08 * smooth_noise(1, R, 8, generator)) + 0.03 * smooth_noise(3, R, 16, generator)
    regions = [("scalp", hair), ("lips", skin * torch.tensor([0.85, 0.55, 0.55])),
               ("eyes", torch.tensor([0.85, 0.85, 0.82])), ("mouth", torch.tensor([0.35, 0.12, 0.12]))]
    for name, colour in regions:
        m = layout.region_mask(name)
        tex = tex * (1 - m) + m * colour.view(3, 1, 1) * (1 + 0.1 * smooth_noise(1, R, 32, generator))
    return tex.clamp(0, 1) * layout.valid


def random_expression(generator: torch.Generator, scale: float = 1.0) -> Expression:
    """A sparse expression: a few ARKit weights on, each uniform in 0..scale."""
    w = torch.zeros(NUM_BLENDSHAPES)
    active = torch.randperm(NUM_BLENDSHAPES, generator=generator)[:3]
    w[active] = torch.rand(3, generator=generator) * scale
    return Expression(w)


def random_person(head, layout, generator: torch.Generator) -> Person:
    K = head.identity_basis.shape[0]
    identity = torch.rand(K, generator=generator) * (torch.rand(K, generator=generator) < 0.3)
    texture = random_texture(layout, generator)
    return Person(identity, texture, torch.rand(3, generator=generator) * 0.6 + 0.2)


def sample(head, *, image_size: int = 128, uv_resolution: int = 64, expression_scale: float = 1.0,
           max_yaw_deg: float = 35.0, generator: torch.Generator, person: Person | None = None,
           expression: Expression | None = None, camera: Camera | None = None) -> SyntheticSample:
    """Draw one synthetic sample (see the module docstring); ``person``, ``expression`` and ``camera`` are drawn
    unless given."""
    from fica.render.mesh import interpolate, rasterize_mesh
    from fica.unwrap.uv_unwrap import unwrap_from_dense

    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=generator))  # noqa: E731
    layout = head.uv_layout(uv_resolution)
    person = person or random_person(head, layout, generator)
    identity, texture, background = person.identity, person.texture, person.background
    expression = expression or random_expression(generator, expression_scale)
    neutral = head.deform(identity=identity)
    posed = head.deform(expression=expression.weights, base=neutral)
    if camera is None:
        camera = orbit_camera(u(-max_yaw_deg, max_yaw_deg), u(-15, 15), width=image_size, height=image_size,
                              distance_m=u(0.85, 1.1), target_m=(u(-0.01, 0.01), u(-0.01, 0.03), 0.0))

    face_index, bary, _ = rasterize_mesh(posed, head.faces, camera)
    mask = (face_index >= 0).float()
    uv = interpolate(head.face_uvs, face_index, bary)  # [H, W, 2]
    xyz = interpolate(neutral, face_index, bary, head.faces)
    normal = F.normalize(interpolate(head.vertex_normals(neutral), face_index, bary, head.faces), dim=-1, eps=1e-12)
    normal = normal * mask[..., None]
    grid = (uv * 2 - 1)[None]
    albedo = F.grid_sample(texture[None], grid, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    posed_normal = F.normalize(interpolate(head.vertex_normals(posed), face_index, bary, head.faces), dim=-1,
                               eps=1e-12)
    light_cam = F.normalize(torch.tensor([u(-0.6, 0.6), u(-0.8, 0.1), -1.0]), dim=0)
    ambient = u(0.35, 0.6)
    lambert = ambient + (1 - ambient) * ((posed_normal @ camera.viewmat[:3, :3].T) @ light_cam).clamp(min=0)
    on = mask[..., None]
    image = (albedo * lambert[..., None] * on + background * (1 - on)).clamp(0, 1)
    target = (albedo * on + background * (1 - on)).clamp(0, 1)

    dense = DenseMaps(uv=uv * on, xyz=xyz * on, normal=normal, mask=mask)
    partial = unwrap_from_dense(image, dense, uv_resolution, camera=camera)
    complete = CompleteUV(texture=texture, geometry=layout.vertices_to_map(neutral), valid=layout.valid)
    keypoints = camera.project(head.landmarks(neutral))[0]
    return SyntheticSample(image, dense, partial, complete, target, mask, keypoints, camera, expression, identity,
                           background, layout.vertices_to_map(posed))


def make_dataset(n: int, *, seed: int = 0, head=None, **kwargs) -> list[SyntheticSample]:
    """``n`` reproducible samples (``kwargs`` as ``sample``)."""
    if head is None:
        from fica.head.model import default_head

        head = default_head()
    generator = torch.Generator().manual_seed(seed)
    with one_thread():
        return [sample(head, generator=generator, **kwargs) for _ in range(n)]


def make_sequence(n: int, *, seed: int = 0, blendshapes: tuple[str, ...] = SEQUENCE_BLENDSHAPES, head=None,
                  **kwargs) -> list[SyntheticSample]:
    """One person in ``n`` frames (reproducible): each frame turns each of ``blendshapes`` on with probability
    1/2 at a weight uniform in 0..1, seen from a random camera (``kwargs`` as ``sample``)."""
    if head is None:
        from fica.head.model import default_head

        head = default_head()
    generator = torch.Generator().manual_seed(seed)
    person = random_person(head, head.uv_layout(kwargs.get("uv_resolution", 64)), generator)
    frames = []
    with one_thread():
        for _ in range(n):
            on = torch.rand(len(blendshapes), generator=generator) < 0.5
            weights = torch.rand(len(blendshapes), generator=generator) * on
            expression = Expression.from_dict(dict(zip(blendshapes, weights.tolist())))
            frames.append(sample(head, generator=generator, person=person, expression=expression, **kwargs))
    return frames


def save_dataset(samples: list[SyntheticSample], folder: str | Path) -> Path:
    """One ``sample_00000.pt`` per sample (a dict of tensors, cameras as dicts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(samples):
        torch.save({"image": s.image, "dense": vars(s.dense), "partial": s.partial.as_dict(),
                    "complete": s.complete.as_dict(), "target": s.target, "target_mask": s.target_mask,
                    "keypoints": s.keypoints, "camera": s.camera.as_dict(), "expression": s.expression.weights,
                    "rotation_deg": s.expression.rotation_deg, "identity": s.identity, "background": s.background,
                    "posed_geometry": s.posed_geometry},
                   folder / f"sample_{i:05d}.pt")
    return folder


def load_dataset(folder: str | Path) -> list[SyntheticSample]:
    """Samples written by ``save_dataset`` (any dataset in the same format trains the recipes)."""
    out = []
    for path in sorted(Path(folder).glob("sample_*.pt")):
        d = torch.load(path, weights_only=True)
        out.append(SyntheticSample(d["image"], DenseMaps(**d["dense"]), PartialUV(**d["partial"]),
                                   CompleteUV(**d["complete"]), d["target"], d["target_mask"], d["keypoints"],
                                   Camera.from_dict(d["camera"]), Expression(d["expression"], d["rotation_deg"]),
                                   d["identity"], d["background"], d.get("posed_geometry")))
    return out

