"""Fit the head model to MediaPipe landmarks: camera + head pose, identity, expression, then a smooth per-vertex
correction (DESIGN.md §5 "Unwrap").

The fit works on the 478 landmark points only (the head model's landmark embedding is linear in the vertices,
so identity and expression bases are gathered to the landmarks once per head). From a PnP start it runs a damped
Gauss-Newton (Levenberg-Marquardt) solve with an analytic Jacobian: 2D reprojection error plus a weak MediaPipe
depth term, a Gaussian prior on identity and an L1 (sparse) prior on the expression weights, which stay in [0, 1]
(projected Newton: weights held at a bound drop out of the step). A short first solve finds outlying landmarks,
which the full second solve discounts with Cauchy weights; as the fitted view turns away from frontal, landmarks on
no facial feature of their own (cheeks, forehead, jaw contour) and the near half's features away from the midline
count less (``_view_trust``), the Cauchy weights narrow (``_robust_weights``), and a weak prior holds the head
about level to the camera (TURNED_PITCH_PRIOR). A fixed field of
view stands in for the unknown focal length. The correction is one sparse linear solve, factorised once per head:
a smooth (bending + membrane) displacement of every vertex that moves the landmarks onto their detections in the
image plane.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from fica.drive.expression import ARKIT_NAMES, Expression
from fica.head.model import REGIONS, HeadModel
from fica.render.camera import Camera, intrinsics
from fica.rotations import axis_angle_to_matrix, gaze_from_direction, ypr_from_rotation
from fica.threads import one_thread
from fica.unwrap.landmarks import FACE_OVAL, NUM_LANDMARKS, feature_landmarks
from fica.uv_ops import smoothstep, sphere_centre

FIT_FOV_DEG = 25.0  # assumed vertical field of view of a portrait
# The head frame seen by a frontal camera: camera x = head x, camera y = -head y, camera z = -head z.
R_FRONT = torch.diag(torch.tensor([1.0, -1.0, -1.0]))

OVAL_WEIGHT = 0.3  # silhouette landmarks slide over the surface as the head turns
# The ring above each upper lid: MediaPipe keeps these on the lid crease, which hardly moves in a blink, while the
# head model's lid skin under them closes with the lid; trusted less so that they do not hold blinks open.
LID_CREASE = (27, 28, 29, 30, 56, 247, 257, 258, 259, 260, 286, 467)
LID_CREASE_WEIGHT = 0.2
CHIN = (152, 148, 377, 176, 400, 149, 378)  # face-oval landmarks around the chin tip: they stay put, trusted fully
IRIS = slice(468, 478)  # iris landmarks follow the gaze, which the head's surface embedding cannot: left out
IRIS_CENTRES = [468, 473]  # ...and give the gaze instead (gaze_from_landmarks)
# MediaPipe places the landmarks on no facial feature (cheeks, forehead, jaw contour) from its face-shape prior,
# which on a turned face departs from the head's surface: on the examples' avatars rendered at 45° those of the
# near half sit 4-12 px (the contour 11-27 px) of a ~230 px wide face outward of their true places, all to one
# side, and fitting them pulls the head bigger, off-centre and less turned (the eye, brow, lip and nose landmarks
# err 2-10 px, less one-sidedly). Their trust falls to TURNED_SHAPE_TRUST as the camera turns from TURN_DEG[0]
# to TURN_DEG[1] off the face's front, which halves the misregistration of turned faces
# (fica.cycle.turned_registration); frontal portraits keep their fit.
TURNED_SHAPE_TRUST = 0.1
TURN_DEG = (5.0, 30.0)
# The same prior drags the near half's eye and brow landmarks outward, the more the farther they lie from the
# midline: on the examples' avatars at ±45° the near eye's inner corner errs 1-10 px, its outer corner 3-17 px, the
# brow's tail up to 19 px (Grace Hopper's glasses, the stylized astronaut), while the far half's eye stays within
# 2-5 px. A feature landmark on the near half loses trust like the featureless ones, in proportion to a smoothstep
# of its distance from the midline (x of the mean head, metres) over NEAR_LATERAL_M.
NEAR_LATERAL_M = (0.005, 0.035)
ROBUST_SCALE = 0.06  # landmarks off by more than this fraction of the face width count less (Cauchy weights)
# ...and by this fraction of it on a turned face, where many more landmarks come from MediaPipe's prior than from
# the image (scaled like the trust, over TURN_DEG). With both, Grace Hopper's fits at +45° / -45° misregister 1.9 /
# 2.5% of the face width instead of 3.7 / 3.1%; over the examples' avatars at ±30-60° 2.8% instead of 3.3%.
TURNED_ROBUST_SCALE = 0.03
# On a turned face MediaPipe's mesh is its face-shape prior posed onto the visible features, and it can pitch the
# whole face: on Grace Hopper's avatar rendered level at +45° / -45° (384²) every landmark group agrees on a head
# pitched 3.4 / 5.1° down, while fitting the true places of the same landmarks gives 0.2 / 0.6° (a Lambert render
# of the fitted head does not show MediaPipe's error there, so it cannot be subtracted). The landmarks tell pitch
# poorly on a turned face, so a fit turned sideways pays for pitching its head toward or away from the camera (the
# head's up axis along the line of sight, about the sine of the pitch) with this weight, in (face widths)^2 like
# the landmark term, scaled like the trust over TURN_DEG of the camera's azimuth: portraits are mostly taken with
# the head about level. Grace Hopper's turned fits then pitch 2.2 / 3.3° off, the examples' avatars at ±30-60°
# 2.2° on average instead of 3.0°. The price is that a real nod reads smaller: between the photos' avatars seen at
# ±45° from 10° above and from 10° below, the fitted pitch changes by 47-65% of the true change instead of
# 84-110%. A frontal fit, pitched or not, is untouched.
TURNED_PITCH_PRIOR = 0.002
# MediaPipe's relative depth is coarse: on renders of the head it correlates ~0.8-0.9 with the true depth and
# spans ~0.6-0.8 of it, so it enters rescaled and with a small weight.
DEPTH_WEIGHT = 0.02
MEDIAPIPE_DEPTH_SCALE = 0.7
IDENTITY_PRIOR = 2e-5  # per unit coefficient squared, in (face widths)^2 of mean landmark error
EXPRESSION_L1 = 2e-5  # per unit weight
# Blendshapes that landmarks barely tell apart from pose, identity or each other pay more for being used.
SUBTLE_EXPRESSION_L1 = 8e-5
SUBTLE_EXPRESSIONS = ("eyeLook", "eyeSquint", "eyeWide", "jawForward", "jawLeft", "jawRight", "mouthLeft",
                      "mouthRight", "mouthDimple", "mouthRoll", "mouthShrug", "mouthPress", "cheekPuff",
                      "cheekSquint", "noseSneer", "tongueOut")
EXPRESSION_L2 = 2e-6
# Correction solve, relative to the landmark term: bending (bi-Laplacian) keeps it smooth, membrane (Laplacian)
# and damping make it fade out away from the landmarks instead of extrapolating over the scalp and neck.
REWEIGHT_ROUNDS = 2  # fit_expression: solve, renew the robust weights from the result, solve again
CORRECTION_BENDING = 0.3
CORRECTION_MEMBRANE = 0.05
CORRECTION_DAMPING = 1e-3


@dataclass
class Fit:
    """The head model fitted to one portrait.

    camera: world (head frame) -> the portrait's pixels; its ``viewmat`` includes the head pose.
    identity: ``[K]`` identity coefficients; expression: ``[52]`` ARKit weights 0..1;
    correction: ``[V, 3]`` metres, smooth per-vertex displacement added after identity and expression;
    error_px: median landmark reprojection error after the correction (median: a few landmarks can be far off
    where MediaPipe or the landmark embedding is); face_width_px: landmark extent along x;
    gaze_deg: ``[2]`` (yaw, pitch) of the eyes from the iris landmarks, as ``Expression.gaze``.
    """

    camera: Camera
    identity: torch.Tensor
    expression: torch.Tensor
    correction: torch.Tensor
    error_px: float
    face_width_px: float
    gaze_deg: torch.Tensor | None = None

    @property
    def rotation_deg(self) -> torch.Tensor:
        """Head (yaw, pitch, roll) in degrees, as ``fica.rotations.rotation_ypr`` (R = Ry @ Rx @ Rz)."""
        return ypr_from_rotation(R_FRONT @ self.camera.viewmat[:3, :3])

    def neutral_vertices(self, head: HeadModel) -> torch.Tensor:
        """Fitted vertices ``[V, 3]`` at neutral expression (identity + correction)."""
        return head.deform(self.identity) + self.correction

    def vertices(self, head: HeadModel) -> torch.Tensor:
        """Fitted vertices ``[V, 3]`` with the fitted expression (in the head frame; the pose lives in the camera)."""
        return head.deform(self.identity, self.expression) + self.correction

    def to_expression(self) -> Expression:
        """The expression weights, head rotation and gaze."""
        return Expression(self.expression.clone(), self.rotation_deg, self.gaze_deg)


@dataclass
class _LandmarkBases:
    neutral: torch.Tensor  # [478, 3]
    identity: torch.Tensor  # [K, 478, 3]
    expression: torch.Tensor  # [52, 478, 3]
    weights: torch.Tensor  # [478] per-landmark weight of the reprojection term
    shape_only: torch.Tensor  # [478] bool, landmarks on no facial feature (see TURNED_SHAPE_TRUST)
    gather: sp.csr_matrix  # [478, V] landmark = gather @ vertices


@lru_cache(maxsize=4)
def _landmark_bases(head: HeadModel) -> _LandmarkBases:
    tri = head.faces[head.landmark_face]  # [478, 3]
    rows = np.repeat(np.arange(NUM_LANDMARKS), 3)
    gather = sp.csr_matrix((head.landmark_bary.reshape(-1).numpy().astype(np.float64),
                            (rows, tri.reshape(-1).numpy())), shape=(NUM_LANDMARKS, head.num_vertices))
    weights = torch.ones(NUM_LANDMARKS)
    weights[list(FACE_OVAL)] = OVAL_WEIGHT
    weights[list(CHIN)] = 1.0
    weights[list(LID_CREASE)] = LID_CREASE_WEIGHT
    weights[IRIS] = 0.0
    shape_only = torch.ones(NUM_LANDMARKS, dtype=torch.bool)
    shape_only[list(feature_landmarks())] = False
    shape_only[IRIS] = False
    return _LandmarkBases(head.landmarks(head.vertices), torch.vmap(head.landmarks)(head.identity_basis),
                          torch.vmap(head.landmarks)(head.expression_basis), weights, shape_only, gather)


@lru_cache(maxsize=4)
def _correction_solver(head: HeadModel):
    """Factorisation of (Gᵀ W G + b LᵀL + m L + d I) for the correction solve, and Gᵀ W. G ``[478, V]`` gathers
    the landmarks from the vertices, L is the uniform graph Laplacian of the mesh."""
    bases = _landmark_bases(head)
    n = head.num_vertices
    f = head.faces.numpy()
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    lap = sp.diags(np.asarray(adj.sum(1)).ravel()) - adj
    gtw = bases.gather.T @ sp.diags(bases.weights.numpy().astype(np.float64))
    system = (gtw @ bases.gather + CORRECTION_BENDING * (lap.T @ lap) + CORRECTION_MEMBRANE * lap
              + CORRECTION_DAMPING * sp.identity(n))
    return spla.splu(system.tocsc()), gtw


def _face_width(landmarks: torch.Tensor) -> float:
    return float(landmarks[:, 0].max() - landmarks[:, 0].min())


class _Problem:
    """The landmark fit as a damped Gauss-Newton problem with an analytic Jacobian.

    State: camera rotation R ``[3, 3]`` (updated by left-multiplied axis-angle steps), translation t ``[3]`` (m)
    and coefficients c ``[M]`` = identity (optional, first) then the 52 expression weights. Residuals are in face
    widths: 2D reprojection ``[478 * 2]``, relative depth ``[478]``, the pitch prior ``[1]`` (the head's up axis
    along the camera's line of sight, weighted by ``sqrt(pitch_prior)``) and the Gaussian priors ``[M]``.
    """

    def __init__(self, landmarks: torch.Tensor, camera_K: torch.Tensor, bases: _LandmarkBases,
                 fixed_points: torch.Tensor, fit_identity: bool, weights: torch.Tensor | None = None,
                 pitch_prior: float = 0.0):
        dt = torch.float64
        self.target = landmarks[:, :2].to(dt)
        z = landmarks[:, 2].to(dt)
        self.target_depth = (z - z.mean()) * MEDIAPIPE_DEPTH_SCALE
        self.focal = camera_K.diagonal()[:2].to(dt)
        self.centre = camera_K[:2, 2].to(dt)
        self.fixed = fixed_points.to(dt)  # [478, 3] the landmarks that do not depend on c
        parts = ([bases.identity] if fit_identity else []) + [bases.expression]
        self.basis = torch.cat(parts).to(dt)  # [M, 478, 3]
        self.num_identity = bases.identity.shape[0] if fit_identity else 0
        m = self.basis.shape[0]
        prior = torch.full((m,), EXPRESSION_L2, dtype=dt)
        prior[:self.num_identity] = IDENTITY_PRIOR
        self.sqrt_prior = prior.sqrt()
        self.l1 = torch.zeros(m, dtype=dt)
        self.l1[self.num_identity:] = torch.tensor(
            [SUBTLE_EXPRESSION_L1 if name.startswith(SUBTLE_EXPRESSIONS) else EXPRESSION_L1 for name in ARKIT_NAMES],
            dtype=dt)
        norm = 1.0 / (math.sqrt(NUM_LANDMARKS) * _face_width(landmarks))
        weights = bases.weights if weights is None else weights
        self.w2d = weights.to(dt).sqrt() * norm  # [478]
        self.wz = math.sqrt(DEPTH_WEIGHT) * norm
        self.w_pitch = math.sqrt(pitch_prior)
        self.depth_ref = None

    def points(self, c: torch.Tensor) -> torch.Tensor:
        return self.fixed + (c @ self.basis.reshape(len(c), -1)).reshape(-1, 3)  # [478, 3]

    def evaluate(self, R, t, c, jacobian: bool = False):
        """Residuals ``[3 * 478 + 1 + M]`` and, if asked, their Jacobian ``[3 * 478 + 1 + M, 6 + M]`` with respect to
        (rotation step, translation, coefficients)."""
        Y = self.points(c) @ R.T  # [478, 3] rotated
        Xc = Y + t
        z = Xc[:, 2]
        uv = Xc[:, :2] / z[:, None] * self.focal + self.centre
        r2d = (uv - self.target) * self.w2d[:, None]
        if self.depth_ref is None:
            self.depth_ref = float(t[2])
        zscale = self.focal[0] / self.depth_ref
        rz = ((z - z.mean()) * zscale - self.target_depth) * self.wz
        up = R[:, 1]  # the head's +y in camera coordinates
        r = torch.cat([r2d.reshape(-1), rz, (up[2] * self.w_pitch)[None], c * self.sqrt_prior])
        if not jacobian:
            return r, None
        n, m = len(z), len(c)
        dw = torch.zeros(n, 3, 3, dtype=Y.dtype)  # d(w x Y)/dw = -[Y]x
        dw[:, 0, 1], dw[:, 0, 2] = Y[:, 2], -Y[:, 1]
        dw[:, 1, 0], dw[:, 1, 2] = -Y[:, 2], Y[:, 0]
        dw[:, 2, 0], dw[:, 2, 1] = Y[:, 1], -Y[:, 0]
        dt = torch.eye(3, dtype=Y.dtype).expand(n, 3, 3)
        dc = (self.basis @ R.T).permute(1, 2, 0)  # [478, 3, M]
        D = torch.cat([dw, dt, dc], 2)  # [478, 3, P] d Xc / d params
        inv_z = 1.0 / z
        J2d = (D[:, :2] - (Xc[:, :2] * inv_z[:, None])[..., None] * D[:, 2:3]) * inv_z[:, None, None]
        J2d = J2d * (self.focal[None, :, None] * self.w2d[:, None, None])
        Jz = (D[:, 2] - D[:, 2].mean(0)) * (zscale * self.wz)
        Jpitch = torch.zeros(1, 6 + m, dtype=Y.dtype)  # d(w x up)_z / dw = (up_y, -up_x, 0)
        Jpitch[0, 0], Jpitch[0, 1] = up[1] * self.w_pitch, -up[0] * self.w_pitch
        Jp = torch.cat([torch.zeros(m, 6, dtype=Y.dtype), torch.diag(self.sqrt_prior)], 1)
        return r, torch.cat([J2d.reshape(2 * n, -1), Jz, Jpitch, Jp])

    def energy(self, R, t, c) -> float:
        r, _ = self.evaluate(R, t, c)
        return float((r * r).sum() + (self.l1 * c).sum())

    def solve(self, R: torch.Tensor, t: torch.Tensor, c: torch.Tensor, iterations: int):
        """Levenberg-Marquardt; expression weights are projected onto [0, 1] after each step."""
        R, t, c = R.double(), t.double(), c.double()
        expr = slice(self.num_identity, None)
        damping = 1e-3
        energy = self.energy(R, t, c)
        for _ in range(iterations):
            r, J = self.evaluate(R, t, c, jacobian=True)
            JtJ = J.T @ J
            g = J.T @ r
            g[6:] += 0.5 * self.l1  # the L1 term's gradient, halved like the Gauss-Newton system
            # Projected Newton: weights held at a bound by their gradient stay out of this step.
            ce, ge = c[expr], g[6:][expr]
            held = torch.zeros(len(g), dtype=torch.bool)
            held[6:][expr] = ((ce <= 0) & (ge > 0)) | ((ce >= 1) & (ge < 0))
            g[held] = 0
            JtJ[held] = 0
            JtJ[:, held] = 0
            improved = False
            for _ in range(8):
                A = JtJ + damping * torch.diag(JtJ.diagonal().clamp(min=1e-12)) + torch.diag(held.to(JtJ))
                step = torch.linalg.solve(A, -g)
                R_new = axis_angle_to_matrix(step[:3]) @ R
                t_new = t + step[3:6]
                c_new = c + step[6:]
                c_new[expr] = c_new[expr].clamp(0, 1)
                e = self.energy(R_new, t_new, c_new)
                if e < energy:
                    improved, relative = True, (energy - e) / max(energy, 1e-30)
                    R, t, c, energy = R_new, t_new, c_new, e
                    damping = max(damping / 3, 1e-9)
                    break
                damping *= 4
            if not improved or relative < 1e-5:
                break
        return R.float(), t.float(), c.float()


def _initial_pose(landmarks: torch.Tensor, points: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rigid pose (camera rotation ``[3, 3]``, translation ``[3]``) from PnP on the model's landmarks."""
    import cv2

    ok, rvec, tvec = cv2.solvePnP(points.double().numpy(), landmarks[:, :2].double().numpy(), K.double().numpy(),
                                  None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok or tvec[2, 0] <= 0:
        return R_FRONT.clone(), torch.tensor([0.0, 0.0, 1.0])
    return torch.from_numpy(cv2.Rodrigues(rvec)[0]).float(), torch.from_numpy(tvec[:, 0]).float()


def _camera(R: torch.Tensor, t: torch.Tensor, K: torch.Tensor, image_size: tuple[int, int]) -> Camera:
    viewmat = torch.eye(4)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = t
    return Camera(viewmat, K.clone(), int(image_size[1]), int(image_size[0]))


def _reprojection_error_px(camera: Camera, points: torch.Tensor, landmarks: torch.Tensor) -> float:
    uv, _ = camera.project(points)
    return float((uv - landmarks[:, :2]).norm(dim=1).median())


def _robust_weights(camera: Camera, points: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Cauchy weights ``[478]`` of the landmarks' reprojection errors (1 for a perfect fit); their scale narrows
    from ROBUST_SCALE to TURNED_ROBUST_SCALE as ``camera`` turns off the face's front (``_turn``)."""
    uv, _ = camera.project(points)
    scale = ROBUST_SCALE + (TURNED_ROBUST_SCALE - ROBUST_SCALE) * _turn(camera)
    error = (uv - landmarks[:, :2]).norm(dim=1) / (scale * _face_width(landmarks))
    return 1.0 / (1.0 + error ** 2)


def _turn(camera: Camera, sideways: bool = False) -> torch.Tensor:
    """How far ``camera`` has turned off the face's front (+z in the head frame): 0 within TURN_DEG[0] of it,
    1 beyond TURN_DEG[1], a smoothstep between (scalar tensor). ``sideways``: only the turn about the head's up axis
    counts (the camera's azimuth), not how far above or below the face it sits."""
    centre = camera.center.float()
    if sideways:
        centre = centre * torch.tensor([1.0, 0.0, 1.0])
    off_front = torch.rad2deg(torch.acos((centre[2] / centre.norm()).clamp(-1, 1)))
    return smoothstep(off_front, *TURN_DEG)


def _view_trust(bases: _LandmarkBases, camera: Camera) -> torch.Tensor:
    """Per-landmark trust ``[478]`` in the view of ``camera``, falling toward TURNED_SHAPE_TRUST as the camera
    turns off the face's front (``_turn``): fully for the landmarks on no facial feature, for the features on the
    half nearer the camera by a smoothstep of their distance from the midline over NEAR_LATERAL_M; 1 for the
    others and in a frontal view."""
    centre = camera.center.float()
    near_side = bases.neutral[:, 0] * torch.sign(centre[0])  # [478] metres toward the camera's side
    reach = torch.where(bases.shape_only, torch.ones(()), smoothstep(near_side, *NEAR_LATERAL_M))
    return 1 - (1 - TURNED_SHAPE_TRUST) * _turn(camera) * reach


def _correction(head: HeadModel, camera: Camera, vertices: torch.Tensor, landmarks: torch.Tensor,
                trust: torch.Tensor, iterations: int = 2) -> torch.Tensor:
    """Smooth per-vertex displacement ``[V, 3]`` that moves the projected landmarks onto the detections.

    trust: ``[478]`` 0..1, how far each landmark's offset is followed (outliers stay where the fit put them).
    """
    solver, gtw = _correction_solver(head)
    gather = _landmark_bases(head).gather
    R = camera.viewmat[:3, :3].double()
    correction = torch.zeros(vertices.shape, dtype=torch.float64)
    for _ in range(iterations):
        uv, z = camera.project(head.landmarks(vertices + correction.float()))
        residual_px = ((landmarks[:, :2] - uv) * trust[:, None]).double()
        # The image-plane offset at each landmark's depth, in camera coordinates, turned into the head frame.
        offset_cam = torch.cat([residual_px * (z.double()[:, None] / camera.K.diagonal()[:2].double()),
                                torch.zeros(NUM_LANDMARKS, 1, dtype=torch.float64)], 1)
        target = gather @ correction.numpy() + (offset_cam @ R).numpy()  # [478, 3]
        correction = torch.from_numpy(solver.solve(np.ascontiguousarray(gtw @ target)))
    return correction.float()


@lru_cache(maxsize=4)
def _eyeballs(head: HeadModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertex ids of the subject's right (-x) and left (+x) eyeball surfaces (the head's "eyes" region)."""
    ids = torch.unique(head.faces[head.face_region == REGIONS.index("eyes")])
    x = head.vertices[ids, 0]
    return ids[x < 0], ids[x > 0]


def gaze_from_landmarks(fit: Fit, head: HeadModel, landmarks: torch.Tensor) -> torch.Tensor:
    """Gaze (yaw, pitch) in degrees ``[2]``, the mean of both eyes, from MediaPipe's iris centres.

    Each eyeball is a sphere fitted to the head's eyeball vertices; the camera ray through an iris centre meets it
    (or passes closest to it) at the pupil, and the pupil's direction from the centre is the eye's gaze.
    Positive yaw looks toward +x (the subject's left), positive pitch looks up (as ``fica.rotations.gaze_rotation``).
    """
    neutral = fit.neutral_vertices(head)
    origin = fit.camera.center
    R, K = fit.camera.viewmat[:3, :3], fit.camera.K
    angles = []
    for ids in _eyeballs(head):
        centre = sphere_centre(neutral[ids])
        radius = float((neutral[ids] - centre).norm(dim=1).mean())
        # MediaPipe's iris centres are 468 and 473; take the one nearest this eye in the image.
        pixel, _ = fit.camera.project(centre[None])
        iris = landmarks[IRIS_CENTRES, :2]
        px = iris[(iris - pixel).norm(dim=1).argmin()]
        ray = torch.linalg.solve(K, torch.cat([px, px.new_ones(1)]))
        ray = torch.nn.functional.normalize(R.T @ ray, dim=0)  # head frame
        along = float((centre - origin) @ ray)
        closest = origin + along * ray
        miss2 = float(((closest - centre) ** 2).sum())
        pupil = closest - math.sqrt(max(radius ** 2 - miss2, 0.0)) * ray  # the near intersection
        d = torch.nn.functional.normalize(pupil - centre, dim=0)
        angles.append(gaze_from_direction(d))
    return torch.rad2deg(torch.stack(angles).mean(0))


def fit_head(landmarks: torch.Tensor, image_size: tuple[int, int], head: HeadModel, *,
             fov_deg: float = FIT_FOV_DEG, iterations: int = 15, correct: bool = True) -> Fit:
    """Fit camera, head pose, identity, expression and (if ``correct``) a smooth correction to the landmarks.

    landmarks: ``[478, 3]`` as ``detect_landmarks`` returns (pixels, z like x); image_size: (height, width).
    """
    landmarks = torch.as_tensor(landmarks, dtype=torch.float32)
    bases = _landmark_bases(head)
    K = intrinsics(fov_deg, int(image_size[1]), int(image_size[0]))
    R0, t0 = _initial_pose(landmarks, bases.neutral, K)
    k = bases.identity.shape[0]
    R, t, c = R0, t0, torch.zeros(k + bases.expression.shape[0])
    robust = torch.ones(NUM_LANDMARKS)
    # A short plain solve finds the outlying landmarks and the view; a full one with robust weights and the
    # view's trust discounts them.
    for steps in (iterations // 3, iterations):
        view = _camera(R, t, K, image_size)
        trust = robust * _view_trust(bases, view)
        problem = _Problem(landmarks, K, bases, bases.neutral, fit_identity=True, weights=bases.weights * trust,
                           pitch_prior=TURNED_PITCH_PRIOR * float(_turn(view, sideways=True)))
        with one_thread():
            R, t, c = problem.solve(R, t, c, steps)
        camera = _camera(R, t, K, image_size)
        robust = _robust_weights(camera, problem.points(c.double()).float(), landmarks)
    identity, expression = c[:k], c[k:]
    vertices = head.deform(identity, expression)
    correction = (_correction(head, camera, vertices, landmarks, robust * _view_trust(bases, camera)) if correct
                  else torch.zeros_like(vertices))
    error = _reprojection_error_px(camera, head.landmarks(vertices + correction), landmarks)
    fit = Fit(camera, identity, expression, correction, error, _face_width(landmarks))
    fit.gaze_deg = gaze_from_landmarks(fit, head, landmarks)
    return fit


def fit_expression(landmarks: torch.Tensor, image_size: tuple[int, int], head: HeadModel,
                   previous: Fit | None = None, *, iterations: int = 6) -> Fit:
    """Per-frame fit of head pose and expression, warm-started from ``previous`` whose identity and correction
    are held fixed; without ``previous``, a full ``fit_head`` without correction. Drives avatars from video.
    """
    landmarks = torch.as_tensor(landmarks, dtype=torch.float32)
    if previous is None:
        return fit_head(landmarks, image_size, head, correct=False)
    bases = _landmark_bases(head)
    neutral = previous.neutral_vertices(head)
    # Robust weights start from the previous frame's state (an outlying landmark stays outlying) and are renewed
    # from each solve.
    seen = head.landmarks(head.deform(expression=previous.expression, base=neutral))
    camera, expression = previous.camera, previous.expression
    with one_thread():
        for _ in range(REWEIGHT_ROUNDS):
            # Robust weights and the view's trust from the current state: a frame far from ``previous`` (a jaw
            # that opened, a head that turned) first reads its moved landmarks as outliers, so the weights are
            # renewed from the first solve.
            weights = bases.weights * _robust_weights(camera, seen, landmarks) * _view_trust(bases, camera)
            problem = _Problem(landmarks, previous.camera.K, bases, head.landmarks(neutral), fit_identity=False,
                               weights=weights)
            R, t, expression = problem.solve(camera.viewmat[:3, :3], camera.viewmat[:3, 3], expression,
                                             iterations)
            camera = _camera(R, t, previous.camera.K, image_size)
            seen = head.landmarks(head.deform(expression=expression, base=neutral))
    error = _reprojection_error_px(camera, head.landmarks(head.deform(expression=expression, base=neutral)),
                                   landmarks)
    fit = Fit(camera, previous.identity, expression, previous.correction, error, _face_width(landmarks))
    fit.gaze_deg = gaze_from_landmarks(fit, head, landmarks)
    return fit
