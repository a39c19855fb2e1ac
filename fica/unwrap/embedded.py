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
from fica.unwrap.fit import fit_head
from fica.unwrap.hair_mask import hair_mask
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
        size = tuple(image.shape[:2])
        fit = fit_head(landmarks, size, self.head)
        raster = rasterize_fit(fit, self.head, size)
        dense = dense_from_fit(fit, self.head, size, raster)
        layout = self.head.uv_layout(self.uv_resolution)
        neutral = fit.neutral_vertices(self.head)
        partial = unwrap_to_uv(image, dense, fit.camera, layout, fit.vertices(self.head), raster[2], neutral)
        expression = Expression(fit.expression)  # weights only: the head pose lives in the camera
        return Unwrapped(partial=partial, dense=dense, camera=fit.camera, expression=expression,
                         fitted_geometry=layout.vertices_to_map(neutral), landmarks=landmarks,
                         person_mask=person, hair_mask=hair_mask(image, landmarks, person))
