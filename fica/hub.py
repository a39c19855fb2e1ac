"""Where the weights come from: a Hub repo id, a local folder, or nothing (every stage embedded). This module
finds and downloads them; ``fica.stages`` builds the stages from them.

A FiCA pipeline repo is laid out like a diffusers pipeline: ``model_index.json`` at the top and one folder per
component, each holding ``config.json`` + ``diffusion_pytorch_model.safetensors`` (or, for the CLIP image encoder,
``config.json`` + ``model.safetensors``; for the scheduler, ``scheduler_config.json``)::

    model_index.json
    dense_predictor/   DenseViT                         -> unwrap stage learned
    uv_diffusion/      UVDiT       } all four           -> complete stage learned
    vae/               AutoencoderKL }
    image_encoder/     CLIPVisionModelWithProjection }
    scheduler/         FlowMatchEulerDiscreteScheduler }
    uv_refiner/        UVRefiner (+ dense_predictor's backbone for its image features) -> refine stage learned
    universal_prior/   CodecPrior                       -> prior stage learned

``model_index.json`` maps each component present to ``[library, class]`` as diffusers does. A stage whose main
component is listed runs learned; the others stay embedded. Every failure to find, download or read weights
becomes ``WeightsUnavailable`` with a message that names the source and what to set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from fica.errors import WeightsUnavailable

CACHE_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "hub"
MODEL_INDEX = "model_index.json"

# stage -> (main component, other components it needs)
STAGE_COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unwrap": ("dense_predictor", ()),
    "complete": ("uv_diffusion", ("vae", "image_encoder", "scheduler")),
    "refine": ("uv_refiner", ("dense_predictor",)),
    "prior": ("universal_prior", ()),
}
# component -> [library, class] as written in model_index.json
COMPONENT_CLASSES: dict[str, tuple[str, str]] = {
    "dense_predictor": ("fica.models.dense_vit", "DenseViT"),
    "uv_diffusion": ("fica.models.uv_dit", "UVDiT"),
    "vae": ("diffusers", "AutoencoderKL"),
    "image_encoder": ("transformers", "CLIPVisionModelWithProjection"),
    "scheduler": ("diffusers", "FlowMatchEulerDiscreteScheduler"),
    "uv_refiner": ("fica.models.uv_refiner", "UVRefiner"),
    "universal_prior": ("fica.models.codec_prior", "CodecPrior"),
}
ALLOW_PATTERNS = [MODEL_INDEX, "*/config.json", "*/scheduler_config.json", "*/*.safetensors"]
HELP = "set FICA_MODEL to a FiCA pipeline repo id or folder (HF_TOKEN for a private repo), or unset it to run embedded"


def resolve_source(source: str | Path | None = None) -> str | None:
    """``source`` if given, else the ``FICA_MODEL`` environment variable, else None (embedded)."""
    if source is not None and str(source).strip():
        return str(source)
    env = os.environ.get("FICA_MODEL", "").strip()
    return env or None


def write_model_index(folder: str | Path, components: list[str]) -> Path:
    """Write ``model_index.json`` listing ``components`` (folders already saved under ``folder``)."""
    unknown = sorted(set(components) - set(COMPONENT_CLASSES))
    if unknown:
        raise ValueError(f"Unknown FiCA component(s): {', '.join(unknown)}")
    index = {"_class_name": "FiCAPipeline", **{c: list(COMPONENT_CLASSES[c]) for c in components}}
    path = Path(folder) / MODEL_INDEX
    path.write_text(json.dumps(index, indent=2) + "\n")
    return path


def locate(source: str | Path, *, token: str | None = None, revision: str | None = None,
           cache_dir: str | Path | None = None) -> Path:
    """The local folder holding ``source``: the folder itself, or a snapshot of the Hub repo in ``cache_dir``
    (default ``CACHE_DIR``, checkpoints/hub)."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists() or str(source).count("/") != 1 or str(source).startswith((".", "/", "~")):
        raise WeightsUnavailable(f"FiCA weights '{source}' are neither a folder nor a Hub repo id; {HELP}.")
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(str(source), revision=revision, token=token or os.environ.get("HF_TOKEN"),
                                 allow_patterns=ALLOW_PATTERNS, cache_dir=str(cache_dir or CACHE_DIR))
    except Exception as err:  # offline, unknown repo, gated, network: all the same to a user
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else type(err).__name__
        raise WeightsUnavailable(f"Could not get FiCA weights from the Hub repo '{source}' ({why}); {HELP}.") from err
    return Path(path)


def read_model_index(folder: Path, source: str) -> dict:
    path = folder / MODEL_INDEX
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsUnavailable(f"FiCA weights '{source}' have no {MODEL_INDEX}; {HELP}.") from None
    except (OSError, ValueError) as err:
        raise WeightsUnavailable(f"FiCA weights '{source}': {MODEL_INDEX} is unreadable ({err}); {HELP}.") from None
    if not isinstance(index, dict):
        raise WeightsUnavailable(f"FiCA weights '{source}': {MODEL_INDEX} is not a JSON object; {HELP}.")
    return index
