"""glibc's malloc, tuned for the package: the server's memory flat over many requests, the renderers' frames free of
fresh pages (a no-op on other C libraries).

A request allocates and frees a few hundred MB of tensors and images on whichever worker thread Gradio runs it.
glibc gives each thread that allocates under contention its own heap (an "arena", up to 8 per core) and keeps what
is freed there for reuse by that arena, so as requests land on new threads the resident memory steps up by one
half-empty heap after another. Measured through the launched app: +15 % over 20 requests with the default arenas,
flat with two arenas and a trim after each request.

The CPU renderers allocate and free a few megabytes per image several times a frame; glibc handed such blocks back
to the kernel and took them again page by page: a 512² surface-splatting frame took 4000-5500 fresh pages
(16-22 MB), 4-13 ms of kernel time, during which render workers queue on the process's page-table lock. With
freed memory kept (``keep_freed_memory``): 2-50 a frame; the peak resident memory of a pipeline run with renders is
unchanged (0.65-0.66 GB), and the server's trim after each request still hands the free pages back.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

ARENAS = 2
KEPT_BLOCK_BYTES = 32 << 20  # blocks below this come from the heaps (the most glibc's own adaptive threshold reaches)
KEPT_FREE_BYTES = 128 << 20  # a heap is trimmed once this much lies free at its top
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # mallopt parameters, glibc's malloc.h


@lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def limit_heaps(arenas: int = ARENAS) -> None:
    """Let glibc create at most ``arenas`` heaps from now on; call it at start-up, before the worker threads run."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, arenas)


@lru_cache(maxsize=1)
def keep_freed_memory() -> None:
    """Once per process: malloc serves blocks below ``KEPT_BLOCK_BYTES`` from its heaps and keeps up to
    ``KEPT_FREE_BYTES`` free at a heap's top, instead of handing them back to the kernel after each frame."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES)


def release_freed_memory() -> None:
    """Hand the free pages of every heap back to the system (glibc's ``malloc_trim(0)``)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
