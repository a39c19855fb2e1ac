"""Training recipes on synthetic data: a few steps lower each loss, each network overfits one sample (proof the
wiring is right), and a run resumes from its checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

from fica.train import dense, diffusion, prior, refiner
from fica.train.loop import TrainConfig
from fica.train.synthetic import make_dataset


@pytest.fixture(scope="module")
def samples():
    return make_dataset(4, seed=11)


@pytest.fixture(scope="module")
def neutral_samples():
    return make_dataset(2, seed=12, expression_scale=0.0)


def cfg(tmp_path, steps, lr, batch_size=4, **kw) -> TrainConfig:
    return TrainConfig(out=tmp_path, steps=steps, lr=lr, batch_size=batch_size, log_every=1, device="cpu", **kw)


def test_dense_predictor_loss_drops_and_it_overfits_one_portrait(samples, tmp_path):
    from fica.models.dense_vit import DenseViT

    torch.manual_seed(0)
    model = DenseViT(**dense.TINY_CONFIG)
    history = dense.train_dense(model, samples[:1], cfg(tmp_path, 80, 5e-3, 2, quiet=True))
    first, last = history[0], history[-1]
    assert last["loss"] < 0.5 * first["loss"]
    assert last["uv_l1"] < 0.05 and last["mask_bce"] < 0.2


def test_autoencoder_reconstruction_improves(samples, tmp_path):
    vae, _, _ = diffusion.tiny_components()
    images = diffusion.autoencoder_images(samples[:2], vae.config.sample_size, 0.2)

    def reconstruction_l1():
        with torch.no_grad():
            return float((vae.decode(vae.encode(images).latent_dist.mode()).sample - images).abs().mean())

    before = reconstruction_l1()
    diffusion.train_autoencoder(vae, samples[:2], cfg(tmp_path, 40, 2e-3, 4), geometry_scale_m=0.2)
    assert reconstruction_l1() < 0.7 * before


def test_uv_diffusion_reproduces_one_uv_map_from_noise_given_its_partial_maps(samples, tmp_path):
    from fica.complete.learned import flow_sample
    from fica.models.uv_dit import DOMAINS, UVDiT

    vae, image_encoder, scheduler = diffusion.tiny_components()
    torch.manual_seed(0)
    model = UVDiT(**diffusion.TINY_DIT)
    history = diffusion.train_diffusion(model, vae, image_encoder, samples[:1], cfg(tmp_path, 300, 3e-3),
                                        cfg_dropout=0.0)
    assert history[-1]["velocity_mse"] < 0.3 * history[0]["velocity_mse"]
    data = diffusion.prepare(samples[:1], model, vae, image_encoder)
    with torch.no_grad():
        for d, domain in enumerate(DOMAINS):
            latents = flow_sample(model, scheduler, data["condition"], data["embeds"], domain, steps=8,
                                  guidance_scale=1.0, generator=torch.Generator().manual_seed(5))
            target = data["latents"][:, d]
            other = data["latents"][:, 1 - d]
            error = (latents - target).norm() / target.norm()
            assert error < 0.35, (domain, float(error))
            assert error < 0.5 * (latents - other).norm() / other.norm()  # the domain token picks the map


def test_refiner_losses_drop_on_one_sample(neutral_samples, tmp_path):
    from fica.models.dense_vit import DenseViT
    from fica.models.uv_refiner import UVRefiner

    torch.manual_seed(0)
    backbone = DenseViT(**dense.TINY_CONFIG)
    model = UVRefiner(**refiner.TINY_CONFIG, feature_dim=backbone.config.hidden_size)
    history = refiner.train_refiner(model, backbone, neutral_samples[:1], cfg(tmp_path, 40, 2e-3, 1))
    assert history[-1]["photometric_l1"] < 0.6 * history[0]["photometric_l1"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_prior_reproduces_one_target_render(samples, tmp_path):
    from fica.models.codec_prior import CodecPrior

    torch.manual_seed(0)
    model = CodecPrior(**prior.TINY_CONFIG)
    history = prior.train_prior(model, samples[:1], cfg(tmp_path, 25, 5e-3, 1))
    assert history[-1]["render_l1"] < 0.5 * history[0]["render_l1"]
    assert history[-1]["render_l1"] < 0.03


def test_training_resumes_from_its_checkpoint(samples, tmp_path):
    from fica.models.codec_prior import CodecPrior

    torch.manual_seed(0)
    model = CodecPrior(**prior.TINY_CONFIG)
    prior.train_prior(model, samples[:1], cfg(tmp_path, 3, 1e-3, 1, checkpoint_every=3))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = CodecPrior(**prior.TINY_CONFIG)
    history = prior.train_prior(fresh, samples[:1], cfg(tmp_path, 5, 1e-3, 1))
    assert [h["step"] for h in history] == [4, 5]
    assert any(not torch.equal(saved[k], v) for k, v in fresh.state_dict().items())  # it trained on from step 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
