"""Recipe: the dense predictor (``DenseViT``).

Data: per sample the portrait and its per-pixel ground truth (``dense``: uv, xyz, normal, mask), letterboxed to
the network's input like ``LearnedUnwrapper`` does. Losses (on the ground-truth mask): L1 on uv and xyz
(xyz in units of ``xyz_scale_m``), cosine + L1 on normals, and binary cross-entropy on the mask.
``--init DIR`` starts from a saved ``dense_predictor`` folder; ``--init sapiens PATH_OR_REPO`` from Meta's Sapiens
pretrain checkpoint (TorchScript, safetensors or .pth; a file, folder or Hub repo such as
``facebook/sapiens-pretrain-0.3b-torchscript``) through ``fica.models.sapiens``: the default configuration has
Sapiens-0.3b's backbone shape, and the position embedding is resized to the input size.

``python -m fica.train.dense --out runs/dense [--init sapiens PATH_OR_REPO] [--data DIR | --synthetic N] [--steps N]
[--tiny]``
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.models.dense_vit import DenseViT
from fica.models.inputs import letterbox
from fica.models.sapiens import load_sapiens

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


def dense_loss(model: DenseViT, batch: dict[str, torch.Tensor], net=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Losses of ``model`` on a batch; ``net`` runs the forward pass (the model or its DDP wrapper)."""
    raw = (net or model)(batch["image"]).float()
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

    return train(model, lambda net, b: dense_loss(model, b, net), make_batch, cfg)


def main(argv=None):
    from fica.train.data import config, init_source, load_samples, parser, save_on_rank0

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    init = init_source(args, kinds=("sapiens",))
    if init is not None and init[0] == "folder":
        model = DenseViT.from_pretrained(init[1])
    else:
        model = DenseViT(**(TINY_CONFIG if args.tiny else {}))
        if init is not None:
            load_sapiens(model, init[1])
    train_dense(model, load_samples(args), config(args))
    save_on_rank0(model, args.out / "dense_predictor")
    return model


if __name__ == "__main__":
    main()
