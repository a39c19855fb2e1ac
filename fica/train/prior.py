"""Recipe: the universal prior (``CodecPrior``) from renders.

Data: per sample the complete texture and geometry maps (the identity), the expression, the camera and the
target render (``target``, on ``background``). Each step decodes the Gaussians for the sample's expression and
view, renders them differentiably (gsplat on CUDA, ``fica.train.splat.render_dense`` on a CPU) at
``render_scale`` × the target's size and compares: L1 + ``PERCEPTUAL_WEIGHT`` × the structure term.

``python -m fica.train.prior --out runs/prior [--data DIR | --synthetic N] [--steps N] [--tiny]``
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.models.codec_prior import CodecPrior
from fica.prior.learned import (expression_code, expression_displacement_maps, params_to_gaussians, prior_inputs,
                                turn_head)
from fica.train.losses import perceptual
from fica.train.splat import render_train, scaled_camera

TINY_CONFIG = dict(resolution=32, channels=(32, 32, 16))
PERCEPTUAL_WEIGHT = 0.2


def prepare(samples, model: CodecPrior, render_scale: float) -> list[dict]:
    """Per sample: network input ``[7, R, R]``, code ``[60]``, the expressed template geometry ``[3, R, R]``,
    texture, valid, head rotation, camera and target ``[3, h, w]`` at the render size."""
    from fica.train.data import resample

    R = model.config.resolution
    blendshapes = expression_displacement_maps(R)
    out = []
    for s in samples:
        texture, geometry = resample(s.complete.texture, R), resample(s.complete.geometry, R)
        valid = F.interpolate(s.complete.valid[None], size=(R, R), mode="nearest")[0]
        camera = scaled_camera(s.camera, render_scale)
        target = F.interpolate(s.target.permute(2, 0, 1)[None], size=(camera.height, camera.width), mode="area")[0]
        out.append({"input": prior_inputs(texture[None], geometry[None], valid[None],
                                          model.config.geometry_scale_m)[0],
                    "code": expression_code(s.expression, s.camera), "texture": texture * valid, "valid": valid,
                    "geometry": (geometry + torch.einsum("k,kcij->cij", s.expression.weights, blendshapes)) * valid,
                    "rotation_deg": s.expression.rotation_deg, "camera": camera,
                    "target": target, "background": s.background})
    return out


def prior_loss(model: CodecPrior, batch: list[dict]) -> tuple[torch.Tensor, dict[str, float]]:
    x = torch.stack([b["input"] for b in batch])
    params = model(x, torch.stack([b["code"] for b in batch])).float()
    renders, targets = [], []
    for p, b in zip(params, batch):
        g = turn_head(params_to_gaussians(p, b["texture"], b["geometry"], b["valid"]), b["geometry"], b["valid"],
                      b["rotation_deg"])
        rgb, _ = render_train(g, b["camera"], b["background"])
        renders.append(rgb.permute(2, 0, 1))
        targets.append(b["target"])
    renders, targets = torch.stack(renders), torch.stack(targets)
    l1, structure = (renders - targets).abs().mean(), perceptual(renders, targets)
    return l1 + PERCEPTUAL_WEIGHT * structure, {"render_l1": float(l1.detach()),
                                                "perceptual": float(structure.detach())}


def train_prior(model: CodecPrior, samples, cfg, render_scale: float = 0.5) -> list[dict]:
    from fica.train.loop import train

    data = [{k: v.to(cfg.device) for k, v in b.items()} for b in prepare(samples, model, render_scale)]

    def make_batch(generator):
        idx = torch.randint(len(data), (min(cfg.batch_size, len(data)),), generator=generator)
        return [data[i] for i in idx.tolist()]

    return train(model, lambda b: prior_loss(model, b), make_batch, cfg)


def main(argv=None):
    from fica.train.data import config, load_samples, parser

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--render-scale", type=float, default=0.5, help="render size relative to the target images")
    args = p.parse_args(argv)
    model = CodecPrior.from_pretrained(args.init) if args.init else CodecPrior(**(TINY_CONFIG if args.tiny else {}))
    train_prior(model, load_samples(args), config(args), args.render_scale)
    model.save_pretrained(args.out / "universal_prior")


if __name__ == "__main__":
    main()
