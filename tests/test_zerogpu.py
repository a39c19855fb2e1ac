"""What the app asks ZeroGPU for, checked with a fake ``spaces`` module that records every ``@spaces.GPU`` wrap,
every call with the duration it asks for, and what runs inside the window."""
from __future__ import annotations

import importlib
import pickle
import shutil
import sys
import types
from contextlib import contextmanager

import pytest
import torch

import fica.render.dispatch as dispatch
import fica.unwrap.embedded as embedded_unwrap
from fica.app.generate import APP_EXPRESSIONS, DRIVING_MAX_FRAMES, UV_RESOLUTIONS, VIDEO_SECONDS
from fica.device_work import DeviceWork
from fica.export import preset_clips
from fica.hub import write_model_index


class FakeSpaces(types.ModuleType):
    """``spaces`` as on a ZeroGPU Space, minus the GPU: ``GPU(duration=...)`` records the wrapped function and,
    per call, the duration it asks for (a callable duration gets the call's arguments, as spaces 0.51 does);
    arguments and results are pickled across, as into and out of ZeroGPU's worker process."""

    def __init__(self):
        super().__init__("spaces")
        self.wrapped: list[str] = []
        self.calls: list[tuple[str, int]] = []
        self.inside = False
        self.events: list[tuple[str, bool]] = []  # (what ran, inside the window)

    def GPU(self, task=None, *, duration=None, size=None):
        def wrap(fn):
            self.wrapped.append(fn.__name__)

            def window(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.calls.append((fn.__name__, seconds))
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # ZeroGPU's worker is another process
                self.inside = True
                try:
                    return pickle.loads(pickle.dumps(fn(*args, **kwargs)))
                finally:
                    self.inside = False
            return window
        return wrap(task) if callable(task) else wrap

    def spy(self, name: str, fn):
        def recorded(*args, **kwargs):
            self.events.append((name, self.inside))
            return fn(*args, **kwargs)
        return recorded


@pytest.fixture
def zerogpu_app(monkeypatch):
    """``app`` imported under the fake ``spaces``, with spies on MediaPipe, every renderer and the mp4 encoder."""
    fake = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("FICA_DEVICE", "cpu")
    monkeypatch.setenv("FICA_CACHE_EXAMPLES", "0")
    app = importlib.reload(sys.modules["app"]) if "app" in sys.modules else importlib.import_module("app")
    monkeypatch.setattr(embedded_unwrap, "find_face", fake.spy("mediapipe", embedded_unwrap.find_face))
    for name, fn in list(dispatch.BACKENDS.items()):
        monkeypatch.setitem(dispatch.BACKENDS, name, fake.spy("render", fn))
    import fica.io.video

    monkeypatch.setattr(fica.io.video, "write_mp4", fake.spy("encode", fica.io.video.write_mp4))
    yield app, fake
    monkeypatch.undo()
    importlib.reload(app)  # back to the real spaces for the other tests


def _generate(app, portrait_path: str, uv_resolution=128, expressions=("talk",), seconds=1.0):
    *_, last = app.run_generate(portrait_path, uv_resolution, list(expressions), None, 0, seconds,
                                progress=lambda *a, **k: None)
    return last


def test_the_gpu_function_is_wrapped_once_at_import_with_a_computed_duration(zerogpu_app):
    app, fake = zerogpu_app
    assert fake.wrapped == ["run_in_gpu_window"]  # run_generate itself holds no GPU


def test_embedded_request_asks_for_no_gpu(zerogpu_app, examples_dir):
    app, fake = zerogpu_app
    outputs = _generate(app, str(examples_dir / "astronaut.jpg"))
    assert fake.calls == []
    kinds = {name for name, _ in fake.events}
    assert {"mediapipe", "render", "encode"} <= kinds and not any(inside for _, inside in fake.events)
    assert "rendered by torch (views), surface (videos)" in outputs[-1]


@pytest.fixture
def learned_repo(tmp_path_factory):
    """A repo with learned completion and prior (untrained tiny networks); unwrap and refine stay embedded."""
    from fica.train.tiny import build_tiny_repo

    full = build_tiny_repo(tmp_path_factory.mktemp("tiny"), steps_scale=0)
    repo = tmp_path_factory.mktemp("partial")
    components = ["uv_diffusion", "vae", "image_encoder", "scheduler", "universal_prior"]
    for name in components:
        shutil.copytree(full / name, repo / name)
    write_model_index(repo, components)
    return repo


def test_learned_request_holds_the_gpu_only_for_learned_stages_and_rendering(zerogpu_app, learned_repo,
                                                                            monkeypatch, examples_dir):
    from fica.complete.learned import LearnedCompleter
    from fica.prior.learned import LearnedPrior

    app, fake = zerogpu_app
    monkeypatch.setenv("FICA_MODEL", str(learned_repo))
    for cls, method in ((LearnedCompleter, "__call__"), (LearnedPrior, "encode"), (LearnedPrior, "decode")):
        monkeypatch.setattr(cls, method, fake.spy(f"learned {cls.__name__}.{method}", getattr(cls, method)))
    outputs = _generate(app, str(examples_dir / "grace_hopper.jpg"), uv_resolution=128, expressions=("talk",),
                        seconds=1.0)

    assert len(fake.calls) == 1
    name, seconds = fake.calls[0]
    clips = preset_clips(("talk",), 1.0)
    assert name == "run_in_gpu_window"
    assert seconds == DeviceWork(str(learned_repo), 128, "cpu", torch.zeros(1), None, clips=clips).seconds
    inside = {what for what, held in fake.events if held}
    outside = {what for what, held in fake.events if not held}
    assert inside == {"learned LearnedCompleter.__call__", "learned LearnedPrior.encode",
                      "learned LearnedPrior.decode", "render"}
    assert outside == {"mediapipe", "encode"}  # the portrait's landmarks and the video encoding
    assert "learned" in outputs[-1] and "rendered by" in outputs[-1]
    assert len(outputs[2]) == 1  # the talk video came back


def _seconds(uv_resolution=256, expressions=APP_EXPRESSIONS, video_seconds=VIDEO_SECONDS[1], driving_frames=0):
    from fica.drive.expression import Clip, Expression

    driving = Clip([Expression.neutral()] * driving_frames, fps=24) if driving_frames else None
    clips = preset_clips(expressions, video_seconds, driving=driving)
    return DeviceWork(None, uv_resolution, "cuda", torch.zeros(1), None, clips=clips).seconds


def test_gpu_duration_grows_with_resolution_videos_length_and_driving_frames():
    by_resolution = [_seconds(uv_resolution=r) for r in UV_RESOLUTIONS]
    assert by_resolution == sorted(by_resolution) and len(set(by_resolution)) == len(UV_RESOLUTIONS)
    assert _seconds(expressions=("smile",)) < _seconds(expressions=("smile", "talk", "turn"))
    assert _seconds(video_seconds=VIDEO_SECONDS[0]) < _seconds(video_seconds=VIDEO_SECONDS[2])
    assert _seconds() < _seconds(driving_frames=DRIVING_MAX_FRAMES)
    # the smallest request asks for less than ZeroGPU's default 60 s, which queues it sooner
    assert _seconds(128, (), VIDEO_SECONDS[0], 0) < 60
