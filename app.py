"""FiCA demo: one portrait in; UV maps, a rotatable 3D Gaussian avatar and expression videos out.

Run ``python app.py`` (``--share`` for a public link, ``--host``/``--port`` for servers). ``FICA_MODEL`` names a
Hub repo or folder with learned weights (``HF_TOKEN`` for private ones); without it everything runs embedded.
The UI only: all the work is ``fica.app.generate.generate_steps``.

API (``api_name="/generate"``), inputs in order: portrait, uv_resolution, expressions, driving_video, seed,
video_seconds.
Outputs in order (stable): uv_maps (gallery of 7 labelled PNGs), avatar_3d (.splat framed for the viewer),
expression_videos (gallery of mp4s, one per preset), driving_video (mp4 or None), downloads (files), report (text).
The endpoint yields twice when videos are asked for; the second (final) result leaves avatar_3d untouched
(Gradio's skip update, ``{"__type__": "update"}`` in gradio_client: Model3D would reload a re-sent file), so take
the viewer's splat from the first result; the downloads carry ``avatar.splat`` and ``avatar.ply`` in both.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import gradio as gr
import spaces

from fica.app.generate import (APP_EXPRESSIONS, UV_RESOLUTIONS, VIDEO_SECONDS, GenerateOptions, generate_steps,
                               run_device_work)
from fica.app.pipelines import load_pipeline
from fica.app.storage import OUTPUT_MAX_AGE_S, sweep_every
from fica.app.viewer import model3d_head
from fica.device_work import DeviceResult, DeviceWork
from fica.drive.presets import PRESETS
from fica.errors import FiCAError
from fica.io.image import load_portrait
from fica.memory import limit_heaps
from fica.web import WEB_DIR
from fica.web.page import app_viewer_js

log = logging.getLogger("fica.app")
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLES = ("astronaut.jpg", "grace_hopper.jpg", "long_hair_clipart.jpg", "astronaut_stylized.jpg",
            "grace_hopper_smooth.jpg", "astronaut_posterized.png", "grace_hopper_grey.jpg")
MAX_FILE_SIZE = os.environ.get("FICA_MAX_FILE_SIZE", "25mb")
CONCURRENCY = int(os.environ.get("FICA_CONCURRENCY", "2"))
RETENTION_S = int(OUTPUT_MAX_AGE_S)  # our request folders and Gradio's copies of them (FICA_RETENTION_S)
# "lazy": an example's outputs are computed on its first click and served from the cache afterwards;
# "eager": all at start-up; "0": never cached (tests).
CACHE_EXAMPLES = os.environ.get("FICA_CACHE_EXAMPLES", "lazy")
gr.set_static_paths([WEB_DIR])  # the live viewer's scripts, vendored libraries and face-mesh model
WEB_URL = f"/gradio_api/file={WEB_DIR.as_posix()}/"
# When the downloads list gains avatar_rig.zip, the live viewer (fica/web/viewer.js) loads it.
LOAD_RIG_JS = """(files) => {
  const list = Array.isArray(files) ? files : (files ? [files] : []);
  const rig = list.map((f) => (typeof f === "string" ? f : (f && (f.url || f.path))))
    .find((u) => u && u.split("?")[0].endsWith("avatar_rig.zip"));
  if (rig && window.ficaLive) window.ficaLive.loadRig(rig);
  else if (rig) window.ficaPendingRig = rig;
}"""


def gpu_window_seconds(work: DeviceWork) -> int:
    """How long a ZeroGPU window ``run_in_gpu_window(work)`` asks for: computed from the request."""
    return work.seconds


@spaces.GPU(duration=gpu_window_seconds)
def run_in_gpu_window(work: DeviceWork) -> DeviceResult:
    """A request's device work only (learned stages, renders); the rest of the request runs outside the window.
    Not called at all when every stage is embedded on the CPU (``fica.device_work.needs_device_window``)."""
    return run_device_work(work)


def run_generate(portrait, uv_resolution, expressions, driving_video, seed, video_seconds=VIDEO_SECONDS[1],
                 progress=gr.Progress()):
    """The /generate endpoint: yields the outputs in the documented order, first without the rig and videos (the
    avatar shows while they are made), then with the rig in the downloads (the live viewer loads it), then
    complete, without re-sending the unchanged avatar."""
    if portrait is None:
        raise gr.Error("Upload a portrait first, or pick one of the examples.", print_exception=False)
    options = GenerateOptions(uv_resolution=int(uv_resolution), expressions=tuple(expressions or ()),
                              driving=driving_video or None, seed=int(seed or 0), video_seconds=float(video_seconds))
    steps = generate_steps(portrait, options, progress=lambda fraction, desc: progress(fraction, desc=desc),
                           device_window=run_in_gpu_window)
    try:
        for step, result in enumerate(steps):
            if step == 0 and result.report["note"]:
                gr.Warning(result.report["note"])
            yield ([(str(p), label) for p, label in result.uv_maps], gr.skip() if step else str(result.viewer_splat),
                   [(str(p), name) for p, name in result.videos],
                   str(result.driving_video) if result.driving_video else None,
                   [str(p) for p in result.downloads], result.summary())
    except FiCAError as err:
        raise gr.Error(str(err), print_exception=False) from None
    except Exception:
        log.exception("generate failed")
        raise gr.Error("Something went wrong while building the avatar; please try another portrait.") from None


def run_example(portrait):
    """Examples run with the default options and no driving video (Gradio cannot read back a cached empty video).
    Gradio caches an example's last outputs only, so the avatar of the first is carried into every one."""
    avatar = None
    for step, (uv_maps, avatar_3d, videos, _, downloads, report) in enumerate(
            run_generate(portrait, 256, list(APP_EXPRESSIONS), None, 0)):
        avatar = avatar_3d if step == 0 else avatar
        yield uv_maps, avatar, videos, downloads, report


