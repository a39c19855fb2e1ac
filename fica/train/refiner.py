"""Recipe: the UV refiner (``UVRefiner``), with the dense predictor's ViT as its frozen feature backbone.

Data: per sample the completed maps to refine — by default the true maps degraded as a completion network's
output would be (blur, colour cast, smooth geometry noise; ``degrade``), or the maps a trained completer made —
plus the partial maps, the portrait, the per-pixel uv and mask, the keypoints, the camera and the unshaded target
render. Losses and weights as the paper reports them (DESIGN.md §5): photometric L1 of the refined texture seen
through the true uv map against the target (2.0), silhouette of the projected refined geometry against the mask
(0.5), projected landmarks against the keypoints in pixels (0.01) and the UV Laplacian of the residual (1.0).
Samples should show a neutral expression (the refined geometry is the neutral head).

``python -m fica.train.refiner --out runs/refiner --backbone DIR [--data DIR | --synthetic N] [--tiny]``
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.models.inputs import resample_partial
from fica.models.uv_refiner import UVRefiner
from fica.refine.learned import apply_residual, image_tokens, refiner_inputs, render_through_uv
from fica.train.losses import soft_silhouette, uv_laplacian
from fica.train.splat import scaled_camera
from fica.unwrap.learned import sample_maps
from fica.uv_ops import resample

TINY_CONFIG = dict(resolution=32, block_out_channels=(16, 32), layers_per_block=1, attention_head_dim=8,
                   norm_num_groups=8)
SILHOUETTE_TEXELS_PER_PX = 1.0  # the silhouette image is as many pixels high as the chart has texels
WEIGHTS = {"photometric_l1": 2.0, "mask": 0.5, "keypoints": 0.01, "uv_laplacian": 1.0}


def landmark_uvs(head) -> torch.Tensor:
    """Chart coordinates ``[478, 2]`` of MediaPipe's landmarks on the head model."""
    return (head.face_uvs[head.landmark_face] * head.landmark_bary[..., None]).sum(1)


def degrade(texture: torch.Tensor, geometry: torch.Tensor, valid: torch.Tensor,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Completion-like errors on true maps ``[3, R, R]``: blur, a colour cast and smooth geometry noise (~2 mm)."""
    from fica.train.synthetic import smooth_noise

    R = texture.shape[-1]
    blur = lambda m: F.interpolate(F.avg_pool2d(m[None], 4), size=(R, R), mode="bilinear")[0]  # noqa: E731
    cast = 1 + 0.1 * (torch.rand(3, 1, 1, generator=generator) - 0.5)
    tex = (blur(texture) * cast + 0.02 * smooth_noise(3, R, 8, generator)).clamp(0, 1) * valid
    geo = (geometry + 0.002 * smooth_noise(3, R, 8, generator)) * valid
    return tex, geo


@torch.no_grad()
def prepare(samples, model: UVRefiner, backbone, head, generator: torch.Generator) -> list[dict]:

    S = model.config.resolution
    lm_uv = landmark_uvs(head)
    out = []
    for s in samples:
        valid = F.interpolate(s.complete.valid[None], size=(S, S), mode="nearest")[0]
        tex, geo = degrade(resample(s.complete.texture, S), resample(s.complete.geometry, S), valid, generator)
        partial = resample_partial(s.partial, S)
        mask = (s.dense.mask > 0.5).float()
        rendered = render_through_uv(tex[None], s.dense.uv[None], mask[None])
        out.append({"input": refiner_inputs(tex[None], geo[None], partial, valid[None],
                                            model.config.geometry_scale_m)[0],
                    "texture": tex, "geometry": geo, "valid": valid,
                    "photo_tokens": image_tokens(backbone, s.image.permute(2, 0, 1)[None])[0],
                    "render_tokens": image_tokens(backbone, rendered)[0],
                    "uv": s.dense.uv, "mask": mask, "target": s.target.permute(2, 0, 1), "camera": s.camera,
                    "keypoints": s.keypoints, "landmark_uv": lm_uv})
    return out


def refiner_loss(model: UVRefiner, batch: list[dict], net=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Losses of ``model`` on a batch; ``net`` runs the forward pass (the model or its DDP wrapper)."""
    stack = lambda k: torch.stack([b[k] for b in batch])  # noqa: E731
    residual = (net or model)(stack("input"), stack("photo_tokens"), stack("render_tokens")).float()
    valid = stack("valid")
    texture, geometry = apply_residual(stack("texture"), stack("geometry"), residual, valid,
                                       model.config.geometry_residual_m)
    photometric, silhouette, keypoints = 0.0, 0.0, 0.0
    for tex, geo, b in zip(texture, geometry, batch):
        seen = render_through_uv(tex[None], b["uv"][None], b["mask"][None])[0]
        photometric = photometric + ((seen - b["target"]).abs() * b["mask"]).sum() / (3 * b["mask"].sum().clamp(min=1))
        cam = b["camera"]
        points = geo.permute(1, 2, 0)[b["valid"][0] > 0.5]
        small = scaled_camera(cam, SILHOUETTE_TEXELS_PER_PX * geo.shape[-1] / cam.height)  # texels ~1 px apart
        sil = soft_silhouette(small.project(points)[0], torch.ones(len(points), device=points.device),
                              small.height, small.width)
        target_mask = F.interpolate(b["mask"][None, None], size=sil.shape, mode="area")[0, 0]
        silhouette = silhouette + (sil - target_mask).abs().mean()
        landmarks = sample_maps(geo, b["landmark_uv"])
        keypoints = keypoints + (cam.project(landmarks)[0] - b["keypoints"]).abs().mean()
    n = len(batch)
    terms = {"photometric_l1": photometric / n, "mask": silhouette / n, "keypoints": keypoints / n,
             "uv_laplacian": uv_laplacian(residual, valid)}
    total = sum(WEIGHTS[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def train_refiner(model: UVRefiner, backbone, samples, cfg, head=None) -> list[dict]:
    from fica.train.loop import train

    if head is None:
        from fica.head.model import default_head

        head = default_head()
    backbone.requires_grad_(False).eval()
    data = prepare(samples, model, backbone, head, torch.Generator().manual_seed(cfg.seed))
    data = [{k: v.to(cfg.device) for k, v in b.items()} for b in data]

    def make_batch(generator):
        idx = torch.randint(len(data), (min(cfg.batch_size, len(data)),), generator=generator)
        return [data[i] for i in idx.tolist()]

    return train(model, lambda net, b: refiner_loss(model, b, net), make_batch, cfg)


def main(argv=None):
    from fica.models.dense_vit import DenseViT
    from fica.train.data import config, init_source, load_samples, parser, save_on_rank0

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--backbone", type=str, required=True, help="a saved dense_predictor folder (its ViT is used)")
    args = p.parse_args(argv)
    backbone = DenseViT.from_pretrained(args.backbone)
    model = UVRefiner.from_pretrained(init_source(args)[1]) if args.init else UVRefiner(
        **(TINY_CONFIG if args.tiny else {}), feature_dim=backbone.config.hidden_size)
    train_refiner(model, backbone, load_samples(args, expression_scale=0.0), config(args))
    save_on_rank0(model, args.out / "uv_refiner")
    return model


if __name__ == "__main__":
    main()
