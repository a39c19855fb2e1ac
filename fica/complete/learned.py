"""Learned completion stage: latent flow-matching UV diffusion (DESIGN.md §5 Complete).

Read top to bottom as the algorithm: encode the partial maps into condition channels (VAE latents of the partial
rgb and xyz, downsampled visibility and normals) and the portrait into a CLIP image embedding; for each domain
(texture, geometry) integrate the flow from seeded noise with ``FlowMatchEulerDiscreteScheduler`` and
classifier-free guidance; decode with the VAE. The network runs at its trained resolution
(``sample_size`` × the VAE's downsampling factor); the maps are resampled to and from the partial's resolution.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fica.complete.base import Completer
from fica.maps import CompleteUV
from fica.models import QUIET_LOAD
from fica.models.inputs import resample_partial
from fica.models.uv_dit import DOMAINS, UVDiT
from fica.noise import seeded_noise
from fica.unwrap.base import Unwrapped
from fica.uv_ops import resample

COMPONENT = "uv_diffusion"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def vae_scale_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode_latents(vae, images: torch.Tensor) -> torch.Tensor:
    """VAE latents ``[B, C, R/f, R/f]`` (scaled, mode of the posterior) of ``images [B, 3, R, R]`` in −1..1."""
    latents = vae.encode(images).latent_dist.mode()
    return (latents - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor


def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Images ``[B, 3, R, R]`` (−1..1 nominal) from scaled latents ``[B, C, R/f, R/f]``."""
    return vae.decode(latents / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)).sample


def to_vae_space(maps: torch.Tensor, domain: str, geometry_scale_m: float) -> torch.Tensor:
    """Texture (sRGB 0..1) or geometry (metres) ``[B, 3, R, R]`` -> the VAE's −1..1 image space."""
    return maps * 2 - 1 if domain == "texture" else maps / geometry_scale_m


def from_vae_space(images: torch.Tensor, domain: str, geometry_scale_m: float) -> torch.Tensor:
    return ((images + 1) / 2).clamp(0, 1) if domain == "texture" else images * geometry_scale_m


def condition_channels(vae, partial: dict[str, torch.Tensor], geometry_scale_m: float) -> torch.Tensor:
    """Condition ``[B, 2·C_latent + 4, h, w]`` from batched partial maps ``{rgb, visibility, normal, xyz}``
    ``[B, C, S, S]``: latents of the partial rgb and xyz, and visibility and normals downsampled to ``h × w``."""
    rgb = encode_latents(vae, to_vae_space(partial["rgb"], "texture", geometry_scale_m))
    xyz = encode_latents(vae, to_vae_space(partial["xyz"], "geometry", geometry_scale_m))
    size = rgb.shape[-2:]
    small = F.interpolate(torch.cat([partial["visibility"], partial["normal"]], 1), size=size, mode="area")
    return torch.cat([rgb, xyz, small], 1)


def clip_image_embeds(image_encoder, images: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings ``[B, E]`` of portraits ``[B, 3, H, W]`` sRGB 0..1 (resized to the encoder's size)."""
    size = image_encoder.config.image_size
    x = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return image_encoder(pixel_values=(x - mean) / std).image_embeds


def flow_sample(model, scheduler, condition: torch.Tensor, image_embeds: torch.Tensor | None, domain: str, *,
                steps: int, guidance_scale: float, generator: torch.Generator | None) -> torch.Tensor:
    """Integrate the learned velocity field from seeded noise. Returns latents ``[B, C, h, w]``.

    ``scheduler`` is copied, so concurrent calls do not share its step counter.
    """
    scheduler = type(scheduler).from_config(scheduler.config)
    b, _, h, w = condition.shape
    shape = (b, model.config.latent_channels, h, w)
    latents = seeded_noise(shape, generator).to(condition)
    domain_id = torch.tensor([DOMAINS.index(domain)], device=condition.device)
    scheduler.set_timesteps(steps, device=condition.device)
    guided = image_embeds is not None and guidance_scale != 1.0
    for t in scheduler.timesteps:
        v = model(latents, condition, t.expand(b), domain_id, image_embeds)
        if guided:
            v_uncond = model(latents, condition, t.expand(b), domain_id, None)
            v = v_uncond + guidance_scale * (v - v_uncond)
        latents = scheduler.step(v, t, latents).prev_sample
    return latents


class LearnedCompleter(Completer):
    """Partial maps + the portrait's CLIP embedding -> complete texture and geometry by UV diffusion."""

    def __init__(self, model, vae, image_encoder, scheduler, *, steps: int = 8, guidance_scale: float = 2.0,
                 seed: int = 0, implementation: str = "learned", device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.vae = vae.to(self.device).eval()
        self.image_encoder = image_encoder.to(self.device).eval()
        self.scheduler = scheduler
        self.steps, self.guidance_scale, self.seed = steps, guidance_scale, seed
        self.implementation = implementation

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, source: str, uv_resolution: int = 256,
                        device: str | torch.device = "cpu") -> "LearnedCompleter":
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
        from transformers import CLIPVisionModelWithProjection

        folder = Path(folder)
        return cls(UVDiT.from_pretrained(folder / COMPONENT, **QUIET_LOAD),
                   AutoencoderKL.from_pretrained(folder / "vae", **QUIET_LOAD),
                   CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder"),
                   FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler"),
                   implementation=f"learned: {source}/{COMPONENT}", device=device)

    @property
    def resolution(self) -> int:
        """The UV resolution the network was trained at."""
        return self.model.config.sample_size * vae_scale_factor(self.vae)

    @torch.no_grad()
    def __call__(self, unwrapped: Unwrapped, image: torch.Tensor,
                 generator: torch.Generator | None = None) -> CompleteUV:
        if generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        scale_m = self.model.config.geometry_scale_m
        partial = unwrapped.partial.to(self.device)
        R = partial.resolution
        maps = resample_partial(partial, self.resolution)
        condition = condition_channels(self.vae, maps, scale_m)
        embeds = clip_image_embeds(self.image_encoder, image.to(self.device).permute(2, 0, 1)[None].float())
        out = {}
        for domain in DOMAINS:
            latents = flow_sample(self.model, self.scheduler, condition, embeds, domain, steps=self.steps,
                                  guidance_scale=self.guidance_scale, generator=generator)
            decoded = from_vae_space(decode_latents(self.vae, latents), domain, scale_m)
            out[domain] = resample(decoded[0], R) * partial.valid
        return CompleteUV(texture=out["texture"], geometry=out["geometry"], valid=partial.valid)
