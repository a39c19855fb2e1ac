"""A distillation source: any folder of portraits, run through a FiCA pipeline (the embedded one by default), gives
(partial -> complete) pairs for the completer, with the rest of a training sample filled from the same run.

Per portrait: ``image``; ``dense``, ``partial``, ``camera`` and the expression from the unwrap stage; ``complete``:
the pipeline's completed maps (the teacher's answer); ``target``: the portrait composited on black through the
dense mask; ``keypoints``: MediaPipe's landmarks. Portraits without exactly one findable face are skipped.

``python -m fica.train.distill --portraits DIR --out DATASET [--model REPO_OR_DIR] [--uv-res R]``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fica.errors import FiCAError
from fica.train.synthetic import SyntheticSample, save_dataset

PORTRAIT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def distill_samples(portraits: str | Path, pipeline=None, *, uv_resolution: int = 256,
                    log=print) -> list[SyntheticSample]:
    """One sample per usable portrait in the folder ``portraits`` (sorted by name)."""
    from fica.io.image import load_portrait
    from fica.pipeline import FiCAPipeline

    pipeline = pipeline or FiCAPipeline.from_pretrained(uv_resolution=uv_resolution)
    samples = []
    for path in sorted(p for p in Path(portraits).iterdir() if p.suffix.lower() in PORTRAIT_SUFFIXES):
        try:
            image = torch.from_numpy(load_portrait(path))
            out = pipeline(image)
        except FiCAError as err:
            log(f"{path.name}: skipped ({err})")
            continue
        u = out.unwrapped
        mask = u.dense.mask
        keypoints = u.landmarks[:, :2] if u.landmarks is not None else torch.zeros(0, 2)
        samples.append(SyntheticSample(image, u.dense, u.partial, out.complete, image * mask[..., None], mask,
                                       keypoints, u.camera, u.expression, torch.zeros(0), torch.zeros(3)))
    return samples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--portraits", type=Path, required=True, help="folder of portrait images")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write (sample_*.pt)")
    p.add_argument("--model", help="FiCA pipeline repo or folder (default: the embedded pipeline)")
    p.add_argument("--uv-res", type=int, default=256)
    args = p.parse_args(argv)
    from fica.pipeline import FiCAPipeline

    samples = distill_samples(args.portraits, FiCAPipeline.from_pretrained(args.model, uv_resolution=args.uv_res))
    save_dataset(samples, args.out)
    print(f"{len(samples)} samples written to {args.out}")


if __name__ == "__main__":
    main()
