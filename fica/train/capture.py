"""Real multi-view head captures -> the recipes' training samples, for captures in NeRSemble's layout.

NeRSemble (Kirschstein et al., SIGGRAPH 2023; 16 calibrated cameras, hundreds of people; access on request under
its own non-commercial terms of use) stores one participant as::

    <root>/<participant>/camera_params.json   {"world_2_cam": {serial: [4×4]}, "intrinsics": [3×3]}
    <root>/<participant>/sequences/<sequence>/frame_<t:05d>/images-2x/cam_<serial>.png|.jpg
    <root>/<participant>/sequences/<sequence>/frame_<t:05d>/alpha_map/cam_<serial>.png      (optional masks)

``world_2_cam`` are OpenCV world→camera matrices (metres), the intrinsics are at the full sensor resolution
(``images-2x`` holds half-size images, so they are scaled by 0.5; ``intrinsics_scale`` overrides).

``capture_samples(frame)`` turns one time step into one sample per camera, the same ``SyntheticSample`` record the
synthetic generator makes (so ``save_dataset`` writes it and every recipe reads it):

1. the embedded unwrapper (MediaPipe + head-model fit) runs on each view; the most frontal successful fit is the
   reference, and it places the head in the capture's world: head→world = world_2_cam(ref)⁻¹ · fit camera(ref);
2. every view is then unwrapped through its calibrated camera (head→world→camera): dense maps and partial UV maps
   (``partial``), the fitted expression's geometry map (``posed_geometry``, the tracked mesh) and the landmarks
   projected into the view (``keypoints``);
3. ``complete`` fuses the partial maps of all views (visibility-weighted mean; texels no camera saw are filled
   smoothly from their neighbours) on the fitted neutral geometry;
4. ``target`` is the photo composited on ``background`` through the mask (alpha map, else the fitted head).

``python -m fica.train.capture --root DIR --participant 018 --sequence EMO-1-shout+laugh --out DATASET
[--every N] [--uv-res R]`` writes a dataset folder for ``--data``.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fica.drive.expression import Expression
from fica.errors import FiCAError
from fica.maps import CompleteUV
from fica.render.camera import Camera
from fica.train.synthetic import SyntheticSample, save_dataset
from fica.uv_ops import push_pull_fill

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class CaptureFrame:
    """One time step: per camera serial an image ``[H, W, 3]`` 0..1, an optional mask ``[H, W]`` 0..1 and the
    calibrated camera (capture world -> image pixels)."""

    images: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    cameras: dict[str, Camera]


def read_image(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)


class NeRSembleCapture:
    """One participant's sequence in NeRSemble's layout (module docstring). ``timesteps``: the frame numbers
    present; ``frame(t) -> CaptureFrame``."""

    def __init__(self, root: str | Path, participant: str | int, sequence: str, *, image_folder: str = "images-2x",
                 mask_folder: str = "alpha_map", intrinsics_scale: float | None = None):
        self.folder = Path(root) / (f"{participant:03d}" if isinstance(participant, int) else str(participant))
        self.sequence = self.folder / "sequences" / sequence
        self.image_folder, self.mask_folder = image_folder, mask_folder
        params = json.loads((self.folder / "camera_params.json").read_text())
        scale = intrinsics_scale if intrinsics_scale is not None else (0.5 if image_folder.endswith("-2x") else 1.0)
        K = torch.tensor(params["intrinsics"], dtype=torch.float32)
        self.K = torch.cat([K[:2] * scale, K[2:]])
        self.world_2_cam = {str(s): torch.tensor(m, dtype=torch.float32) for s, m in params["world_2_cam"].items()}
        self.timesteps = sorted(int(m.group(1)) for p in self.sequence.iterdir()
                                if (m := re.fullmatch(r"frame_(\d+)", p.name)) and (p / image_folder).is_dir())

    def frame(self, t: int) -> CaptureFrame:
        folder = self.sequence / f"frame_{t:05d}"
        images, masks, cameras = {}, {}, {}
        for serial, viewmat in self.world_2_cam.items():
            path = next((folder / self.image_folder / f"cam_{serial}{s}" for s in IMAGE_SUFFIXES
                         if (folder / self.image_folder / f"cam_{serial}{s}").exists()), None)
            if path is None:
                continue
            images[serial] = read_image(path)
            h, w = images[serial].shape[:2]
            cameras[serial] = Camera(viewmat, self.K.clone(), w, h)
            mask = folder / self.mask_folder / f"cam_{serial}.png"
            if mask.exists():
                masks[serial] = read_image(mask)[..., 0]
        return CaptureFrame(images, masks, cameras)


def reference_fit(frame: CaptureFrame, head):
    """(serial, Fit) of the most frontal view whose face the embedded unwrapper finds, fitted with that camera's
    calibrated focal length."""
    from fica.unwrap.fit import fit_head
    from fica.unwrap.landmarks import detect_landmarks

    best = None
    for serial, image in frame.images.items():
        try:
            landmarks = detect_landmarks(image)
        except FiCAError:  # no face in this view (profile, back of the head)
            continue
        fy = float(frame.cameras[serial].K[1, 1])
        fov_deg = math.degrees(2 * math.atan(0.5 * image.shape[0] / fy))  # the calibrated focal length
        fit = fit_head(landmarks, tuple(image.shape[:2]), head, fov_deg=fov_deg)
        yaw = abs(float(fit.rotation_deg[0]))
        if best is None or yaw < best[0]:
            best = (yaw, serial, fit)
    if best is None:
        raise FiCAError("No view of this capture frame shows a face the landmark detector finds.")
    return best[1], best[2]


@torch.no_grad()
def capture_samples(frame: CaptureFrame, *, uv_resolution: int = 256, head=None,
                    background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list[SyntheticSample]:
    """One training sample per camera of ``frame`` (module docstring)."""
    from fica.threads import one_thread
    from fica.unwrap.embedded import unwrap_fitted

    if head is None:
        from fica.head.model import default_head

        head = default_head()
    serial, fit = reference_fit(frame, head)
    head_to_world = torch.linalg.inv(frame.cameras[serial].viewmat) @ fit.camera.viewmat
    layout = head.uv_layout(uv_resolution)
    posed = fit.vertices(head)
    bg = torch.tensor(background)
    views = {}
    with one_thread():
        for s, image in frame.images.items():
            cam = frame.cameras[s]
            views[s] = unwrap_fitted(image, replace(fit, camera=Camera(cam.viewmat @ head_to_world, cam.K,
                                                                        cam.width, cam.height)), head, uv_resolution)
    vis = torch.stack([u.partial.visibility for u in views.values()])  # [V, 1, R, R]
    seen = vis.sum(0)
    fused = (torch.stack([u.partial.rgb for u in views.values()]) * vis).sum(0) / seen.clamp(min=1e-6)
    texture = push_pull_fill(fused, (seen > 1e-3).float()).clamp(0, 1) * layout.valid
    complete = CompleteUV(texture=texture, geometry=layout.vertices_to_map(fit.neutral_vertices(head)),
                          valid=layout.valid)
    expression = Expression(fit.expression, torch.zeros(3), fit.gaze_deg)  # the pose lives in the cameras
    samples = []
    for s, u in views.items():
        mask = frame.masks.get(s, u.dense.mask)
        image = frame.images[s]
        target = image * mask[..., None] + bg * (1 - mask[..., None])
        samples.append(SyntheticSample(image, u.dense, u.partial, complete, target, mask,
                                       u.camera.project(head.landmarks(posed))[0], u.camera, expression,
                                       fit.identity, bg, layout.vertices_to_map(posed)))
    return samples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--participant", required=True)
    p.add_argument("--sequence", required=True)
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write (sample_*.pt)")
    p.add_argument("--every", type=int, default=1, help="use every N-th time step")
    p.add_argument("--uv-res", type=int, default=256)
    p.add_argument("--image-folder", default="images-2x")
    args = p.parse_args(argv)
    capture = NeRSembleCapture(args.root, args.participant, args.sequence, image_folder=args.image_folder)
    samples = []
    for t in capture.timesteps[::args.every]:
        try:
            samples += capture_samples(capture.frame(t), uv_resolution=args.uv_res)
        except FiCAError as err:
            print(f"frame {t}: skipped ({err})", flush=True)
    save_dataset(samples, args.out)
    print(f"{len(samples)} samples written to {args.out}")


if __name__ == "__main__":
    main()
