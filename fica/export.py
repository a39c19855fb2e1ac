"""Write everything a run produces into one folder: UV maps, splat files, views, expression videos, report.

The folder layout is the CLI's contract (issue 2) and the app's downloads:

    uv/partial_rgb.png uv/visibility.png uv/partial_normal.png uv/partial_xyz.png
    uv/texture.png uv/geometry.png uv/refined_texture.png
    avatar.ply avatar.splat avatar_rig.zip avatar_viewer.html
    views/input.png views/yaw_+030.png ...     (RGBA: alpha is the avatar's coverage)
    expressions/<preset>.mp4 [expressions/driving.mp4 expressions/driving.csv]
    report.json

Two steps, so that the device work and the host work can run apart (a ZeroGPU window holds only the first):
``render_all`` computes what needs the avatar (Gaussians, views, video frames), ``write_all`` writes the files
(PNG, PLY, splat, mp4 encoding). ``export_all`` does both. Each group of files (the avatar's, the videos) is
first written to a hidden staging folder inside ``out_dir`` and moved in only when all of it exists, so a failure
leaves nothing half-written.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from fica.avatar import Avatar
from fica.drive.expression import Clip
from fica.pipeline import FiCAOutput
from fica.prior.gaussians import GaussianSet
from fica.render.camera import orbit_camera
from fica.rig import Rig, build_rig, save_rig
from fica.web.page import write_standalone_html

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
RIG_FILE = "avatar_rig.zip"
VIEWER_FILE = "avatar_viewer.html"


def uv_maps(output: FiCAOutput) -> dict[str, tuple]:
    """The chart maps of a run, by file stem: ``stem -> (map [C, R, R], kind)``."""
    p, c, r = output.partial, output.complete, output.refined
    maps = {"partial_rgb": p.rgb, "visibility": p.visibility, "partial_normal": p.normal, "partial_xyz": p.xyz,
            "texture": c.texture, "geometry": c.geometry, "refined_texture": r.texture}
    return {stem: (maps[stem], kind) for stem, _, kind in UV_MAP_FILES}


def view_name(yaw_deg: float) -> str:
    return f"yaw_{yaw_deg:+04.0f}"


@dataclass
class Renders:
    """What the files need from the avatar, computed where the avatar lives and handed over in host memory.

    gaussians: the neutral Gaussians (CPU); portrait_view ``[H, W, 4]`` float32 RGBA (straight alpha: the avatar's
    coverage; see ``fica.io.image.straight_rgba``); views: yaw (degrees) -> the same at that yaw; videos: name ->
    (frames ``[H, W, 3]`` uint8, fps), frames a list or, when rendered as they are encoded, an iterator;
    backends: which renderer drew the stills and the videos; rig: the avatar's rig (``fica.rig``) when asked for;
    driving: the driving clip, whose weights go to ``driving.csv``.
    """

    gaussians: GaussianSet
    portrait_view: np.ndarray
    views: dict[float, np.ndarray]
    videos: dict[str, tuple[Iterable[np.ndarray], float]]
    backends: dict[str, str]
    rig: Rig | None = None
    driving: Clip | None = None


def render_all(avatar: Avatar, *, views_deg=DEFAULT_VIEWS_DEG, clips: dict[str, Clip] | None = None,
               materialise: bool = False, rig: bool = True) -> Renders:
    """Everything ``write_all`` needs from ``avatar``. Video frames are rendered lazily, as the encoder asks
    for them, unless ``materialise`` (then every frame is rendered now, e.g. inside a GPU window). ``rig``:
    also linearise the avatar into its rig (55 decodes)."""
    from fica.io.image import straight_rgba

    views = {float(yaw): straight_rgba(*avatar.render(orbit_camera(yaw, 0.0, width=VIEW_SIZE_PX,
                                                                   height=VIEW_SIZE_PX), background=BLACK))
             for yaw in views_deg}
    camera = orbit_camera(0.0, 0.0, width=VIEW_SIZE_PX, height=VIEW_SIZE_PX)
    videos = {}
    for name, clip in (clips or {}).items():
        frames = avatar.animate(clip, camera)
        videos[name] = (list(frames) if materialise else frames, clip.fps)
    portrait_view = straight_rgba(*avatar.render_portrait_view(background=BLACK))
    return Renders(avatar.gaussians().to("cpu"), portrait_view, views, videos,
                   {purpose: str(avatar.render_backend(purpose)) for purpose in ("still", "video")},
                   build_rig(avatar) if rig else None, (clips or {}).get("driving"))


def preset_clips(expressions, seconds: float = 4.0, fps: float = 24.0, driving: Clip | None = None
                 ) -> dict[str, Clip]:
    """The clips ``render_all`` renders: each preset by name, and the driving clip as "driving"."""
    from fica.drive.presets import preset_clip

    clips = {name: preset_clip(name, fps=fps, seconds=seconds) for name in expressions}
    return clips | ({"driving": driving} if driving is not None else {})


def export_all(output: FiCAOutput, out_dir: str | Path, *, views_deg=DEFAULT_VIEWS_DEG,
               expressions=DEFAULT_EXPRESSIONS, driving: tuple[Clip, list | None] | None = None,
               seconds: float = 4.0, fps: float = 24.0, progress=None) -> dict:
    """Write a run's files into ``out_dir`` and return the report (also saved as ``report.json``).

    driving: ``(clip, frames)`` from ``fica.drive.video.read_driving``; its video is written side by side
    (driving | avatar; the avatar alone for a CSV, which has no frames) as ``expressions/driving.mp4`` and its
    weights as ``expressions/driving.csv``. ``progress(fraction, text)`` is called per file group.
    """
    clips = preset_clips(expressions, seconds, fps, driving[0] if driving is not None else None)
    renders = render_all(output.avatar, views_deg=views_deg, clips=clips)
    return write_all(output, renders, out_dir, driving_frames=driving[1] if driving is not None else None,
                     progress=progress)


def write_all(output: FiCAOutput, renders: Renders, out_dir: str | Path, *, driving_frames: list | None = None,
              progress=None) -> dict:
    """Write the maps of ``output`` and ``renders`` into ``out_dir`` (host work: PNG, PLY, splat, mp4 encoding)
    and return the report: ``write_avatar``, ``write_rig`` (when ``renders`` has a rig), then ``write_videos``.
    ``output.avatar`` is not used, so an output brought to the host without it works."""
    report = write_avatar(output, renders, out_dir)
    if renders.rig is not None:
        report = write_rig(renders.rig, out_dir, report)
    return write_videos(output, renders, out_dir, report, driving_frames=driving_frames, progress=progress)


def write_avatar(output: FiCAOutput, renders: Renders, out_dir: str | Path) -> dict:
    """Write the UV maps, the views and the splat files into ``out_dir``; return the report (``report.json``)."""
    from fica.io.image import save_png
    from fica.io.splat_files import save_ply, save_splat
    from fica.io.uv_images import save_uv_maps

    with _staged(out_dir) as stage:
        start = time.perf_counter()
        save_uv_maps(uv_maps(output), stage / "uv", output.refined.valid)
        (stage / "views").mkdir()
        save_png(renders.portrait_view, stage / "views" / "input.png")
        for yaw, rgba in renders.views.items():
            save_png(rgba, stage / "views" / f"{view_name(yaw)}.png")
        save_ply(renders.gaussians, stage / "avatar.ply")
        save_splat(renders.gaussians, stage / "avatar.splat")
        timings = {"maps_views_splats": round(time.perf_counter() - start, 3)}
        report = build_report(output, len(renders.gaussians), renders.backends, timings)
        (stage / "report.json").write_text(json.dumps(report, indent=2))
    return report


def write_rig(rig: Rig, out_dir: str | Path, report: dict) -> dict:
    """Write ``avatar_rig.zip`` and the standalone ``avatar_viewer.html`` (the rig inside) into ``out_dir``;
    return ``report`` with their timing, also saved as ``report.json``."""
    with _staged(out_dir) as stage:
        start = time.perf_counter()
        write_standalone_html(save_rig(rig, stage / RIG_FILE), stage / VIEWER_FILE)
        report = {**report, "export_timings_s": {**report["export_timings_s"],
                                                 "rig_viewer": round(time.perf_counter() - start, 3)}}
        (stage / "report.json").write_text(json.dumps(report, indent=2))
    return report


def write_videos(output: FiCAOutput, renders: Renders, out_dir: str | Path, report: dict, *,
                 driving_frames: list | None = None, progress=None) -> dict:
    """Encode ``renders.videos`` into ``out_dir/expressions`` and return ``report`` (from ``write_avatar``) with
    their timings, also saved as ``report.json``. The "driving" video is written side by side with
    ``driving_frames`` (driving | avatar), and the driving clip's weights as ``driving.csv`` (Live Link Face
    columns). ``progress(fraction, text)`` is called per video."""
    from fica.drive.arkit_csv import write_arkit_csv
    from fica.io.video import side_by_side, write_mp4

    notify = progress or (lambda fraction, text: None)
    timings = dict(report["export_timings_s"])
    with _staged(out_dir) as stage:
        (stage / "expressions").mkdir()
        for i, (name, (frames, fps)) in enumerate(renders.videos.items()):
            notify(i / max(1, len(renders.videos)), f"video: {name}")
            start = time.perf_counter()
            if name == "driving" and driving_frames is not None:
                frames = (side_by_side(f, r) for f, r in zip(driving_frames, frames))
            write_mp4(frames, stage / "expressions" / f"{name}.mp4", fps=fps)
            timings[f"video_{name}"] = round(time.perf_counter() - start, 3)
        if renders.driving is not None:
            write_arkit_csv(renders.driving, stage / "expressions" / "driving.csv")
        report = {**report, "export_timings_s": timings}
        (stage / "report.json").write_text(json.dumps(report, indent=2))
    return report


@contextmanager
def _staged(out_dir: str | Path) -> Iterator[Path]:
    """A hidden staging folder (``.fica-*``) inside ``out_dir``; when the block succeeds, each of its entries
    replaces the entry of the same name in ``out_dir``. The staging folder is removed either way, and whoever
    removes ``out_dir`` (the app's retention) removes a staging folder that a killed process left behind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".fica-", dir=out_dir))
    try:
        yield stage
        for item in stage.iterdir():
            target = out_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            item.replace(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def build_report(output: FiCAOutput, gaussians: int, render_backends: dict[str, str],
                 export_timings: dict[str, float] | None = None) -> dict:
    """What ran and how long it took: per-stage seconds, implementations, the renderers, Gaussian count,
    resolution, camera."""
    return {
        "timings_s": dict(output.timings),
        "export_timings_s": dict(export_timings or {}),
        "implementations": dict(output.implementations),
        "render_backends": dict(render_backends),
        "gaussians": gaussians,
        "uv_resolution": output.refined.resolution,
        "fitted_camera": output.unwrapped.camera.as_dict(),
        "fitted_expression": output.unwrapped.expression.as_dict(),
        "face_note": output.unwrapped.face_note,
    }
