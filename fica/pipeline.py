"""FiCAPipeline: unwrap -> complete -> refine -> prior, each stage embedded or learned (DESIGN.md §1, §6)."""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fica.avatar import Avatar
from fica.complete.base import Completer
from fica.maps import CompleteUV, PartialUV
from fica.prior.base import Prior
from fica.refine.base import Refiner
from fica.stages import load_stages
from fica.unwrap.base import Unwrapped, Unwrapper

STAGES = ("unwrap", "complete", "refine", "prior")


@dataclass
class FiCAOutput:
    unwrapped: Unwrapped
    complete: CompleteUV
    refined: CompleteUV
    avatar: Avatar | None  # None in a copy brought to the host without it (fica.device_work.to_host)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    implementations: dict[str, str] = field(default_factory=dict)  # stage -> which implementation ran

    @property
    def partial(self) -> PartialUV:
        return self.unwrapped.partial


class FiCAPipeline:
    def __init__(self, unwrapper: Unwrapper, completer: Completer, refiner: Refiner, prior: Prior,
                 device: str | torch.device = "cpu"):
        self.unwrapper, self.completer, self.refiner, self.prior = unwrapper, completer, refiner, prior
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, source: str | Path | None = None, *, uv_resolution: int = 256,
                        device: str | torch.device = "cpu", token: str | None = None,
                        revision: str | None = None) -> "FiCAPipeline":
        """The embedded pipeline (``source=None``), or learned stages from a Hub repo id or a local folder.

        A source that holds only some components keeps the rest embedded; ``implementations`` says which ran.
        """
        stages = load_stages(source, uv_resolution=uv_resolution, device=device, token=token, revision=revision)
        return cls(*(stages[s] for s in STAGES), device=device)

    def with_uv_resolution(self, uv_resolution: int) -> "FiCAPipeline":
        """The same stages (weights shared, not copied), unwrapping to ``uv_resolution``² charts."""
        unwrapper = copy.copy(self.unwrapper)
        unwrapper.uv_resolution = int(uv_resolution)
        return FiCAPipeline(unwrapper, self.completer, self.refiner, self.prior, device=self.device)

    @property
    def implementations(self) -> dict[str, str]:
        return {s: getattr(self, a).implementation
                for s, a in zip(STAGES, ("unwrapper", "completer", "refiner", "prior"))}

    @torch.no_grad()
    def __call__(self, image, generator: torch.Generator | None = None, progress=None) -> FiCAOutput:
        """Build an avatar from ``image``: a path, PIL image, or ``[H, W, 3]`` array (uint8 or float 0..1).

        ``progress(fraction, description)`` is called before each stage when given. ``generator`` seeds the
        stages that sample (on any device: noise is drawn where the generator lives, then moved).
        Every tensor of the output, the avatar's Gaussians included, lives on ``device``.
        """
        portrait = self.load(image)
        timer = StageTimer(self.implementations, progress)
        with timer("unwrap"):
            unwrapped = self.unwrap(portrait)
        return self.build(portrait, unwrapped, generator, timer)

    @staticmethod
    def load(image) -> torch.Tensor:
        """The portrait as ``[H, W, 3]`` float 0..1 on the CPU (decoding, EXIF and size checks)."""
        from fica.io.image import load_portrait

        return torch.as_tensor(load_portrait(image))

    @torch.no_grad()
    def unwrap(self, portrait: torch.Tensor) -> Unwrapped:
        """Stage 1 on the unwrapper's own ``device`` (the CPU for the embedded one); results left there."""
        return self.unwrapper(portrait.to(self.unwrapper.device))

    @torch.no_grad()
    def build(self, portrait: torch.Tensor, unwrapped: Unwrapped, generator: torch.Generator | None = None,
              timer: "StageTimer | None" = None) -> FiCAOutput:
        """Stages 2-4 on ``device`` from the portrait ``[H, W, 3]`` and its unwrap (either on any device)."""
        timer = timer or StageTimer(self.implementations)
        portrait, unwrapped = portrait.to(self.device), unwrapped.to(self.device)
        with timer("complete"):
            complete = self.completer(unwrapped, portrait, generator).to(self.device)
        with timer("refine"):
            refined = self.refiner(complete, unwrapped, portrait).to(self.device)
        with timer("prior"):
            identity = self.prior.match_portrait(self.prior.encode(refined), portrait, unwrapped, refined)
            avatar = Avatar(self.prior, identity, unwrapped.camera, unwrapped.expression, self.device)
        return FiCAOutput(unwrapped, complete, refined, avatar, timer.done(), self.implementations)


class StageTimer:
    """Times the stages (seconds, ``timings``) and reports progress before each (``progress(fraction, text)``)."""

    def __init__(self, implementations: dict[str, str], progress=None):
        self.implementations, self.progress, self.timings = implementations, progress, {}

    @contextmanager
    def __call__(self, name: str):
        if self.progress is not None:
            self.progress(STAGES.index(name) / len(STAGES), f"{name} ({self.implementations[name]})")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 4)

    def done(self) -> dict[str, float]:
        return {**self.timings, "total": round(sum(self.timings.values()), 4)}
