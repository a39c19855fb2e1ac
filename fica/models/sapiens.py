"""Meta's Sapiens checkpoints -> ``DenseViT``'s backbone.

Sapiens is an mmpretrain ``VisionTransformer`` (pre-norm blocks, GELU MLP, patch 16, final LayerNorm). Its state
dict, under an optional ``backbone.`` prefix, maps onto ``DenseViT`` as:

    patch_embed.projection            -> patch_embed
    pos_embed [1, (1 +) h·w, D]       -> pos_embed [1, H·W, D]  (class-token slot dropped, bicubic resize if h×w ≠ H×W)
    layers.i.ln1 / ln2                -> blocks.layers.i.norm1 / norm2
    layers.i.attn.qkv / attn.proj     -> blocks.layers.i.self_attn.in_proj_* / out_proj
    layers.i.ffn.layers.0.0 / .1      -> blocks.layers.i.linear1 / linear2
    ln1                               -> norm

The class token is not used (Sapiens' dense tasks run the backbone with ``with_cls_token=False``). The dense head
is not in a pretrain checkpoint and keeps its initialisation. Sources: a TorchScript file (the
``*_torchscript.pt2`` files Meta publishes on the Hub), a ``.safetensors`` or a ``.pth`` state dict, or a Hub repo
id holding one of them. Sapiens' weights are CC-BY-NC 4.0 (non-commercial).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from fica.errors import WeightsUnavailable
from fica.models.dense_vit import DenseViT

CHECKPOINT_SUFFIXES = (".pt2", ".pt", ".safetensors", ".pth", ".bin")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a TorchScript module, a safetensors file or a (possibly ``{"state_dict": ...}``) torch file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except RuntimeError:  # not TorchScript: a pickled state dict
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state)


def checkpoint_file(source: str | Path) -> Path:
    """The local checkpoint of ``source``: the file itself, the one checkpoint in a folder, or the one in a Hub
    repo (downloaded to the Hub cache; offline, from that cache)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if len(files) != 1:
            raise WeightsUnavailable(f"Expected one Sapiens checkpoint in '{source}', found {len(files)}.")
        return files[0]
    from huggingface_hub import HfApi, hf_hub_download

    try:
        names = [n for n in HfApi().list_repo_files(str(source)) if n.endswith(CHECKPOINT_SUFFIXES)]
        if len(names) != 1:
            raise WeightsUnavailable(f"Expected one Sapiens checkpoint in the Hub repo '{source}', found {names}.")
        return Path(hf_hub_download(str(source), names[0]))
    except WeightsUnavailable:
        raise
    except Exception as err:  # offline and not cached, unknown repo, network
        raise WeightsUnavailable(f"Could not get the Sapiens checkpoint '{source}' ({type(err).__name__}); pass a "
                                 "local file or folder, or download it once while online.") from err


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Position embedding ``[1, (1 +) h·w, D]`` (square h = w, or already ``grid``) -> ``[1, H·W, D]`` for
    ``grid = (H, W)``: the class-token slot is dropped, the rest resized bicubically."""
    n = pos.shape[1]
    if n == grid[0] * grid[1]:
        return pos
    if n == grid[0] * grid[1] + 1:
        return pos[:, 1:]
    side = math.isqrt(n)
    if side * side != n:
        pos, side = pos[:, 1:], math.isqrt(n - 1)
    d = pos.shape[-1]
    square = pos.reshape(1, side, side, d).permute(0, 3, 1, 2).float()
    resized = F.interpolate(square, size=grid, mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], d).to(pos.dtype)


def sapiens_to_dense_vit(state: dict[str, torch.Tensor], model: DenseViT) -> dict[str, torch.Tensor]:
    """``model``'s backbone tensors (its state-dict names) from a Sapiens state dict."""
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    out = {"patch_embed.weight": state["patch_embed.projection.weight"],
           "patch_embed.bias": state["patch_embed.projection.bias"],
           "pos_embed": resize_pos_embed(state["pos_embed"], model.grid),
           "norm.weight": state["ln1.weight"], "norm.bias": state["ln1.bias"]}
    names = {"ln1": "norm1", "ln2": "norm2", "attn.qkv": "self_attn.in_proj", "attn.proj": "self_attn.out_proj",
             "ffn.layers.0.0": "linear1", "ffn.layers.1": "linear2"}
    for i in range(model.config.num_layers):
        for theirs, ours in names.items():
            for kind in ("weight", "bias"):
                key = f"{ours}_{kind}" if ours == "self_attn.in_proj" else f"{ours}.{kind}"
                out[f"blocks.layers.{i}.{key}"] = state[f"layers.{i}.{theirs}.{kind}"]
    return out


def load_sapiens(model: DenseViT, source: str | Path) -> DenseViT:
    """Load the Sapiens checkpoint ``source`` into ``model``'s backbone (in place; shapes must agree apart from the
    position embedding's grid). Returns ``model``."""
    tensors = sapiens_to_dense_vit(read_state_dict(checkpoint_file(source)), model)
    own = model.state_dict()
    wrong = [f"{k} {list(v.shape)} vs {list(own[k].shape)}" for k, v in tensors.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError("The Sapiens checkpoint does not fit this DenseViT: " + "; ".join(wrong[:4]))
    model.load_state_dict(tensors, strict=False)
    return model
