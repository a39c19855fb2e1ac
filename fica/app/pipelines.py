"""The pipelines the app serves: the weights are loaded once per process and shared by every request and every
UV resolution."""
from __future__ import annotations

import os
import threading

import torch

from fica.errors import WeightsUnavailable
from fica.hub import resolve_source
from fica.pipeline import FiCAPipeline

_loaded: dict[tuple, tuple] = {}  # (source, device) -> (pipeline, note): the weights, loaded once
_loaded_lock = threading.Lock()


def default_device(source: str | None) -> str:
    """``FICA_DEVICE`` when set; else, on a ZeroGPU Space (``SPACES_ZERO_GPU``), "cuda" only for learned weights
    (the embedded pipeline needs no GPU there, see README); else "cuda" when a GPU is present, or "cpu"."""
    chosen = os.environ.get("FICA_DEVICE", "").strip()
    if chosen:
        return chosen
    if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true"):
        return "cuda" if source is not None else "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_pipeline(source: str | None = None, uv_resolution: int = 256, device: str | None = None):
    """The pipeline for ``source`` (default: ``FICA_MODEL``, else embedded) on ``device`` (default:
    ``default_device``), unwrapping to ``uv_resolution``.

    The weights are loaded on the first call for a (source, device) and shared by every resolution after it.
    Returns ``(pipeline, note)``: when the weights cannot be had (offline, private, missing) the embedded
    pipeline runs instead and ``note`` says why, for the UI to show; otherwise ``note`` is ''.
    """
    source = resolve_source(source)
    device = str(torch.device(device or default_device(source)))
    with _loaded_lock:
        if (source, device) not in _loaded:
            note = ""
            try:
                pipe = FiCAPipeline.from_pretrained(source, device=device)
            except WeightsUnavailable as err:
                note = f"{err} Running the embedded (offline) pipeline instead."
                pipe = FiCAPipeline.from_pretrained(None, device=default_device(None))
            _loaded[(source, device)] = (pipe, note)
        pipe, note = _loaded[(source, device)]
    return pipe.with_uv_resolution(int(uv_resolution)), note
