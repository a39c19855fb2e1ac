"""Portrait loading and PNG writing (DESIGN.md §3 Images: RGB float32 in [0, 1], ``[H, W, 3]`` at the edges)."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fica.errors import ImageTooLarge, ImageTooSmall, UnsupportedInput
from fica.io._atomic import atomic_path

MIN_SIDE_PX = 64
MAX_FILE_BYTES = 50 * 2 ** 20
MAX_PIXELS = 40_000_000
MAX_SIDE_PX = 2048

_NOT_AN_IMAGE = "The file is not a readable image; use a PNG, JPEG, WebP, BMP or TIFF photo."


def load_portrait(src) -> np.ndarray:
    """Load a portrait as RGB float32 in [0, 1], ``[H, W, 3]``.

    src: a path (str or Path), the file's bytes, a PIL image, or an array / tensor (uint8, uint16 or float in
    0..1; ``[H, W]``, ``[H, W, 1]``, ``[H, W, 2]`` grey + alpha, ``[H, W, 3]`` or ``[H, W, 4]`` RGBA).
    EXIF orientation is applied, transparency is composited on white, greyscale becomes 3 channels, and images
    larger than MAX_SIDE_PX (2048) on the long side are downscaled to it with area averaging.

    Raises UnsupportedInput (not an image, unreadable, wrong type), ImageTooSmall (short side under 64 px) or
    ImageTooLarge (file over 50 MB or image over 40 megapixels), each with a message a UI can show.
    """
    if isinstance(src, (str, Path)):
        image = _open_file(Path(src))
    elif isinstance(src, (bytes, bytearray, memoryview)):
        image = _open_bytes(bytes(src))
    elif isinstance(src, Image.Image):
        image = _decode(src)
    elif isinstance(src, (np.ndarray, torch.Tensor)):
        image = _from_array(src.detach().cpu().numpy() if isinstance(src, torch.Tensor) else src)
    else:
        raise UnsupportedInput(f"Unsupported portrait input of type {type(src).__name__}; "
                               "give a file path, the file's bytes, a PIL image or an image array.")
    long_side = max(image.shape[:2])
    if long_side > MAX_SIDE_PX:
        scale = MAX_SIDE_PX / long_side
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image.clip(0.0, 1.0), dtype=np.float32)


def save_png(image, path: str | Path) -> Path:
    """Write ``[H, W, 3]`` (``[H, W, 4]`` RGBA, straight alpha; ``[H, W]`` grey) float 0..1 or uint8, array or tensor, as a PNG. Atomic."""
    pixels = to_uint8(image)
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4)):
        raise ValueError(f"save_png expects [H, W], [H, W, 3] or [H, W, 4]; got shape {tuple(pixels.shape)}.")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels.squeeze(2) if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels).save(
            tmp, format="PNG")
    return path


def straight_rgba(premultiplied, alpha) -> np.ndarray:
    """A render's colour over black ``[H, W, 3]`` (premultiplied by its coverage) and the coverage ``alpha
    [H, W]`` (0..1) -> ``[H, W, 4]`` float32 RGBA with straight alpha, as PNG stores it: composited over any
    background it gives the render over that background."""
    rgb, a = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
              for x in (premultiplied, alpha))
    a = a.clip(0.0, 1.0)
    straight = np.where(a[..., None] > 0, rgb / np.maximum(a, 1e-6)[..., None], 0.0).clip(0.0, 1.0)
    return np.concatenate([straight, a[..., None]], axis=2)


def to_uint8(image) -> np.ndarray:
    """Array or tensor, uint8 or float 0..1 (clipped) -> uint8 array of the same shape."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image.astype(np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageTooLarge(f"The image is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels); "
                            f"FiCA accepts up to {MAX_PIXELS / 1e6:.0f} megapixels.")
    if min(width, height) < MIN_SIDE_PX:
        raise ImageTooSmall(f"The image is only {width}×{height} pixels; FiCA needs at least {MIN_SIDE_PX} "
                            "pixels on the short side.")


def _open_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UnsupportedInput(f"The file {path.name} does not exist or is not a file.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageTooLarge(f"The file is {size / 2 ** 20:.1f} MB; FiCA accepts images up to "
                            f"{MAX_FILE_BYTES // 2 ** 20} MB.")
    with _open(path) as image:
        return _decode(image)


def _open_bytes(data: bytes) -> np.ndarray:
    if len(data) > MAX_FILE_BYTES:
        raise ImageTooLarge(f"The file is {len(data) / 2 ** 20:.1f} MB; FiCA accepts images up to "
                            f"{MAX_FILE_BYTES // 2 ** 20} MB.")
    with _open(io.BytesIO(data)) as image:
        return _decode(image)


def _open(source) -> Image.Image:
    try:
        return Image.open(source)
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"The image is larger than FiCA accepts ({MAX_PIXELS / 1e6:.0f} megapixels at "
                            "most).") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UnsupportedInput(_NOT_AN_IMAGE) from error


def _decode(image: Image.Image) -> np.ndarray:
    """Decode a (lazily opened) PIL image: size limits first, then pixels, orientation and alpha."""
    _check_size(*image.size)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise UnsupportedInput("The image file is damaged or truncated and could not be decoded.") from error
    if image.mode.startswith("I"):  # 16-bit grey (PNG) comes as I;16 or I
        values = np.asarray(image).astype(np.float32)
        return _from_array(values / (65535 if image.mode != "I" or values.max(initial=0) > 255 else 255))
    if image.mode == "F":
        return _from_array(np.asarray(image).clip(0, 1))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    try:
        image = image.convert("RGBA" if has_alpha else "RGB")
    except ValueError as error:
        raise UnsupportedInput(f"Images in the {image.mode} colour mode are not supported; save it as RGB.") from error
    return _from_array(np.asarray(image))


def _from_array(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float 0..1 array, ``[H, W]`` or ``[H, W, C]`` with C in 1..4 -> RGB float32 ``[H, W, 3]``."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise UnsupportedInput(f"An image array must be H×W, H×W×3 or H×W×4; got shape {tuple(array.shape)}.")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535
    elif np.issubdtype(array.dtype, np.integer) and array.size and 0 <= array.min() and array.max() <= 255:
        values = array.astype(np.float32) / 255
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all() or values.min(initial=0) < -1e-3 or values.max(initial=0) > 1 + 1e-3:
            raise UnsupportedInput("A float image array must hold finite values between 0 and 1.")
    else:
        raise UnsupportedInput(f"Unsupported image array type {array.dtype}; use uint8, uint16 or float 0..1.")
    _check_size(values.shape[1], values.shape[0])
    if values.shape[2] in (2, 4):  # straight alpha over white
        alpha = values[..., -1:]
        values = values[..., :-1] * alpha + (1 - alpha)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return values
