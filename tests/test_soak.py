"""The launched app over many requests, on loopback through gradio_client, as a busy Space sees it: memory that
stays flat, temp folders that stay bounded, concurrent visitors who each get every file of their own result, a
server that serves a good request after each bad one, and files served only as the copies handed to a page.

Requests are the cheapest the API offers (UV 128, no videos): 50 generations in a row, as issue 10 asks.
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_app import EXAMPLES, ROOT, launched_app_process

GENERATIONS = 50
WARM_UP = 5  # memory is compared with what the server holds after this many generations
MAX_GROWTH = 0.10  # of resident memory after the warm-up
RETENTION_S = 60  # the shortest the app allows (fica.app.storage.MIN_RETENTION_S), so the soak sees the sweeps
GOOD = (EXAMPLES / "astronaut.jpg", EXAMPLES / "grace_hopper.jpg")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(URL, server process, the server's temp folder): the app with its own TMPDIR, so its request folders and
    Gradio's copies can be counted apart from anything else on the machine."""
    temp = tmp_path_factory.mktemp("server-tmp")
    with launched_app_process(env={"TMPDIR": str(temp), "FICA_RETENTION_S": str(RETENTION_S)}) as (url, proc):
        yield url, proc, temp


def _client(url: str, downloads: Path):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=str(downloads))


def _generate(client, portrait: Path):
    """A finished job of the cheapest request; every file of every step was fetched (a 403 raises)."""
    from gradio_client import handle_file

    job = client.submit(handle_file(str(portrait)), 128, [], None, 0, 1.0, api_name="/generate")
    job.result()
    return job


def _resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _settled_resident_mb(pid: int, timeout_s: float = 10.0) -> float:
    """Resident memory once the server is idle: the client has the result a moment before the server has finished
    the request (its generator's last step, which hands freed memory back), so read until two readings half a
    second apart agree within 2 MB."""
    previous, deadline = _resident_mb(pid), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = _resident_mb(pid)
        if abs(current - previous) < 2:
            return current
        previous = current
    return previous


def _bad_inputs(folder: Path) -> list[Path]:
    not_an_image = folder / "portrait.png"
    not_an_image.write_text("this is not a picture")
    tiny = folder / "tiny.png"
    Image.open(EXAMPLES / "astronaut.jpg").resize((40, 40)).save(tiny)
    return [EXAMPLES / "no_face_coffee.jpg", not_an_image, tiny, EXAMPLES / "two_faces.jpg"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_many_generations_keep_memory_flat_and_temp_folders_bounded(app, tmp_path):
    from gradio_client.exceptions import AppError

    url, proc, temp = app
    client = _client(url, tmp_path / "downloads")
    bad = _bad_inputs(tmp_path)
    resident, ended = [], []
    for i in range(GENERATIONS):
        if i % 5 == 4:  # a bad input, then a good one must still be served
            with pytest.raises(AppError):
                _generate(client, bad[(i // 5) % len(bad)])
        _generate(client, GOOD[i % 2])
        ended.append(time.time())
        resident.append(_settled_resident_mb(proc.pid))
    print("resident MB per generation:", " ".join(f"{mb:.0f}" for mb in resident))
    growth = max(resident[WARM_UP:]) / resident[WARM_UP - 1] - 1
    print(f"growth after the first {WARM_UP}: {100 * growth:+.1f} % (peak), "
          f"{100 * (resident[-1] / resident[WARM_UP - 1] - 1):+.1f} % (end)")
    assert growth < MAX_GROWTH, f"resident memory grew {100 * growth:.1f} % after the first {WARM_UP} generations"

    requests = temp / "fica-app"
    assert not list(requests.rglob(".fica-*")), "a staging folder outlived its request"
    recent = sum(time.time() - t < RETENTION_S + 5 for t in ended)
    kept = [p for p in requests.iterdir() if p.name.startswith("req-")]
    assert len(kept) <= recent + 1, f"{len(kept)} request folders kept, {recent} requests within the retention"
    # Gradio's copies age from their last hand-out and are swept every RETENTION_S: nothing older than two periods.
    per_request = sum(1 for p in requests.rglob("*") if p.is_file()) / max(1, len(kept))
    copies = sum(1 for p in (temp / "gradio").rglob("*") if p.is_file())
    handed_out = sum(time.time() - t < 2 * RETENTION_S + 5 for t in ended)
    assert copies <= (handed_out + len(bad) + 2) * per_request, f"{copies} files in Gradio's cache"


def test_concurrent_visitors_get_their_own_complete_results_even_for_the_same_photo(app, tmp_path):
    """Four at once, two of them with the same photo: identical outputs share Gradio's content-addressed copies,
    and every client must still fetch every file of every step (no 403)."""
    url, _, _ = app
    portraits = [GOOD[0], GOOD[0], GOOD[1], EXAMPLES / "astronaut_stylized.jpg"]
    clients = [_client(url, tmp_path / f"client{i}") for i in range(len(portraits))]
    with ThreadPoolExecutor(len(portraits)) as pool:
        jobs = list(pool.map(_generate, clients, portraits))
    results = [job.outputs()[-1] for job in jobs]

    def partial_rgb(result) -> np.ndarray:
        return np.asarray(Image.open(result[0][0]["image"]).convert("RGB"), dtype=np.float32)

    maps = [partial_rgb(r) for r in results]
    assert np.abs(maps[0] - maps[1]).mean() < 1.0, "the same photo gives the same maps under load"
    for a, b in ((0, 2), (0, 3), (2, 3)):
        assert np.abs(maps[a] - maps[b]).mean() > 3, f"clients {a} and {b} got the same maps for different photos"
    reports = [r[5] for r in results]
    assert all("Gaussians" in report for report in reports)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_request_s_files_are_served_only_as_the_copies_handed_to_its_page(app, tmp_path):
    """Gradio serves the copies it made of a result (in folders named by a content hash), never the request's own
    folder, the app's code or anything else on the server, even under its exact path or through ``..``."""
    url, _, temp = app
    _generate(_client(url, tmp_path / "downloads"), GOOD[0])
    request = max((temp / "fica-app").glob("req-*"), key=lambda p: p.stat().st_mtime)
    copies = sorted((temp / "gradio").rglob("avatar.ply"), key=lambda p: p.stat().st_mtime)
    assert (request / "avatar.ply").is_file() and copies

    def served(path) -> int:
        return _status(f"{url}gradio_api/file={path}")

    assert served(copies[-1]) == 200, "the copy just handed to the page is served (the check below can tell)"
    assert all(len(p.parent.name) >= 32 for p in copies), "copies sit in folders with at least 128-bit names"
    refused = [request / "avatar.ply", request, temp / "gradio" / ".." / "fica-app" / request.name / "avatar.ply",
               ROOT / "app.py", ROOT / "fica" / "__init__.py", Path("/etc/passwd")]
    statuses = {str(path): served(path) for path in refused}
    assert all(status in (403, 404) for status in statuses.values()), statuses
