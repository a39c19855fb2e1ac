"""The training loop every recipe shares, in one process or many (``torchrun``), on torch's own engine:

- **DDP**: launched by ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in ``DistributedDataParallel``
  (NCCL, one GPU per process by ``LOCAL_RANK``; gloo on CPUs) and gradients are averaged over the ranks. Each rank
  draws its own batches from a generator seeded by (seed, rank, step, micro-batch), so a step's batches do not
  depend on what ran before it.
- **Mixed precision** on CUDA: bf16 autocast (default) or fp16 autocast with a gradient scaler; fp32 on a CPU.
- **Gradient accumulation**: ``accumulate`` micro-batches per optimiser step; the gradient all-reduce runs on the
  last one only. The global batch is ``batch_size × accumulate × world size``.
- **Checkpoints** resume with any number of processes: rank 0 writes ``checkpoint/model.safetensors`` (the
  module's state dict) and ``checkpoint/state.pt`` (optimiser, scaler, step) — the same on every rank under DDP —
  and running again with the same ``out`` loads them on every rank.
- **CPU threads**: on a CPU the loop runs torch single-threaded (``fica.threads.one_thread``): its small ops
  wait on each other across threads on a busy machine, and DDP on CPUs runs one process per core anyway.
- **Logging** from rank 0 only: ``losses.jsonl`` (one line per logged step: step, seconds, every loss term
  averaged over the ranks and micro-batches) and, unless ``quiet``, the same line on stdout.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from safetensors.torch import load_model, save_model

from fica.io._atomic import atomic_path
from fica.threads import one_thread

PRECISIONS = ("bf16", "fp16", "fp32")


@dataclass
class TrainConfig:
    out: Path
    steps: int = 1000
    lr: float = 1e-4
    batch_size: int = 4  # per process and micro-batch
    accumulate: int = 1  # micro-batches per optimiser step
    weight_decay: float = 0.0
    log_every: int = 10
    checkpoint_every: int = 500
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    precision: str = "bf16"  # autocast dtype on CUDA (fp32 on a CPU whatever this says)
    seed: int = 0
    quiet: bool = False  # no loss lines on stdout (they still go to losses.jsonl)


def setup_distributed(device: str) -> str:
    """Join the process group when launched by ``torchrun`` (once per process) and return this rank's device:
    ``cuda:LOCAL_RANK`` for ``device="cuda"``, ``device`` otherwise. A no-op in a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return device
    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return device


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def batch_generator(seed: int, rank: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_003 + step) * 101 + micro)


def train(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, object], tuple[torch.Tensor, dict]],
          make_batch: Callable[[torch.Generator], object], cfg: TrainConfig) -> list[dict]:
    """Optimise ``model``'s trainable parameters for ``cfg.steps`` optimiser steps (counting resumed ones).

    ``make_batch(generator)`` draws one micro-batch (on ``cfg.device``); ``loss_fn(net, batch)`` returns the loss
    and its logged terms, running the forward pass through ``net`` (``model``, or its DDP wrapper). Returns the
    logged history of this run (the same on every rank).
    """
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got '{cfg.precision}'")
    device = setup_distributed(cfg.device)
    rank, world = rank_and_world()
    out, ckpt = Path(cfg.out), Path(cfg.out) / "checkpoint"
    model.to(device).train()
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if str(device).startswith("cuda") else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    cuda = str(device).startswith("cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    use_amp = cuda and dtype is not None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dtype == torch.float16)
    step = 0
    if (ckpt / "state.pt").exists():
        load_model(model, str(ckpt / "model.safetensors"), device=str(device))
        state = torch.load(ckpt / "state.pt", weights_only=False, map_location=device)
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step = state["step"]
    history, start = [], time.perf_counter()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "losses.jsonl", "a") if rank == 0 else nullcontext()
    with nullcontext() if cuda else one_thread(), log_file as log:
        while step < cfg.steps:
            opt.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            for micro in range(cfg.accumulate):
                batch = make_batch(batch_generator(cfg.seed, rank, step, micro))
                last = micro == cfg.accumulate - 1
                with nullcontext() if last or net is model else net.no_sync():
                    with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=use_amp):
                        loss, terms = loss_fn(net, batch)
                    scaler.scale(loss / cfg.accumulate).backward()
                for k, v in {"loss": float(loss.detach()), **terms}.items():
                    sums[k] = sums.get(k, 0.0) + float(v) / cfg.accumulate
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                entry = {"step": step, "seconds": round(time.perf_counter() - start, 2),
                         **{k: round(v, 6) for k, v in mean_over_ranks(sums, device).items()}}
                history.append(entry)
                if log is not None:
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
                    if not cfg.quiet:
                        print(json.dumps(entry), flush=True)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                if rank == 0:
                    save_checkpoint(ckpt, model, opt, scaler, step)
                if world > 1:
                    dist.barrier()
    model.eval()
    return history


def mean_over_ranks(values: dict[str, float], device) -> dict[str, float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / dist.get_world_size()).tolist()))


def save_checkpoint(folder: Path, model, opt, scaler, step: int) -> None:
    with atomic_path(folder / "model.safetensors") as tmp:
        save_model(model, str(tmp))
    with atomic_path(folder / "state.pt") as tmp:
        torch.save({"optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "step": step}, tmp)
