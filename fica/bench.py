"""``python -m fica.bench``: the speed and memory targets of DESIGN.md §7, measured on this machine, and the
avatar's looks on the examples: silhouette IoU at the portrait camera (hair included), the far-side cycle gap and how
far its completed half falls short of a perfect mirror of the true face, the
misregistration of a turned portrait's fit and, where the dev extras are installed, identity (dlib face descriptor
distance, fica.identity).

Prints a table and writes the numbers as JSON (``--out``, default ``bench.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "astronaut.jpg"
# portraits whose silhouette IoU is tracked (one face each; photographs and stylized variants)
SILHOUETTE_EXAMPLES = ("astronaut.jpg", "grace_hopper.jpg", "astronaut_stylized.jpg", "astronaut_posterized.png",
                       "grace_hopper_grey.jpg", "grace_hopper_smooth.jpg", "long_hair_clipart.jpg")
# the stylized examples redraw a photograph pixel for pixel (examples/make_examples.py): the photograph's person mask
# is their true outline (a posterized sky's flat patches leak into their own)
PHOTOGRAPH_OF = {"astronaut_stylized.jpg": "astronaut.jpg", "astronaut_posterized.png": "astronaut.jpg",
                 "grace_hopper_grey.jpg": "grace_hopper.jpg", "grace_hopper_smooth.jpg": "grace_hopper.jpg"}
TARGETS = {  # name -> (target, "<=" or ">=")
    "portrait_to_avatar_s": (1.5, "<="),
    "unwrap_s": (1.0, "<="),  # the stages' own budgets at R = 256 (they were wall-clock asserts in the tests)
    "complete_s": (0.3, "<="),
    "refine_s": (0.3, "<="),
    "decode_ms": (100.0, "<="),  # one expression frame of the analytic prior
    "render_fps_512_cpu": (25.0, ">="),
    "render_fps_512_cpu_surface": (25.0, ">="),
    "render_fps_512_cuda": (300.0, ">="),
    "video_4s_24fps_512_s": (8.0, "<="),
    "peak_memory_gb": (2.0, "<="),
    "silhouette_iou_median": (0.85, ">="),
    "silhouette_iou_min": (0.75, ">="),
    "far_side_cycle_gap_db": (2.0, "<="),
    "far_side_below_mirror_db": (2.0, "<="),  # completed half vs a perfect mirror of the true face (fica.cycle)
    "turned_registration_pct": (3.0, "<="),  # of the face width, median of the cycle examples at ±45° (fica.cycle)
    "side_seam_edge": (7.0, "<="),  # issue 7: grey levels, the face's outline and the chart's cut at yaw ±60/±90 (fica.seam)
    "identity_30deg_median": (0.40, "<="),  # issue 7: turned ±30°, fitted expression
}
CYCLE_EXAMPLES = ("astronaut.jpg", "grace_hopper.jpg")  # each at yaw +45° and -45° (fica.cycle)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def silhouette_iou(output, person=None) -> float:
    """IoU of the avatar's silhouette at the portrait camera (fitted expression) with the person's silhouette
    (``person [H, W]`` 0..1; default the portrait's own selfie segmentation), both above the chin: the line
    through the chin landmark across the face."""
    import torch

    from fica.unwrap.hair_mask import face_frame

    unwrapped = output.unwrapped
    _, alpha = output.avatar.render_portrait_view()
    person = torch.as_tensor(unwrapped.person_mask if person is None else person).cpu().numpy() > 0.5
    above = face_frame(unwrapped.landmarks.cpu().numpy(), person.shape).t > 0
    avatar = alpha.cpu().numpy() > 0.5
    return float((avatar & person & above).sum() / max(1, ((avatar | person) & above).sum()))


def _synchronized(fn, device):
    """``fn`` that waits for the device to finish, so timings are real."""
    if device.type != "cuda":
        return fn
    import torch

    return lambda: (fn(), torch.cuda.synchronize())


def run(repeats: int = 3, uv_resolution: int = 256, device: str = "cpu") -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from fica.cycle import far_side_cycle, turned_registration
    from fica.seam import worst_edge
    from fica.drive.presets import preset_clip
    from fica.io.video import write_mp4
    from fica.pipeline import FiCAPipeline
    from fica.render.camera import orbit_camera
    from fica.render.dispatch import PURPOSES, render
    from fica.unwrap.landmarks import person_mask

    device = torch.device(device)
    image = np.asarray(Image.open(EXAMPLE).convert("RGB").resize((512, 512)))
    results: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "python": platform.python_version(), "torch": torch.__version__,
                                 "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                                 "device": str(device)}}
    start = time.perf_counter()
    pipe = FiCAPipeline.from_pretrained(uv_resolution=uv_resolution, device=device)
    results["pipeline_load_s"] = round(time.perf_counter() - start, 3)
    output = pipe(image)  # warm-up: MediaPipe graph, layout caches
    runs = [pipe(image) for _ in range(repeats)]
    results["implementations"] = output.implementations
    results["stage_s"] = {s: round(statistics.median(r.timings[s] for r in runs), 4) for s in runs[0].timings}
    results["portrait_to_avatar_s"] = results["stage_s"]["total"]
    for stage in ("unwrap", "complete", "refine"):
        results[f"{stage}_s"] = results["stage_s"][stage]

    avatar = output.avatar
    results["render_backends"] = {purpose: str(avatar.render_backend(purpose)) for purpose in PURPOSES}
    gaussians = avatar.gaussians()
    results["gaussians"] = len(gaussians)
    camera = orbit_camera(0.0, 0.0, width=512, height=512)
    frames = max(5, repeats) if device.type == "cpu" else 50
    suffix = "cpu" if device.type == "cpu" else "cuda"
    backends = {"": avatar.render_backend("still").name}  # what renders views here, then the others worth a number
    backends.update({"_surface": "surface"} if device.type == "cpu" else
                    {"_torch": "torch"} if backends[""] != "torch" else {})
    for key, backend in backends.items():
        draw = _synchronized(lambda: render(gaussians, camera, backend=backend), device)
        draw()
        results[f"render_fps_512_{suffix}{key}"] = round(1.0 / _median_time(draw, frames), 2)
    decode_s = _median_time(_synchronized(avatar.gaussians, device), max(5, repeats))
    results["decode_ms"] = round(decode_s * 1000, 2)

    ious, identity = {}, {}
    for name in SILHOUETTE_EXAMPLES:
        portrait = np.asarray(Image.open(EXAMPLES / name).convert("RGB"))
        example_output = pipe(portrait)
        outline = person_mask(np.asarray(Image.open(EXAMPLES / PHOTOGRAPH_OF.get(name, name)).convert("RGB")))
        ious[name] = round(silhouette_iou(example_output, outline), 3)
        if _has_identity_model():
            from fica.identity import identity_distances

            distances = identity_distances(portrait, example_output.avatar)
            identity[name] = {f"{yaw:+.0f}": round(d, 3) for yaw, d in distances.items()}
    results["silhouette_iou"] = ious
    results["silhouette_iou_median"] = round(statistics.median(ious.values()), 3)
    results["silhouette_iou_min"] = min(ious.values())
    if identity:
        results["identity"] = identity
        results["identity_front_median"] = statistics.median(d["+0"] for d in identity.values())
        turned = [d[k] for d in identity.values() for k in ("+30", "-30")]
        results["identity_30deg_median"] = statistics.median(turned)
        results["identity_30deg_max"] = max(turned)

    clip = preset_clip("talk", fps=24, seconds=4)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_mp4(avatar.animate(clip, camera), Path(tmp) / "talk.mp4", fps=24)
        results["video_4s_24fps_512_s"] = round(time.perf_counter() - start, 3)
    cycles = {}
    for name in CYCLE_EXAMPLES:
        portrait = np.asarray(Image.open(EXAMPLE.parent / name).convert("RGB"))
        for yaw in (45, -45):
            cycles[f"{name} {yaw:+d}"] = far_side_cycle(pipe, portrait, yaw)
    gaps = {key: round(cycle.gap_db, 2) for key, cycle in cycles.items()}
    below = {key: round(cycle.below_mirror_db, 2) for key, cycle in cycles.items()}
    results["far_side_cycle_gaps_db"] = gaps
    results["far_side_cycle_gap_db"] = round(statistics.median(gaps.values()), 2)
    results["far_side_below_mirror_dbs"] = below
    results["far_side_below_mirror_db"] = round(statistics.median(below.values()), 2)
    outputs = {name: pipe(np.asarray(Image.open(EXAMPLE.parent / name).convert("RGB"))) for name in CYCLE_EXAMPLES}
    registration = {f"{name} {yaw:+d}": round(100 * turned_registration(out, yaw), 2)
                    for name, out in outputs.items() for yaw in (45, -45)}
    results["turned_registration_pcts"] = registration
    results["turned_registration_pct"] = round(statistics.median(registration.values()), 2)
    seams = {name: round(worst_edge(out), 1) for name, out in outputs.items()}
    results["side_seam_edges"] = seams
    results["side_seam_edge"] = max(seams.values())
    results["peak_memory_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 3)
    if device.type == "cuda":
        results["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1024 ** 3, 3)
    results["targets"] = {k: {"target": t, "op": op, "met": _met(results.get(k), t, op)}
                          for k, (t, op) in TARGETS.items() if k in results}
    return results


def _has_identity_model() -> bool:
    """Whether the dev extras for fica.identity (dlib) are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("dlib", "face_recognition_models"))


