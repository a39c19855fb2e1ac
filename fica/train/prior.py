"""Recipe: the universal prior (``CodecPrior``) from renders of people making expressions.

Data: per sample the complete texture and geometry maps (the identity, neutral), the expression, the camera and
the target render (``target``, on ``background``), and where the source has it the geometry at the expression
(``posed_geometry``: synthetic heads, tracked capture meshes). Each step encodes the identity, decodes the
Gaussians for the sample's expression, view and gaze — nothing but the network moves them — renders them
differentiably (gsplat on CUDA, ``fica.train.splat.render_dense`` on a CPU) at ``render_scale`` × the target's
size and compares: L1 + ``IMAGE_WEIGHTS["image"]`` × an image term (SSIM by default, ``--image-loss vgg`` for the
pretrained VGG feature loss) + ``GEOMETRY_WEIGHT`` × the mean squared distance of the Gaussian centres from the
posed geometry (cm²; squared, so the few texels an expression moves far outweigh the many it leaves).

``python -m fica.train.prior --out runs/prior [--data DIR | --synthetic N] [--steps N] [--tiny]``
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fica.models.codec_prior import CodecPrior
from fica.prior.learned import decoder_inputs, params_to_gaussians, prior_inputs, surface_template
from fica.train.losses import image_loss
from fica.train.splat import render_train, scaled_camera
from fica.uv_ops import resample

TINY_CONFIG = dict(resolution=32, channels=(32, 32, 16), latent_dim=32)
IMAGE_WEIGHT = 0.2
GEOMETRY_WEIGHT = 1.0
CM = 0.01


def prepare(samples, model: CodecPrior, render_scale: float) -> list[dict]:
    """Per sample: network input ``[7, R, R]``, decoder inputs (expression ``[55]``, view ``[3]``, gaze ``[2]``),
    the neutral surface template, camera, target ``[3, h, w]`` at the render size, background, and the posed
    centres ``[N, 3]`` (or None)."""
    R = model.config.resolution
    out = []
    for s in samples:
        texture, geometry = resample(s.complete.texture, R), resample(s.complete.geometry, R)
        valid = F.interpolate(s.complete.valid[None], size=(R, R), mode="nearest")[0]
        template = surface_template(texture * valid, geometry * valid, valid)
        camera = scaled_camera(s.camera, render_scale)
        target = F.interpolate(s.target.permute(2, 0, 1)[None], size=(camera.height, camera.width), mode="area")[0]
        posed = None
        if s.posed_geometry is not None:
            posed = resample(s.posed_geometry, R).reshape(3, -1).T[template.texel]
        out.append({"input": prior_inputs(texture[None], geometry[None], valid[None],
                                          model.config.geometry_scale_m)[0],
                    **decoder_inputs(s.expression, s.camera), "template": template, "camera": camera,
                    "target": target, "background": s.background, "posed": posed})
    return out


def to_device(frame: dict, device) -> dict:
    return {k: None if v is None else v.to(device) for k, v in frame.items()}


def decode_frames(net, batch: list[dict]) -> torch.Tensor:
    """Raw decoder output ``[B, 14, R, R]`` for a batch of prepared frames (``net``: the model or its DDP
    wrapper)."""
    stack = lambda k: torch.stack([b[k] for b in batch])  # noqa: E731
    return net(stack("input"), stack("expression"), stack("view"), stack("gaze")).float()


def prior_loss(model: CodecPrior, batch: list[dict], net=None, image_term: str = "ssim"
               ) -> tuple[torch.Tensor, dict[str, float]]:
    params = decode_frames(net or model, batch)
    renders, targets, geometry, n_posed = [], [], 0.0, 0
    for p, b in zip(params, batch):
        g = params_to_gaussians(p, b["template"], model.config.offset_scale_m)
        rgb, _ = render_train(g, b["camera"], b["background"])
        renders.append(rgb.permute(2, 0, 1))
        targets.append(b["target"])
        if b["posed"] is not None:
            geometry = geometry + ((g.means - b["posed"]) / CM).pow(2).sum(-1).mean()
            n_posed += 1
    renders, targets = torch.stack(renders), torch.stack(targets)
    l1, image = (renders - targets).abs().mean(), image_loss(renders, targets, image_term)
    geometry = geometry / max(n_posed, 1)
    total = l1 + IMAGE_WEIGHT * image + GEOMETRY_WEIGHT * geometry
    return total, {"render_l1": float(l1.detach()), image_term: float(image.detach()),
                   "geometry_mse_cm2": float(geometry.detach()) if n_posed else 0.0}


def train_prior(model: CodecPrior, samples, cfg, render_scale: float = 0.5, image_term: str = "ssim") -> list[dict]:
    from fica.train.loop import train

    data = [to_device(b, cfg.device) for b in prepare(samples, model, render_scale)]

    def make_batch(generator):
        idx = torch.randint(len(data), (min(cfg.batch_size, len(data)),), generator=generator)
        return [data[i] for i in idx.tolist()]

    return train(model, lambda net, b: prior_loss(model, b, net, image_term), make_batch, cfg)


def main(argv=None):
    from fica.train.data import config, init_source, load_samples, parser, save_on_rank0

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--render-scale", type=float, default=0.5, help="render size relative to the target images")
    p.add_argument("--image-loss", choices=("ssim", "vgg"), default="ssim",
                   help="image term next to L1: SSIM, or VGG-16 features (torchvision weights, downloaded once)")
    args = p.parse_args(argv)
    model = CodecPrior.from_pretrained(init_source(args)[1]) if args.init else CodecPrior(**(TINY_CONFIG if args.tiny else {}))
    train_prior(model, load_samples(args), config(args), args.render_scale, args.image_loss)
    save_on_rank0(model, args.out / "universal_prior")
    return model


if __name__ == "__main__":
    main()
