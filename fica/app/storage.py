"""Where a request's files live: one private folder per request under the app's output root, removed after the
retention time."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "fica-app"
OUTPUT_MAX_AGE_S = 3600.0


def new_output_dir(root: str | Path = OUTPUT_ROOT, max_age_s: float = OUTPUT_MAX_AGE_S) -> Path:
    """A fresh private folder for one request under ``root``; folders older than ``max_age_s`` are removed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.glob("req-*"):
        try:
            if now - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            pass
    return Path(tempfile.mkdtemp(prefix="req-", dir=root))
