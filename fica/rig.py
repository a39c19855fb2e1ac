"""The rigged avatar file ``avatar_rig.zip`` (fica-rig v1, DESIGN.md §3): any prior's linearisation at neutral.

Files in the zip (all little-endian):

    manifest.json       {"format": "fica-rig", "version": 1, "count": N, "moving": M, "expressions": [52 names],
                         "neck_pivot": [x, y, z], "units": "metre", "frame": "..."}
    gaussians.ply       the neutral Gaussians, 3DGS layout (as avatar.ply)
    moving_index.u32    [M] uint32: the Gaussians any expression moves
    deltas.f16          [52, M, 3] float16: position offset in metres per unit of each ARKit weight
    head_weight.f32     [N] float32: the fraction of a head rotation each Gaussian follows

For weights ``w [52]`` and a head rotation R (axis a, angle θ), Gaussian i sits at
``pivot + Rot(a, head_weight[i]·θ)·(neutral[i] + Σ_k w[k]·delta[k, i] − pivot)`` and its quaternion is
pre-multiplied by that same rotation; scales, opacities and colours stay.

``build_rig`` measures all of it through ``Avatar.gaussians(expression)`` only, so it holds for any prior:
a secant per weight (0 -> 1) gives the deltas; two head turns give the pivot (from the Gaussians of the upper
half of the head, which follow a head turn fully) and each Gaussian's fraction of the turn.
"""
from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fica.drive.expression import ARKIT_NAMES, Expression
from fica.errors import UnsupportedInput
from fica.io._atomic import atomic_path
from fica.io.splat_files import parse_ply, ply_bytes
from fica.prior.gaussians import GaussianSet
from fica.rotations import matrix_to_axis_angle, rotate_about_axis, rotation_ypr

if TYPE_CHECKING:
    from fica.avatar import Avatar

FORMAT = "fica-rig"
VERSION = 1
FRAME = "head frame: +x the subject's left, +y up, +z out of the face"
MOVING_MIN_M = 1e-6  # a Gaussian that no weight moves further than this is not in moving_index
PROBE_TURN_DEG = 20.0  # the yaw and pitch used to measure the pivot and head weights
FILES = ("manifest.json", "gaussians.ply", "moving_index.u32", "deltas.f16", "head_weight.f32")


@dataclass
class Rig:
    """neutral: the Gaussians at the neutral expression (N); moving ``[M]`` int64; deltas ``[52, M, 3]`` metres
    per unit weight; head_weight ``[N]`` 0..1; neck_pivot ``[3]`` metres (head frame)."""

    neutral: GaussianSet
    moving: np.ndarray
    deltas: np.ndarray
    head_weight: np.ndarray
    neck_pivot: np.ndarray

    def manifest(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "count": len(self.neutral), "moving": int(len(self.moving)),
                "expressions": list(ARKIT_NAMES), "neck_pivot": [round(float(v), 6) for v in self.neck_pivot],
                "units": "metre", "frame": FRAME}

    def means(self, weights: np.ndarray, rotation_deg=(0.0, 0.0, 0.0)) -> np.ndarray:
        """Gaussian centres ``[N, 3]`` for ARKit ``weights [52]`` and head (yaw, pitch, roll) in degrees."""
        means = self.neutral.means.cpu().numpy().astype(np.float64)
        means[self.moving] += np.tensordot(np.asarray(weights, np.float64), self.deltas.astype(np.float64), 1)
        axis, angle = matrix_to_axis_angle(rotation_ypr(*(float(a) for a in rotation_deg)).double())
        turned = rotate_about_axis(torch.from_numpy(means - self.neck_pivot), axis,
                                   torch.from_numpy(angle * self.head_weight))
        return turned.numpy() + self.neck_pivot


def _axis_angle(R) -> tuple[np.ndarray, float]:
    """Unit axis ``[3]`` (float64) and angle (radians) of a rotation ``[3, 3]`` (torch)."""
    axis, angle = matrix_to_axis_angle(R.double())
    return axis.numpy(), angle


def _means(avatar: "Avatar", expression: Expression) -> np.ndarray:
    return avatar.gaussians(expression).means.detach().cpu().double().numpy()


