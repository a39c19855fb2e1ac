"""Headwear in the portrait (DESIGN.md §5 "Unwrap"): the part of the hair mask that is a hat or a cap, not hair.

MediaPipe 0.10.21's wheel carries no hair or multiclass segmentation model (only the two-class selfie
segmentation), so a hat is told from hair by its surface. The band or crown of a hat is fabric: one large region
of one flat colour reaching across the forehead. Hair, even painted or posterized, has strands at that scale
and, where it goes flat (a stylized bob's shaded side), lies beside the face rather than across it.

Measured with the face scaled to ``FACE_HEIGHT_PX`` (chin to forehead landmark), in the face frame of
``fica.unwrap.hair_mask`` (``t`` up the face, ``s`` across it in face widths):

1. flat pixels: hair-mask pixels whose fine luminance variation (the image minus its blur at
   ``FINE_SIGMA_PX``, RMS over ``LOCAL_SIGMA_PX``) is below ``FLAT_LUMINANCE``;
2. the hat: a connected region of flat pixels of at least ``HAT_MIN_AREA`` face areas (width × height) that
   reaches past ``HAT_REACH_S`` on both sides of the face's middle, stays above the brows (``SURE_T``: flat hair
   of a drawing hangs down beside the face) and is of one colour (mean channel standard deviation below
   ``HAT_COLOUR_STD``);
3. headwear: every hair pixel at or above the hat region's lower edge over the middle of the face (its
   ``BRIM_QUANTILE`` of ``t`` there), so the badge and the crown of a cap belong to it, and the hair pixels of
   the hat's colour (within ``HAT_COLOUR_DISTANCE``) joined to those: the hat's sides, which come down lower.
   The hair showing under its brim, of another colour, stays hair.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from fica.unwrap.hair_mask import SURE_T, face_frame

FACE_HEIGHT_PX = 100.0
FINE_SIGMA_PX = 1.5
LOCAL_SIGMA_PX = 2.0
FLAT_LUMINANCE = 0.02  # RMS fine luminance variation (0..1) below which a pixel is flat: fabric, not strands
HAT_MIN_AREA = 0.06  # face areas
HAT_REACH_S = 0.35  # face widths on each side of the middle
HAT_COLOUR_STD = 0.03  # RGB 0..1
BRIM_QUANTILE = 0.05
HAT_COLOUR_DISTANCE = 0.15  # RGB 0..1: a hair pixel this close to the hat's colour, joined to the hat, is hat
MIDDLE_S = 0.5  # the hat's lower edge is read over |s| < this


def headwear_mask(image, landmarks, hair) -> torch.Tensor:
    """The headwear among the hair.

    image: ``[H, W, 3]`` RGB float 0..1; landmarks: ``[478, 3]`` pixels; hair: ``[H, W]`` 0/1 (``hair_mask``).
    Returns ``[H, W]`` float32 0/1, a subset of ``hair``, all zero when the head wears no hat.
    """
    rgb = np.asarray(torch.as_tensor(image).float().cpu(), dtype=np.float32)
    lm = np.asarray(torch.as_tensor(landmarks).float().cpu())[:, :2]
    on_hair = np.asarray(torch.as_tensor(hair).cpu()) > 0.5
    full = face_frame(lm, on_hair.shape)
    scale = FACE_HEIGHT_PX / max(full.height_px, 1e-6)
    small_rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small_hair = cv2.resize(on_hair.astype(np.uint8), small_rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    frame = face_frame(lm * scale, small_hair.shape)
    hat = _hat_region(small_rgb, small_hair, frame)
    if hat is None:
        return torch.zeros(on_hair.shape)
    brim_t, colour = hat
    fabric = np.sqrt(((rgb - colour) ** 2).sum(-1)) < HAT_COLOUR_DISTANCE
    above = full.t >= brim_t
    candidates = (on_hair & (above | fabric)).astype(np.uint8)
    _, labels = cv2.connectedComponents(candidates, connectivity=8)
    joined = np.unique(labels[above & on_hair])
    return torch.from_numpy(np.isin(labels, joined[joined > 0]).astype(np.float32))


def _hat_region(rgb: np.ndarray, hair: np.ndarray, frame) -> tuple[float, np.ndarray] | None:
    """The face-frame height ``t`` of the hat's lower edge over the middle of the face and the hat's colour
    ``[3]`` in ``rgb [h, w, 3]`` (face ``FACE_HEIGHT_PX`` high) with ``hair [h, w]`` bool, or None when no
    region of it is a hat."""
    lum = rgb.mean(2)
    fine = lum - cv2.GaussianBlur(lum, (0, 0), FINE_SIGMA_PX)
    variation = np.sqrt(cv2.GaussianBlur(fine * fine, (0, 0), LOCAL_SIGMA_PX))
    flat = (hair & (variation < FLAT_LUMINANCE)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=8)
    face_area = frame.width_px * frame.height_px
    for label in np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1:
        if stats[label, cv2.CC_STAT_AREA] < HAT_MIN_AREA * face_area:
            return None
        region = labels == label
        s = frame.s[region]
        hangs = frame.t[region].min() < SURE_T  # hair of one flat colour (a drawing) reaching below the brows
        if hangs or s.min() > -HAT_REACH_S or s.max() < HAT_REACH_S or rgb[region].std(0).mean() > HAT_COLOUR_STD:
            continue
        middle = region & (np.abs(frame.s) < MIDDLE_S)
        return float(np.quantile(frame.t[middle], BRIM_QUANTILE)), rgb[region].mean(0)
    return None
