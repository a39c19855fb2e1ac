"""Single-threaded torch on CPU: workers, one per core, for parts (the calling thread's side is
``fica.threads.one_thread``).

torch's own intra-op threads meet at a barrier after every operation (and spin while they wait). The CPU
rasteriser issues about a thousand small operations a frame; on a busy machine (more runnable threads than
cores) each barrier can wait for a scheduler time slice: a frame measured 0.2 s single-threaded took 3-4 s with
torch's 2 threads on 2 cores. Parts handed to workers that each run torch single-threaded never wait for one
another, and the caller runs single-threaded meanwhile so that its own idle threads do not spin.

The renderers allocate and free a few megabytes per image several times a frame. glibc's malloc hands such freed
blocks back to the kernel and takes them again page by page: a 512² surface-splatting frame took 4000-5500 fresh
pages (16-22 MB), 4-13 ms of kernel time, during which the two workers queue on the process's page-table lock.
``parallel_map`` therefore has malloc keep freed memory (below 32 MB a block from its heaps, up to 128 MB free at a
heap's top before it trims): 20-50 fresh pages a frame.
"""
from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_malloc_set = False
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


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


def _keep_freed_memory() -> None:
    """Once per process, where the C library is glibc: malloc serves blocks below 32 MB from its heaps (the most its
    own adaptive threshold reaches) and trims a heap only when 128 MB lie free at its top."""
    global _malloc_set
    if _malloc_set:
        return
    _malloc_set = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)


def parallel_map(fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
    """``[fn(p) for p in parts]``, the parts run concurrently on single-threaded workers when there are cores."""
    _keep_freed_memory()
    pool = _workers()
    if pool is None or len(parts) < 2:
        return [fn(part) for part in parts]
    return list(pool.map(fn, parts))
