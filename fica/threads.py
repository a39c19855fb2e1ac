"""Thread control for torch on small shared CPUs."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

_lock = threading.Lock()
_inside = 0  # blocks open in any thread
_threads_before = 1  # torch's thread count when the first of them opened


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block; torch's thread count is restored when the last open block in
    the process closes.

    torch's thread count is process-wide, so the blocks of concurrent requests (or nested blocks) share one
    counter under a lock: the first to open saves the count and sets 1, the last to close restores it. Work
    outside a block that runs meanwhile also runs on one thread.

    The stages are many small ops, and on a busy CPU torch's worker threads wait on each other: measured on the
    2-core dev box under load, one fit took 0.12 s on one thread against 2-8 s on two, and the whole unwrap stage
    0.3 s against 1-3 s.
    """
    global _inside, _threads_before
    with _lock:
        if _inside == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                torch.set_num_threads(_threads_before)
