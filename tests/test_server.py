"""The app's server stays sound: thread control under concurrency, request folders and their retention, one load
of the weights for every UV resolution."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from fica.app.pipelines import load_pipeline
from fica.app.storage import new_output_dir, request_folder, sweep_every
from fica.threads import one_thread


@pytest.mark.parametrize("workers_used_torch", [False, True])
def test_overlapping_requests_each_run_single_threaded_and_give_the_count_back(workers_used_torch):
    """Two requests on a server's worker threads, the second opening its block while the first's is open and
    closing last. Workers new to torch, and workers that used torch before, as Gradio's do (OpenMP keeps a count
    per thread; ``torch.set_num_threads`` sets the calling thread's and the default for threads new to torch).
    Both requests run single-threaded throughout, and afterwards every worker, a thread new to torch and the main
    thread have the process's count."""
    before = torch.get_num_threads()
    count = max(2, before)
    torch.set_num_threads(count)
    a_inside, b_inside, a_closed = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def request_a():
        with one_thread():
            seen["a"] = torch.get_num_threads()
            a_inside.set()
            b_inside.wait(5)
        a_closed.set()

    def request_b():
        a_inside.wait(5)
        with one_thread():
            seen["b"] = torch.get_num_threads()
            b_inside.set()
            a_closed.wait(5)
            seen["b after a closed"] = torch.get_num_threads()

    def on_each_worker(pool, fn):
        both = threading.Barrier(2)

        def run(_):
            both.wait(5)  # each worker holds one task: both threads run fn
            return fn()

        return list(pool.map(run, range(2)))

    def a_request():
        with one_thread():
            pass
        return torch.get_num_threads()

    try:
        with ThreadPoolExecutor(2) as pool:
            if workers_used_torch:
                assert on_each_worker(pool, torch.get_num_threads) == [count, count]
            for job in [pool.submit(request_a), pool.submit(request_b)]:
                job.result(timeout=10)
            assert seen == {"a": 1, "b": 1, "b after a closed": 1}, f"thread counts inside the blocks: {seen}"
            assert on_each_worker(pool, torch.get_num_threads) == [count, count], "a worker was left on one thread"
            assert on_each_worker(pool, a_request) == [count, count], "a worker was left on one thread"
        with ThreadPoolExecutor(1) as fresh:
            assert fresh.submit(torch.get_num_threads).result() == count, "threads new to torch start with one"
        assert torch.get_num_threads() == count
    finally:
        torch.set_num_threads(before)


def test_request_folders_are_private_unguessable_and_expire_with_any_leftovers(tmp_path):
    first, second = new_output_dir(tmp_path), new_output_dir(tmp_path)
    assert first != second and first.parent == second.parent == tmp_path
    for folder in (first, second):
        assert len(folder.name) >= len("req-") + 22, "at least 128 random bits in the name"
        assert folder.stat().st_mode & 0o077 == 0, "owner-only"
    leftovers = [tmp_path / ".fica-crashed", tmp_path / "req-old"]
    for path in leftovers:
        path.mkdir()
        (path / "avatar.ply").write_bytes(b"x")
    stale = time.time() - 2 * 3600
    for path in leftovers:
        os.utime(path, (stale, stale))
    fresh = new_output_dir(tmp_path, max_age_s=3600)
    assert not any(p.exists() for p in leftovers), "anything past retention is removed, staging folders included"
    assert first.exists() and second.exists() and fresh.exists()


def test_a_running_request_keeps_its_folder_past_retention_and_ages_from_its_end(tmp_path):
    """A request that runs longer than the retention time (a slow machine, long videos) must not have its folder
    swept by the next request: Gradio would find its files gone and hand the page a path it refuses (403)."""
    stale = time.time() - 2 * 3600
    with request_folder(tmp_path, max_age_s=3600) as running:
        (running / "uv").mkdir()
        os.utime(running, (stale, stale))
        new_output_dir(tmp_path, max_age_s=3600)
        assert (running / "uv").is_dir(), "the sweep removed the folder of a request still running"
    new_output_dir(tmp_path, max_age_s=3600)
    assert running.is_dir(), "retention counts from the request's end"
    os.utime(running, (stale, stale))
    new_output_dir(tmp_path, max_age_s=3600)
    assert not running.exists(), "a finished request's folder expires"


def test_an_idle_server_removes_expired_request_folders_without_a_new_request(tmp_path):
    """The last visitor's files must not stay on disk until someone else comes: the sweep runs on its own (and
    leaves a running request's folder alone)."""
    stale = time.time() - 2 * 3600
    with request_folder(tmp_path, max_age_s=3600) as running:
        os.utime(running, (stale, stale))
        expired = tmp_path / "req-last-visitor"
        expired.mkdir()
        os.utime(expired, (stale, stale))
        stop = sweep_every(0.05, tmp_path, max_age_s=3600)
        try:
            for _ in range(200):  # up to 10 s on a loaded machine; a sweep takes milliseconds
                if not expired.exists():
                    break
                time.sleep(0.05)
        finally:
            stop.set()
        assert not expired.exists(), "the expired folder outlived the retention on an idle server"
        assert running.is_dir(), "a running request keeps its folder"


def test_export_stages_inside_the_request_folder(tmp_path):
    from fica.export import _staged

    out = tmp_path / "req-x"
    with pytest.raises(RuntimeError):
        with _staged(out) as stage:
            assert stage.parent == out, "a staging folder outside the request folder would outlive its retention"
            (stage / "avatar.ply").write_bytes(b"half")
            raise RuntimeError("export failed")
    assert list(out.iterdir()) == [] and list(tmp_path.iterdir()) == [out]


def test_every_uv_resolution_shares_one_load_of_the_weights():
    low, _ = load_pipeline(None, uv_resolution=128)
    high, _ = load_pipeline(None, uv_resolution=512)
    assert (low.unwrapper.uv_resolution, high.unwrapper.uv_resolution) == (128, 512)
    assert low.completer is high.completer and low.refiner is high.refiner and low.prior is high.prior
    assert low.unwrapper.head is high.unwrapper.head


def test_a_request_runs_each_step_of_the_work_once(monkeypatch, tmp_path):
    """The pipeline, the renders and each export step once per request, however many results it yields (the app
    once wrote every file twice)."""
    import fica.app.generate as generate_module
    from fica.app.generate import GenerateOptions, generate_steps
    from fica.pipeline import FiCAPipeline

    calls = {}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args, **kwargs)
        return wrapper

    for name in ("render_all", "write_avatar", "write_rig", "write_videos", "build_rig"):
        monkeypatch.setattr(generate_module, name, counted(name, getattr(generate_module, name)))
    monkeypatch.setattr(FiCAPipeline, "__call__", counted("pipeline", FiCAPipeline.__call__))
    options = GenerateOptions(uv_resolution=128, expressions=("smile",), video_seconds=1.0)
    results = list(generate_steps("examples/astronaut.jpg", options, root=tmp_path))
    assert len(results) == 3 and results[-1].videos
    assert calls == {name: 1 for name in ("pipeline", "render_all", "write_avatar", "build_rig", "write_rig",
                                          "write_videos")}, calls
