"""Command line: ``python -m fica generate PORTRAIT --out DIR [options]`` (DESIGN.md §6)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

EXIT_USER_ERROR = 2


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fica", description="FiCA: a drivable 3D Gaussian head "
                                     "avatar from one portrait.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="build an avatar and write its maps, splats, rig, viewer, "
                         "views and videos")
    gen.add_argument("portrait", type=Path, help="portrait image (jpg, png, webp, ...)")
    gen.add_argument("--out", type=Path, required=True, help="output folder (created; existing files replaced)")
    gen.add_argument("--uv-res", type=int, default=256, choices=(128, 256, 512), help="UV chart resolution R")
    gen.add_argument("--views", type=_floats, default=[0.0, 30.0, -30.0], help="yaw angles in degrees, e.g. 0,30,-30")
    gen.add_argument("--expressions", type=_names, default=["smile", "talk", "surprise", "blink", "turn"],
                     help="expression presets to render as videos (see `python -m fica presets`)")
    gen.add_argument("--driving", type=Path, default=None, help="driving video (or image) of a face, or an ARKit / "
                     "Live Link Face CSV (take.csv)")
    gen.add_argument("--seconds", type=float, default=4.0, help="length of each expression video")
    gen.add_argument("--model", default=None, help="Hub repo id or folder with learned weights (default: "
                     "$FICA_MODEL, else the embedded pipeline)")
    gen.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    gen.add_argument("--seed", type=int, default=0, help="seed for stages that sample (learned UV diffusion)")
    sub.add_parser("presets", help="list the expression presets")
    return parser


@contextmanager
def native_stderr_to_log(log_path: Path):
    """Send what native libraries write to file descriptor 2 (MediaPipe's and TF Lite's start-up logging) to
    ``log_path``, so the CLI's stderr holds only its own messages. Python's ``sys.stderr`` is untouched."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def generate(args) -> dict:
    import torch

    from fica.drive.presets import PRESETS
    from fica.drive.video import read_driving
    from fica.errors import UnsupportedInput
    from fica.export import export_all
    from fica.hub import resolve_source
    from fica.pipeline import FiCAPipeline

    unknown = [n for n in args.expressions if n not in PRESETS]
    if unknown:
        raise UnsupportedInput(f"Unknown expression preset(s): {', '.join(unknown)}; "
                               f"choose from {', '.join(PRESETS)}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UnsupportedInput("--device cuda was asked for, but no CUDA GPU is available.")
    driving = read_driving(args.driving) if args.driving else None  # fail on a bad input before any work
    pipe = FiCAPipeline.from_pretrained(args.model or resolve_source(), uv_resolution=args.uv_res,
                                        device=args.device)
    # Noise is drawn where the generator lives: on the CPU, one seed gives the same maps on every device.
    output = pipe(args.portrait, generator=torch.Generator().manual_seed(args.seed))
    return export_all(output, args.out, views_deg=args.views, expressions=args.expressions, driving=driving,
                      seconds=args.seconds)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from fica.errors import FiCAError

    if args.command == "presets":
        from fica.drive.presets import PRESETS

        for name, description in PRESETS.items():
            print(f"{name:12s} {description}")
        return 0
    try:
        with native_stderr_to_log(Path(tempfile.gettempdir()) / "fica-native.log"):
            report = generate(args)
    except FiCAError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    impl = report["implementations"]
    print(json.dumps({"out": str(args.out), "gaussians": report["gaussians"], "timings_s": report["timings_s"],
                      "implementations": impl}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
