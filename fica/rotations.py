"""Rotations in the head frame (DESIGN.md §3): quaternions (w, x, y, z), matrices, axis–angle, the head's
(yaw, pitch, roll) and the eyes' gaze. Every layer that turns something takes it from here."""

from __future__ import annotations

import math

import torch


def quat_to_matrix(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` of quaternions ``[..., 4]`` (w, x, y, z; normalised here)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(_matrix_entries(w, x, y, z), -1).unflatten(-1, (3, 3))


def quat_to_matrix_rows(quats: torch.Tensor) -> torch.Tensor:
    """Row-major rotation matrices of quaternions ``[N, 4]`` (w, x, y, z; normalised here) as rows ``[9, N]``:
    entry (i, j) of every matrix in row 3 i + j. The same as ``quat_to_matrix(quats).reshape(-1, 9).T``, computed
    on contiguous rows, which is several times faster on a CPU for many quaternions."""
    w, x, y, z = quats.T.contiguous()
    inverse_norm = (w * w + x * x + y * y + z * z).clamp(min=1e-24).rsqrt()
    return torch.stack(_matrix_entries(w * inverse_norm, x * inverse_norm, y * inverse_norm, z * inverse_norm))


def _matrix_entries(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
    """The nine entries, row-major, of the rotation matrix of unit quaternions with these components."""
    return [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``[N, 4]`` (w, x, y, z, w >= 0) of rotation matrices ``[N, 3, 3]``.

    Of the four algebraically equivalent formulas, the best-conditioned one (largest denominator) is evaluated per
    matrix: each formula's four numerators are entries of one table (the four ``four`` terms, then the matrix's
    antisymmetric and symmetric off-diagonal sums), picked by ``_FORMULA_TERMS``.
    """
    m00, m01, m02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    m10, m11, m12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    m20, m21, m22 = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    terms = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22,
                         m21 - m12, m02 - m20, m10 - m01, m10 + m01, m02 + m20, m12 + m21], -1)  # [N, 10]
    root = terms[:, :4].clamp(min=0).sqrt()  # 2|w|, 2|x|, 2|y|, 2|z|
    best = root.argmax(-1)  # [N]
    picks = _FORMULA_TERMS.to(m.device)[best]  # [N, 4]
    q = terms.gather(1, picks) / (2 * root.gather(1, best[:, None]).clamp(min=0.1))
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    return torch.nn.functional.normalize(q, dim=-1)


# matrix_to_quat: per formula (divide by 2|w|, 2|x|, 2|y| or 2|z|), the columns of its (w, x, y, z) numerators
_FORMULA_TERMS = torch.tensor([[0, 4, 5, 6], [4, 1, 7, 8], [5, 7, 2, 9], [6, 8, 9, 3]])


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a ⊗ b`` of quaternions ``[..., 4]`` (w, x, y, z): rotate by b, then by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)


def axis_angle_to_quat(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Quaternions ``[N, 4]`` (w, x, y, z) turning by ``angle [N]`` (radians) about the unit ``axis [3]``."""
    return torch.cat([(angle / 2).cos()[:, None], axis * (angle / 2).sin()[:, None]], 1)


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotation ``[3, 3]`` of the axis-angle vector ``w [3]`` (radians); smooth at zero."""
    theta2 = (w * w).sum()
    theta = torch.sqrt(theta2 + 1e-12)
    zero = torch.zeros((), dtype=w.dtype)
    k = torch.stack([torch.stack([zero, -w[2], w[1]]), torch.stack([w[2], zero, -w[0]]),
                     torch.stack([-w[1], w[0], zero])])
    a = torch.sin(theta) / theta
    b = (1 - torch.cos(theta)) / (theta2 + 1e-12)
    return torch.eye(3, dtype=w.dtype) + a * k + b * (k @ k)


def rotate_about_axis(points: torch.Tensor, axis: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rodrigues: ``points [N, 3]`` turned about the unit ``axis [3]`` through the origin, each by its own angle
    ``angles [N]`` (radians): p cos a + (k × p) sin a + k (k · p)(1 − cos a). In ``points``' dtype."""
    axis, angles = axis.to(points), angles.to(points)
    c, s = angles.cos()[:, None], angles.sin()[:, None]
    k_cross_p = torch.cross(axis.expand_as(points), points, dim=1)
    return points * c + k_cross_p * s + axis * (points @ axis)[:, None] * (1 - c)


def matrix_to_axis_angle(R: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Unit axis ``[3]`` and angle (radians) of a rotation matrix ``[3, 3]`` (axis z for the identity)."""
    angle = math.acos(max(-1.0, min(1.0, (float(torch.trace(R)) - 1) / 2)))
    axis = torch.stack([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if axis.norm() < 1e-8:
        if angle < 1e-6:
            return torch.tensor([0.0, 0.0, 1.0]), 0.0
        # 180°: the axis is the column of R + I with the largest norm
        cols = R + torch.eye(3)
        axis = cols[:, cols.norm(dim=0).argmax()]
    return torch.nn.functional.normalize(axis, dim=0), angle


def rotation_ypr(yaw_deg: float, pitch_deg: float, roll_deg: float) -> torch.Tensor:
    """Head-frame rotation ``[3, 3]``: yaw about +y (positive turns the face toward +x, the subject's left),
    pitch about +x (positive tilts the face down, chin toward the chest), roll about +z (positive tips the top of
    the head toward −x); applied as R = Ry @ Rx @ Rz."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    Ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    Rz = torch.tensor([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return (Ry @ Rx @ Rz).float()


def ypr_from_rotation(R: torch.Tensor) -> torch.Tensor:
    """(yaw, pitch, roll) in degrees ``[3]`` of a head rotation ``[3, 3]`` = Ry(yaw) @ Rx(pitch) @ Rz(roll)."""
    pitch = torch.asin((-R[1, 2]).clamp(-1, 1))
    yaw = torch.atan2(R[0, 2], R[2, 2])
    roll = torch.atan2(R[1, 0], R[1, 1])
    return torch.rad2deg(torch.stack([yaw, pitch, roll]))


def gaze_rotation(yaw_deg: float, pitch_deg: float) -> torch.Tensor:
    """``[3, 3]`` eyeball rotation: positive yaw looks toward +x (the subject's left), positive pitch looks up."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    Ry = torch.tensor([[math.cos(y), 0.0, math.sin(y)], [0.0, 1.0, 0.0], [-math.sin(y), 0.0, math.cos(y)]])
    Rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(p), math.sin(p)], [0.0, -math.sin(p), math.cos(p)]])
    return Ry @ Rx


def gaze_from_direction(d: torch.Tensor) -> torch.Tensor:
    """Gaze (yaw, pitch) in radians ``[2]`` of a unit looking direction ``d [3]`` (head frame), the inverse of
    ``gaze_rotation`` applied to +z."""
    return torch.stack([torch.atan2(d[0], d[2]), torch.asin(d[1].clamp(-1, 1))])
