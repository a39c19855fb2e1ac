"""The embedded unwrap stage: MediaPipe landmarks -> head-model fit -> dense maps -> partial UV maps
(DESIGN.md §5 "Unwrap"). Offline, CPU, no download."""
from __future__ import annotations

from dataclasses import replace

import torch

from fica.drive.expression import Expression
from fica.head.model import HeadModel, default_head
from fica.unwrap.base import Unwrapped, Unwrapper
from fica.unwrap.dense import dense_from_fit, rasterize_fit
from fica.threads import one_thread
from fica.unwrap.fit import Fit, fit_head
from fica.unwrap.hair_mask import hair_colour_mask, hair_mask
from fica.unwrap.headwear import headwear_mask
from fica.unwrap.landmarks import find_face, person_mask
from fica.unwrap.uv_unwrap import unwrap_to_uv


class EmbeddedUnwrapper(Unwrapper):
    """``__call__(image [H, W, 3] float 0..1) -> Unwrapped``; raises NoFaceFound, MultipleFaces, ImageTooSmall.

    CPU code by nature (MediaPipe, the sparse landmark fit): ``device`` is always the CPU, whatever the
    pipeline's; the pipeline moves the results to its own device.
    """

    implementation = "embedded: MediaPipe face mesh + MakeHuman head fit"
    device = torch.device("cpu")

    def __init__(self, head: HeadModel | None = None, uv_resolution: int = 256):
        self.head = head if head is not None else default_head()
        self.uv_resolution = int(uv_resolution)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> Unwrapped:
        image = torch.as_tensor(image).cpu()
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        face = find_face(image)
        person = person_mask(image)
        with one_thread():
            return replace(self._unwrap(image, face.landmarks, person), face_note=face.note)

    def _unwrap(self, image: torch.Tensor, landmarks: torch.Tensor, person: torch.Tensor) -> Unwrapped:
        fit = fit_head(landmarks, tuple(image.shape[:2]), self.head)
        return unwrap_fitted(image, fit, self.head, self.uv_resolution, landmarks, person)


def unwrap_fitted(image: torch.Tensor, fit: Fit, head: HeadModel, uv_resolution: int,
                  landmarks: torch.Tensor | None = None, person: torch.Tensor | None = None) -> Unwrapped:
    """Dense and partial maps of ``image [H, W, 3]`` seen through an existing ``fit`` (its camera may be another
    calibrated view of the same head, as in a multi-view capture); with ``landmarks`` and the ``person`` mask
    ``[H, W]`` also the hair, headwear and hair colour masks."""
    size = tuple(image.shape[:2])
    raster = rasterize_fit(fit, head, size)
    dense = dense_from_fit(fit, head, size, raster)
    layout = head.uv_layout(uv_resolution)
    neutral = fit.neutral_vertices(head)
    partial = unwrap_to_uv(image, dense, fit.camera, layout, fit.vertices(head), raster[2], neutral, person)
    expression = Expression(fit.expression)  # weights only: the head pose lives in the camera
    hair = hair_mask(image, landmarks, person) if landmarks is not None and person is not None else None
    headwear = headwear_mask(image, landmarks, hair) if hair is not None else None
    colour = hair_colour_mask(image, landmarks, person, hair, headwear) if hair is not None else None
    return Unwrapped(partial=partial, dense=dense, camera=fit.camera, expression=expression,
                     fitted_geometry=layout.vertices_to_map(neutral), landmarks=landmarks,
                     person_mask=person, hair_mask=hair, headwear_mask=headwear,
                     hair_colour_mask=colour)
