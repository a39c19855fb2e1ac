"""Recipe: the dense predictor (``DenseViT``).

Data: per sample the portrait and its per-pixel ground truth (``dense``: uv, xyz, normal, mask), letterboxed to
the network's input like ``LearnedUnwrapper`` does. Losses (on the ground-truth mask): L1 on uv and xyz
(xyz in units of ``xyz_scale_m``), cosine + L1 on normals, and binary cross-entropy on the mask.
``--init`` resumes from a saved ``dense_predictor`` folder; the default configuration has Sapiens-0.3b's backbone
shape (no converter from Sapiens checkpoints to this layout is included).

``python -m fica.train.dense --out runs/dense [--data DIR | --synthetic N] [--steps N] [--tiny]``
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.models.dense_vit import DenseViT
from fica.models.inputs import letterbox

TINY_CONFIG = dict(image_height=64, image_width=48, patch_size=8, hidden_size=64, num_layers=2, num_heads=2,
                   head_channels=(32, 16, 16))


def prepare(samples, model: DenseViT) -> dict[str, torch.Tensor]:
    """Letterboxed inputs ``image [N, 3, h, w]`` and targets: uv ``[N, 2, h, w]``, xyz, normal,
    mask ``[N, 1, h, w]``."""
    out = {k: [] for k in ("image", "uv", "xyz", "normal", "mask")}
    for s in samples:
        out["image"].append(letterbox(s.image.permute(2, 0, 1), model.image_size)[0])
        d = s.dense
        for k, v in (("uv", d.uv), ("xyz", d.xyz), ("normal", d.normal), ("mask", d.mask[..., None])):
            out[k].append(letterbox(v.permute(2, 0, 1).float(), model.image_size)[0])
    return {k: torch.cat(v) for k, v in out.items()}


def dense_loss(model: DenseViT, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    raw = model(batch["image"]).float()
    on = (batch["mask"] > 0.5).float()
    n = on.sum().clamp(min=1)
    uv_l1 = ((raw[:, 0:2].sigmoid() - batch["uv"]).abs() * on).sum() / (2 * n)
    xyz_l1 = ((raw[:, 2:5] - batch["xyz"] / model.config.xyz_scale_m).abs() * on).sum() / (3 * n)
    normal = F.normalize(raw[:, 5:8], dim=1, eps=1e-6)
    cosine = ((1 - (normal * batch["normal"]).sum(1, keepdim=True)) * on).sum() / n
    normal_l1 = ((normal - batch["normal"]).abs() * on).sum() / (3 * n)
    mask = F.binary_cross_entropy_with_logits(raw[:, 8:9], batch["mask"].clamp(0, 1))
    terms = {"uv_l1": uv_l1, "xyz_l1": xyz_l1, "normal_cos": cosine, "normal_l1": normal_l1, "mask_bce": mask}
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}


def train_dense(model: DenseViT, samples, cfg) -> list[dict]:
    data = {k: v.to(cfg.device) for k, v in prepare(samples, model).items()}
    n = len(samples)

    def make_batch(generator):
        idx = torch.randint(n, (min(cfg.batch_size, n),), generator=generator)
        return {k: v[idx.to(v.device)] for k, v in data.items()}

    from fica.train.loop import train

    return train(model, lambda b: dense_loss(model, b), make_batch, cfg)


def main(argv=None):
    from fica.train.data import config, load_samples, parser

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    model = DenseViT.from_pretrained(args.init) if args.init else DenseViT(**(TINY_CONFIG if args.tiny else {}))
    train_dense(model, load_samples(args), config(args))
    model.save_pretrained(args.out / "dense_predictor")


if __name__ == "__main__":
    main()
