"""Learned unwrap stage: the dense ViT predictor (the paper's fine-tuned Sapiens) replaces the landmark fit.

portrait -> letterboxed to the network's input -> per-pixel uv, xyz, normal, mask (DenseMaps) -> partial UV maps
(``fica.unwrap.uv_unwrap.unwrap_from_dense``); the camera comes from the xyz <-> pixel correspondences (linear
PnP at a fixed field of view, refined by robust Gauss-Newton), and the head model's identity basis is fitted to the
predicted xyz so the template geometry is complete where the portrait does not see it.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fica.drive.expression import Expression
from fica.models import QUIET_LOAD
from fica.models.inputs import letterbox, unletterbox
from fica.render.camera import DEFAULT_FOV_DEG, Camera, intrinsics, orbit_camera
from fica.rotations import axis_angle_to_matrix
from fica.unwrap.base import DenseMaps, Unwrapped, Unwrapper

COMPONENT = "dense_predictor"
MAX_CORRESPONDENCES = 4000  # pixels used by the camera solve and the identity fit
POSE_ITERATIONS = 10  # Gauss-Newton steps on the reprojection error after the linear solve
HUBER_PX = 1.0  # pixels; larger residuals (e.g. where an expression moved the surface) are down-weighted
IDENTITY_FIT_RESOLUTION = 256
IDENTITY_RIDGE = 1e-2  # Tikhonov weight on identity coefficients, relative to the mean diagonal of AᵀA


def solve_camera(points_m: torch.Tensor, pixels: torch.Tensor, width: int, height: int,
                 fov_deg: float = DEFAULT_FOV_DEG) -> Camera:
    """Camera from head-frame points ``[N, 3]`` seen at ``pixels [N, 2]`` (centres at +0.5), N ≥ 6.

    Linear PnP (DLT with known intrinsics) on normalised data, the nearest rotation and the translation
    re-solved by least squares with the rotation fixed, then a robust Gauss-Newton refinement (``refine_pose``)
    from it and from a frontal camera; the pose with the lower ``pose_cost`` wins.
    """
    K = intrinsics(fov_deg, width, height).double()
    X = points_m.double()
    ray = torch.cat([pixels.double(), torch.ones_like(pixels[:, :1]).double()], 1) @ torch.linalg.inv(K).T
    x, y = ray[:, 0:1], ray[:, 1:2]
    centre, spread = X.mean(0), (X - X.mean(0)).norm(dim=1).mean().clamp(min=1e-9)
    Xn = torch.cat([(X - centre) / spread, torch.ones_like(x)], 1)  # [N, 4]
    zeros = torch.zeros_like(Xn)
    A = torch.cat([torch.cat([Xn, zeros, -x * Xn], 1), torch.cat([zeros, Xn, -y * Xn], 1)])  # [2N, 12]
    P = torch.linalg.svd(A, full_matrices=False).Vh[-1].view(3, 4)
    if torch.det(P[:, :3]) < 0:
        P = -P
    U, S, Vh = torch.linalg.svd(P[:, :3])
    R = U @ Vh
    # With R fixed, x̂ × (R X + t) = 0 is linear in t.
    RX = X @ R.T
    rows_x = torch.stack([torch.ones_like(x[:, 0]), torch.zeros_like(x[:, 0]), -x[:, 0]], 1)
    rows_y = torch.stack([torch.zeros_like(y[:, 0]), torch.ones_like(y[:, 0]), -y[:, 0]], 1)
    B = torch.cat([rows_x, rows_y])
    rhs = torch.cat([x[:, 0] * RX[:, 2] - RX[:, 0], y[:, 0] * RX[:, 2] - RX[:, 1]])
    t = torch.linalg.lstsq(B, rhs[:, None]).solution[:, 0]
    # Noisy points can make the linear solution put the head behind the camera: also start from a frontal view,
    # refine both and keep the better one.
    frontal = orbit_camera(width=width, height=height, fov_deg=fov_deg).viewmat.double()
    refined = [refine_pose(R0, t0, X, pixels.double(), K) for R0, t0 in ((R, t), (frontal[:3, :3], frontal[:3, 3]))]
    R, t = min(refined, key=lambda Rt: pose_cost(*Rt, X, pixels.double(), K))
    viewmat = torch.eye(4, dtype=torch.float64)
    viewmat[:3, :3], viewmat[:3, 3] = R, t
    return Camera(viewmat.float(), K.float(), width, height)


def project_points(R: torch.Tensor, t: torch.Tensor, X: torch.Tensor, K: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels ``[N, 2]`` and camera depths ``[N]`` of head-frame points ``X [N, 3]`` under pose (R, t) and K."""
    cam = X @ R.T + t
    return cam[:, :2] / cam[:, 2:3].clamp(min=1e-6) @ K[:2, :2].T + K[:2, 2], cam[:, 2]


