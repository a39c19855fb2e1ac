"""Thread control for torch on small shared CPUs."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

# With OpenMP (torch's usual CPU backend) each thread has its own thread count: ``torch.set_num_threads`` sets the
# calling thread's and the default that a thread takes the first time it uses torch. With torch's native pool the
# count is one for the whole process.
PER_THREAD_COUNT = "backend: OpenMP" in torch.__config__.parallel_info()

_lock = threading.Lock()
_open = 0  # blocks open in any thread
_count = None  # the process's thread count outside the blocks (None until the first block opens)
_depth = threading.local()  # .blocks: blocks open in this thread


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block; the thread gets the process's count back when its outermost
    block closes (with a process-wide count, when the last open block in the process closes).

    Safe under concurrency (a server's requests on its worker threads): each thread's outermost block sets that
    thread to one, whatever other threads have open. The count given back is the one torch had when a block
    opened with none open; a count of 1 read then, after a larger one was seen, is taken as left over by a thread
    that first used torch while another thread's block was open (it started with the default of 1), not as the
    process's own. Work outside a block that runs meanwhile on a thread new to torch may run on one thread.

    The stages are many small ops, and on a busy CPU torch's worker threads wait on each other: measured on the
    2-core dev box under load, one fit took 0.12 s on one thread against 2-8 s on two, and the whole unwrap stage
    0.3 s against 1-3 s.
    """
    global _open, _count
    outermost = getattr(_depth, "blocks", 0) == 0
    with _lock:
        current = torch.get_num_threads()  # also lets torch set up this thread first, or it would redo it later
        if _open == 0:
            if _count is None or current > 1:
                _count = current
        _open += 1
        if outermost:
            torch.set_num_threads(1)
    _depth.blocks = getattr(_depth, "blocks", 0) + 1
    try:
        yield
    finally:
        _depth.blocks -= 1
        with _lock:
            _open -= 1
            if outermost and (PER_THREAD_COUNT or _open == 0):
                torch.set_num_threads(_count)
