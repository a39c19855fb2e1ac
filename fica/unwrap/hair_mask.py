"""The hair in the portrait (DESIGN.md §5 "Unwrap": a person/hair mask): the person MediaPipe's selfie
segmentation finds, minus the face inside the face-mesh oval, minus the neck, clothes and shoulders.

Everything is measured in the face's own frame so a tilted head works the same: ``t`` runs up the face (0 at the
chin landmark, 1 at the forehead landmark), ``s`` across it (0 mid-face, in face widths).

- Above the eyes (``t`` > ``SURE_T``) every person pixel outside the oval is hair (or a hat: it has the same
  job, the head's outline), except the bare forehead above the oval: skin-coloured pixels joined to the face,
  and the background the person mask is unsure of: pixels of the background's colours away from the outline's
  fringe (a posterized sky's flat patches leak into the mask and grew a lump on the hair). Those pixels also
  give the hair's colours.
- Lower down (the sides of a bob, long hair over the shoulders) a person pixel is hair when its colour is nearer
  the hair's colours than the face skin's, also in shadow (``SKIN_SHADES``: a neck under the jaw, the side of a
  turned head, lit darker than the cheeks the skin's colours come from), is not of the background's colours (the
  person mask takes in some background; light hair on a white ground would grow down to the image's edge) and it
  is joined to the hair above; the neck, a collar or a suit are not. Nothing lower than ``LOWEST_T`` face heights
  below the chin or wider than ``WIDEST_S`` counts.

The colours are compared as k-means palettes (a few centres each), so grey, posterized and painted portraits
work the same as photographs.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from fica.unwrap.landmarks import FACE_OVAL

CHIN, FOREHEAD = 152, 10  # landmark ids: the bottom and the top of the face oval
SURE_T = 0.62  # above this height (face heights over the chin: about the brows) every non-face person pixel is hair
LOWEST_T = -2.0  # long hair reaches at most this far below the chin (face heights)
WIDEST_S = 1.6  # and at most this far from the middle of the face (face widths)
OVAL_MARGIN = 0.03  # the oval is grown by this fraction of the face width (its edge pixels are skin)
PALETTE_SIZE = (6, 4)  # k-means centres for the hair and the skin colours
HAIR_DISTANCE = 0.22  # a pixel farther than this from every hair colour (RGB 0..1) is not hair
SKIN_SHADES = (1.0, 0.8, 0.65)  # below the brows the skin is also seen in shadow (a neck under the jaw, the side
# of a turned head): its colours at these brightnesses are skin too
SKIN_DARKEST_QUANTILE = 0.25  # the darkest quarter of the cheeks and nose (nostrils, lashes, brows) is not skin
FOREHEAD_SKIN_DISTANCE = 0.06  # above the brows, a pixel this close to the skin's colours and joined to the face
MAX_FOREHEAD_SHARE = 0.3  # is bare forehead, unless such pixels are more than this share of the hair up there
PERSON_THRESHOLD = 0.5
PERSON_DOUBT = 0.9  # a person pixel below this, farther than DOUBT_MARGIN (face widths) from any above it, that
DOUBT_MARGIN = 0.035  # has the background's colours is background even above the eyes (the outline's fringe stays)
MIN_HAIR_PX = 30  # fewer hair pixels than this above the eyes: no hair (bald, or a tight crop)
WORK_SIDE_PX = 384  # the mask is worked out at most this large on the long side
HUE_DEG = 25.0  # a pixel within this of the skin's hue (CIE Lab hue angle) and at least as saturated (chroma) shows
# skin (an ear, a shadowed temple); grey or white hair of the skin's hue is paler: Grace Hopper's hair, chroma
# 25 at her temple and 35 behind her ear, beside the face's mean skin colour of 38 and her ear's 44
MIN_SKIN_CHROMA = 10.0  # a mean skin colour paler than this (a grey portrait) has no hue to compare
COLOUR_HAT_DISTANCE = 0.25  # a pixel this close to the hat's colour (RGB 0..1) is the hat's edge
TEMPLE_T = (0.3, 1.0)  # under a hat, the hair shows beside the face between these heights (face heights) ...
TEMPLE_S = 0.85  # ... and no farther than this from the middle (face widths), where the person mask is not sure
# it is background (it misses grey hair behind an ear)
BACKGROUND_PERSON = 0.05  # a pixel the person mask gives less than this is background
LOCAL_BACKGROUND_SIGMA = 0.05  # face widths: the background's colour beside a pixel is its blur over this
NEAR_BACKGROUND = 0.02  # a pixel with more than this share of background in that blur lies on the outline's fringe
MAX_BACKGROUND_SHARE = 0.5  # a fringe pixel mixed more than this toward the background beside it (from the
# hair's colour inside the fringe) shows the background through the hair's edge (a blue sky through grey hair)
COLOUR_BACKGROUND_DISTANCE = 0.12  # RGB 0..1: below the brows, no hair pixel is this close to the background's
# colours (light hair's edge mixes with the sky)

@dataclass
class FaceFrame:
    """Where the face sits in the portrait: ``s``/``t`` coordinates of every pixel (see the module docstring).

    s, t: ``[H, W]`` float32; width_px, height_px: the face's size in pixels.
    """

    s: np.ndarray
    t: np.ndarray
    width_px: float
    height_px: float


def face_frame(landmarks: np.ndarray, size: tuple[int, int]) -> FaceFrame:
    """The face frame of ``landmarks [478, 2+]`` (pixels) in an image of ``size`` (H, W)."""
    chin, top = landmarks[CHIN, :2].astype(np.float64), landmarks[FOREHEAD, :2].astype(np.float64)
    up = top - chin
    height = float(np.linalg.norm(up))
    up /= max(height, 1e-6)
    across = np.array([-up[1], up[0]])  # image right for an upright face (up = (0, -1))
    oval = landmarks[list(FACE_OVAL), :2].astype(np.float64)
    width = float(np.ptp(oval @ across))
    mid = 0.5 * (chin + top)
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    dx, dy = xs - mid[0], ys - mid[1]
    s = (dx * across[0] + dy * across[1]) / max(width, 1e-6)
    t = ((xs - chin[0]) * up[0] + (ys - chin[1]) * up[1]) / max(height, 1e-6)
    return FaceFrame(s.astype(np.float32), t.astype(np.float32), width, height)


def oval_mask(landmarks: np.ndarray, size: tuple[int, int], grow_px: float = 0.0) -> np.ndarray:
    """``[H, W]`` bool: inside the face-mesh oval, grown by ``grow_px``."""
    mask = np.zeros(size, np.uint8)
    cv2.fillPoly(mask, [np.round(landmarks[list(FACE_OVAL), :2] - 0.5).astype(np.int32)], 1)
    return _grow(mask > 0, grow_px)


def _grow(mask: np.ndarray, grow_px: float) -> np.ndarray:
    """``mask [H, W]`` bool grown by ``grow_px`` (a disc)."""
    radius = int(round(grow_px))
    if radius <= 0:
        return mask
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), disc) > 0


def _palette(pixels: np.ndarray, k: int) -> np.ndarray:
    """``[k', 3]`` k-means centres of ``pixels [N, 3]`` (float 0..1), at most ``k``, deterministic."""
    pixels = pixels[:: max(1, len(pixels) // 4000)].astype(np.float32)
    k = min(k, len(pixels))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(pixels, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return centres


def _distance(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Distance ``[N]`` of each of ``pixels [N, 3]`` to its nearest palette colour."""
    return np.sqrt(((pixels[:, None, :] - palette[None]) ** 2).sum(-1)).min(1)


def hair_mask(image, landmarks, person) -> torch.Tensor:
    """The hair (and headwear) in the portrait.

    image: ``[H, W, 3]`` RGB float 0..1; landmarks: ``[478, 3]`` pixels; person: ``[H, W]`` 0..1 (selfie
    segmentation). Returns ``[H, W]`` float32 0/1, all zero when the head shows no hair. Worked out at most
    ``WORK_SIDE_PX`` on the long side, then scaled back up.
    """
    rgb = np.asarray(torch.as_tensor(image).float().cpu(), dtype=np.float32)
    lm = np.asarray(torch.as_tensor(landmarks).float().cpu())[:, :2].copy()
    in_person = np.asarray(torch.as_tensor(person).float().cpu(), dtype=np.float32)
    size = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE_PX / max(size))
    if scale < 1.0:
        small = (max(1, round(size[1] * scale)), max(1, round(size[0] * scale)))
        rgb = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)
        in_person = cv2.resize(in_person, small, interpolation=cv2.INTER_AREA)
        lm *= np.array([small[0] / size[1], small[1] / size[0]], dtype=np.float32)
    hair = _hair_mask(rgb, lm, in_person).astype(np.float32)
    if scale < 1.0:
        hair = (cv2.resize(hair, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)
    return torch.from_numpy(hair)


def hair_colour_mask(image, landmarks, person, hair, headwear) -> torch.Tensor:
    """The pixels that show the hair's own colour (what the unseen hair is coloured from).

    image: ``[H, W, 3]`` RGB float 0..1; landmarks: ``[478, 3]`` pixels; person: ``[H, W]`` 0..1; hair,
    headwear: ``[H, W]`` 0/1 (``hair_mask``, ``fica.unwrap.headwear``). Returns ``[H, W]`` float32 0/1. Without
    a hat, the hair. Under a hat, whose brim hides the hairline and what the hair mask keeps beside it is mostly
    skin or the hat's edge, the hair pixels and the person pixels beside the face at the temples (``TEMPLE_T``,
    ``TEMPLE_S``; grey or white hair, close to the skin's colours, that the hair mask misses) that are neither of
    the hat's colour, nor skin (``_skin_like``: an ear, a shadowed temple), nor mixed with the background beside
    them (``_background_share``: the sky through the hair's edge).
    """
    on_hair = np.asarray(torch.as_tensor(hair).cpu()) > 0.5
    on_hat = np.asarray(torch.as_tensor(headwear).cpu()) > 0.5
    if not on_hat.any():
        return torch.from_numpy(on_hair.astype(np.float32))
    rgb = np.asarray(torch.as_tensor(image).float().cpu(), dtype=np.float32)
    lm = np.asarray(torch.as_tensor(landmarks).float().cpu())[:, :2]
    in_person = np.asarray(torch.as_tensor(person).float().cpu(), dtype=np.float32)
    frame = face_frame(lm, on_hair.shape)
    beside = (np.abs(frame.s) < TEMPLE_S) & (frame.t > TEMPLE_T[0]) & (frame.t < TEMPLE_T[1])
    temples = beside & (in_person > BACKGROUND_PERSON) & ~oval_mask(lm, on_hair.shape, OVAL_MARGIN * frame.width_px)
    keep = (on_hair | temples) & ~on_hat
    keep &= np.sqrt(((rgb - np.median(rgb[on_hat], 0)) ** 2).sum(-1)) > COLOUR_HAT_DISTANCE
    skin_palette = _skin_palette(rgb, lm, frame)
    if skin_palette is not None and keep.any():
        keep[keep] = ~_skin_like(rgb[keep], skin_palette)
    if keep.any():
        share, fringe = _background_share(rgb, in_person, keep, LOCAL_BACKGROUND_SIGMA * frame.width_px)
        keep &= ~(fringe & (share > MAX_BACKGROUND_SHARE))
    return torch.from_numpy(keep.astype(np.float32))


def _background_share(rgb: np.ndarray, person: np.ndarray, region: np.ndarray, sigma_px: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """How far each pixel of ``rgb [H, W, 3]`` is mixed toward the background beside it, and where that can be.

    The background is the pixels ``person [H, W]`` gives less than ``BACKGROUND_PERSON``; its colour beside a
    pixel is their blur over ``sigma_px``, normalised. The fringe (``[H, W]`` bool) is the pixels of ``region
    [H, W]`` (bool) with more than ``NEAR_BACKGROUND`` of background in that blur; the region's median colour
    inside the fringe (of all of it when nothing is inside) is the colour a pixel is unmixed from: its share
    (``[H, W]`` float, 0 at that colour, 1 at the background's) is its colour projected on the line between
    the two."""
    background = (person < BACKGROUND_PERSON).astype(np.float32)
    weight = cv2.GaussianBlur(background, (0, 0), sigma_px)
    local = cv2.GaussianBlur(rgb * background[..., None], (0, 0), sigma_px) / np.maximum(weight, 1e-6)[..., None]
    fringe = region & (weight > NEAR_BACKGROUND)
    inside = region & ~fringe
    core = np.median(rgb[inside if inside.any() else region], 0)
    toward = local - core
    share = ((rgb - core) * toward).sum(-1) / np.maximum((toward ** 2).sum(-1), 1e-6)
    return share, fringe


def _skin_like(pixels: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """``[N]`` bool: ``pixels [N, 3]`` within ``FOREHEAD_SKIN_DISTANCE`` of one of the ``skin [k, 3]`` colours
    (``_skin_palette``; the only test in a grey portrait), or within ``HUE_DEG`` of the CIE Lab hue of their mean
    colour and at least as saturated (chroma), when that is at least ``MIN_SKIN_CHROMA``."""
    lab = cv2.cvtColor(np.concatenate([pixels, skin.mean(0, keepdims=True)])[None].astype(np.float32),
                       cv2.COLOR_RGB2Lab)[0]
    chroma, hue = np.hypot(lab[:, 1], lab[:, 2]), np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
    difference = np.abs(hue[:-1] - hue[-1]) % 360
    hued = (np.minimum(difference, 360 - difference) < HUE_DEG) & (chroma[:-1] >= chroma[-1]) & \
        (chroma[-1] >= MIN_SKIN_CHROMA)
    return hued | (_distance(pixels, skin) < FOREHEAD_SKIN_DISTANCE)


def _skin_palette(rgb: np.ndarray, lm: np.ndarray, frame: FaceFrame) -> np.ndarray | None:
    """The face skin's colours ``[k, 3]`` (cheeks and nose, without their darkest quarter: nostrils, lashes and
    brows are not skin), or None when too little of the face is in the image."""
    region = oval_mask(lm, rgb.shape[:2]) & (frame.t > 0.25) & (frame.t < 0.6) & (np.abs(frame.s) < 0.3)
    if region.sum() < 20:
        return None
    skin = rgb[region]
    lum = skin.mean(1)
    return _palette(skin[lum >= np.quantile(lum, SKIN_DARKEST_QUANTILE)], PALETTE_SIZE[1])


def _bare_forehead(rgb: np.ndarray, sure: np.ndarray, skin_palette: np.ndarray, near_face: np.ndarray
                   ) -> np.ndarray:
    """``[h, w]`` bool: the skin between the face oval's top and the hairline (a high forehead, which the oval
    stops short of): the ``sure`` pixels within ``FOREHEAD_SKIN_DISTANCE`` of the skin's colours that are joined to
    ``near_face`` (the grown oval). None of it when that is more than ``MAX_FOREHEAD_SHARE`` of ``sure``: then
    the hair shares the skin's colours (a posterized portrait) and colour cannot tell them apart."""
    skin_like = np.zeros(sure.shape, np.uint8)
    skin_like[sure] = _distance(rgb[sure], skin_palette) < FOREHEAD_SKIN_DISTANCE
    _, labels = cv2.connectedComponents(skin_like, connectivity=8)
    touching = np.unique(labels[near_face & (skin_like > 0)])
    forehead = np.isin(labels, touching[touching > 0])
    return forehead if forehead.sum() <= MAX_FOREHEAD_SHARE * sure.sum() else np.zeros_like(forehead)


def _hair_mask(rgb: np.ndarray, lm: np.ndarray, person: np.ndarray) -> np.ndarray:
    """``hair_mask`` on ``rgb [h, w, 3]`` float, landmarks ``[478, 2]`` and ``person [h, w]`` 0..1 -> bool."""
    size = rgb.shape[:2]
    frame = face_frame(lm, size)
    face = oval_mask(lm, size, OVAL_MARGIN * frame.width_px)
    near_head = (np.abs(frame.s) < WIDEST_S) & (frame.t > LOWEST_T)
    in_person = person > PERSON_THRESHOLD
    candidates = in_person & ~face & near_head
    background = ~in_person & near_head
    background_palette = _palette(rgb[background], PALETTE_SIZE[0]) if background.sum() >= PALETTE_SIZE[0] else None
    sure = candidates & (frame.t > SURE_T)
    if background_palette is not None:  # the background the person mask is unsure of (a posterized sky's patch)
        doubtful = sure & ~_grow(person >= PERSON_DOUBT, DOUBT_MARGIN * frame.width_px)
        sure[doubtful] = _distance(rgb[doubtful], background_palette) > COLOUR_BACKGROUND_DISTANCE
    skin_palette = _skin_palette(rgb, lm, frame)
    if skin_palette is not None:
        sure &= ~_bare_forehead(rgb, sure, skin_palette, oval_mask(lm, size, (OVAL_MARGIN + 0.03) * frame.width_px))
    if int(sure.sum()) < MIN_HAIR_PX:
        return np.zeros(size, bool)
    lower = candidates & ~sure
    hair_like = np.zeros(size, bool)
    if lower.any():
        pixels = rgb[lower]
        d_hair = _distance(pixels, _palette(rgb[sure], PALETTE_SIZE[0]))
        keep = d_hair < HAIR_DISTANCE
        if skin_palette is not None:
            keep &= d_hair < _distance(pixels, np.concatenate([skin_palette * shade for shade in SKIN_SHADES]))
        if background_palette is not None:  # the background the person mask takes in (light hair on white)
            keep &= _distance(pixels, background_palette) > COLOUR_BACKGROUND_DISTANCE
        hair_like[lower] = keep
    hair = (sure | hair_like).astype(np.uint8)
    hair = cv2.morphologyEx(hair, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    _, labels = cv2.connectedComponents(hair, connectivity=8)
    joined = np.unique(labels[sure & (hair > 0)])
    return np.isin(labels, joined[joined > 0])
