"""The pipeline owns its device: every stage's tensors on it, the renderer chosen from the device and gsplat's
availability check, seeded sampling on any device. ``cuda`` variants run under ``pytest -m gpu``."""
from __future__ import annotations

import dataclasses
import logging
import sys
import types

import pytest
import torch

import fica.render.gsplat_cuda as gsplat_cuda
from fica.noise import seeded_noise
from fica.pipeline import FiCAPipeline
from fica.render.camera import orbit_camera
from fica.render.dispatch import choose_backend, render
from scenes import flat_sphere

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def tensors_in(obj, seen=None):
    """Every tensor reachable from ``obj`` through dataclass fields, dicts, lists and tuples, by path."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield "", obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            for path, t in tensors_in(getattr(obj, f.name), seen):
                yield f".{f.name}{path}", t
    elif isinstance(obj, dict):
        for k, v in obj.items():
            for path, t in tensors_in(v, seen):
                yield f"[{k!r}]{path}", t
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            for path, t in tensors_in(v, seen):
                yield f"[{i}]{path}", t


def off_device(obj, device: torch.device) -> list[str]:
    return [f"{path} on {t.device}" for path, t in tensors_in(obj) if t.device != device]


class StageRecorder:
    """Wraps a stage object; records the device of every tensor its calls return."""

    def __init__(self, stage, log: dict, name: str):
        self._stage, self._log, self._name = stage, log, name

    def __getattr__(self, attr):
        return getattr(self._stage, attr)

    def _record(self, name, result):
        self._log.setdefault(name, set()).update(str(t.device) for _, t in tensors_in(result))
        return result

    def __call__(self, *args, **kwargs):
        return self._record(self._name, self._stage(*args, **kwargs))

    def encode(self, *args, **kwargs):
        return self._record("prior.encode", self._stage.encode(*args, **kwargs))

    def decode(self, *args, **kwargs):
        return self._record("prior.decode", self._stage.decode(*args, **kwargs))


@pytest.mark.parametrize("device", DEVICES)
def test_every_stage_returns_tensors_on_the_pipeline_device(device, portrait):
    device = torch.device(device)  # a device object, not a string
    pipe = FiCAPipeline.from_pretrained(uv_resolution=128, device=device)
    log: dict[str, set] = {}
    pipe.completer = StageRecorder(pipe.completer, log, "complete")
    pipe.refiner = StageRecorder(pipe.refiner, log, "refine")
    pipe.prior = StageRecorder(pipe.prior, log, "prior")
    assert pipe.unwrapper.device == torch.device("cpu")  # MediaPipe and the fit say they are CPU code

    out = pipe(portrait)
    avatar = out.avatar
    gaussians = avatar.gaussians()
    for name in ("complete", "refine", "prior.encode", "prior.decode"):
        assert log[name] == {str(device)}, name
    assert off_device(out.unwrapped, device) == []  # the pipeline moved the CPU stage's results
    assert off_device(out.complete, device) == [] and off_device(out.refined, device) == []
    assert off_device(avatar.identity, device) == []
    assert off_device(gaussians, device) == [] and avatar.device == device
    assert len(gaussians) > 10_000
    rgb, alpha = avatar.render(orbit_camera(30, 0, width=96, height=96))
    assert rgb.device == device and float(alpha.amax()) > 0.99


@pytest.fixture
def gsplat_cannot_load(monkeypatch, tmp_path):
    """gsplat as on a Space with a registry wheel: no prebuilt extension and nothing compiled."""
    monkeypatch.setitem(sys.modules, "gsplat.csrc", None)  # importing it raises ImportError
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # an empty build folder
    gsplat_cuda._extension_status.cache_clear()
    yield
    gsplat_cuda._extension_status.cache_clear()


def test_backend_falls_back_to_the_torch_compositor_on_cuda_when_gsplat_cannot_load(
        monkeypatch, gsplat_cannot_load, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.WARNING, logger="fica.render.dispatch"):
        still, video = choose_backend(torch.device("cuda"), "still"), choose_backend(torch.device("cuda"), "video")
    assert still.name == video.name == "torch"
    assert "no prebuilt gsplat extension" in still.reason and "compiled copy" in still.reason
    assert [r.getMessage() for r in caplog.records].count(f"Rendering with the {still.reason}") == 1  # once


def test_backend_is_gsplat_on_cuda_when_its_extension_loads(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    extension = types.ModuleType("gsplat.csrc")
    monkeypatch.setitem(sys.modules, "gsplat.csrc", extension)  # as a prebuilt wheel installs it
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", types.SimpleNamespace(_C=extension))
    gsplat_cuda._extension_status.cache_clear()
    try:
        assert choose_backend(torch.device("cuda"), "video").name == "gsplat"
        assert choose_backend(torch.device("cpu"), "video").name == "surface"  # the device decides first
    finally:
        gsplat_cuda._extension_status.cache_clear()


def test_cpu_renders_with_the_compositor_for_stills_and_surface_splatting_for_videos():
    assert choose_backend("cpu", "still").name == "torch"
    assert choose_backend("cpu", "video").name == "surface"
    assert gsplat_cuda.gsplat_status(torch.device("cpu")) == (False, "gsplat needs a CUDA device, not cpu")
    with pytest.raises(ValueError):
        choose_backend("cpu", "poster")


@pytest.mark.gpu
def test_torch_compositor_on_cuda_matches_the_cpu_and_is_chosen_without_gsplat(gsplat_cannot_load):
    cam = orbit_camera(20, 0, width=128, height=128)
    gaussians = flat_sphere(5000)
    assert choose_backend("cuda").name == "torch"
    rgb, alpha = render(gaussians.to("cuda"), cam)
    rgb_cpu, alpha_cpu = render(gaussians, cam)
    assert rgb.is_cuda and (rgb.cpu() - rgb_cpu).abs().max() < 1e-3
    assert (alpha.cpu() - alpha_cpu).abs().max() < 1e-3


@pytest.mark.gpu
def test_gsplat_loads_and_agrees_with_the_torch_compositor_on_an_avatar(portrait):
    ok, why = gsplat_cuda.gsplat_status(torch.device("cuda"))
    if not ok:
        pytest.skip(f"gsplat cannot run here: {why}")
    avatar = FiCAPipeline.from_pretrained(device="cuda")(portrait).avatar
    assert avatar.render_backend().name == "gsplat"
    cam = orbit_camera(30, 0, width=512, height=512)
    rgb_g, alpha_g = avatar.render(cam, backend="gsplat")
    rgb_t, alpha_t = avatar.render(cam, backend="torch")
    head = (alpha_g > 0.01) | (alpha_t > 0.01)
    psnr = 10 * torch.log10(1 / ((rgb_g - rgb_t)[head] ** 2).mean())
    assert float(psnr) > 40 and float((alpha_g - alpha_t).abs().max()) < 0.02


@pytest.mark.parametrize("device", DEVICES)
def test_noise_is_drawn_on_the_generators_device_and_repeats_with_its_seed(device):
    generator = torch.Generator(device).manual_seed(7)
    noise = seeded_noise((2, 4, 8, 8), generator)
    assert noise.device == generator.device
    again = seeded_noise((2, 4, 8, 8), torch.Generator(device).manual_seed(7))
    assert torch.equal(noise, again)
    assert not torch.equal(noise, seeded_noise((2, 4, 8, 8), torch.Generator(device).manual_seed(8)))
    cpu_noise = seeded_noise((2, 4, 8, 8), torch.Generator().manual_seed(7))
    assert cpu_noise.device.type == "cpu"  # a CPU generator draws on the CPU, whatever the network's device
    assert noise.std().item() == pytest.approx(1.0, abs=0.15)


@pytest.fixture(scope="module")
def untrained_repo(tmp_path_factory):
    """The tiny repo's networks, untrained (what matters here is where they run, not what they draw)."""
    from fica.train.tiny import build_tiny_repo

    return build_tiny_repo(tmp_path_factory.mktemp("tiny"), steps_scale=0)


