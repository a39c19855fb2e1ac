"""UV diffusion backbone: a PixArt/DiT-style transformer on VAE latents, trained with flow matching.

Built from diffusers blocks (``PatchEmbed``, ``Timesteps``/``TimestepEmbedding``, ``BasicTransformerBlock`` with
``ada_norm_single``). One network serves texture and geometry: a domain embedding joins the timestep embedding
(adaLN) and is appended as a token to the cross-attention context, next to the projected CLIP image embedding.
The partial maps enter as extra input channels concatenated to the noisy latent.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import PatchEmbed, TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin

DOMAINS = ("texture", "geometry")


class UVDiT(ModelMixin, ConfigMixin):
    """``forward(latent [B, C, h, w], condition [B, C_cond, h, w], timestep [B] (0..1000), domain [B] long,
    image_embeds [B, E] or None) -> velocity [B, C, h, w]``. ``image_embeds=None`` is the unconditional branch
    of classifier-free guidance (zeros, as the embedding is dropped in training). Geometry maps enter the VAE
    as xyz / ``geometry_scale_m``, textures as 2·rgb − 1."""

    @register_to_config
    def __init__(self, sample_size: int = 64, patch_size: int = 2, latent_channels: int = 4,
                 condition_channels: int = 12, hidden_size: int = 1024, num_layers: int = 24, num_heads: int = 16,
                 image_embed_dim: int = 768, num_domains: int = len(DOMAINS), geometry_scale_m: float = 0.2):
        super().__init__()
        self.patch_embed = PatchEmbed(height=sample_size, width=sample_size, patch_size=patch_size,
                                      in_channels=latent_channels + condition_channels, embed_dim=hidden_size)
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, hidden_size)
        self.domain_embed = nn.Embedding(num_domains, hidden_size)
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.context_proj = nn.Linear(image_embed_dim, hidden_size)
        self.blocks = nn.ModuleList([
            BasicTransformerBlock(hidden_size, num_heads, hidden_size // num_heads, cross_attention_dim=hidden_size,
                                  activation_fn="gelu-approximate", norm_type="ada_norm_single",
                                  norm_elementwise_affine=False, norm_eps=1e-6)
            for _ in range(num_layers)])
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size ** 0.5)
        self.proj_out = nn.Linear(hidden_size, patch_size * patch_size * latent_channels)
        nn.init.zeros_(self.adaln[1].weight)
        nn.init.zeros_(self.adaln[1].bias)

    def forward(self, latent: torch.Tensor, condition: torch.Tensor, timestep: torch.Tensor,
                domain: torch.Tensor, image_embeds: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = latent.shape
        p = self.config.patch_size
        x = self.patch_embed(torch.cat([latent, condition], 1))  # [B, N, D]
        t = self.time_proj(timestep.expand(b).float()).to(x.dtype)
        emb = self.time_embed(t) + self.domain_embed(domain.expand(b))  # [B, D]
        if image_embeds is None:
            image_embeds = torch.zeros(b, self.config.image_embed_dim, dtype=x.dtype, device=x.device)
        context = torch.stack([self.context_proj(image_embeds), self.domain_embed(domain.expand(b))], 1)  # [B, 2, D]
        modulation = self.adaln(emb)  # [B, 6D]
        for block in self.blocks:
            x = block(x, encoder_hidden_states=context, timestep=modulation)
        shift, scale = (self.scale_shift_table[None] + emb[:, None]).chunk(2, dim=1)
        x = self.proj_out(self.norm_out(x) * (1 + scale) + shift)  # [B, N, p*p*C]
        x = x.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, h, w)
