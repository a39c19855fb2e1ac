"""What a lab needs to train at scale: every recipe under torchrun (DDP on gloo here), checkpoints that resume
with another process count, Sapiens checkpoints loaded into the dense predictor, and a pretrained perceptual loss."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from fica.train import dense, prior
from fica.train.loop import TrainConfig
from fica.train.synthetic import make_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_two_processes_train_identical_weights_and_a_single_process_resumes_them(tmp_path):
    from fica.models.codec_prior import CodecPrior

    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent("""
        import sys
        import torch
        import torch.distributed as dist
        from fica.train import prior

        model = prior.main(sys.argv[1:])
        torch.save(model.state_dict(), sys.argv[2] + f"/rank{dist.get_rank()}.pt")
        dist.destroy_process_group()
    """))
    out = tmp_path / "run"
    args = ["--out", str(out), "--synthetic", "2", "--steps", "3", "--tiny", "--device", "cpu", "--batch-size", "1",
            "--accumulate", "2", "--log-every", "1", "--lr", "3e-3"]
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(worker), *args], capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt") for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])  # DDP kept the replicas in step
    assert ranks[0]["geometry_decoder.out.weight"].abs().max() > 0  # and they trained (it starts at zero)
    logged = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logged] == [1, 2, 3]  # rank 0 alone writes the log
    assert (out / "universal_prior" / "config.json").exists()

    resumed = CodecPrior(**prior.TINY_CONFIG)  # one process picks up the two-process checkpoint
    history = prior.train_prior(resumed, make_dataset(2), TrainConfig(out=out, steps=5, lr=3e-3, batch_size=1,
                                                                      log_every=1, device="cpu", quiet=True))
    assert [h["step"] for h in history] == [4, 5]
    moved = [float((resumed.state_dict()[k] - ranks[0][k]).abs().max()) for k in ranks[0]]
    assert 0 < max(moved) < 0.1  # it continued from the saved weights, not from a fresh start


class _SapiensAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class _SapiensFFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.GELU()), nn.Linear(hidden, dim))


class _SapiensLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn, self.ffn = _SapiensAttention(dim, heads), _SapiensFFN(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn.layers(self.ln2(x))


class _SapiensBackbone(nn.Module):
    """mmpretrain's VisionTransformer as Sapiens' dense tasks run it (``with_cls_token=False``), with its module
    names: the pretrain checkpoint's class token and its position slot kept but unused, pre-norm layers, a final
    ``ln1``; ``forward`` takes a normalised image and returns the patch tokens."""

    def __init__(self, grid: int, patch: int, dim: int, heads: int, layers: int):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.projection = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + grid * grid, dim) * 0.02)
        self.layers = nn.ModuleList(_SapiensLayer(dim, heads) for _ in range(layers))
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.projection(x).flatten(2).transpose(1, 2)
        x = x + self.pos_embed[:, 1:]
        for layer in self.layers:
            x = layer(x)
        return self.ln1(x)


class _Sapiens(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.backbone = _SapiensBackbone(**kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def test_sapiens_torchscript_checkpoint_loads_into_the_dense_predictor(tmp_path):
    from fica.models.dense_vit import DenseViT
    from fica.models.sapiens import load_sapiens, resize_pos_embed

    c = dense.TINY_CONFIG
    torch.manual_seed(0)
    sapiens = _Sapiens(grid=8, patch=c["patch_size"], dim=c["hidden_size"], heads=c["num_heads"],
                       layers=c["num_layers"]).eval()
    path = tmp_path / "sapiens_tiny_torchscript.pt2"
    torch.jit.trace(sapiens, torch.rand(1, 3, 64, 64)).save(str(path))

    same_size = load_sapiens(DenseViT(**{**c, "image_width": 64}), path).eval()  # 64×64, Sapiens' grid
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        theirs = sapiens((image - same_size.mean) / same_size.std)
        ours = same_size.features(image)
    assert torch.allclose(ours, theirs, atol=1e-4), float((ours - theirs).abs().max())

    model = dense.main(["--out", str(tmp_path / "run"), "--init", "sapiens", str(path), "--tiny", "--synthetic", "1",
                        "--steps", "1", "--lr", "0", "--device", "cpu", "--log-every", "1"])  # 64×48: resized
    assert model.grid == (8, 6)
    assert torch.equal(model.pos_embed, resize_pos_embed(sapiens.backbone.pos_embed.detach(), (8, 6)))
    assert torch.equal(model.patch_embed.weight, sapiens.backbone.patch_embed.projection.weight)
    assert torch.equal(model.blocks.layers[1].linear2.weight, sapiens.backbone.layers[1].ffn.layers[1].weight)
    assert torch.equal(model.norm.bias, sapiens.backbone.ln1.bias)
    with pytest.raises(ValueError, match="does not fit"):
        load_sapiens(DenseViT(**{**c, "hidden_size": 32}), path)


def test_vgg_perceptual_loss_reads_vgg16_weights_and_vanishes_only_for_equal_images(tmp_path):
    """The feature loss reads ImageNet VGG-16 weights in timm's layout; here a random stand-in with the same tensor
    names checks the wiring (the real weights come from the Hub at training time)."""
    from safetensors.torch import save_file

    from fica.train.perceptual import VGGFeatures, load_vgg, vgg_loss

    torch.manual_seed(0)
    stand_in = {f"features.{k}": v for k, v in VGGFeatures().features.state_dict().items()}
    stand_in["features.24.weight"] = torch.zeros(1)  # layers past conv4_3 are ignored
    stand_in["pre_logits.fc1.weight"] = torch.zeros(1)  # and so is the classifier
    save_file(stand_in, str(tmp_path / "model.safetensors"))
    vgg = load_vgg(tmp_path)
    assert torch.equal(vgg.features[21].weight, stand_in["features.21.weight"])  # conv4_3
    image = torch.rand(1, 3, 32, 32)
    assert float(vgg_loss(image, image, source=tmp_path)) == 0
    noisy = (image + 0.1 * torch.randn_like(image)).clamp(0, 1)
    loss = vgg_loss(noisy, image, source=tmp_path)
    assert float(loss) > 0
    noisy.requires_grad_(True)
    vgg_loss(noisy, image, source=tmp_path).backward()
    assert float(noisy.grad.abs().sum()) > 0


def test_perceptual_loss_offline_without_weights_says_how_to_train_without_it(tmp_path, monkeypatch):
    from fica.errors import WeightsUnavailable
    from fica.train.perceptual import weights_file

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("offline and not in the cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(WeightsUnavailable, match="--image-loss ssim"):
        weights_file("timm/vgg16.tv_in1k")
