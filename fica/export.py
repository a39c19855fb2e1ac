"""Write everything a run produces into one folder: UV maps, splat files, views, expression videos, report.

The folder layout is the CLI's contract (issue 2) and the app's downloads:

    uv/partial_rgb.png uv/visibility.png uv/partial_normal.png uv/partial_xyz.png
    uv/texture.png uv/geometry.png uv/refined_texture.png
    avatar.ply avatar.splat
    views/input.png views/yaw_+030.png ...     (RGBA: alpha is the avatar's coverage)
    expressions/<preset>.mp4 [expressions/driving.mp4]
    report.json

Files are first written to a hidden staging folder next to ``out_dir`` and moved in only when all of them exist,
so a failure leaves nothing half-written.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from fica.drive.expression import Clip
from fica.pipeline import FiCAOutput
from fica.render.camera import orbit_camera

# Chart images in the order the UI and README list them: (file stem, label, kind for uv_map_to_image).
UV_MAP_FILES = (
    ("partial_rgb", "Partial RGB", "rgb"),
    ("visibility", "Visibility", "visibility"),
    ("partial_normal", "Partial normal", "normal"),
    ("partial_xyz", "Partial xyz", "xyz"),
    ("texture", "Completed texture", "texture"),
    ("geometry", "Geometry", "xyz"),
    ("refined_texture", "Refined texture", "texture"),
)
DEFAULT_VIEWS_DEG = (0.0, 30.0, -30.0)
DEFAULT_EXPRESSIONS = ("smile", "talk", "surprise", "blink", "turn")
VIEW_SIZE_PX = 512
BLACK = (0.0, 0.0, 0.0)  # views render over black: their colour is then premultiplied by the coverage


def uv_maps(output: FiCAOutput) -> dict[str, tuple]:
    """The chart maps of a run, by file stem: ``stem -> (map [C, R, R], kind)``."""
    p, c, r = output.partial, output.complete, output.refined
    maps = {"partial_rgb": p.rgb, "visibility": p.visibility, "partial_normal": p.normal, "partial_xyz": p.xyz,
            "texture": c.texture, "geometry": c.geometry, "refined_texture": r.texture}
    return {stem: (maps[stem], kind) for stem, _, kind in UV_MAP_FILES}


def view_name(yaw_deg: float) -> str:
    return f"yaw_{yaw_deg:+04.0f}"


def export_all(output: FiCAOutput, out_dir: str | Path, *, views_deg=DEFAULT_VIEWS_DEG,
               expressions=DEFAULT_EXPRESSIONS, driving: tuple[Clip, list] | None = None,
               seconds: float = 4.0, fps: float = 24.0, progress=None) -> dict:
    """Write a run's files into ``out_dir`` and return the report (also saved as ``report.json``).

    driving: ``(clip, frames)`` from ``fica.drive.video.clip_from_video``; its video is written side by side
    (driving | avatar) as ``expressions/driving.mp4``. ``progress(fraction, text)`` is called per file group.
    """
    from fica.drive.presets import preset_clip
    from fica.io.image import save_png, straight_rgba
    from fica.io.uv_images import save_uv_maps
    from fica.io.video import side_by_side, write_mp4

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".fica-", dir=out_dir.parent))
    notify = progress or (lambda fraction, text: None)
    timings: dict[str, float] = {}
    try:
        start = time.perf_counter()
        save_uv_maps(uv_maps(output), stage / "uv", output.refined.valid)
        (stage / "views").mkdir()
        avatar = output.avatar
        save_png(straight_rgba(*avatar.render_portrait_view(background=BLACK)), stage / "views" / "input.png")
        for yaw in views_deg:
            camera = orbit_camera(yaw, 0.0, width=VIEW_SIZE_PX, height=VIEW_SIZE_PX)
            save_png(straight_rgba(*avatar.render(camera, background=BLACK)),
                     stage / "views" / f"{view_name(yaw)}.png")
        avatar.save_ply(stage / "avatar.ply")
        avatar.save_splat(stage / "avatar.splat")
        timings["maps_views_splats"] = round(time.perf_counter() - start, 3)

        (stage / "expressions").mkdir()
        camera = orbit_camera(0.0, 0.0, width=VIEW_SIZE_PX, height=VIEW_SIZE_PX)
        for i, name in enumerate(expressions):
            notify(i / max(1, len(expressions)), f"video: {name}")
            start = time.perf_counter()
            clip = preset_clip(name, fps=fps, seconds=seconds)
            write_mp4(avatar.animate(clip, camera), stage / "expressions" / f"{name}.mp4", fps=clip.fps)
            timings[f"video_{name}"] = round(time.perf_counter() - start, 3)
        if driving is not None:
            clip, frames = driving
            start = time.perf_counter()
            rendered = avatar.animate(clip, camera)
            write_mp4((side_by_side(f, r) for f, r in zip(frames, rendered)),
                      stage / "expressions" / "driving.mp4", fps=clip.fps)
            timings["video_driving"] = round(time.perf_counter() - start, 3)

        report = build_report(output, timings)
        (stage / "report.json").write_text(json.dumps(report, indent=2))
        for item in stage.iterdir():
            target = out_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            item.replace(target)
        return report
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def build_report(output: FiCAOutput, export_timings: dict[str, float] | None = None) -> dict:
    """What ran and how long it took: per-stage seconds, implementations, Gaussian count, resolution, camera."""
    return {
        "timings_s": dict(output.timings),
        "export_timings_s": dict(export_timings or {}),
        "implementations": dict(output.implementations),
        "gaussians": len(output.avatar.gaussians()),
        "uv_resolution": output.refined.resolution,
        "fitted_camera": output.unwrapped.camera.as_dict(),
        "fitted_expression": output.unwrapped.expression.as_dict(),
    }