def _readable_portrait_errors(component: gr.Image) -> gr.Image:
    """Gradio opens an uploaded image with PIL before our code sees it; when that fails, show the library's own
    message for the file (``fica.io.image.load_portrait``) instead of Gradio's generic error."""
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (OSError, ValueError):
            try:
                load_portrait(payload.path)
            except FiCAError as err:
                raise gr.Error(str(err), print_exception=False) from None
            raise

    component.preprocess = checked
    return component


def build_demo() -> gr.Blocks:
    limit_heaps()  # before the server's worker threads each grow a heap of their own (fica/memory.py)
    _, note = load_pipeline()  # build the default pipeline now, so the first visitor does not wait for it
    with gr.Blocks(title="FiCA: instant Gaussian avatar from one portrait",
                   delete_cache=(RETENTION_S, RETENTION_S)) as demo:
        gr.Markdown("# FiCA: a drivable 3D Gaussian head from one portrait\n"
                    "Upload a portrait (or pick an example) and press **Generate**: the portrait is unwrapped into "
                    "partial UV maps, completed, refined, and turned into 3D Gaussians you can rotate and drive "
                    "with expressions.")
        if note:
            gr.Markdown(f"**Note:** {note}", elem_id="weights-note")
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                portrait = _readable_portrait_errors(gr.Image(
                    label="Portrait", type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                    height=360, elem_id="portrait"))
                generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Accordion("Options", open=False):
                    uv_resolution = gr.Radio(list(UV_RESOLUTIONS), value=256, label="UV resolution (quality)")
                    expressions = gr.CheckboxGroup(list(PRESETS), value=list(APP_EXPRESSIONS),
                                                   label="Expression videos", elem_id="expressions")
                    video_seconds = gr.Slider(VIDEO_SECONDS[0], VIDEO_SECONDS[2], value=VIDEO_SECONDS[1], step=0.5,
                                              label="Video length (s)", elem_id="video-seconds")
                    driving_video = gr.File(label="Driving video or ARKit / Live Link Face CSV (optional)",
                                            file_types=["video", ".csv"], type="filepath", elem_id="driving")
                    seed = gr.Number(value=0, precision=0, label="Seed (used by learned completion)")
            with gr.Column(scale=2):
                with gr.Row():
                    avatar_3d = gr.Model3D(label="Avatar (3D Gaussians)", height=420, elem_id="avatar-3d")
                    expression_videos = gr.Gallery(label="Expressions", columns=2, height=420,
                                                   elem_id="expression-videos")
                with gr.Accordion("Live avatar: drive it in your browser", open=True):
                    gr.Markdown("Sliders for the 52 ARKit expressions, head angles, presets, or your webcam "
                                "(MediaPipe runs in this page; the video never leaves your browser). It appears "
                                "a few seconds after the 3D avatar; `avatar_viewer.html` in the downloads is the "
                                "same viewer in one file that opens offline.")
                    gr.HTML('<div class="fica-live-root"></div>', elem_id="live-viewer-panel",
                            js_on_load=app_viewer_js(WEB_URL, ".fica-live-root"))
                uv_maps = gr.Gallery(label="UV maps", columns=4, object_fit="contain", elem_id="uv-maps")
                driving_result = gr.Video(label="Driving video | avatar (with a driving video)",
                                          elem_id="driving-result")
                downloads = gr.File(label="Downloads", file_count="multiple", height=240, elem_id="downloads")
                report = gr.Textbox(label="Report", lines=2, interactive=False, elem_id="report")
        outputs = [uv_maps, avatar_3d, expression_videos, driving_result, downloads, report]
        gr.Examples([[str(EXAMPLES_DIR / name)] for name in EXAMPLES], inputs=[portrait],
                    outputs=[uv_maps, avatar_3d, expression_videos, downloads, report],
                    fn=run_example, api_visibility="private", cache_examples=CACHE_EXAMPLES != "0",
                    cache_mode="lazy" if CACHE_EXAMPLES == "lazy" else "eager")
        generate_btn.click(run_generate, outputs=outputs, api_name="generate",
                           inputs=[portrait, uv_resolution, expressions, driving_video, seed, video_seconds])
        downloads.change(None, inputs=[downloads], js=LOAD_RIG_JS)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=None, help="address to serve on (default: GRADIO_SERVER_NAME or "
                                                     "127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--model", default=None, help="learned weights: a Hub repo id or a folder (default: "
                                                       "FICA_MODEL; none: every stage embedded)")
    parser.add_argument("--share", action="store_true", default=os.environ.get("FICA_SHARE", "") == "1",
                        help="also open a public gradio.live link (or set FICA_SHARE=1)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    if args.model:
        os.environ["FICA_MODEL"] = args.model  # fica.hub.resolve_source reads it for every request
    demo = build_demo()
    sweep_every(RETENTION_S / 4)  # an idle server's request folders go too (Gradio sweeps its copies itself)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=32)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_FILE_SIZE,
                head=model3d_head())


if __name__ == "__main__":
    main()
