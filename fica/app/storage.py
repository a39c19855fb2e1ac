"""Where a request's files live: one private folder per request under the app's output root, removed after the
retention time together with anything else under the root."""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "fica-app"
OUTPUT_MAX_AGE_S = float(os.environ.get("FICA_RETENTION_S", "3600"))  # how long a request's files are kept


def remove_expired(root: str | Path = OUTPUT_ROOT, max_age_s: float = OUTPUT_MAX_AGE_S) -> None:
    """Remove every entry under ``root`` (request folders and anything a crash left there) older than
    ``max_age_s``."""
    now = time.time()
    for old in Path(root).iterdir():
        try:
            if now - old.lstat().st_mtime <= max_age_s:
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        except FileNotFoundError:  # another request removed it first
            pass


def new_output_dir(root: str | Path = OUTPUT_ROOT, max_age_s: float = OUTPUT_MAX_AGE_S) -> Path:
    """A fresh private folder (owner-only, unguessable 128-bit name) for one request under ``root``; expired
    entries under ``root`` are removed first."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_expired(root, max_age_s)
    folder = root / f"req-{secrets.token_urlsafe(16)}"
    folder.mkdir(mode=0o700)
    return folder
