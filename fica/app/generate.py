"""One call from a portrait to every artifact on disk.

``generate(portrait, options)`` runs the pipeline, writes everything into a fresh per-request folder through
``fica.export`` (device work: ``render_all``, or ``fica.device_work`` inside a GPU window; host work:
``write_avatar``, ``write_rig``, ``write_videos``) and returns a ``GenerateResult`` that names each file;
``generate_steps`` yields the avatar's maps and splats first, then the rig and standalone viewer, then the videos. The app only lays those files out.
"""
from __future__ import annotations

import shutil
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import torch

from fica.app.pipelines import load_pipeline
from fica.app.storage import OUTPUT_ROOT, request_folder
from fica.app.viewer import to_gradio_viewer
from fica.device_work import DeviceResult, DeviceWork, needs_device_window
from fica.drive.presets import PRESETS
from fica.drive.video import read_driving
from fica.errors import UnsupportedInput
from fica.export import (RIG_FILE, UV_MAP_FILES, VIEWER_FILE, preset_clips, render_all, write_avatar, write_rig,
                         write_videos)
from fica.hub import resolve_source
from fica.io.splat_files import save_splat
from fica.memory import release_freed_memory
from fica.rig import build_rig

UV_RESOLUTIONS = (128, 256, 512)
APP_EXPRESSIONS = ("smile", "talk", "turn")
VIDEO_SECONDS = (1.0, 2.0, 6.0)  # shortest, default, longest expression video the app renders
DRIVING_MAX_FRAMES = 96  # the app fits at most this many driving frames (one face fit each)
PIPELINE_SHARE = 0.3  # of the progress bar: the four stages; the rest is export (videos dominate)


@dataclass
class GenerateOptions:
    uv_resolution: int = 256
    expressions: tuple[str, ...] = APP_EXPRESSIONS  # names from fica.drive.presets.PRESETS
    driving: str | Path | None = None  # a driving video (rendered beside the avatar) or an ARKit / Live Link Face CSV
    seed: int = 0
    video_seconds: float = VIDEO_SECONDS[1]  # length of each expression video


@dataclass
class GenerateResult:
    """Every artifact of one request, all inside ``out_dir``."""

    out_dir: Path
    uv_maps: list[tuple[Path, str]]  # (png, label) in fica.export.UV_MAP_FILES order
    ply: Path  # head frame, metres (DESIGN.md §3)
    splat: Path
    viewer_splat: Path  # the same Gaussians framed for Gradio's Model3D (see to_gradio_viewer), as .splat
    videos: list[tuple[Path, str]]  # (mp4, preset name) per expression preset
    driving_video: Path | None  # driving video | avatar, side by side
    uv_zip: Path
    report: dict = field(default_factory=dict)
    rig: Path | None = None  # avatar_rig.zip (None in generate_steps' first result: it follows)
    viewer_html: Path | None = None  # the standalone avatar_viewer.html, with the rig
    videos_pending: bool = False  # True in generate_steps' results before the videos
    driving_csv: Path | None = None  # the driving clip's weights, Live Link Face columns

    @property
    def downloads(self) -> list[Path]:
        files = [self.ply, self.splat, *([self.rig, self.viewer_html] if self.rig else []),
                 *(p for p, _ in self.videos), self.uv_zip]
        return files + [p for p in (self.driving_video, self.driving_csv) if p]

    def summary(self) -> str:
        """One line: time and implementation per stage, Gaussian count, export time."""
        pending = " · building the live rig…" if self.rig is None else (
            " · rendering videos…" if self.videos_pending else "")
        return report_line(self.report) + pending


def report_line(report: dict) -> str:
    """``report`` as ``fica.export.write_avatar`` / ``write_videos`` return it."""
    timings = report["timings_s"]
    stages = " · ".join(f"{name} {timings[name]:.2f} s ({impl})" for name, impl in report["implementations"].items())
    export_s = sum(report["export_timings_s"].values())
    still, video = (report["render_backends"][p].split(" ")[0] for p in ("still", "video"))
    rendered = still if still == video else f"{still} (views), {video} (videos)"
    return (f"{stages} · avatar in {timings['total']:.2f} s · {report['gaussians']:,} Gaussians · "
            f"UV {report['uv_resolution']}² · rendered by {rendered} · videos and files in {export_s:.1f} s"
            + (f" · {report['face_note']}" if report.get("face_note") else ""))


