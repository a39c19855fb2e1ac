"""Seeded noise that works with a generator on any device (every stage that samples draws through here)."""
from __future__ import annotations

import torch


def seeded_noise(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of ``shape``, drawn on the generator's own device (the CPU without one); callers move
    it to where they compute.

    A CPU generator gives the same noise, hence the same maps within float tolerance, whatever device the networks
    run on; a CUDA generator draws on its GPU (CUDA's random stream differs from the CPU's for the same seed).
    """
    return torch.randn(shape, generator=generator, device=generator.device if generator is not None else "cpu")
