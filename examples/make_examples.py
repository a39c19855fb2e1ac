"""Regenerate the example portraits in this folder from public-domain images that Python packages ship.

    python examples/make_examples.py

Sources and licences are listed in examples/README.md. Output is deterministic for fixed package versions.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data
from matplotlib import cbook
from PIL import Image

HERE = Path(__file__).resolve().parent
JPEG_QUALITY = 90


def astronaut() -> np.ndarray:
    """Eileen Collins, NASA (public domain), as shipped by scikit-image. ``[512, 512, 3]`` uint8 RGB."""
    return skimage.data.astronaut()


def grace_hopper() -> np.ndarray:
    """Grace Hopper, US Navy (public domain), as shipped by matplotlib. ``[600, 512, 3]`` uint8 RGB."""
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def coffee() -> np.ndarray:
    """A cup of coffee, Rachel Michetti (public domain), as shipped by scikit-image: an image with no face."""
    return skimage.data.coffee()


def stylize(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's watercolour-like stylization filter."""
    return cv2.cvtColor(cv2.stylization(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), sigma_s=60, sigma_r=0.45),
                        cv2.COLOR_BGR2RGB)


def smooth(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's edge-preserving (recursive) smoothing: a flat, painted look."""
    bgr = cv2.edgePreservingFilter(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), flags=cv2.RECURS_FILTER,
                                   sigma_s=80, sigma_r=0.5)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def posterize(rgb: np.ndarray, colours: int = 8) -> np.ndarray:
    """Colour quantisation to ``colours`` k-means centres (a poster / cel look)."""
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(pixels, colours, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    return centres.astype(np.uint8)[labels.ravel()].reshape(rgb.shape)


def greyscale(rgb: np.ndarray) -> np.ndarray:
    """Greyscale, kept as three equal channels."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def face_crop(rgb: np.ndarray, centre_xy: tuple[int, int], size: int) -> np.ndarray:
    """Square ``size`` crop centred on ``centre_xy`` (pixels), clipped to the image."""
    x0, y0 = max(0, centre_xy[0] - size // 2), max(0, centre_xy[1] - size // 2)
    return rgb[y0:y0 + size, x0:x0 + size]


def side_by_side(left: np.ndarray, right: np.ndarray, height: int = 320) -> np.ndarray:
    """Two images scaled to one height and placed next to each other (a two-face portrait)."""
    def fit(img):
        w = round(img.shape[1] * height / img.shape[0])
        return cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)
    return np.concatenate([fit(left), fit(right)], axis=1)


def examples() -> dict[str, np.ndarray]:
    """File name -> uint8 RGB image, every example in this folder."""
    a, g = astronaut(), grace_hopper()
    return {
        "astronaut.jpg": a,
        "grace_hopper.jpg": g,
        "astronaut_stylized.jpg": stylize(a),
        "grace_hopper_smooth.jpg": smooth(g),
        "astronaut_posterized.png": posterize(a),
        "grace_hopper_grey.jpg": greyscale(g),
        "no_face_coffee.jpg": coffee(),
        # Face crops (about 2.4 face widths) side by side: MediaPipe's short-range detector misses faces
        # that are small in the frame, so the whole portraits side by side would show only one face to it.
        "two_faces.jpg": side_by_side(face_crop(a, (225, 124), 220), face_crop(g, (264, 233), 440)),
    }


def main() -> None:
    for name, rgb in examples().items():
        path = HERE / name
        Image.fromarray(rgb).save(path, **({"quality": JPEG_QUALITY} if path.suffix == ".jpg" else {"optimize": True}))
        print(f"{path.name}: {rgb.shape[1]}x{rgb.shape[0]}, {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
