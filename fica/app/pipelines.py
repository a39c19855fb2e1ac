"""The pipelines the app serves, built once per process and shared by every request."""
from __future__ import annotations

import os
import threading

from fica.errors import WeightsUnavailable
from fica.hub import resolve_source
from fica.pipeline import FiCAPipeline

_pipelines: dict[tuple, tuple] = {}
_pipelines_lock = threading.Lock()


def load_pipeline(source: str | None = None, uv_resolution: int = 256, device: str | None = None):
    """The pipeline for ``source`` (default: ``FICA_MODEL``, else embedded), built once per resolution, on
    ``device`` (default: ``FICA_DEVICE``, else the CPU; set ``FICA_DEVICE=cuda`` on GPU hardware).

    Returns ``(pipeline, note)``: when the weights cannot be had (offline, private, missing) the embedded
    pipeline runs instead and ``note`` says why, for the UI to show; otherwise ``note`` is ''.
    """
    source = resolve_source(source)
    device = device or os.environ.get("FICA_DEVICE", "cpu")
    key = (source, int(uv_resolution), device)
    with _pipelines_lock:
        if key not in _pipelines:
            note = ""
            try:
                pipe = FiCAPipeline.from_pretrained(source, uv_resolution=int(uv_resolution), device=device)
            except WeightsUnavailable as err:
                note = f"{err} Running the embedded (offline) pipeline instead."
                pipe = FiCAPipeline.from_pretrained(None, uv_resolution=int(uv_resolution), device=device)
            _pipelines[key] = (pipe, note)
        return _pipelines[key]
