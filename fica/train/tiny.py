"""A tiny complete FiCA pipeline repo: all four networks in small configurations, briefly trained on synthetic
data, saved in the Hub layout ``fica.hub`` reads (``model_index.json`` + one folder per component).

``python -m fica.train.tiny --out DIR [--samples N] [--steps-scale S]``
It proves the code path (train -> save -> load_stages -> FiCAPipeline); its outputs are not meant to look good.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from fica.hub import write_model_index
from fica.train.loop import TrainConfig

# steps, learning rate, batch size per network at steps_scale = 1
SCHEDULE = {"dense": (300, 2e-3, 8), "vae": (200, 2e-3, 8), "diffusion": (400, 1e-3, 8), "refiner": (20, 1e-3, 2),
            "prior": (60, 3e-3, 2)}


def build_tiny_repo(out: str | Path, *, samples: int = 24, steps_scale: float = 1.0, seed: int = 0,
                    quiet: bool = True, steps: dict[str, int] | None = None) -> Path:
    """Train the tiny networks and write the repo to ``out`` (``steps_scale=0``: untrained). ``steps`` sets the
    number of steps of some networks (``SCHEDULE`` keys) instead of the scaled schedule. Returns ``out``."""
    from fica.models.codec_prior import CodecPrior
    from fica.models.dense_vit import DenseViT
    from fica.models.uv_dit import UVDiT
    from fica.models.uv_refiner import UVRefiner
    from fica.train import dense, diffusion, prior, refiner
    from fica.train.synthetic import make_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    dense_model = DenseViT(**dense.TINY_CONFIG)
    vae, image_encoder, scheduler = diffusion.tiny_components()
    dit = UVDiT(**diffusion.TINY_DIT)
    uv_refiner = UVRefiner(**refiner.TINY_CONFIG, feature_dim=dense_model.config.hidden_size)
    codec = CodecPrior(**prior.TINY_CONFIG)
    if steps_scale > 0:
        data = make_dataset(samples, seed=seed)
        neutral = make_dataset(max(2, samples // 4), seed=seed + 1, expression_scale=0.0)
        with tempfile.TemporaryDirectory() as runs:
            def cfg(name: str) -> TrainConfig:
                scheduled, lr, batch = SCHEDULE[name]
                count = (steps or {}).get(name, max(1, round(scheduled * steps_scale)))
                return TrainConfig(out=Path(runs) / name, steps=count, lr=lr,
                                   batch_size=batch, device="cpu", seed=seed, log_every=50, quiet=quiet)

            dense.train_dense(dense_model, data, cfg("dense"))
            diffusion.train_autoencoder(vae, data, cfg("vae"), geometry_scale_m=dit.config.geometry_scale_m)
            diffusion.train_diffusion(dit, vae, image_encoder, data, cfg("diffusion"))
            refiner.train_refiner(uv_refiner, dense_model, neutral, cfg("refiner"))
            prior.train_prior(codec, data, cfg("prior"))
    components = {"dense_predictor": dense_model, "uv_diffusion": dit, "vae": vae, "image_encoder": image_encoder,
                  "scheduler": scheduler, "uv_refiner": uv_refiner, "universal_prior": codec}
    for name, component in components.items():
        component.save_pretrained(out / name)
    write_model_index(out, list(components))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--steps-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    path = build_tiny_repo(args.out, samples=args.samples, steps_scale=args.steps_scale, seed=args.seed,
                           quiet=False)
    print(f"tiny FiCA pipeline repo written to {path}")


if __name__ == "__main__":
    main()
