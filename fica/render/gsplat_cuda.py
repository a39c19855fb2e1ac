"""gsplat's CUDA rasteriser, and whether it can run here without compiling anything.

gsplat 1.5.3 from the package registry ships CUDA sources. ``gsplat.cuda._backend`` loads its extension on
import: the prebuilt module ``gsplat.csrc`` when a prebuilt wheel installed one, else a copy that
``torch.utils.cpp_extension`` built earlier in its build folder, else it compiles the sources right there, which
takes minutes and needs ``nvcc`` (a Space has none). ``gsplat_status`` answers from those three places without
importing ``_backend`` unless the extension is already built, so asking never starts a compile;
``build_gsplat`` compiles on purpose (a GPU machine with ``nvcc``, outside any request).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from functools import lru_cache
from pathlib import Path

import torch

from fica.render.projection import EPS2D, NEAR_PLANE_M

JIT_NAME = "gsplat_cuda"  # the name gsplat's loader builds its extension under


def _jit_build_path() -> Path:
    """Where ``torch.utils.cpp_extension`` keeps gsplat's compiled extension (``TORCH_EXTENSIONS_DIR``)."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(JIT_NAME, verbose=False)) / f"{JIT_NAME}.so"


def _prebuilt_import_error() -> str | None:
    """None when ``gsplat.csrc`` (a prebuilt wheel's extension) imports, else why it does not."""
    if importlib.util.find_spec("gsplat") is None:
        return "gsplat is not installed"
    try:
        importlib.import_module("gsplat.csrc")
    except ImportError as err:  # missing (a source install), or built for another torch / CUDA
        return f"no prebuilt gsplat extension ({str(err).splitlines()[0][:160] if str(err) else 'not found'})"
    return None


@lru_cache(maxsize=1)
def _extension_status() -> tuple[bool, str]:
    """(loads, reason), checked once per process; see ``gsplat_status``."""
    prebuilt_error = _prebuilt_import_error()
    if prebuilt_error == "gsplat is not installed":
        return False, prebuilt_error
    if prebuilt_error is not None and not _jit_build_path().is_file():
        nvcc = "nvcc is on PATH: `python -m fica.render.gsplat_cuda --build` compiles it once" \
            if shutil.which("nvcc") else "no nvcc to compile it (install a prebuilt gsplat wheel, see README)"
        return False, f"{prebuilt_error}, and no compiled copy in {_jit_build_path().parent}; {nvcc}"
    try:
        from gsplat.cuda._backend import _C
    except Exception as err:  # a stale or broken build
        return False, f"gsplat's CUDA extension failed to load ({type(err).__name__}: {str(err)[:160]})"
    if _C is None:
        return False, "gsplat's CUDA extension failed to load"
    return True, "prebuilt gsplat extension" if prebuilt_error is None else "gsplat extension compiled on this machine"


def gsplat_status(device: torch.device) -> tuple[bool, str]:
    """Whether ``gsplat.rasterization`` can render on ``device`` now, and why (one short phrase).

    Never compiles: without a prebuilt or an already compiled extension the answer is no.
    """
    if device.type != "cuda":
        return False, f"gsplat needs a CUDA device, not {device.type}"
    if not torch.cuda.is_available():
        return False, "CUDA is not available"
    return _extension_status()


def build_gsplat() -> tuple[bool, str]:
    """Compile gsplat's CUDA extension now (minutes; needs ``nvcc``) unless it already loads. Returns the status."""
    _extension_status.cache_clear()
    if not _extension_status()[0] and shutil.which("nvcc"):
        os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
        importlib.import_module("gsplat.cuda._backend")  # compiles on import when nothing is built
        _extension_status.cache_clear()
    return _extension_status()


def rasterize_gsplat(means: torch.Tensor,  # [N, 3] head frame, metres
                     quats: torch.Tensor,  # [N, 4] (w, x, y, z)
                     scales: torch.Tensor,  # [N, 3] linear, metres
                     opacities: torch.Tensor,  # [N] 0..1
                     colors: torch.Tensor,  # [N, 3]
                     viewmat: torch.Tensor,  # [4, 4] world -> camera
                     K: torch.Tensor,  # [3, 3]
                     width: int, height: int,
                     background: torch.Tensor,  # [3]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``gsplat.rasterization`` (CUDA tensors only), classic mode. Returns rgb ``[H, W, 3]``, alpha ``[H, W]``."""
    import gsplat

    device = means.device
    background = torch.as_tensor(background, dtype=torch.float32, device=device)
    rgb, alpha, _ = gsplat.rasterization(
        means.float(), quats.float(), scales.float(), opacities.float(), colors.float(),
        viewmat.float().to(device)[None], K.float().to(device)[None], width, height,
        near_plane=NEAR_PLANE_M, eps2d=EPS2D, backgrounds=background[None])
    return rgb[0], alpha[0, ..., 0]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Check (or --build) gsplat's CUDA extension.")
    parser.add_argument("--build", action="store_true", help="compile it now if it does not load (needs nvcc)")
    args = parser.parse_args()
    ok, reason = build_gsplat() if args.build else gsplat_status(torch.device("cuda"))
    print(f"gsplat {'loads' if ok else 'unavailable'}: {reason}")
    raise SystemExit(0 if ok else 1)
