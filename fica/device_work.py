"""The part of a request that needs the pipeline's device: exactly what a ZeroGPU ``@spaces.GPU`` window holds.

A request splits into host work and device work:

- host, before: decoding the portrait, the embedded unwrap (MediaPipe and the sparse fit are CPU code), reading
  and fitting a driving video;
- device (``DeviceWork``): the learned stages, the rest of the pipeline once its tensors are on the device, and
  every render of the avatar (decoding each frame's Gaussians and drawing it); its result comes back in host
  memory (``DeviceResult``), because ZeroGPU runs the window in a worker process and pickles what crosses;
- host, after: PNG, PLY and splat files and video encoding (``fica.export.write_all``).

``needs_device_window(pipe)`` says whether a request holds a window at all: only when the pipeline has a learned
stage or computes on an accelerator. With every stage embedded on the CPU (the default on a ZeroGPU Space) it
holds none: the CPU renderer meets the video targets, and a GPU request would cost the visitor quota and queue.
``DeviceWork.seconds`` is the duration to ask ZeroGPU for, computed from the request.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from fica.drive.expression import Clip
from fica.export import Renders, render_all
from fica.pipeline import FiCAOutput, FiCAPipeline, StageTimer
from fica.render.dispatch import choose_backend
from fica.unwrap.base import Unwrapped

# Estimates for one ZeroGPU slice (seconds), on the safe side: ZeroGPU stops a window that outlives its duration,
# while asking for more only costs queue priority. Measured ones replace them (python -m fica.bench --device cuda).
WINDOW_OVERHEAD_S = 10.0  # CUDA context, first use of each network, moving maps and weights
LEARNED_STAGES_S = 6.0  # the learned stages together at R = 256 (diffusion dominates)
FRAME_S = {"gsplat": 0.01, "torch": 0.04, "surface": 0.15}  # decode + render one 512² frame at R = 256
REFERENCE_RESOLUTION = 256  # the costs above grow with the texel count, (R / 256)²
RIG_DECODES = 55  # fica.rig.build_rig: one decode per ARKit weight, the neutral and two head turns


def needs_device_window(pipe: FiCAPipeline) -> bool:
    """True when a request on ``pipe`` has device work: a learned stage, or a pipeline on an accelerator."""
    return pipe.device.type != "cpu" or any(impl.startswith("learned") for impl in pipe.implementations.values())


@dataclass
class DeviceResult:
    """What comes back from the device: the output's maps on the CPU (``avatar`` is None: it stays with the
    pipeline) and the renders."""

    output: FiCAOutput
    renders: Renders


@dataclass
class DeviceWork:
    """One request's device work; plain data (host tensors, clips), so it can cross into a ZeroGPU worker.

    portrait ``[H, W, 3]`` float 0..1 on the CPU; unwrapped: the host-side unwrap (CPU), or None when the
    unwrapper runs on the device (a learned one); clips: name -> clip to render as a video ("driving" too).
    """

    source: str | None  # the weights (a Hub repo id or folder; None: embedded), as fica.app.pipelines caches them
    uv_resolution: int
    device: str
    portrait: torch.Tensor
    unwrapped: Unwrapped | None
    seed: int = 0
    clips: dict[str, Clip] = field(default_factory=dict)
    unwrap_s: float = 0.0  # time the host-side unwrap took, for the report

    @property
    def frames(self) -> int:
        return sum(len(clip) for clip in self.clips.values())

    @property
    def seconds(self) -> int:
        """The window to ask for: overhead + learned stages + every frame and the rig's decodes, scaled by the
        texel count."""
        texels = (self.uv_resolution / REFERENCE_RESOLUTION) ** 2
        per_frame = FRAME_S[choose_backend(self.device, "video").name]
        frames = self.frames + RIG_DECODES  # a decode costs at most a frame
        return int(WINDOW_OVERHEAD_S + texels * (LEARNED_STAGES_S + frames * per_frame) + 0.999)

    @torch.no_grad()
    def run(self, pipe: FiCAPipeline) -> DeviceResult:
        """The pipeline from where the host left it, then every render; the result in host memory."""
        timer = StageTimer(pipe.implementations)
        if self.unwrapped is None:
            with timer("unwrap"):
                unwrapped = pipe.unwrap(self.portrait)
        else:
            unwrapped, timer.timings["unwrap"] = self.unwrapped, self.unwrap_s
        output = pipe.build(self.portrait, unwrapped, torch.Generator().manual_seed(self.seed), timer)
        renders = render_all(output.avatar, views_deg=(), clips=self.clips, materialise=True)
        return DeviceResult(to_host(output), renders)


def to_host(output: FiCAOutput) -> FiCAOutput:
    """``output`` with its maps on the CPU and without the avatar (which holds the prior's networks)."""
    return replace(output, unwrapped=output.unwrapped.to("cpu"), complete=output.complete.to("cpu"),
                   refined=output.refined.to("cpu"), avatar=None)
