"""Where a request's files live: one private folder per request under the app's output root, removed after the
retention time together with anything else under the root: when a request starts, and on an idle server by a
sweep every quarter of the retention time (``sweep_every``).

A request's folder is never removed while the request runs, and its retention counts from the request's end, so a
request that takes longer than the retention time keeps its files until its visitor has had them for that long.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "fica-app"
# Gradio's copies of the files handed to a page expire with the same age, counted from the hand-out: under a minute,
# a client still fetching the first files of a result could find them gone (a 403).
MIN_RETENTION_S = 60.0
OUTPUT_MAX_AGE_S = max(MIN_RETENTION_S, float(os.environ.get("FICA_RETENTION_S", "3600")))  # seconds files are kept

_running: set[Path] = set()  # folders of the requests in flight in this process
_running_lock = threading.Lock()


def remove_expired(root: str | Path = OUTPUT_ROOT, max_age_s: float = OUTPUT_MAX_AGE_S) -> None:
    """Remove every entry under ``root`` (request folders and anything a crash left there) older than
    ``max_age_s``, except the folders of requests still running (``request_folder``)."""
    now = time.time()
    with _running_lock:
        running = set(_running)
    for old in Path(root).iterdir():
        try:
            if old in running or now - old.lstat().st_mtime <= max_age_s:
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        except FileNotFoundError:  # another request removed it first
            pass


def sweep_every(interval_s: float, root: str | Path = OUTPUT_ROOT,
                max_age_s: float = OUTPUT_MAX_AGE_S) -> threading.Event:
    """``remove_expired(root, max_age_s)`` every ``interval_s`` seconds in a daemon thread, so that the files of the
    last visitor go when their time is up even if nobody comes after them. Set the returned event to stop it."""
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(interval_s):
            if Path(root).is_dir():
                remove_expired(root, max_age_s)

    threading.Thread(target=sweep, name="fica-sweep", daemon=True).start()
    return stop


def new_output_dir(root: str | Path = OUTPUT_ROOT, max_age_s: float = OUTPUT_MAX_AGE_S) -> Path:
    """A fresh private folder (owner-only, unguessable 128-bit name) for one request under ``root``; expired
    entries under ``root`` are removed first."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_expired(root, max_age_s)
    folder = root / f"req-{secrets.token_urlsafe(16)}"
    folder.mkdir(mode=0o700)
    return folder


@contextmanager
def request_folder(root: str | Path = OUTPUT_ROOT, max_age_s: float = OUTPUT_MAX_AGE_S) -> Iterator[Path]:
    """``new_output_dir`` for a request that runs inside the block: the sweep leaves the folder alone until the
    block ends, and its age starts then."""
    folder = new_output_dir(root, max_age_s)
    with _running_lock:
        _running.add(folder)
    try:
        yield folder
    finally:
        with _running_lock:
            _running.discard(folder)
        try:
            os.utime(folder)
        except FileNotFoundError:  # the request removed its folder after a failure
            pass
