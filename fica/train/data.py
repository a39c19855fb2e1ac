"""Command-line plumbing shared by the recipes: where samples come from and the common options.

A dataset is a folder of ``sample_*.pt`` files in the format of ``fica.train.synthetic.save_dataset`` (portrait,
per-pixel uv/xyz/normal/mask, partial and complete UV maps, target render, keypoints, camera, expression);
``--synthetic N`` draws N synthetic samples instead.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fica.train.loop import PRECISIONS, TrainConfig, rank_and_world, setup_distributed


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, required=True,
                   help="run folder: losses.jsonl, checkpoint/, the trained component")
    p.add_argument("--data", type=Path, help="dataset folder (sample_*.pt)")
    p.add_argument("--synthetic", type=int, default=64, help="synthetic samples to draw when --data is not given")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=4, help="per process and micro-batch")
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per optimiser step")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--precision", choices=PRECISIONS, default="bf16", help="autocast dtype on CUDA")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--tiny", action="store_true", help="the tiny test configuration instead of the default one")
    p.add_argument("--init", nargs="+", metavar="[KIND] PATH",
                   help="start from this saved component folder (dense also takes: sapiens PATH_OR_REPO)")
    p.add_argument("--device", default=TrainConfig.device)
    return p


def load_samples(args, **synthetic_kwargs) -> list:
    from fica.train.synthetic import load_dataset, make_dataset

    if args.data is not None:
        return load_dataset(args.data)
    return make_dataset(args.synthetic, **synthetic_kwargs)


def init_source(args, kinds: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """``--init DIR`` -> ("folder", DIR); ``--init KIND PATH`` -> (KIND, PATH) for a KIND in ``kinds``."""
    if not args.init:
        return None
    if len(args.init) == 1:
        return "folder", args.init[0]
    if len(args.init) != 2 or args.init[0] not in kinds:
        raise SystemExit(f"--init takes a folder{''.join(f' or {k} PATH_OR_REPO' for k in kinds)}, got {args.init}")
    return args.init[0], args.init[1]


def config(args) -> TrainConfig:
    """The run's TrainConfig; under ``torchrun`` this joins the process group and picks this rank's device."""
    return TrainConfig(out=args.out, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                       accumulate=args.accumulate, precision=args.precision, log_every=args.log_every,
                       checkpoint_every=args.checkpoint_every, device=setup_distributed(args.device))


def save_on_rank0(component, folder: Path) -> None:
    """``component.save_pretrained(folder)`` from rank 0 only (every rank holds the same weights)."""
    if rank_and_world()[0] == 0:
        component.save_pretrained(folder)
