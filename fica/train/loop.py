"""The training loop every recipe shares: AdamW, bf16 autocast on CUDA, loss logging, checkpoints, resume.

Layout of ``out``: ``losses.jsonl`` (one line per logged step: step, seconds, every loss term),
``checkpoint/model/`` (``save_pretrained`` of the network) and ``checkpoint/state.pt`` (optimiser, step, RNG).
Running again with the same ``out`` resumes from the checkpoint.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file


@dataclass
class TrainConfig:
    out: Path
    steps: int = 1000
    lr: float = 1e-4
    batch_size: int = 4
    weight_decay: float = 0.0
    log_every: int = 10
    checkpoint_every: int = 500
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    amp: bool = True  # bf16 autocast, CUDA only
    seed: int = 0
    quiet: bool = False  # no loss lines on stdout (they still go to losses.jsonl)


def train(model, loss_fn: Callable[[dict], tuple[torch.Tensor, dict[str, float]]],
          make_batch: Callable[[torch.Generator], dict], cfg: TrainConfig) -> list[dict]:
    """Optimise ``model``'s trainable parameters for ``cfg.steps`` steps (counting resumed ones).

    ``make_batch(generator)`` draws a batch (tensors on ``cfg.device``); ``loss_fn(batch)`` returns the total loss and
    its logged terms. Returns the logged history of this run.
    """
    out = Path(cfg.out)
    ckpt = out / "checkpoint"
    out.mkdir(parents=True, exist_ok=True)
    model.to(cfg.device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    step = 0
    if (ckpt / "state.pt").exists():
        state = torch.load(ckpt / "state.pt", weights_only=False)
        model.load_state_dict(load_file(next((ckpt / "model").glob("*.safetensors"))))
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step = state["step"]
    use_amp = cfg.amp and str(cfg.device).startswith("cuda")
    history, start = [], time.perf_counter()
    with open(out / "losses.jsonl", "a") as log:
        while step < cfg.steps:
            batch = make_batch(generator)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                loss, terms = loss_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                entry = {"step": step, "seconds": round(time.perf_counter() - start, 2), "loss": float(loss.detach()),
                         **{k: round(float(v), 6) for k, v in terms.items()}}
                history.append(entry)
                log.write(json.dumps(entry) + "\n")
                log.flush()
                if not cfg.quiet:
                    print(json.dumps(entry), flush=True)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                model.save_pretrained(ckpt / "model")
                torch.save({"optimizer": opt.state_dict(), "generator": generator.get_state(), "step": step},
                           ckpt / "state.pt")
    model.eval()
    return history
