"""The browser's webcam mapping: MediaPipe landmarks -> ARKit weights + head rotation, as one linear map fitted
offline to what the Python driving fit (``fica.unwrap.fit.fit_expression``) gives on the same landmarks.

The live viewer (``fica/web/webcam.js``) computes ``landmark_features`` the same way and applies the map stored in
``fica/web/landmark_regression.json``; ``python -m fica.drive.landmark_regression`` refits it: avatars of the
example portraits are rendered at random expressions and head turns, MediaPipe finds their landmarks, and the
Python fit (identity held from each avatar's neutral frontal render, as for a driving video) gives the targets.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
from pathlib import Path

import numpy as np

NUM_FEATURE_LANDMARKS = 468  # the face mesh without the iris points
EYE_OUTER = (33, 263)  # the subject's right and left outer eye corners
TARGETS = 52 + 3  # ARKit weights, then yaw, pitch, roll in degrees
RIDGE = 1e-2
MODEL_PATH = Path(__file__).resolve().parents[1] / "web" / "landmark_regression.json"


def landmark_features(landmarks: np.ndarray) -> np.ndarray:
    """Features ``[468 * 3 + 2]`` of MediaPipe landmarks ``[478, 3]`` in pixels (z scaled like x).

    The points are centred, turned so the outer eye corners are level, divided by their 3D distance, then
    flattened; the eye line's tilt (radians) and its sine follow, so roll stays visible to the map.
    """
    p = np.asarray(landmarks, np.float64)[:NUM_FEATURE_LANDMARKS]
    p = p - p.mean(0)
    d = p[EYE_OUTER[1]] - p[EYE_OUTER[0]]
    tilt = math.atan2(d[1], d[0])
    c, s = math.cos(tilt), math.sin(tilt)
    x = c * p[:, 0] + s * p[:, 1]
    y = -s * p[:, 0] + c * p[:, 1]
    scale = max(float(np.linalg.norm(d)), 1e-6)
    return np.concatenate([np.stack([x, y, p[:, 2]], 1).ravel() / scale, [tilt, math.sin(tilt)]])


def apply_regression(model: dict, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ARKit weights ``[52]`` (clamped to 0..1) and (yaw, pitch, roll) degrees ``[3]`` for ``landmarks``."""
    f = (landmark_features(landmarks) - model["feature_mean"]) / model["feature_scale"]
    out = f @ model["W"] + model["bias"]
    return np.clip(out[:52], 0.0, 1.0), out[52:]


def _encode(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, "<f4").tobytes()).decode("ascii")