@pytest.mark.gpu
def test_learned_stages_run_on_cuda_and_a_seed_gives_the_cpu_maps(untrained_repo, portrait):
    outputs = {}
    for device in ("cpu", "cuda"):
        pipe = FiCAPipeline.from_pretrained(untrained_repo, uv_resolution=64, device=device)
        assert all(impl.startswith("learned") for impl in pipe.implementations.values())
        out = pipe(portrait, generator=torch.Generator().manual_seed(3))
        assert off_device(out.complete, torch.device(device)) == []
        assert off_device(out.avatar.gaussians(), torch.device(device)) == []
        outputs[device] = out
    cpu, cuda = outputs["cpu"].complete, outputs["cuda"].complete.to("cpu")
    assert float((cpu.texture - cuda.texture).abs().mean()) < 0.01
    assert float((cpu.geometry - cuda.geometry).abs().mean()) < 1e-3  # metres


@pytest.mark.gpu
def test_cli_generates_on_cuda_with_learned_completion(untrained_repo, tmp_path, examples_dir):
    import json

    from fica.__main__ import main

    code = main(["generate", str(examples_dir / "astronaut.jpg"), "--out", str(tmp_path / "out"), "--device",
                 "cuda", "--model", str(untrained_repo), "--uv-res", "128", "--views", "30",
                 "--expressions", "talk", "--seconds", "1"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["implementations"]["complete"].startswith("learned")
    assert report["render_backends"]["video"].split(" ")[0] in ("gsplat", "torch")