def _met(value, target, op) -> bool | None:
    if value is None:
        return None
    return value <= target if op == "<=" else value >= target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uv-res", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: the pipeline, decoding and rendering there")
    args = parser.parse_args(argv)
    results = run(args.repeats, args.uv_res, args.device)
    print(f"{'measure':28s} {'value':>10s}  target")
    for stage, seconds in results["stage_s"].items():
        print(f"  stage {stage:22s} {seconds:10.3f}s")
    for key in ("portrait_to_avatar_s", "unwrap_s", "complete_s", "refine_s",
                "render_fps_512_cpu", "render_fps_512_cpu_surface", "render_fps_512_cuda",
                "render_fps_512_cuda_torch", "video_4s_24fps_512_s", "peak_memory_gb", "peak_gpu_memory_gb",
                "silhouette_iou_median", "silhouette_iou_min", "far_side_cycle_gap_db", "far_side_below_mirror_db",
                "turned_registration_pct",
                "side_seam_edge",
                "identity_front_median", "identity_30deg_median", "identity_30deg_max",
                "decode_ms", "gaussians", "pipeline_load_s"):
        if key in results:
            target = results["targets"].get(key)
            note = f"{target['op']} {target['target']}  {'met' if target['met'] else 'NOT met'}" if target else ""
            print(f"{key:28s} {results[key]:>10}  {note}")
    print("silhouette IoU: " + ", ".join(f"{k} {v}" for k, v in results["silhouette_iou"].items()))
    if "identity" in results:
        print("identity (dlib distance, yaw 0/+30/-30): " + ", ".join(
            f"{k} " + "/".join(str(v) for v in d.values()) for k, d in results["identity"].items()))
    else:
        print("identity: not measured (pip install dlib-bin face-recognition-models, see requirements-dev.txt)")
    print("implementations: " + ", ".join(f"{k}={v}" for k, v in results["implementations"].items()))
    print("rendered by: " + ", ".join(f"{k}={v}" for k, v in results["render_backends"].items()))
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
