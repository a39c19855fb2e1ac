"""Which implementation runs each stage: the learned one where the weights list its component, else the embedded
one. ``fica.hub`` finds the weights; each stage package (``fica.unwrap``, ``fica.complete``, ``fica.refine``,
``fica.prior``) builds its own implementations."""
from __future__ import annotations

from pathlib import Path

import fica.complete
import fica.prior
import fica.refine
import fica.unwrap
from fica.errors import WeightsUnavailable
from fica.hub import HELP, STAGE_COMPONENTS, locate, read_model_index

IMPLEMENTATIONS = {"unwrap": fica.unwrap, "complete": fica.complete, "refine": fica.refine, "prior": fica.prior}


def load_stages(source: str | Path | None, *, uv_resolution: int = 256, device: str = "cpu",
                token: str | None = None, revision: str | None = None) -> dict:
    """Stage objects ``{"unwrap", "complete", "refine", "prior"}`` for ``source``.

    ``source=None``: all embedded. A folder or Hub repo id: the stages whose components ``model_index.json``
    lists are learned (``implementation = "learned: <source>/<component>"``), the rest embedded.
    Raises ``WeightsUnavailable`` when the weights cannot be found, downloaded or read.
    """
    if source is None:
        return {stage: package.load_embedded(uv_resolution=uv_resolution)
                for stage, package in IMPLEMENTATIONS.items()}
    source = str(source)
    folder = locate(source, token=token, revision=revision)
    index = read_model_index(folder, source)
    stages = {}
    for stage, (main, needs) in STAGE_COMPONENTS.items():
        if main not in index:
            stages[stage] = IMPLEMENTATIONS[stage].load_embedded(uv_resolution=uv_resolution)
            continue
        missing = [c for c in (main, *needs) if c not in index or not (folder / c).is_dir()]
        if missing:
            raise WeightsUnavailable(f"FiCA weights '{source}' list '{main}' but lack {', '.join(missing)}; {HELP}.")
        try:
            stages[stage] = IMPLEMENTATIONS[stage].load_learned(folder, source=source, uv_resolution=uv_resolution,
                                                                device=device)
        except WeightsUnavailable:
            raise
        except Exception as err:  # corrupt or mismatched files: say which component, never a raw trace
            raise WeightsUnavailable(f"FiCA weights '{source}/{main}' could not be read "
                                     f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
                                     f"{HELP}.") from err
    return stages