def _decode(text: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f4").astype(np.float64).reshape(shape)


def save_model(mean: np.ndarray, scale: np.ndarray, W: np.ndarray, bias: np.ndarray, path: Path, info: dict) -> None:
    f = len(mean)
    path.write_text(json.dumps({"features": f, "targets": TARGETS, "eye_outer": list(EYE_OUTER),
                                "landmarks": NUM_FEATURE_LANDMARKS, "info": info,
                                "feature_mean": _encode(mean), "feature_scale": _encode(scale),
                                "W": _encode(W), "bias": _encode(bias)}))


def load_model(path: Path = MODEL_PATH) -> dict:
    raw = json.loads(Path(path).read_text())
    f = raw["features"]
    return {"feature_mean": _decode(raw["feature_mean"], (f,)), "feature_scale": _decode(raw["feature_scale"], (f,)),
            "W": _decode(raw["W"], (f, TARGETS)), "bias": _decode(raw["bias"], (TARGETS,))}


def fit(features: np.ndarray, targets: np.ndarray, ridge: float = RIDGE):
    """Ridge regression on standardised features: ``features [S, F]``, ``targets [S, 55]``."""
    mean = features.mean(0)
    scale = features.std(0) + 1e-6
    X = (features - mean) / scale
    bias = targets.mean(0)
    A = X.T @ X + ridge * len(X) * np.eye(X.shape[1])
    W = np.linalg.solve(A, X.T @ (targets - bias))
    return mean, scale, W, bias


def _random_expression(rng: np.random.Generator):
    """A sparse random expression (a few weights, some at full strength) and a head turn within ±25°."""
    from fica.drive.expression import ARKIT_NAMES, Expression

    w = np.zeros(len(ARKIT_NAMES))
    chosen = rng.choice(len(ARKIT_NAMES), size=rng.integers(1, 6), replace=False)
    w[chosen] = rng.uniform(0.2, 1.0, len(chosen))
    if rng.random() < 0.5:
        w[ARKIT_NAMES.index("jawOpen")] = rng.uniform(0.0, 1.0)
    ypr = rng.uniform(-1, 1, 3) * np.array([25.0, 15.0, 10.0]) * (rng.random() < 0.7)
    return Expression(w.astype(np.float32), ypr.astype(np.float32))


def collect(portraits: list[Path], samples_per_avatar: int, seed: int = 0):
    """Features ``[S, F]`` and Python-fit targets ``[S, 55]`` from renders of each portrait's avatar."""
    from fica.errors import FiCAError
    from fica.head.model import default_head
    from fica.pipeline import FiCAPipeline
    from fica.render.camera import orbit_camera
    from fica.unwrap.fit import fit_expression, fit_head
    from fica.unwrap.landmarks import detect_landmarks

    rng = np.random.default_rng(seed)
    head = default_head()
    pipe = FiCAPipeline.from_pretrained()
    camera = orbit_camera(0.0, 0.0, width=384, height=384)
    feats, targets = [], []
    for portrait in portraits:
        avatar = pipe(portrait).avatar
        rgb, _ = avatar.render(camera, backend="surface")
        image = rgb.clamp(0, 1).numpy()
        base = fit_head(detect_landmarks(image), image.shape[:2], head, correct=False)
        for _ in range(samples_per_avatar):
            expression = _random_expression(rng)
            rgb, _ = avatar.render(camera, expression, backend="surface")
            image = rgb.clamp(0, 1).numpy()
            try:
                landmarks = detect_landmarks(image)
            except FiCAError:
                continue
            result = fit_expression(landmarks, image.shape[:2], head, base).to_expression()
            feats.append(landmark_features(landmarks.numpy()))
            targets.append(np.concatenate([result.weights.numpy(), result.rotation_deg.numpy()]))
        print(f"{portrait.name}: {len(feats)} samples so far", flush=True)
    return np.asarray(feats), np.asarray(targets)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Refit the webcam's landmark -> ARKit map (writes "
                                                 f"{MODEL_PATH.name}).")
    examples = Path(__file__).resolve().parents[2] / "examples"
    parser.add_argument("--portraits", nargs="+", type=Path,
                        default=[examples / n for n in ("astronaut.jpg", "grace_hopper.jpg",
                                                        "astronaut_stylized.jpg", "grace_hopper_smooth.jpg")])
    parser.add_argument("--samples", type=int, default=150, help="renders per portrait")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    features, targets = collect(args.portraits, args.samples)
    order = np.random.default_rng(1).permutation(len(features))
    held = order[: len(order) // 5]
    train = order[len(order) // 5:]
    mean, scale, W, bias = fit(features[train], targets[train])
    pred = (features[held] - mean) / scale @ W + bias
    jaw = 17
    corr = float(np.corrcoef(pred[:, jaw], targets[held, jaw])[0, 1])
    rmse_w = float(np.sqrt(((np.clip(pred[:, :52], 0, 1) - targets[held, :52]) ** 2).mean()))
    rmse_r = [float(v) for v in np.sqrt(((pred[:, 52:] - targets[held, 52:]) ** 2).mean(0))]
    info = {"samples": int(len(features)), "held_out": int(len(held)), "held_out_jawOpen_corr": round(corr, 3),
            "held_out_weight_rmse": round(rmse_w, 4), "held_out_ypr_rmse_deg": [round(v, 2) for v in rmse_r]}
    print(json.dumps(info))
    mean, scale, W, bias = fit(features, targets)
    save_model(mean, scale, W, bias, args.out, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
