"""Thread control for torch on small shared CPUs."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch single-threaded in the calling thread inside the block; restore its thread count after.

    The stages are many small ops, and on a busy CPU torch's worker threads wait on each other: measured on the
    2-core dev box under load, one fit took 0.12 s on one thread against 2-8 s on two, and the whole unwrap stage
    0.3 s against 1-3 s.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
