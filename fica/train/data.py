"""Command-line plumbing shared by the recipes: where samples come from and the common options.

A dataset is a folder of ``sample_*.pt`` files in the format of ``fica.train.synthetic.save_dataset`` (portrait,
per-pixel uv/xyz/normal/mask, partial and complete UV maps, target render, keypoints, camera, expression);
``--synthetic N`` draws N synthetic samples instead. ``resample`` brings a sample's UV maps to a network's resolution.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from fica.train.loop import TrainConfig


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, required=True,
                   help="run folder: losses.jsonl, checkpoint/, the trained component")
    p.add_argument("--data", type=Path, help="dataset folder (sample_*.pt)")
    p.add_argument("--synthetic", type=int, default=64, help="synthetic samples to draw when --data is not given")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--tiny", action="store_true", help="the tiny test configuration instead of the default one")
    p.add_argument("--init", type=Path, help="start from this saved component folder")
    p.add_argument("--device", default=TrainConfig.device)
    return p


def load_samples(args, **synthetic_kwargs) -> list:
    from fica.train.synthetic import load_dataset, make_dataset

    if args.data is not None:
        return load_dataset(args.data)
    return make_dataset(args.synthetic, **synthetic_kwargs)


def resample(maps: torch.Tensor, resolution: int) -> torch.Tensor:
    """``[C, R, R]`` -> ``[C, S, S]`` (area when shrinking, bilinear when growing)."""
    if maps.shape[-1] == resolution:
        return maps
    mode = "area" if maps.shape[-1] > resolution else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(maps[None], size=(resolution, resolution), mode=mode, **kwargs)[0]


def config(args) -> TrainConfig:
    return TrainConfig(out=args.out, steps=args.steps, lr=args.lr, batch_size=args.batch_size, device=args.device)
