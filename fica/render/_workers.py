"""Single-threaded torch on CPU: workers, one per core, for parts (the calling thread's side is
``fica.threads.one_thread``).

torch's own intra-op threads meet at a barrier after every operation (and spin while they wait). The CPU
rasteriser issues about a thousand small operations a frame; on a busy machine (more runnable threads than
cores) each barrier can wait for a scheduler time slice: a frame measured 0.2 s single-threaded took 3-4 s with
torch's 2 threads on 2 cores. Parts handed to workers that each run torch single-threaded never wait for one
another, and the caller runs single-threaded meanwhile so that its own idle threads do not spin.

``parallel_map`` also has malloc keep what the renderers free between frames (``fica.memory.keep_freed_memory``).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import torch

from fica.memory import keep_freed_memory

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _become_single_threaded(barrier: threading.Barrier) -> None:
    torch.get_num_threads()  # let torch initialise this thread's settings first, or it would redo them later
    torch.set_num_threads(1)
    barrier.wait()  # every worker holds one task, so the pool really starts all of its threads


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _workers() -> ThreadPoolExecutor | None:
    global _pool
    if cores() < 2:
        return None
    with _lock:
        if _pool is None:
            caller_threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(cores(), thread_name_prefix="fica-cpu")
            barrier = threading.Barrier(cores())
            for started in [pool.submit(_become_single_threaded, barrier) for _ in range(cores())]:
                started.result()
            # set_num_threads also changed the default for threads that have not used torch yet: restore it.
            torch.set_num_threads(caller_threads)
            _pool = pool
    return _pool


def parallel_map(fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
    """``[fn(p) for p in parts]``, the parts run concurrently on single-threaded workers when there are cores."""
    keep_freed_memory()
    pool = _workers()
    if pool is None or len(parts) < 2:
        return [fn(part) for part in parts]
    return list(pool.map(fn, parts))