def measure_head_rotation(avatar: "Avatar", neutral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The neck pivot ``[3]`` and each Gaussian's fraction of a head rotation ``[N]``, measured from a yaw and a
    pitch of PROBE_TURN_DEG.

    Pivot: the Gaussians above the median height turn rigidly, so ``(I − R) c = mean(p' − R p)`` for both turns
    (least squares, 6 equations). Fraction: each Gaussian's turn angle about each probe axis through the pivot,
    over the probe angle, averaged with its squared distance from that axis as the weight.
    """
    theta = math.radians(PROBE_TURN_DEG)
    probes = [(rotation_ypr(PROBE_TURN_DEG, 0.0, 0.0), (PROBE_TURN_DEG, 0.0, 0.0)),
              (rotation_ypr(0.0, PROBE_TURN_DEG, 0.0), (0.0, PROBE_TURN_DEG, 0.0))]
    turned = [(R, _means(avatar, Expression(rotation_deg=ypr))) for R, ypr in probes]
    upper = neutral[:, 1] > np.median(neutral[:, 1])
    A = np.concatenate([np.eye(3) - R.double().numpy() for R, _ in turned])
    b = np.concatenate([(moved[upper] - neutral[upper] @ R.double().numpy().T).mean(0) for R, moved in turned])
    pivot = np.linalg.lstsq(A, b, rcond=None)[0]
    num, den = np.zeros(len(neutral)), np.full(len(neutral), 1e-12)
    for R, moved in turned:
        axis, _ = _axis_angle(R)
        q, q_moved = neutral - pivot, moved - pivot
        q = q - (q @ axis)[:, None] * axis
        q_moved = q_moved - (q_moved @ axis)[:, None] * axis
        phi = np.arctan2(np.cross(q, q_moved) @ axis, (q * q_moved).sum(1))
        r2 = (q * q).sum(1)
        num += r2 * phi / theta
        den += r2
    return pivot, np.clip(num / den, 0.0, 1.0)


def build_rig(avatar: "Avatar") -> Rig:
    """Linearise ``avatar`` at neutral: 52 + 3 decodes (one per weight, the neutral, two head turns)."""
    neutral_set = avatar.gaussians(Expression.neutral()).to("cpu")
    neutral = neutral_set.means.double().numpy()
    deltas = np.stack([_means(avatar, Expression.from_dict({name: 1.0})) - neutral for name in ARKIT_NAMES])
    moving = np.nonzero(np.abs(deltas).max(axis=(0, 2)) > MOVING_MIN_M)[0]
    pivot, head_weight = measure_head_rotation(avatar, neutral)
    return Rig(neutral_set, moving, deltas[:, moving].astype(np.float32), head_weight.astype(np.float32), pivot)


def save_rig(rig: Rig, path: str | Path) -> Path:
    """Write ``rig`` as ``avatar_rig.zip`` (layout in the module docstring). Atomic."""
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(rig.manifest(), indent=1))
        zf.writestr("gaussians.ply", ply_bytes(rig.neutral))
        zf.writestr("moving_index.u32", rig.moving.astype("<u4").tobytes())
        zf.writestr("deltas.f16", rig.deltas.astype("<f2").tobytes())
        zf.writestr("head_weight.f32", rig.head_weight.astype("<f4").tobytes())
    return path


def load_rig(path: str | Path) -> Rig:
    """Read an ``avatar_rig.zip``. A file that is not a fica-rig v1 raises ``UnsupportedInput``."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            missing = [name for name in FILES if name not in zf.namelist()]
            if missing:
                raise UnsupportedInput(f"{path.name} is not a FiCA rig: it has no {', '.join(missing)}.")
            data = {name: zf.read(name) for name in FILES}
    except zipfile.BadZipFile as err:
        raise UnsupportedInput(f"{path.name} is not a zip file.") from err
    manifest = json.loads(data["manifest.json"])
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise UnsupportedInput(f"{path.name} is not a fica-rig version {VERSION} file.")
    neutral = parse_ply(data["gaussians.ply"], f"{path.name}/gaussians.ply")
    n, m = int(manifest["count"]), int(manifest["moving"])
    moving = np.frombuffer(data["moving_index.u32"], "<u4").astype(np.int64)
    deltas = np.frombuffer(data["deltas.f16"], "<f2").astype(np.float32).reshape(len(ARKIT_NAMES), m, 3)
    head_weight = np.frombuffer(data["head_weight.f32"], "<f4").copy()
    if len(neutral) != n or len(moving) != m or len(head_weight) != n:
        raise UnsupportedInput(f"{path.name}: its files disagree with the manifest's counts.")
    return Rig(neutral, moving, deltas, head_weight, np.asarray(manifest["neck_pivot"], np.float64))
