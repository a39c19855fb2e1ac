"""Recipe: UV diffusion (``UVDiT``) by flow matching in the latent space of a frozen KL autoencoder.

Data: per sample the complete texture and geometry maps (targets), the partial maps (condition) and the portrait
(CLIP image embedding, frozen encoder). Each step draws a domain (texture or geometry) per sample, a noise level
σ from a logit-normal, mixes x_σ = (1 − σ)·x₀ + σ·ε and regresses the velocity ε − x₀ (MSE). The image embedding
is dropped (zeroed) with probability ``cfg_dropout`` so classifier-free guidance works at sampling time.

The default autoencoder is the SDXL VAE (Hub repo ``stabilityai/sdxl-vae``, frozen) and the default image encoder
CLIP ViT-L/14's vision tower with projection (``openai/clip-vit-large-patch14``); both load from the Hub into its
cache on first use (a local folder works too), and offline (``HF_HUB_OFFLINE=1``) from that cache, or fail with
``WeightsUnavailable`` saying which. The tiny configuration trains its own small autoencoder first
(``train_autoencoder``) and uses a small random CLIP.

``python -m fica.train.diffusion --out runs/uv [--vae REPO_OR_DIR] [--image-encoder REPO_OR_DIR]
[--data DIR | --synthetic N] [--tiny]``
"""
from __future__ import annotations

import os
from dataclasses import replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from fica.complete.learned import clip_image_embeds, condition_channels, encode_latents, to_vae_space, vae_scale_factor
from fica.errors import WeightsUnavailable
from fica.models.inputs import resample_partial
from fica.models.uv_dit import DOMAINS, UVDiT
from fica.uv_ops import resample

TINY_VAE = dict(block_out_channels=(16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
                up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=4, norm_num_groups=8, layers_per_block=1,
                sample_size=32, scaling_factor=1.0)
TINY_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                 patch_size=8, projection_dim=16)
TINY_DIT = dict(sample_size=8, patch_size=2, latent_channels=4, condition_channels=12, hidden_size=64,
                num_layers=2, num_heads=4, image_embed_dim=16)
VAE_REPO = "stabilityai/sdxl-vae"
IMAGE_ENCODER_REPO = "openai/clip-vit-large-patch14"
CFG_DROPOUT = 0.1
KL_WEIGHT = 1e-6


def tiny_components():
    """A tiny (vae, image_encoder, scheduler) triple for tests and ``fica.train.tiny``."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    return (AutoencoderKL(**TINY_VAE), CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)),
            FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0))


def autoencoder_images(samples, resolution: int, geometry_scale_m: float) -> torch.Tensor:
    """Everything the autoencoder must reproduce, in its −1..1 space: ``[4N, 3, S, S]`` (texture, geometry,
    partial rgb and partial xyz of each sample)."""
    out = []
    for s in samples:
        p = resample_partial(s.partial, resolution)
        out += [to_vae_space(resample(s.complete.texture, resolution)[None], "texture", geometry_scale_m),
                to_vae_space(resample(s.complete.geometry, resolution)[None], "geometry", geometry_scale_m),
                to_vae_space(p["rgb"], "texture", geometry_scale_m),
                to_vae_space(p["xyz"], "geometry", geometry_scale_m)]
    return torch.cat(out)


class AutoencoderRoundTrip(nn.Module):
    """The autoencoder's training pass as one module call (what DDP wraps): ``forward(images [B, 3, S, S])
    -> (reconstruction [B, 3, S, S], kl [B])`` through a sampled latent."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(images).latent_dist
        return self.vae.decode(posterior.sample()).sample, posterior.kl()