def _zip_uv_maps(uv_maps: list[tuple[Path, str]], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for png, _ in uv_maps:
            zf.write(png, arcname=f"uv/{png.name}")
    return path


def run_device_work(work: DeviceWork) -> DeviceResult:
    """``work`` on the cached pipeline it names: what a GPU window (``app.py``'s ``@spaces.GPU``) runs."""
    pipe, _ = load_pipeline(work.source, work.uv_resolution, work.device)
    return work.run(pipe)


def _device_steps(pipe, source: str | None, portrait, options: GenerateOptions, clips: dict, device_window,
                  notify):
    """The pipeline and every render through ``device_window`` (the host-side unwrap before it). Returns the
    output in host memory (no avatar) and the renders."""
    portrait = pipe.load(portrait)
    unwrapped, unwrap_s = None, 0.0
    if pipe.unwrapper.device.type == "cpu":  # MediaPipe and the fit stay outside the window
        notify(0.0, f"unwrap ({pipe.implementations['unwrap']})")
        start = time.perf_counter()
        unwrapped = pipe.unwrap(portrait)
        unwrap_s = round(time.perf_counter() - start, 4)
    notify(0.5 * PIPELINE_SHARE, f"on {pipe.device.type}: the avatar and {sum(map(len, clips.values()))} frames")
    work = DeviceWork(source, options.uv_resolution, str(pipe.device), portrait, unwrapped, int(options.seed),
                      clips, unwrap_s)
    result = device_window(work)
    return result.output, result.renders


def generate_steps(portrait, options: GenerateOptions | None = None, *, source: str | None = None,
                   progress: Callable[[float, str], None] | None = None, root: str | Path = OUTPUT_ROOT,
                   device_window: Callable[[DeviceWork], DeviceResult] = run_device_work
                   ) -> Iterator[GenerateResult]:
    """Portrait (path, PIL image or ``[H, W, 3]`` array) -> every artifact, written to a new folder under ``root``.

    Yields in steps, so a UI can show the avatar while the rest is made: first a result with the UV maps and
    splat files (``rig`` None, ``videos`` empty), then one with the rig and the standalone viewer, then the
    complete one with the videos (that last step only when videos are asked for).
    ``progress(fraction, description)`` is called per pipeline stage and per video. Raises the
    ``fica.errors.FiCAError`` subclasses for anything the input causes (the driving video is read first, so a
    bad one fails before any other work); on any failure the request's folder is removed.
    ``device_window(work) -> DeviceResult`` runs the request's device work (``fica.device_work``) when the
    pipeline has any: the app passes its ``@spaces.GPU`` function; by default it runs right here.
    """
    options = options or GenerateOptions()
    if options.uv_resolution not in UV_RESOLUTIONS:
        raise UnsupportedInput(f"UV resolution must be one of {', '.join(map(str, UV_RESOLUTIONS))}.")
    unknown = [name for name in options.expressions if name not in PRESETS]
    if unknown:
        raise UnsupportedInput(f"Unknown expression preset(s): {', '.join(unknown)}; "
                               f"choose from {', '.join(PRESETS)}.")
    if not VIDEO_SECONDS[0] <= options.video_seconds <= VIDEO_SECONDS[2]:
        raise UnsupportedInput(f"Video length must be {VIDEO_SECONDS[0]:g} to {VIDEO_SECONDS[2]:g} seconds.")
    notify = progress or (lambda fraction, description: None)
    driving = None
    if options.driving is not None:
        notify(0.0, "reading the driving video")
        driving = read_driving(options.driving, max_frames=DRIVING_MAX_FRAMES)
    pipe, note = load_pipeline(source, options.uv_resolution)
    with request_folder(root) as out_dir:
        try:
            clips = preset_clips(options.expressions, options.video_seconds, driving=driving[0] if driving else None)
            if needs_device_window(pipe):
                output, renders = _device_steps(pipe, resolve_source(source), portrait, options, clips, device_window,
                                                notify)
            else:  # all on the host; video frames render as they are encoded
                generator = torch.Generator().manual_seed(int(options.seed))
                output = pipe(portrait, generator=generator, progress=lambda f, d: notify(PIPELINE_SHARE * f, d))
                renders = render_all(output.avatar, views_deg=(), clips=clips, rig=False)  # the rig after the avatar
            notify(PIPELINE_SHARE, "writing UV maps and splat files")
            report = write_avatar(output, renders, out_dir)
            # .splat: half the bytes of .ply and no parsing in the browser, so the viewer shows up sooner.
            viewer_splat = save_splat(to_gradio_viewer(renders.gaussians), out_dir / "viewer" / "avatar_view.splat")
            uv_maps = [(out_dir / "uv" / f"{stem}.png", label) for stem, label, _ in UV_MAP_FILES]
            result = GenerateResult(out_dir, uv_maps, out_dir / "avatar.ply", out_dir / "avatar.splat", viewer_splat,
                                    [], None, _zip_uv_maps(uv_maps, out_dir / "uv_maps.zip"), {**report, "note": note})
            _check_written(result)
            yield replace(result, videos_pending=bool(clips))
            notify(PIPELINE_SHARE, "building the live rig")
            rig = renders.rig if renders.rig is not None else build_rig(output.avatar)  # a device window made one
            report = write_rig(rig, out_dir, report)
            result = replace(result, report={**report, "note": note}, rig=out_dir / RIG_FILE,
                             viewer_html=out_dir / VIEWER_FILE)
            _check_written(result)
            if clips:
                yield replace(result, videos_pending=True)
                report = write_videos(output, renders, out_dir, report, driving_frames=driving[1] if driving else None,
                                      progress=lambda f, d: notify(PIPELINE_SHARE + (1 - PIPELINE_SHARE) * f, d))
                clip_dir = out_dir / "expressions"
                result = replace(result, report={**report, "note": note},
                                 videos=[(clip_dir / f"{name}.mp4", name) for name in options.expressions],
                                 driving_video=clip_dir / "driving.mp4" if driving is not None else None,
                                 driving_csv=clip_dir / "driving.csv" if driving is not None else None)
                _check_written(result)
            del output, renders, rig  # every file is written: the trim below can give their memory back
            notify(1.0, "done")
            yield result
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        finally:
            release_freed_memory()


def _check_written(result: GenerateResult) -> None:
    missing = [p.name for p in [*result.downloads, result.viewer_splat, *(p for p, _ in result.uv_maps)]
               if not p.is_file()]
    if missing:
        raise RuntimeError(f"export did not write {', '.join(missing)}")


def generate(portrait, options: GenerateOptions | None = None, **kwargs) -> GenerateResult:
    """The complete result of ``generate_steps`` (same arguments)."""
    *_, result = generate_steps(portrait, options, **kwargs)
    return result