def pose_cost(R: torch.Tensor, t: torch.Tensor, X: torch.Tensor, pixels: torch.Tensor, K: torch.Tensor) -> float:
    """Median reprojection error in pixels; infinite when most points fall behind the camera."""
    proj, depth = project_points(R, t, X, K)
    if float((depth > 0).float().mean()) < 0.5:
        return float("inf")
    return float((proj - pixels).norm(dim=1).median())


def refine_pose(R: torch.Tensor, t: torch.Tensor, X: torch.Tensor, pixels: torch.Tensor, K: torch.Tensor,
                iterations: int = POSE_ITERATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Newton on the reprojection error with Huber weights (IRLS), starting from the pose (R, t).

    R ``[3, 3]``, t ``[3]``, X ``[N, 3]``, pixels ``[N, 2]``, K ``[3, 3]`` (float64). Returns the refined (R, t).
    """
    def residual(params: torch.Tensor) -> torch.Tensor:  # params: axis-angle update [3], translation update [3]
        return (project_points(axis_angle_to_matrix(params[:3]) @ R, t + params[3:], X, K)[0] - pixels).reshape(-1)

    params = torch.zeros(6, dtype=X.dtype)
    for _ in range(iterations):
        r = residual(params)
        J = torch.func.jacfwd(residual)(params)  # [2N, 6], forward mode: 6 inputs
        JW = J * (HUBER_PX / r.abs().clamp(min=1e-9)).clamp(max=1.0)[:, None]
        step = torch.linalg.solve(JW.T @ J + 1e-9 * torch.eye(6, dtype=X.dtype), -(JW.T @ r))
        params = params + step
        if step.abs().max() < 1e-10:
            break
    return axis_angle_to_matrix(params[:3]) @ R, t + params[3:]


def sample_maps(maps: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of chart maps ``[C, R, R]`` at chart coordinates ``uv [N, 2]`` -> ``[N, C]``."""
    grid = (uv * 2 - 1).view(1, 1, -1, 2).to(maps)
    return F.grid_sample(maps[None], grid, mode="bilinear", align_corners=False)[0, :, 0].T


def fit_identity(dense: DenseMaps, head, ridge: float = IDENTITY_RIDGE) -> torch.Tensor:
    """Identity coefficients ``[K]`` whose neutral head best matches the predicted xyz at the predicted uv
    (regularised least squares over the masked pixels). The identity basis is read from geometry maps at
    ``IDENTITY_FIT_RESOLUTION`` whatever the stage's UV resolution: sampled at the predicted uv, a coarser chart
    blurs the basis and the fit (measured: at 64² the fitted head's error to the truth was no longer under half the
    template's)."""
    layout = head.uv_layout(IDENTITY_FIT_RESOLUTION)
    keep = (dense.mask > 0.5).reshape(-1)
    uv, xyz = dense.uv.reshape(-1, 2)[keep].cpu(), dense.xyz.reshape(-1, 3)[keep].cpu()
    if len(uv) > MAX_CORRESPONDENCES:
        pick = torch.linspace(0, len(uv) - 1, MAX_CORRESPONDENCES).long()
        uv, xyz = uv[pick], xyz[pick]
    K = head.identity_basis.shape[0]
    if len(uv) == 0 or K == 0:
        return torch.zeros(K)
    neutral = layout.vertices_to_map(head.vertices)
    basis = torch.cat([layout.vertices_to_map(b) for b in head.identity_basis])  # [3K, R, R]
    inside = sample_maps(layout.valid, uv)[:, 0] > 0.99
    base = sample_maps(neutral, uv)[inside]  # [N, 3]
    A = sample_maps(basis, uv)[inside].view(-1, K, 3).permute(0, 2, 1).reshape(-1, K)  # [3N, K]
    b = (xyz[inside] - base).reshape(-1, 1)
    gram = A.T @ A
    lhs = gram + ridge * gram.diagonal().mean() * torch.eye(K)
    return torch.linalg.solve(lhs.double(), (A.T @ b).double())[:, 0].float()


class LearnedUnwrapper(Unwrapper):
    def __init__(self, model, *, uv_resolution: int = 256, implementation: str = "learned",
                 device: str | torch.device = "cpu", head=None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.uv_resolution = uv_resolution
        self.implementation = implementation
        self._head = head

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, source: str, uv_resolution: int = 256,
                        device: str | torch.device = "cpu") -> "LearnedUnwrapper":
        from fica.models.dense_vit import DenseViT

        model = DenseViT.from_pretrained(Path(folder) / COMPONENT, **QUIET_LOAD)
        return cls(model, uv_resolution=uv_resolution, implementation=f"learned: {source}/{COMPONENT}",
                   device=device)

    @property
    def head(self):
        if self._head is None:
            from fica.head.model import default_head

            self._head = default_head()
        return self._head

    @torch.no_grad()
    def dense(self, image: torch.Tensor) -> DenseMaps:
        """DenseMaps at the portrait's size from ``image [H, W, 3]`` 0..1."""
        H, W = image.shape[:2]
        x, box = letterbox(image.to(self.device).permute(2, 0, 1).float(), self.model.image_size)
        raw = unletterbox(self.model(x), box, (H, W))
        out = self.model.activate(raw)
        on = (out["mask"][0, 0] > 0.5).float()
        hwc = lambda t: (t[0] * on).permute(1, 2, 0).cpu()  # noqa: E731
        return DenseMaps(uv=hwc(out["uv"]), xyz=hwc(out["xyz"]), normal=hwc(out["normal"]),
                         mask=out["mask"][0, 0].cpu())

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> Unwrapped:
        from fica.errors import NoFaceFound
        from fica.unwrap.uv_unwrap import unwrap_from_dense

        image = image.float().cpu()
        H, W = image.shape[:2]
        dense = self.dense(image)
        on = (dense.mask > 0.5).nonzero()  # [N, 2] (row, column)
        if len(on) < 6:
            raise NoFaceFound("The dense predictor found no head surface in the portrait.")
        pick = torch.linspace(0, len(on) - 1, min(len(on), MAX_CORRESPONDENCES)).long()
        rows, cols = on[pick, 0], on[pick, 1]
        pixels = torch.stack([cols, rows], 1).float() + 0.5
        camera = solve_camera(dense.xyz[rows, cols], pixels, W, H)
        identity = fit_identity(dense, self.head)
        layout = self.head.uv_layout(self.uv_resolution)
        fitted_geometry = layout.vertices_to_map(self.head.deform(identity=identity))
        partial = unwrap_from_dense(image, dense, self.uv_resolution, camera=camera)
        return Unwrapped(partial=partial, dense=dense, camera=camera, expression=Expression.neutral(),
                         fitted_geometry=fitted_geometry)