def autoencoder_loss(round_trip, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    recon, kl = round_trip(images)
    l1, kl = (recon.float() - images).abs().mean(), kl.float().mean()
    return l1 + KL_WEIGHT * kl, {"recon_l1": float(l1.detach()), "kl": float(kl.detach())}


def train_autoencoder(vae, samples, cfg, *, geometry_scale_m: float) -> list[dict]:
    """Train ``vae`` to reproduce the samples' UV maps (``autoencoder_images``) at its ``sample_size``, geometry
    in units of ``geometry_scale_m`` (the DiT's, so both see the same latent space)."""
    from fica.train.loop import train

    images = autoencoder_images(samples, vae.config.sample_size, geometry_scale_m).to(cfg.device)

    def make_batch(generator):
        return images[torch.randint(len(images), (min(cfg.batch_size, len(images)),), generator=generator)]

    return train(AutoencoderRoundTrip(vae), autoencoder_loss, make_batch, cfg)


@torch.no_grad()
def prepare(samples, model: UVDiT, vae, image_encoder) -> dict[str, torch.Tensor]:
    """Frozen-encoder work done once: target latents ``[N, 2, C, h, w]`` (texture, geometry), condition
    ``[N, C_cond, h, w]`` and CLIP embeddings ``[N, E]``."""
    S = model.config.sample_size * vae_scale_factor(vae)
    scale_m = model.config.geometry_scale_m
    targets, conditions, embeds = [], [], []
    for s in samples:
        maps = {"texture": resample(s.complete.texture, S), "geometry": resample(s.complete.geometry, S)}
        targets.append(torch.stack([encode_latents(vae, to_vae_space(maps[d][None], d, scale_m))[0]
                                    for d in DOMAINS]))
        conditions.append(condition_channels(vae, resample_partial(s.partial, S), scale_m)[0])
        embeds.append(clip_image_embeds(image_encoder, s.image.permute(2, 0, 1)[None])[0])
    return {"latents": torch.stack(targets), "condition": torch.stack(conditions), "embeds": torch.stack(embeds)}


def draw_batch(data: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator,
               cfg_dropout: float = CFG_DROPOUT) -> dict[str, torch.Tensor]:
    """Samples, domains, noise, noise levels and embedding dropout for one flow-matching step."""
    n = len(data["latents"])
    idx = torch.randint(n, (batch_size,), generator=generator)
    domain = torch.randint(len(DOMAINS), (batch_size,), generator=generator)
    x0 = data["latents"][idx, domain]
    keep = (torch.rand(batch_size, generator=generator) >= cfg_dropout).float()[:, None]
    device = x0.device
    return {"x0": x0, "condition": data["condition"][idx], "embeds": data["embeds"][idx] * keep.to(device),
            "domain": domain.to(device), "noise": torch.randn(x0.shape, generator=generator).to(device),
            "sigma": torch.sigmoid(torch.randn(batch_size, generator=generator)).to(device)}


def flow_matching_loss(net, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Velocity MSE of ``net`` (a UVDiT or its DDP wrapper) on a ``draw_batch`` batch."""
    sigma = batch["sigma"].view(-1, 1, 1, 1)
    x_t = (1 - sigma) * batch["x0"] + sigma * batch["noise"]
    v = net(x_t, batch["condition"], batch["sigma"] * 1000, batch["domain"], batch["embeds"]).float()
    loss = F.mse_loss(v, batch["noise"] - batch["x0"])
    return loss, {"velocity_mse": float(loss.detach())}


def train_diffusion(model: UVDiT, vae, image_encoder, samples, cfg, cfg_dropout: float = CFG_DROPOUT) -> list[dict]:
    from fica.train.loop import train

    vae.requires_grad_(False)
    image_encoder.requires_grad_(False)
    data = {k: v.to(cfg.device) for k, v in prepare(samples, model, vae.to(cfg.device),
                                                      image_encoder.to(cfg.device)).items()}
    return train(model, flow_matching_loss, lambda g: draw_batch(data, cfg.batch_size, g, cfg_dropout), cfg)


def pretrained(cls, source: str, what: str):
    """``cls.from_pretrained(source)`` (Hub repo id or folder; from the Hub cache when offline), its failures as
    ``WeightsUnavailable``."""
    try:
        return cls.from_pretrained(source)
    except Exception as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        why = "HF_HUB_OFFLINE is set and it is not in the Hub cache" if offline else type(err).__name__
        raise WeightsUnavailable(f"Could not load the {what} from '{source}' ({why}); pass a local folder or "
                                 "download it once while online.") from err


def main(argv=None):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPVisionModelWithProjection

    from fica.train.data import config, init_source, load_samples, parser, save_on_rank0

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--vae", default=VAE_REPO, help="AutoencoderKL repo or folder (ignored with --tiny: trained here)")
    p.add_argument("--image-encoder", default=IMAGE_ENCODER_REPO,
                   help="CLIPVisionModelWithProjection repo or folder (ignored with --tiny: a random tiny one)")
    args = p.parse_args(argv)
    samples = load_samples(args)
    cfg = config(args)
    if args.tiny:
        vae, image_encoder, scheduler = tiny_components()
        scale_m = UVDiT.from_pretrained(init_source(args)[1]).config.geometry_scale_m if args.init else UVDiT(
            **TINY_DIT).config.geometry_scale_m
        train_autoencoder(vae, samples, replace(cfg, out=args.out / "vae_run"), geometry_scale_m=scale_m)
    else:
        vae = pretrained(AutoencoderKL, args.vae, "autoencoder")
        image_encoder = pretrained(CLIPVisionModelWithProjection, args.image_encoder, "CLIP image encoder")
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    embed_dim = image_encoder.config.projection_dim
    model = UVDiT.from_pretrained(init_source(args)[1]) if args.init else UVDiT(
        **(TINY_DIT if args.tiny else {"image_embed_dim": embed_dim,
                                       "condition_channels": 2 * vae.config.latent_channels + 4,
                                       "latent_channels": vae.config.latent_channels}))
    train_diffusion(model, vae, image_encoder, samples, cfg)
    for name, component in (("uv_diffusion", model), ("vae", vae), ("image_encoder", image_encoder),
                            ("scheduler", scheduler)):
        save_on_rank0(component, args.out / name)
    return model


if __name__ == "__main__":
    main()
